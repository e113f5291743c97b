// "Rewrite selection…" and "Show status" against a recorded server.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';

import { refactorWorkspace, rewriteSelection, showStatus } from '../../src/commands';

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

  it('refactors the workspace with the instruction and globs typed, and reports what changed', async () => {
    (vscode.workspace as { workspaceFolders?: unknown[] }).workspaceFolders = [{ uri: vscode.Uri.parse('file:///w') }];
    vi.mocked(vscode.window.showInputBox).mockResolvedValueOnce('rename `getUser` to `fetchUser`').mockResolvedValueOnce('*.ts, src/** ');
    const server = { request: vi.fn(async () => ({ applied: true, files: 3, unitsChanged: 5, skipped: ['b.ts'] })) };
    expect(await refactorWorkspace(server)).toBe(true);
    expect(server.request).toHaveBeenCalledWith('workspace/executeCommand', {
      command: 'qcoder.refactorWorkspace',
      arguments: [{ instruction: 'rename `getUser` to `fetchUser`', include: ['*.ts', 'src/**'] }],
    }, expect.anything());
    expect(vscode.window.showInformationMessage).toHaveBeenCalledWith(
      'qcoder: refactored 3 files, 5 units changed (left out, edited meanwhile: b.ts).');
  });

  it('does not refactor without a folder or an instruction, and says when nothing changed', async () => {
    const server = { request: vi.fn(async () => ({ applied: false, files: 0 })) };
    (vscode.workspace as { workspaceFolders?: unknown[] }).workspaceFolders = undefined;
    expect(await refactorWorkspace(server)).toBe(false);
    expect(vscode.window.showInputBox).not.toHaveBeenCalled();
    (vscode.workspace as { workspaceFolders?: unknown[] }).workspaceFolders = [{}];
    vi.mocked(vscode.window.showInputBox).mockResolvedValueOnce('   ');
    expect(await refactorWorkspace(server)).toBe(false);
    expect(server.request).not.toHaveBeenCalled();
    vi.mocked(vscode.window.showInputBox).mockResolvedValueOnce('add type hints').mockResolvedValueOnce('');
    expect(await refactorWorkspace(server)).toBe(false);
    expect((server.request.mock.calls[0] as unknown[])[1]).toEqual({ command: 'qcoder.refactorWorkspace', arguments: [{ instruction: 'add type hints' }] });
    expect(vscode.window.showInformationMessage).toHaveBeenCalledWith('qcoder: nothing in the workspace needed that change.');
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
