// The growing ghost text against a scripted server: asks reuse one request, partials grow the text and
// re-trigger VS Code, the answer replaces them, typing through keeps what still matches.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';

import { GrowingInlineCompletions, ProvideNext, registerInlineCompletions } from '../../src/inline';

const URI = 'file:///w/main.py';

function doc(text: string, version: number) {
  const offset = (p: vscode.Position) => text.split('\n').slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  return { uri: vscode.Uri.parse(URI), version, getText: (r: vscode.Range) => text.slice(offset(r.start), offset(r.end)) } as unknown as vscode.TextDocument;
}
const at = (line: number, character: number) => new vscode.Position(line, character);
const typed = { triggerKind: vscode.InlineCompletionTriggerKind.Automatic, selectedCompletionInfo: undefined } as vscode.InlineCompletionContext;
const invoked = { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined } as vscode.InlineCompletionContext;
const texts = (items: vscode.InlineCompletionItem[]) => items.map((i) => i.insertText);

// A server whose answers the test gives: each request's resolve and the token it was sent with.
function scriptedServer() {
  const requests: { resolve: (items: vscode.InlineCompletionItem[] | null) => void; token: vscode.CancellationToken; position: vscode.Position }[] = [];
  const next = vi.fn<ProvideNext>((_d, position, _c, token) => new Promise((resolve) => requests.push({ resolve, token, position })));
  return { next, requests };
}
const partial = (text: string, position = at(0, 4), id = 1) => ({ id, uri: URI, position: { line: position.line, character: position.character }, text });
const settled = async <T>(p: Promise<T>) => {
  let done = false;
  void p.then(() => { done = true; });
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  return done;
};

describe('GrowingInlineCompletions', () => {
  let trigger: ReturnType<typeof vi.fn<(uri: string) => boolean>>;
  let inline: GrowingInlineCompletions;
  beforeEach(() => {
    trigger = vi.fn<(uri: string) => boolean>(() => true);
    inline = new GrowingInlineCompletions(trigger);
  });

  it('shows partial text as it grows, re-triggers, and ends with the answer, all from one request', async () => {
    const { next, requests } = scriptedServer();
    const d = doc('def f', 1);
    const vsToken = new vscode.CancellationTokenSource();
    const first = inline.provide(d, at(0, 4), typed, vsToken.token, next);
    expect(await settled(first)).toBe(false);  // nothing to show yet: it waits

    inline.onPartial(partial('x('));
    expect(texts(await first)).toEqual(['x(']);
    expect((await first)[0].range).toEqual(new vscode.Range(at(0, 4), at(0, 4)));
    expect(trigger).not.toHaveBeenCalled();  // the waiting ask took it
    vsToken.cancel();                         // VS Code moves on: the request must go on

    inline.onPartial(partial('x(y'));
    expect(trigger).toHaveBeenCalledTimes(1);
    expect(trigger).toHaveBeenCalledWith(URI);
    expect(texts(await inline.provide(d, at(0, 4), invoked, new vscode.CancellationTokenSource().token, next))).toEqual(['x(y']);

    requests[0].resolve([new vscode.InlineCompletionItem('x(y, z)', new vscode.Range(at(0, 4), at(0, 4)))]);
    await vi.waitFor(() => expect(trigger).toHaveBeenCalledTimes(2));
    expect(texts(await inline.provide(d, at(0, 4), invoked, new vscode.CancellationTokenSource().token, next))).toEqual(['x(y, z)']);

    expect(next).toHaveBeenCalledTimes(1);
    expect(requests[0].token.isCancellationRequested).toBe(false);
  });

  it('answers an ask that VS Code gave up on with nothing, and keeps generating', async () => {
    const { next, requests } = scriptedServer();
    const vsToken = new vscode.CancellationTokenSource();
    const ask = inline.provide(doc('def f', 1), at(0, 4), typed, vsToken.token, next);
    vsToken.cancel();
    expect(await ask).toEqual([]);
    inline.onPartial(partial('abc'));
    expect(trigger).toHaveBeenCalledTimes(1);
    expect(requests[0].token.isCancellationRequested).toBe(false);
  });

  it('ignores partials for another place, another document or an older request', async () => {
    const { next } = scriptedServer();
    const d = doc('def f', 1);
    void inline.provide(d, at(0, 4), typed, new vscode.CancellationTokenSource().token, next);
    inline.onPartial(partial('new', at(0, 4), 7));
    inline.onPartial(partial('other place', at(0, 3), 8));
    inline.onPartial({ ...partial('other file', at(0, 4), 9), uri: 'file:///w/other.py' });
    inline.onPartial(partial('older request', at(0, 4), 6));
    expect(texts(await inline.provide(d, at(0, 4), invoked, new vscode.CancellationTokenSource().token, next))).toEqual(['new']);
  });

  it('keeps the rest of the suggestion while the user types through it, until the new text differs', async () => {
    const { next, requests } = scriptedServer();
    const none = () => new vscode.CancellationTokenSource().token;
    const first = inline.provide(doc('def ', 1), at(0, 4), typed, none(), next);
    requests[0].resolve([new vscode.InlineCompletionItem('oo(a, b):', new vscode.Range(at(0, 4), at(0, 4)))]);
    expect(texts(await first)).toEqual(['oo(a, b):']);

    // "oo" typed: the rest is there at once, at the new position, while a new request runs.
    const d2 = doc('def oo', 3);
    const shown = await inline.provide(d2, at(0, 6), typed, none(), next);
    expect(texts(shown)).toEqual(['(a, b):']);
    expect(shown[0].range).toEqual(new vscode.Range(at(0, 6), at(0, 6)));
    expect(next).toHaveBeenCalledTimes(2);
    expect(requests[1].position).toEqual(at(0, 6));

    inline.onPartial(partial('(a', at(0, 6), 2));  // only repeats the start: keep the longer text
    expect(texts(await inline.provide(d2, at(0, 6), invoked, none(), next))).toEqual(['(a, b):']);
    inline.onPartial(partial('(x', at(0, 6), 2));  // differs: the new text wins
    expect(texts(await inline.provide(d2, at(0, 6), invoked, none(), next))).toEqual(['(x']);

    // Typing that does not match the new text: nothing is carried, the ask waits for the server.
    const d3 = doc('def oo!', 4);
    const ask = inline.provide(d3, at(0, 7), typed, none(), next);
    expect(await settled(ask)).toBe(false);
    expect(requests[1].token.isCancellationRequested).toBe(true);  // superseded
    inline.onPartial(partial('zz', at(0, 7), 3));
    expect(texts(await ask)).toEqual(['zz']);
  });

  it('carries the partial text of a request the server cancelled when the user typed', async () => {
    const { next, requests } = scriptedServer();
    const none = () => new vscode.CancellationTokenSource().token;
    void inline.provide(doc('x = ', 1), at(0, 4), typed, none(), next);
    inline.onPartial(partial('len(items)'));
    requests[0].resolve(null);  // the client's answer to RequestCancelled
    const shown = await inline.provide(doc('x = le', 2), at(0, 6), typed, none(), next);
    expect(texts(shown)).toEqual(['n(items)']);
  });

  it('starts over for an explicit ask after a typed answer, but not for its own re-trigger', async () => {
    const { next, requests } = scriptedServer();
    const d = doc('def f', 1);
    const none = () => new vscode.CancellationTokenSource().token;
    const first = inline.provide(d, at(0, 4), typed, none(), next);
    inline.onPartial(partial('a'));
    expect(texts(await first)).toEqual(['a']);
    requests[0].resolve([new vscode.InlineCompletionItem('ab', new vscode.Range(at(0, 4), at(0, 4)))]);
    await vi.waitFor(() => expect(trigger).toHaveBeenCalledTimes(1));  // the next ask is ours
    expect(texts(await inline.provide(d, at(0, 4), invoked, none(), next))).toEqual(['ab']);
    expect(next).toHaveBeenCalledTimes(1);

    void inline.provide(d, at(0, 4), invoked, none(), next);  // the user asks for alternatives
    expect(next).toHaveBeenCalledTimes(2);
    expect(next.mock.calls[1][2].triggerKind).toBe(vscode.InlineCompletionTriggerKind.Invoke);
  });
});

describe('registerInlineCompletions', () => {
  it('puts the middleware on the client, feeds it the partials and re-triggers only the editor that shows them', async () => {
    const handlers = new Map<string, (p: unknown) => void>();
    let middleware: { provideInlineCompletionItems?: (...args: unknown[]) => Promise<vscode.InlineCompletionItem[]> } = {};
    const server = {
      use: (m: typeof middleware) => { middleware = m; },
      onClient: (attach: (client: unknown) => void) => attach({ onNotification: (method: string, f: (p: unknown) => void) => handlers.set(method, f) }),
    };
    const context = { subscriptions: [] as unknown[] };
    registerInlineCompletions(context as never, server as never);
    expect(context.subscriptions).toHaveLength(1);
    vi.mocked(vscode.commands.executeCommand).mockClear();
    (vscode.window as { activeTextEditor: unknown }).activeTextEditor = { document: { uri: vscode.Uri.parse('file:///w/elsewhere.py') } };

    const next = vi.fn(() => new Promise<null>(() => undefined));
    const ask = middleware.provideInlineCompletionItems!(doc('x = ', 1), at(0, 4), typed, new vscode.CancellationTokenSource().token, next);
    handlers.get('qcoder/inlineCompletionPartial')!(partial('1'));
    expect(texts(await ask)).toEqual(['1']);
    handlers.get('qcoder/inlineCompletionPartial')!(partial('12'));
    expect(vscode.commands.executeCommand).not.toHaveBeenCalled();  // another editor is active

    (vscode.window as { activeTextEditor: unknown }).activeTextEditor = { document: { uri: vscode.Uri.parse(URI) } };
    handlers.get('qcoder/inlineCompletionPartial')!(partial('123'));
    expect(vscode.commands.executeCommand).toHaveBeenCalledWith('editor.action.inlineSuggest.trigger');
  });
});
