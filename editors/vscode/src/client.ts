// The language client: starts `qcoder lsp` over stdio with our settings as initializationOptions, the
// middleware the features add (inline completions, workspace/configuration), and restarts it on demand.
// Features attach their notification handlers through `onClient`, which runs for every new client.
// Thread-safety: extension host only.
import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, Middleware, ServerOptions, State } from 'vscode-languageclient/node';

import { configurationMiddleware, readSettings, SECTION, serverSettings } from './config';
import { sendRequest } from './request';
import { findServer } from './serverPath';

export type ServerState = 'starting' | 'running' | 'stopped' | 'missing';

export class Server implements vscode.Disposable {
  private client?: LanguageClient;
  private readonly attach: ((client: LanguageClient) => void)[] = [];
  private readonly stateListeners: ((state: ServerState) => void)[] = [];
  private readonly middleware: Middleware = { workspace: { configuration: configurationMiddleware() } };

  constructor(private readonly extensionPath: string) {}

  use(middleware: Middleware): void {
    Object.assign(this.middleware, middleware);
  }

  // `attach` runs for each client, before it starts (notification handlers).
  onClient(attach: (client: LanguageClient) => void): void {
    this.attach.push(attach);
  }

  onState(listener: (state: ServerState) => void): void {
    this.stateListeners.push(listener);
  }

  async start(): Promise<void> {
    const settings = readSettings();
    const command = findServer({ setting: settings.get<string>('serverPath'), pathEnv: process.env.PATH,
                                 extensionPath: this.extensionPath });
    if (!command) {
      this.emit('missing');
      void vscode.window.showErrorMessage(
        'qcoder: the server was not found. Set qcoder.serverPath, or put qcoder on PATH.', 'Open settings')
        .then((choice) => choice && vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.serverPath`));
      return;
    }
    const serverOptions: ServerOptions = { command, args: ['lsp', ...(settings.get<string[]>('serverArgs') ?? [])] };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      initializationOptions: () => serverSettings(readSettings()),
      middleware: this.middleware,
      outputChannelName: 'qcoder',
    };
    const client = new LanguageClient('qcoder', 'qcoder', serverOptions, clientOptions);
    client.onDidChangeState((e) => this.emit(e.newState === State.Running ? 'running'
      : e.newState === State.Starting ? 'starting' : 'stopped'));
    for (const attach of this.attach) attach(client);
    this.client = client;
    this.emit('starting');
    try {
      await client.start();
    } catch (e) {
      void vscode.window.showErrorMessage(`qcoder: the server did not start (${command}): ${(e as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    try {
      await client.stop();
    } catch {
      // it may have died already; dispose below still cleans up
    }
    await client.dispose().catch(() => undefined);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  // A request to the running server; fails with a message when there is none.
  request<R>(method: string, params: unknown, token?: vscode.CancellationToken): Promise<R> {
    if (!this.client || !this.client.isRunning()) return Promise.reject(new Error('the qcoder server is not running'));
    return sendRequest<R>(this.client, method, params, token);
  }

  // The server pulls the "qcoder" section again.
  settingsChanged(): void {
    if (this.client?.isRunning()) void this.client.sendNotification('workspace/didChangeConfiguration', { settings: null });
  }

  dispose(): void {
    void this.stop();
  }

  private emit(state: ServerState): void {
    for (const listener of this.stateListeners) listener(state);
  }
}
