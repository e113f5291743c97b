// The extension's `qcoder.*` settings as the server's configuration: what goes into initializationOptions
// and what answers workspace/configuration for the "qcoder" section. The server owns the defaults, so an
// empty string (or an empty `enable`) is left out rather than sent. Settings the server reads only when it
// loads the model (model, budgets) and the ones that start it (path, arguments) need a restart; the others
// are pulled again by the server after a workspace/didChangeConfiguration.
// Thread-safety: VS Code's extension host is single-threaded; these are plain functions.
import * as vscode from 'vscode';

export const SECTION = 'qcoder';

// The keys of the server's configuration (lsp/server/settings.h), in its camelCase.
export const SERVER_KEYS = [
  'model', 'expertCacheRam', 'prefixCache', 'contextTokens', 'maxTokens', 'editMaxTokens', 'debounceMs',
  'rewriteInstruction', 'acceptIncompleteEdits', 'enable',
] as const;

// Changes to these only take effect when the server starts again.
export const RESTART_KEYS = ['serverPath', 'serverArgs', 'model', 'expertCacheRam', 'prefixCache'] as const;

export interface SettingsReader {
  get<T>(key: string): T | undefined;
}

// The server's configuration from the extension's settings (the `qcoder` section).
export function serverSettings(config: SettingsReader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = config.get<unknown>(key);
    if (value === undefined || value === null || value === '') continue;
    if (key === 'enable' && typeof value === 'object' && Object.keys(value as object).length === 0) continue;
    out[key] = value;
  }
  return out;
}

export function readSettings(scopeUri?: string): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION, scopeUri ? vscode.Uri.parse(scopeUri) : undefined);
}

interface ConfigurationParams {
  items: { section?: string; scopeUri?: string }[];
}
type ConfigurationNext = (params: ConfigurationParams, token: vscode.CancellationToken) => unknown;

// Middleware for workspace/configuration: answers the "qcoder" items from our settings, passes the rest on.
export function configurationMiddleware(read: (scopeUri?: string) => SettingsReader = readSettings) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the client types the answer as any[]
  return async (params: ConfigurationParams, token: vscode.CancellationToken, next: ConfigurationNext): Promise<any> => {
    const ours = (i: number) => params.items[i].section === SECTION;
    const answers = params.items.every((_, i) => ours(i)) ? params.items.map(() => null) : await next(params, token);
    if (!Array.isArray(answers)) return answers;
    return answers.map((answer, i) => (ours(i) ? serverSettings(read(params.items[i].scopeUri)) : answer));
  };
}

export interface SettingsListener {
  changed(): void;         // settings the server pulls again
  needsRestart(): void;    // settings read only at start
}

// Tells the listener which kind of `qcoder.*` setting changed.
export function registerSettings(context: vscode.ExtensionContext, listener: SettingsListener): void {
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => {
    if (!e.affectsConfiguration(SECTION)) return;
    if (RESTART_KEYS.some((key) => e.affectsConfiguration(`${SECTION}.${key}`))) listener.needsRestart();
    else listener.changed();
  }));
}
