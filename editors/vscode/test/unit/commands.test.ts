// "Rewrite selection…" and "Show status" against a recorded server.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';

import { rewriteSelection, showStatus } from '../../src/commands';

const editor = (selection: vscode.Selection) =>
  ({ selection, document: { uri: vscode.Uri.parse('file:///w/a.py') } }) as unknown as vscode.TextEditor;
const sel = (a: number, b: number, c: number, d: number) => new vscode.Selection(new vscode.Position(a, b), new vscode.Position(c, d));

describe('commands', () => {
  beforeEach(() => vi.clearAllMocks());

  it('rewrites the selection with the instruction typed', async () => {
    vi.mocked(vscode.window.showInputBox).mockResolvedValue('use a list comprehension');
    const server = { request: vi.fn(async () => ({ applied: true })) };
    expect(await rewriteSelection(editor(sel(1, 0, 3, 2)), server)).toBe(true);
    expect(server.request).toHaveBeenCalledWith('workspace/executeCommand', {
      command: 'qcoder.rewriteSelection',
      arguments: [{ uri: 'file:///w/a.py', range: { start: { line: 1, character: 0 }, end: { line: 3, character: 2 } },
                    instruction: 'use a list comprehension' }],
    }, expect.anything());
  });

  it('leaves the instruction to the server when none is typed, and says when the edit was not applied', async () => {
    vi.mocked(vscode.window.showInputBox).mockResolvedValue('  ');
    const server = { request: vi.fn(async () => ({ applied: false, failureReason: 'stale' })) };
    expect(await rewriteSelection(editor(sel(0, 0, 0, 5)), server)).toBe(false);
    expect((server.request.mock.calls[0] as unknown[])[1]).toEqual({ command: 'qcoder.rewriteSelection',
      arguments: [{ uri: 'file:///w/a.py', range: { start: { line: 0, character: 0 }, end: { line: 0, character: 5 } } }] });
    expect(vscode.window.showWarningMessage).toHaveBeenCalledWith('qcoder: the rewrite was not applied: stale.');
  });

  it('does nothing without a selection or when the input box is dismissed', async () => {
    const server = { request: vi.fn() };
    expect(await rewriteSelection(editor(sel(2, 1, 2, 1)), server)).toBe(false);
    expect(vscode.window.showInputBox).not.toHaveBeenCalled();
    vi.mocked(vscode.window.showInputBox).mockResolvedValue(undefined);
    expect(await rewriteSelection(editor(sel(0, 0, 1, 0)), server)).toBe(false);
    expect(server.request).not.toHaveBeenCalled();
  });

  it('shows the status in the output channel', async () => {
    const channel = { clear: vi.fn(), appendLine: vi.fn(), show: vi.fn() };
    const server = { request: vi.fn(async () => ({ state: 'idle', tokensPerSecond: 12, openDocuments: 1 })) };
    await showStatus(server, channel as never);
    expect(server.request).toHaveBeenCalledWith('workspace/executeCommand', { command: 'qcoder.status', arguments: [] });
    const written = channel.appendLine.mock.calls.map((c) => c[0]);
    expect(written.slice(0, 3)).toEqual(['state: idle', 'generation: 12.0 tokens/s', 'open documents: 1']);
    expect(channel.show).toHaveBeenCalled();
  });
});
