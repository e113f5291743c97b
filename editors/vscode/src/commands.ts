// The commands: "qcoder: Rewrite selection…" (asks for the instruction; the server computes the edit and
// applies it through workspace/applyEdit), "qcoder: Refactor workspace…" (one instruction over every file
// of the folder, as one edit: one undo takes it back), "qcoder: Show status" (the `qcoder.status` command's answer in
// an output channel) and "qcoder: Restart server". The server's own commands (qcoder.rewriteSelection,
// qcoder.status, ...) are registered by the language client under their names, so ours differ.
// Thread-safety: extension host only.
import * as vscode from 'vscode';

import { ServerStatus, statusLines } from './status';

// What the commands need from the server (the language client, or a plain connection in tests).
export interface Requester {
  request<R>(method: string, params: unknown, token?: vscode.CancellationToken): Promise<R>;
}

const REQUEST_CANCELLED = -32800;

export async function rewriteSelection(editor: vscode.TextEditor | undefined, server: Requester): Promise<boolean> {
  if (!editor || editor.selection.isEmpty) {
    void vscode.window.showInformationMessage('qcoder: select the code to rewrite first.');
    return false;
  }
  const instruction = await vscode.window.showInputBox({
    title: 'qcoder: Rewrite selection',
    prompt: 'How should the selection change? (empty: the qcoder.rewriteInstruction setting)',
    ignoreFocusOut: true,
  });
  if (instruction === undefined) return false;
  const { start, end } = editor.selection;
  const argument: Record<string, unknown> = {
    uri: editor.document.uri.toString(),
    range: { start: { line: start.line, character: start.character }, end: { line: end.line, character: end.character } },
  };
  if (instruction.trim() !== '') argument.instruction = instruction;
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'qcoder: rewriting the selection…', cancellable: true },
      (_progress, token) => server.request<{ applied?: boolean; failureReason?: string }>(
        'workspace/executeCommand', { command: 'qcoder.rewriteSelection', arguments: [argument] }, token));
    if (result?.applied) return true;
    void vscode.window.showWarningMessage(`qcoder: the rewrite was not applied${result?.failureReason ? `: ${result.failureReason}` : ''}.`);
  } catch (e) {
    if ((e as { code?: number }).code !== REQUEST_CANCELLED) {
      void vscode.window.showErrorMessage(`qcoder: rewrite failed: ${(e as Error).message}`);
    }
  }
  return false;
}

interface RefactorResult {
  applied?: boolean;
  files?: number;
  unitsChanged?: number;
  skipped?: string[];
  failureReason?: string;
}

export async function refactorWorkspace(server: Requester): Promise<boolean> {
  if (!vscode.workspace.workspaceFolders?.length) {
    void vscode.window.showInformationMessage('qcoder: open a folder to refactor it.');
    return false;
  }
  const instruction = await vscode.window.showInputBox({
    title: 'qcoder: Refactor workspace',
    prompt: 'What should change across the workspace? (e.g. rename `getUser` to `fetchUser` and update callers)',
    ignoreFocusOut: true,
  });
  if (instruction === undefined || instruction.trim() === '') return false;
  const files = await vscode.window.showInputBox({
    title: 'qcoder: Refactor workspace',
    prompt: 'Only files matching these globs, comma-separated (empty: every source file)',
    ignoreFocusOut: true,
  });
  if (files === undefined) return false;
  const argument: Record<string, unknown> = { instruction };
  const include = files.split(',').map((g) => g.trim()).filter((g) => g !== '');
  if (include.length > 0) argument.include = include;
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'qcoder: refactoring the workspace…', cancellable: true },
      (_progress, token) => server.request<RefactorResult>(
        'workspace/executeCommand', { command: 'qcoder.refactorWorkspace', arguments: [argument] }, token));
    const skipped = result?.skipped?.length ? ` (left out, edited meanwhile: ${result.skipped.join(', ')})` : '';
    if (result?.applied) {
      void vscode.window.showInformationMessage(
        `qcoder: refactored ${result.files ?? 0} files, ${result.unitsChanged ?? 0} units changed${skipped}.`);
      return true;
    }
    if (!result?.files) {
      void vscode.window.showInformationMessage('qcoder: nothing in the workspace needed that change.');
    } else {
      void vscode.window.showWarningMessage(`qcoder: the refactor was not applied${result.failureReason ? `: ${result.failureReason}` : ''}.`);
    }
  } catch (e) {
    if ((e as { code?: number }).code !== REQUEST_CANCELLED) {
      void vscode.window.showErrorMessage(`qcoder: refactor failed: ${(e as Error).message}`);
    }
  }
  return false;
}

export async function showStatus(server: Requester, channel: vscode.OutputChannel): Promise<void> {
  try {
    const status = await server.request<ServerStatus>('workspace/executeCommand', { command: 'qcoder.status', arguments: [] });
    channel.clear();
    for (const line of statusLines(status)) channel.appendLine(line);
    channel.appendLine('');
    channel.appendLine(JSON.stringify(status, null, 2));
    channel.show(true);
  } catch (e) {
    void vscode.window.showErrorMessage(`qcoder: ${(e as Error).message}`);
  }
}

export function registerCommands(context: vscode.ExtensionContext, server: Requester & { restart(): Promise<void> }): void {
  const channel = vscode.window.createOutputChannel('qcoder status');
  context.subscriptions.push(
    channel,
    vscode.commands.registerCommand('qcoder.rewriteSelectionWithInstruction',
      () => rewriteSelection(vscode.window.activeTextEditor, server)),
    vscode.commands.registerCommand('qcoder.refactorWorkspaceWithInstruction', () => refactorWorkspace(server)),
    vscode.commands.registerCommand('qcoder.showStatus', () => showStatus(server, channel)),
    vscode.commands.registerCommand('qcoder.restartServer', () => server.restart()),
  );
}
