// The entry point: wires each feature onto one server (the language client running `qcoder lsp`).
// Each feature lives in its own file; nothing else happens here.
import * as vscode from 'vscode';

import { Server } from './client';
import { registerCommands } from './commands';
import { registerSettings } from './config';
import { registerInlineCompletions } from './inline';
import { registerStatusBar } from './status';

let server: Server | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  server = new Server(context.extensionPath);
  const s = server;
  context.subscriptions.push(s);
  registerStatusBar(context, s);
  registerInlineCompletions(context, s);
  registerCommands(context, s);
  registerSettings(context, {
    changed: () => s.settingsChanged(),
    needsRestart: () => {
      void vscode.window.showInformationMessage('qcoder: restart the server to use the new settings?', 'Restart')
        .then((choice) => choice && s.restart());
    },
  });
  await s.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
