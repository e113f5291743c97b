// The status bar's text and tooltip from `qcoder/status` notifications.
import { describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';

import { registerStatusBar, StatusBar, statusLines, statusText } from '../../src/status';

describe('status', () => {
  it('shows the state, tokens/s and the expert cache hit rate', () => {
    expect(statusText({ state: 'loading' })).toBe('$(sync~spin) qcoder: loading model');
    expect(statusText({ state: 'idle' })).toBe('$(check) qcoder');
    expect(statusText({ state: 'offline', message: 'the server at http://gpu:8000/v1 is not reachable' })).toBe('$(debug-disconnect) qcoder: server unreachable');
    expect(statusText({ state: 'idle', tokensPerSecond: 23.456, expertHitRate: 0.874 })).toBe('$(check) qcoder 23.5 tok/s · experts 87%');
    expect(statusText({ state: 'busy', tokensPerSecond: 9 })).toBe('$(loading~spin) qcoder 9.0 tok/s');
    expect(statusText({ state: 'error', message: 'no model' })).toBe('$(error) qcoder');
  });

  it('lists every figure the server sent', () => {
    const lines = statusLines({ state: 'idle', promptTokens: 200, prefixReuse: 0.5, generatedTokens: 12, tokensPerSecond: 30,
      expertHitRate: 0.9, requests: 3, index: { files: 4, definitions: 17, building: false }, openDocuments: 2 });
    expect(lines).toEqual(['state: idle', 'generation: 30.0 tokens/s', 'expert cache hit rate: 90%',
      'last prompt: 200 tokens, 50% from the prefix cache', 'last answer: 12 tokens', 'requests: 3',
      'workspace index: 4 files, 17 definitions', 'open documents: 2']);
    expect(statusLines({ state: 'error', message: 'the model could not be loaded' })).toEqual(['state: error (the model could not be loaded)']);
  });

  it('drives the item: click shows the status, the client state before the server reports', () => {
    const item = { text: '', tooltip: '', command: '', show() {}, dispose() {} };
    const bar = new StatusBar(item as never);
    expect(item.command).toBe('qcoder.showStatus');
    expect(item.text).toBe('$(sync~spin) qcoder: starting');
    bar.update({ state: 'error', message: 'no such folder' });
    expect(item.text).toBe('$(error) qcoder');
    expect(item.tooltip).toContain('state: error (no such folder)');
    bar.client('stopped');
    expect(item.text).toBe('$(debug-disconnect) qcoder: stopped');
    bar.client('missing');
    expect(item.tooltip).toContain('qcoder.serverPath');
  });
});

describe('registerStatusBar', () => {
  it('shows the client state, then the qcoder/status notifications', () => {
    const item = { text: '', tooltip: '', command: '', show: vi.fn(), dispose: vi.fn() };
    vi.mocked(vscode.window.createStatusBarItem).mockReturnValue(item as never);
    const handlers = new Map<string, (p: unknown) => void>();
    let state: (s: string) => void = () => undefined;
    const server = {
      onState: (f: typeof state) => { state = f; },
      onClient: (attach: (client: unknown) => void) => attach({ onNotification: (method: string, f: (p: unknown) => void) => handlers.set(method, f) }),
    };
    registerStatusBar({ subscriptions: [] } as never, server as never);
    expect(item.show).toHaveBeenCalled();
    state('stopped');
    expect(item.text).toBe('$(debug-disconnect) qcoder: stopped');
    handlers.get('qcoder/status')!({ state: 'busy', tokensPerSecond: 4, expertHitRate: 0.5 });
    expect(item.text).toBe('$(loading~spin) qcoder 4.0 tok/s · experts 50%');
  });
});
