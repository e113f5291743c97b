// The extension's code against the real `qcoder lsp` (the tiny model, over stdio, through the same
// vscode-languageserver-protocol the language client uses): settings answered by our middleware, the
// status bar fed by real `qcoder/status` notifications, ghost text grown from real partials and replaced
// by the answer, typing through it, "Show status" and "Rewrite selection…" applying the server's edit.
//
// Run by ctest with QCODER_BINARY and QCODER_MODEL set.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';
import * as rpc from 'vscode-languageserver-protocol/node';

import { rewriteSelection, showStatus } from '../../src/commands';
import { configurationMiddleware, serverSettings } from '../../src/config';
import { sendRequest } from '../../src/request';
import { GrowingInlineCompletions, PartialCompletion, ProvideNext } from '../../src/inline';
import { ServerStatus, StatusBar } from '../../src/status';

const binary = process.env.QCODER_BINARY!;
const model = process.env.QCODER_MODEL!;
// What a user would put in settings.json; empty strings are the server's defaults.
const settings: Record<string, unknown> = { model: '', rewriteInstruction: '', maxTokens: 48, editMaxTokens: 24, acceptIncompleteEdits: true };
const reader = { get: <T>(key: string) => settings[key] as T | undefined };

const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'qcoder-vscode-'));
const uri = `file://${path.join(workspace, 'main.py')}`;
let text = 'from shapes import area\n\ndef total(rects):\n    pass\n\nprint(';
let version = 1;

// A TextDocument over `text` as it is now.
function document(): vscode.TextDocument {
  const snapshot = text;
  const offset = (p: vscode.Position) => snapshot.split('\n').slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  return { uri: vscode.Uri.parse(uri), version, getText: (r: vscode.Range) => snapshot.slice(offset(r.start), offset(r.end)) } as unknown as vscode.TextDocument;
}
const endOf = (s: string) => new vscode.Position(s.split('\n').length - 1, s.split('\n').at(-1)!.length);
const none = () => new vscode.CancellationTokenSource().token;

// Applies LSP TextEdits to a string (they do not overlap).
function applyEdits(s: string, edits: { range: { start: vscode.Position; end: vscode.Position }; newText: string }[]): string {
  const offset = (p: { line: number; character: number }) => s.split('\n').slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  for (const e of sorted) s = s.slice(0, offset(e.range.start)) + e.newText + s.slice(offset(e.range.end));
  return s;
}

describe('the extension against qcoder lsp', () => {
  let child: ChildProcess;
  let connection: rpc.ProtocolConnection;
  let exited: Promise<number | null>;
  const partials: PartialCompletion[] = [];
  const applied: rpc.ApplyWorkspaceEditParams[] = [];
  const item = { text: '', tooltip: '', command: '', show() {}, dispose() {} };
  const texts: string[] = [];
  // What Server.request (src/client.ts) does with the language client.
  const server = { request: <R>(method: string, params: unknown, token?: vscode.CancellationToken) =>
    sendRequest<R>(connection as never, method, params, token) };

  beforeAll(async () => {
    fs.writeFileSync(path.join(workspace, 'shapes.py'), 'def area(w, h):\n    return w * h\n');
    child = spawn(binary, ['lsp', '--model', model, '--prefix-cache', '16MiB', '--debounce', '0', '--threads', '1'], { stdio: 'pipe' });
    child.stderr!.on('data', () => undefined);
    exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    connection = rpc.createProtocolConnection(new rpc.StreamMessageReader(child.stdout!), new rpc.StreamMessageWriter(child.stdin!));
    const bar = new StatusBar(item as never);
    connection.onNotification('qcoder/status', (s: ServerStatus) => { bar.update(s); texts.push(item.text); });
    connection.onRequest(rpc.ConfigurationRequest.type, (params, token) =>
      configurationMiddleware(() => reader)(params, token as never, () => { throw new Error('only qcoder is asked'); }));
    connection.onRequest(rpc.WorkDoneProgressCreateRequest.type, () => null);
    connection.onRequest(rpc.ApplyWorkspaceEditRequest.type, (p) => {
      applied.push(p);
      return { applied: true };
    });
    connection.listen();
    await connection.sendRequest(rpc.InitializeRequest.type, {
      processId: process.pid, rootUri: `file://${workspace}`, workspaceFolders: [{ uri: `file://${workspace}`, name: 'w' }],
      initializationOptions: serverSettings(reader),
      capabilities: {
        window: { workDoneProgress: true },
        workspace: { configuration: true, workspaceEdit: { documentChanges: true }, applyEdit: true },
        textDocument: { codeAction: { resolveSupport: { properties: ['edit'] } }, inlineCompletion: {} },
      },
    });
    await connection.sendNotification(rpc.InitializedNotification.type, {});
    await vi.waitFor(() => expect(item.text).toBe('$(check) qcoder'), { timeout: 60000, interval: 10 });
    await connection.sendNotification(rpc.DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: 'python', version, text } });
  });

  afterAll(async () => {
    connection?.dispose();
    child?.kill();
    fs.rmSync(workspace, { recursive: true, force: true });
  });

  it('shows the model loading, then idle', () => {
    expect(texts[0]).toBe('$(sync~spin) qcoder: loading model');
    expect(texts.at(-1)).toBe('$(check) qcoder');
  });

  it('grows ghost text from the partials, ends with the answer, keeps it while typing through', async () => {
    const answers: Promise<unknown>[] = [];
    const next = vi.fn<ProvideNext>((_d, position, context, token) => {
      const answer = connection.sendRequest(rpc.InlineCompletionRequest.type, {
        textDocument: { uri }, position, context: { triggerKind: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 1 : 2 },
      }, token as rpc.CancellationToken).then((r) => {
        const items = Array.isArray(r) ? r : r?.items ?? [];
        return items.map((i) => new vscode.InlineCompletionItem(i.insertText as string, new vscode.Range(
          new vscode.Position(i.range!.start.line, i.range!.start.character), new vscode.Position(i.range!.end.line, i.range!.end.character))));
      }, () => null);
      answers.push(answer);
      return answer;
    });
    // VS Code asks again when triggered: so does this test, and records what it would draw.
    const shown: string[] = [];
    const inline = new GrowingInlineCompletions(() => {
      void inline.provide(document(), position, invoked, none(), next).then((items) => shown.push(items[0]?.insertText as string));
      return true;
    });
    connection.onNotification('qcoder/inlineCompletionPartial', (p: PartialCompletion) => { partials.push(p); inline.onPartial(p); });
    const invoked = { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined } as vscode.InlineCompletionContext;
    const position = endOf(text);

    const first = await inline.provide(document(), position, invoked, none(), next);
    expect(partials.length).toBeGreaterThan(0);
    expect(first.map((i) => i.insertText)).toEqual([partials[0].text]);  // drawn before the answer came
    const answer = (await answers[0]) as vscode.InlineCompletionItem[];
    const final = answer[0].insertText as string;
    expect(final.length).toBeGreaterThan(1);
    await vi.waitFor(() => expect(shown.at(-1)).toBe(final));
    expect(next).toHaveBeenCalledTimes(1);  // every ask was served from the one request
    for (let i = 1; i < partials.length; i++) expect(partials[i].text.startsWith(partials[i - 1].text)).toBe(true);
    for (const s of shown.slice(0, -1)) expect(partials.map((p) => p.text)).toContain(s);

    // Type the suggestion's first character: the rest is drawn at once, while a new request runs.
    text += final[0];
    version += 1;
    await connection.sendNotification(rpc.DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version }, contentChanges: [{ range: { start: position, end: position }, text: final[0] }],
    });
    const typed = { triggerKind: vscode.InlineCompletionTriggerKind.Automatic, selectedCompletionInfo: undefined } as vscode.InlineCompletionContext;
    const rest = await inline.provide(document(), endOf(text), typed, none(), next);
    expect(rest.map((i) => i.insertText)).toEqual([final.slice(1)]);
    expect(next).toHaveBeenCalledTimes(2);
    await answers[1];
    inline.dispose();
  });

  it('shows the status after a completion: tokens/s in the bar, every figure in the output channel', async () => {
    expect(item.text).toMatch(/^\$\(check\) qcoder \d+\.\d tok\/s/);
    const channel = { clear: vi.fn(), appendLine: vi.fn(), show: vi.fn() };
    await showStatus(server, channel as never);
    const lines = channel.appendLine.mock.calls.map((c) => c[0] as string);
    expect(lines[0]).toBe('state: idle');
    expect(lines).toContain('open documents: 1');
    expect(lines.some((l) => /^generation: \d+\.\d tokens\/s$/.test(l))).toBe(true);
  });

  it('rewrites the selection: the server computes the edit and the editor is asked to apply it', async () => {
    vi.mocked(vscode.window.showInputBox).mockResolvedValue('rename rects to boxes');
    const selection = new vscode.Selection(new vscode.Position(2, 0), new vscode.Position(3, 8));
    const editor = { selection, document: document() } as unknown as vscode.TextEditor;
    expect(await rewriteSelection(editor, server)).toBe(true);
    expect(applied).toHaveLength(1);
    const change = applied[0].edit.documentChanges![0] as rpc.TextDocumentEdit;
    expect(change.textDocument).toEqual({ uri, version });
    expect(change.edits.length).toBeGreaterThan(0);
    const before = text.split('\n');
    const after = applyEdits(text, change.edits as never).split('\n');
    expect(after.slice(0, 2)).toEqual(before.slice(0, 2));  // only the selected lines change
    expect(after.slice(-2)).toEqual(before.slice(-2));
    expect(after.join('\n')).not.toBe(text);
  });

  it('shuts down cleanly', async () => {
    await connection.sendRequest(rpc.ShutdownRequest.type);
    await connection.sendNotification(rpc.ExitNotification.type);
    expect(await exited).toBe(0);
  });
});
