// The status bar item: the model's state from `qcoder/status` notifications (loading, idle, busy, error)
// with the last job's figures (tokens/s, expert-cache hit rate), or the client's state when the server is
// not running. Clicking it runs "qcoder: Show status".
// Thread-safety: extension host only.
import * as vscode from 'vscode';

import type { Server } from './client';

// The fields of a `qcoder/status` notification and of the `qcoder.status` command's answer
// (lsp/server/model_host.cpp, code_actions.cpp).
export interface ServerStatus {
  state?: string;                 // loading | idle | busy | error | offline
  message?: string;               // why, for error
  promptTokens?: number;
  reusedPromptTokens?: number;
  prefixReuse?: number;           // 0..1
  generatedTokens?: number;
  tokensPerSecond?: number;
  prefillTokensPerSecond?: number;
  expertHitRate?: number;         // 0..1
  requests?: number;
  index?: { files?: number; definitions?: number; bytes?: number; building?: boolean };
  openDocuments?: number;
}

const percent = (x: number) => `${Math.round(x * 100)}%`;

// One line per figure the status has, for the tooltip and the "Show status" output.
export function statusLines(s: ServerStatus): string[] {
  const lines = [`state: ${s.state ?? 'unknown'}${s.message ? ` (${s.message})` : ''}`];
  if (s.tokensPerSecond !== undefined) lines.push(`generation: ${s.tokensPerSecond.toFixed(1)} tokens/s`);
  if (s.prefillTokensPerSecond !== undefined) lines.push(`prompt: ${s.prefillTokensPerSecond.toFixed(0)} tokens/s`);
  if (s.expertHitRate !== undefined) lines.push(`expert cache hit rate: ${percent(s.expertHitRate)}`);
  if (s.promptTokens !== undefined) {
    const reused = s.prefixReuse !== undefined ? `, ${percent(s.prefixReuse)} from the prefix cache` : '';
    lines.push(`last prompt: ${s.promptTokens} tokens${reused}`);
  }
  if (s.generatedTokens !== undefined) lines.push(`last answer: ${s.generatedTokens} tokens`);
  if (s.requests !== undefined) lines.push(`requests: ${s.requests}`);
  if (s.index) lines.push(`workspace index: ${s.index.files ?? 0} files, ${s.index.definitions ?? 0} definitions${s.index.building ? ' (building)' : ''}`);
  if (s.openDocuments !== undefined) lines.push(`open documents: ${s.openDocuments}`);
  return lines;
}

// The status bar's text: an icon for the state, then tokens/s and the expert cache's hit rate.
export function statusText(s: ServerStatus): string {
  switch (s.state) {
    case 'loading': return '$(sync~spin) qcoder: loading model';
    case 'error': return '$(error) qcoder';
    case 'offline': return '$(debug-disconnect) qcoder: server unreachable';  // a remote backend that is down
  }
  const figures: string[] = [];
  if (s.tokensPerSecond !== undefined) figures.push(`${s.tokensPerSecond.toFixed(1)} tok/s`);
  if (s.expertHitRate !== undefined) figures.push(`experts ${percent(s.expertHitRate)}`);
  const icon = s.state === 'busy' ? '$(loading~spin)' : '$(check)';
  return [`${icon} qcoder`, figures.join(' · ')].filter(Boolean).join(' ');
}

export class StatusBar implements vscode.Disposable {
  constructor(private readonly item: vscode.StatusBarItem) {
    item.command = 'qcoder.showStatus';
    this.client('starting');
    item.show();
  }

  // A `qcoder/status` notification.
  update(s: ServerStatus): void {
    this.item.text = statusText(s);
    this.item.tooltip = [...statusLines(s), '', 'Click for details'].join('\n');
  }

  // The client's own state, before the server reports one.
  client(state: 'starting' | 'running' | 'stopped' | 'missing'): void {
    if (state === 'running') return;  // the server reports `loading` next
    const text = { starting: '$(sync~spin) qcoder: starting', stopped: '$(debug-disconnect) qcoder: stopped',
                   missing: '$(warning) qcoder: server not found' }[state];
    this.item.text = text;
    this.item.tooltip = state === 'missing'
      ? 'Set qcoder.serverPath, or put qcoder on PATH' : 'Click for details';
  }

  dispose(): void {
    this.item.dispose();
  }
}

export function registerStatusBar(context: vscode.ExtensionContext, server: Server): void {
  const bar = new StatusBar(vscode.window.createStatusBarItem('qcoder.status', vscode.StatusBarAlignment.Right, 100));
  server.onState((state) => bar.client(state));
  server.onClient((client) => {
    client.onNotification('qcoder/status', (s: ServerStatus) => bar.update(s));
  });
  context.subscriptions.push(bar);
}
