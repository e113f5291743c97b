// One request through a JSON-RPC sender (the language client, or a protocol connection in tests).
// vscode-jsonrpc takes a trailing CancellationToken as the token, but an `undefined` in its place as one
// more parameter (the params would go out as an array), so the token is passed only when there is one.
// Thread-safety: extension host only.
import type * as vscode from 'vscode';

export interface Sender {
  sendRequest<R>(method: string, params: unknown, token?: vscode.CancellationToken): Promise<R>;
  sendRequest<R>(method: string, params: unknown): Promise<R>;
}

export function sendRequest<R>(sender: Sender, method: string, params: unknown, token?: vscode.CancellationToken): Promise<R> {
  return token ? sender.sendRequest<R>(method, params, token) : sender.sendRequest<R>(method, params);
}
