// Ghost text that grows while the server generates. LSP answers an inline completion once, at the end, so
// the server also streams the text so far as `qcoder/inlineCompletionPartial` notifications. This is the
// language client's inline-completion middleware:
//
// - One generation per (document version, position). VS Code asks the provider again and again (and
//   cancels its earlier asks); those asks reuse the generation instead of starting a new request, so the
//   request runs under its own token and only a generation for another place supersedes it.
// - An ask with nothing to show yet waits for the first partial (or the answer). When the text grows and
//   no ask is waiting, `editor.action.inlineSuggest.trigger` makes VS Code ask again and draw the longer
//   text; the final answer replaces the partial text the same way.
// - Typing through the suggestion: when the text typed since the previous generation's position is a
//   prefix of its text, the rest is shown at once while the new generation runs, until the new one has
//   text that is not a prefix of it (or its answer).
// Accepting (whole, word, line) is VS Code's own.
// Thread-safety: extension host only.
import * as vscode from 'vscode';

import type { Server } from './client';

// A `qcoder/inlineCompletionPartial` notification.
export interface PartialCompletion {
  id: number | string;                             // the request's id
  uri: string;
  position: { line: number; character: number };
  text: string;                                    // the item's text so far
}

type Items = vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined;
export type ProvideNext = (document: vscode.TextDocument, position: vscode.Position,
  context: vscode.InlineCompletionContext, token: vscode.CancellationToken) => vscode.ProviderResult<Items>;

interface Generation {
  uri: string;
  version: number;
  position: vscode.Position;
  range: vscode.Range;                       // what partial text replaces (the selected item's range, or empty)
  kind: vscode.InlineCompletionTriggerKind;
  text: string;                              // the latest partial text
  partialId?: number | string;
  items?: vscode.InlineCompletionItem[];     // the answer, once there
  done: boolean;                             // answered, failed or cancelled
  carried?: string;                          // the rest of the previous suggestion, typed into
  source: vscode.CancellationTokenSource;
  waiting: (() => void)[];
}

// The answer's items; undefined for none (the client gives null for a cancelled or failed request).
function itemsOf(result: Items): vscode.InlineCompletionItem[] | undefined {
  if (!result) return undefined;
  return Array.isArray(result) ? result : result.items;
}

export class GrowingInlineCompletions implements vscode.Disposable {
  private current?: Generation;
  private selfTriggered = false;

  // `trigger(uri)` asks VS Code to ask again when the active editor shows `uri`, and says whether it did.
  constructor(private readonly trigger: (uri: string) => boolean) {}

  async provide(document: vscode.TextDocument, position: vscode.Position, context: vscode.InlineCompletionContext,
                token: vscode.CancellationToken, next: ProvideNext): Promise<vscode.InlineCompletionItem[]> {
    const ours = this.selfTriggered;
    this.selfTriggered = false;
    let g = this.current;
    const same = g !== undefined && g.uri === document.uri.toString() && g.version === document.version &&
      g.position.isEqual(position);
    // An explicit ask (not ours) for more than a typed request gave starts over, for the alternatives.
    const reinvoked = same && !ours && context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke &&
      g!.kind === vscode.InlineCompletionTriggerKind.Automatic && g!.done;
    if (!same || reinvoked) g = this.start(document, position, context, next);
    if (!this.hasText(g!)) await this.changed(g!, token);
    return this.show(g!);
  }

  // A partial notification: the generation's text grows.
  onPartial(p: PartialCompletion): void {
    const g = this.current;
    if (!g || g.done || p.uri !== g.uri || p.position.line !== g.position.line ||
        p.position.character !== g.position.character) return;
    // An older request at the same place (superseded) may still report: take the newest id.
    if (g.partialId !== undefined && typeof p.id === 'number' && typeof g.partialId === 'number' && p.id < g.partialId) return;
    g.partialId = p.id;
    if (p.text === g.text) return;
    g.text = p.text;
    this.notify(g);
  }

  dispose(): void {
    this.current?.source.cancel();
    this.current = undefined;
  }

  private start(document: vscode.TextDocument, position: vscode.Position, context: vscode.InlineCompletionContext,
                next: ProvideNext): Generation {
    const previous = this.current;
    previous?.source.cancel();
    const g: Generation = {
      uri: document.uri.toString(), version: document.version, position, kind: context.triggerKind,
      range: context.selectedCompletionInfo?.range ?? new vscode.Range(position, position),
      text: '', done: false, source: new vscode.CancellationTokenSource(), waiting: [],
    };
    if (previous) g.carried = carriedText(previous, document, position);
    this.current = g;
    let answer: Promise<Items>;
    try {
      answer = Promise.resolve(next(document, position, context, g.source.token));
    } catch (e) {
      answer = Promise.reject(e);
    }
    answer.then(
      (result) => { g.items = itemsOf(result); },
      () => undefined,
    ).finally(() => {
      g.done = true;
      this.notify(g);
    });
    return g;
  }

  private hasText(g: Generation): boolean {
    return g.done || g.text !== '' || g.carried !== undefined;
  }

  // What to draw now: the answer; else the carried text while the new text only repeats its start; else
  // the partial text.
  private show(g: Generation): vscode.InlineCompletionItem[] {
    if (g.items !== undefined) return g.items;
    const text = visibleText(g);
    if (text === '') return [];
    const range = text === g.carried ? new vscode.Range(g.position, g.position) : g.range;
    return [new vscode.InlineCompletionItem(text, range)];
  }

  // Resolves when the generation has news, or when VS Code gives up on this ask.
  private changed(g: Generation, token: vscode.CancellationToken): Promise<void> {
    return new Promise((resolve) => {
      const sub = token.onCancellationRequested(() => done());
      const done = () => { sub.dispose(); g.waiting = g.waiting.filter((w) => w !== done); resolve(); };
      g.waiting.push(done);
    });
  }

  private notify(g: Generation): void {
    if (g !== this.current) return;
    if (g.waiting.length > 0) {
      for (const resolve of [...g.waiting]) resolve();
      return;
    }
    this.selfTriggered = this.trigger(g.uri);
  }
}

// The rest of the previous generation's text when what was typed since its position is a prefix of it.
function carriedText(previous: Generation, document: vscode.TextDocument, position: vscode.Position): string | undefined {
  if (previous.uri !== document.uri.toString() || !previous.range.isEmpty || position.isBefore(previous.position)) {
    return undefined;
  }
  let text = visibleText(previous);
  const first = previous.items?.[0];
  if (previous.items !== undefined) {
    if (!first || typeof first.insertText !== 'string' || (first.range && !first.range.start.isEqual(previous.position))) return undefined;
    text = first.insertText;
  }
  const typed = document.getText(new vscode.Range(previous.position, position));
  if (typed.length === 0 || text.length <= typed.length || !text.startsWith(typed)) return undefined;
  return text.slice(typed.length);
}

// The text of a generation without an answer: what it carried while its own text only repeats the start.
function visibleText(g: Generation): string {
  return g.carried !== undefined && g.carried.startsWith(g.text) ? g.carried : g.text;
}

// Wires the middleware and the partial notifications onto the server's clients.
export function registerInlineCompletions(context: vscode.ExtensionContext, server: Server): void {
  const completions = new GrowingInlineCompletions((uri) => {
    if (vscode.window.activeTextEditor?.document.uri.toString() !== uri) return false;
    void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    return true;
  });
  server.use({
    provideInlineCompletionItems: (document, position, context, token, next) =>
      completions.provide(document, position, context, token, next),
  });
  server.onClient((client) => {
    client.onNotification('qcoder/inlineCompletionPartial', (p: PartialCompletion) => completions.onPartial(p));
  });
  context.subscriptions.push(completions);
}
