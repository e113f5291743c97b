// A small stand-in for the `vscode` module: the value types the extension builds (Position, Range,
// InlineCompletionItem, CancellationTokenSource) behave like VS Code's; the window, commands and
// workspace namespaces are spies that tests set up. Only what the extension's sources use is here.
import { vi } from 'vitest';

export class Position {
  constructor(readonly line: number, readonly character: number) {}
  isEqual(o: Position): boolean { return this.line === o.line && this.character === o.character; }
  isBefore(o: Position): boolean { return this.line < o.line || (this.line === o.line && this.character < o.character); }
  isAfterOrEqual(o: Position): boolean { return !this.isBefore(o); }
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(start: Position, end: Position) { this.start = start; this.end = end; }
  get isEmpty(): boolean { return this.start.isEqual(this.end); }
}

export class Selection extends Range {}

export class InlineCompletionItem {
  constructor(public insertText: string, public range?: Range) {}
}

export enum InlineCompletionTriggerKind { Invoke = 0, Automatic = 1 }
export enum StatusBarAlignment { Left = 1, Right = 2 }
export enum ProgressLocation { SourceControl = 1, Window = 10, Notification = 15 }

export class Disposable {
  constructor(private readonly f: () => void = () => undefined) {}
  dispose(): void { this.f(); }
}

export class CancellationTokenSource {
  private listeners: (() => void)[] = [];
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: (f: () => void) => {
      this.listeners.push(f);
      return new Disposable(() => { this.listeners = this.listeners.filter((x) => x !== f); });
    },
  };
  cancel(): void {
    if (this.token.isCancellationRequested) return;
    this.token.isCancellationRequested = true;
    for (const f of [...this.listeners]) f();
  }
  dispose(): void {}
}

export const Uri = {
  parse: (s: string) => ({ toString: () => s, fsPath: s.replace(/^file:\/\//, '') }),
  file: (p: string) => ({ toString: () => `file://${p}`, fsPath: p }),
};

export const window = {
  activeTextEditor: undefined as unknown,
  showInputBox: vi.fn(),
  showInformationMessage: vi.fn(async () => undefined),
  showWarningMessage: vi.fn(async () => undefined),
  showErrorMessage: vi.fn(async () => undefined),
  withProgress: vi.fn(async (_options: unknown, task: (progress: unknown, token: unknown) => unknown) =>
    task({ report: () => undefined }, new CancellationTokenSource().token)),
  createOutputChannel: vi.fn(),
  createStatusBarItem: vi.fn(),
};

export const commands = {
  executeCommand: vi.fn(async () => undefined),
  registerCommand: vi.fn(() => new Disposable()),
};

export const workspace = {
  workspaceFolders: undefined as unknown[] | undefined,
  getConfiguration: vi.fn(),
  onDidChangeConfiguration: vi.fn(() => new Disposable()),
};
