// The extension's settings as the server's configuration.
import { describe, expect, it, vi } from 'vitest';

import * as vscode from 'vscode';

import { configurationMiddleware, registerSettings, serverSettings } from '../../src/config';

const reader = (values: Record<string, unknown>) => ({ get: <T>(key: string) => values[key] as T | undefined });

describe('settings', () => {
  it('sends the server its keys, leaving out empty ones so its defaults hold', () => {
    const settings = serverSettings(reader({
      serverPath: '/opt/qcoder', serverArgs: ['--threads', '2'], model: '', expertCacheRam: '8GiB', prefixCache: '',
      contextTokens: 4096, maxTokens: 64, editMaxTokens: 512, debounceMs: 0, rewriteInstruction: '',
      acceptIncompleteEdits: false, enable: { markdown: false },
    }));
    expect(settings).toEqual({ expertCacheRam: '8GiB', contextTokens: 4096, maxTokens: 64, editMaxTokens: 512, debounceMs: 0,
      acceptIncompleteEdits: false, enable: { markdown: false } });
    expect(serverSettings(reader({ enable: {}, model: '/m' }))).toEqual({ model: '/m' });
  });

  it('answers the qcoder items of workspace/configuration and passes the others on', async () => {
    const read = vi.fn((scope?: string) => reader({ maxTokens: scope ? 7 : 9 }));
    const middleware = configurationMiddleware(read);
    const next = vi.fn(async () => [{ python: true }, 'ignored']);
    expect(await middleware({ items: [{ section: 'qcoder' }] }, {} as never, next)).toEqual([{ maxTokens: 9 }]);
    expect(next).not.toHaveBeenCalled();
    const mixed = await middleware({ items: [{ section: 'other' }, { section: 'qcoder', scopeUri: 'file:///w' }] }, {} as never, next);
    expect(mixed).toEqual([{ python: true }, { maxTokens: 7 }]);
    expect(read).toHaveBeenLastCalledWith('file:///w');
  });
});

describe('registerSettings', () => {
  it('asks for a restart for what the server reads at start, and a pull for the rest', () => {
    let fire: (e: { affectsConfiguration(section: string): boolean }) => void = () => undefined;
    vi.mocked(vscode.workspace.onDidChangeConfiguration).mockImplementation(((f: typeof fire) => { fire = f; return new vscode.Disposable(); }) as never);
    const listener = { changed: vi.fn(), needsRestart: vi.fn() };
    const context = { subscriptions: [] as unknown[] };
    registerSettings(context as never, listener);
    expect(context.subscriptions).toHaveLength(1);
    const change = (...keys: string[]) => ({ affectsConfiguration: (s: string) => keys.some((k) => k === s || k.startsWith(`${s}.`)) });
    fire(change('editor.fontSize'));
    expect(listener.changed).not.toHaveBeenCalled();
    fire(change('qcoder.maxTokens'));
    expect(listener.changed).toHaveBeenCalledTimes(1);
    expect(listener.needsRestart).not.toHaveBeenCalled();
    for (const key of ['qcoder.model', 'qcoder.serverPath', 'qcoder.serverArgs', 'qcoder.expertCacheRam', 'qcoder.prefixCache']) fire(change(key));
    expect(listener.needsRestart).toHaveBeenCalledTimes(5);
    expect(listener.changed).toHaveBeenCalledTimes(1);
  });
});
