// The packaged extension (QCODER_VSIX) under a real VS Code: code-server in Debian's chromium, driven by
// playwright-core, with the real `qcoder lsp` on the tiny model. The status bar goes idle once the model is
// loaded, typing shows ghost text, Tab (VS Code's own accept) puts it in the document, and the status bar
// then shows tokens/s; "qcoder: Show status" fills its output channel; "qcoder: Rewrite selection…" changes
// the selected lines only.
//
// Run by ctest (vscode_browser) with QCODER_BINARY, QCODER_MODEL, QCODER_VSIX and QCODER_CHROMIUM set; the
// packages are installed by scripts/lib.sh (fill_vscode_browser). Everything lives in a temporary folder.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Browser, chromium, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const codeServer = path.join(here, 'node_modules', '.bin', 'code-server');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qcoder-code-server-'));
const dirs = { data: path.join(root, 'user-data'), extensions: path.join(root, 'extensions'), workspace: path.join(root, 'ws') };
// code-server writes its config.yaml under XDG_CONFIG_HOME: keep it in the temporary folder too.
const env = { ...process.env, XDG_CONFIG_HOME: path.join(root, 'config'), XDG_DATA_HOME: path.join(root, 'data') };
const nbsp = (s: string) => s.replace(/\u00a0/g, ' ');

let server: ChildProcess;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  fs.mkdirSync(path.join(dirs.data, 'User'), { recursive: true });
  fs.mkdirSync(dirs.workspace);
  fs.writeFileSync(path.join(dirs.workspace, 'main.py'), 'from shapes import area\n\ndef total(rects):\n    pass\n\n');
  fs.writeFileSync(path.join(dirs.workspace, 'shapes.py'), 'def area(w, h):\n    return w * h\n');
  fs.writeFileSync(path.join(dirs.data, 'User', 'settings.json'), JSON.stringify({
    'qcoder.serverPath': process.env.QCODER_BINARY,
    'qcoder.model': process.env.QCODER_MODEL,
    'qcoder.serverArgs': ['--threads', '1', '--prefix-cache', '16MiB'],
    'qcoder.debounceMs': 0,
    'qcoder.maxTokens': 24,
    'qcoder.editMaxTokens': 24,
    'qcoder.acceptIncompleteEdits': true,
    'editor.autoClosingBrackets': 'never',
    'workbench.startupEditor': 'none',
    'security.workspace.trust.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'extensions.autoCheckUpdates': false,
    'update.mode': 'none',
  }));
  execFileSync(codeServer, ['--user-data-dir', dirs.data, '--extensions-dir', dirs.extensions,
    '--install-extension', process.env.QCODER_VSIX!], { env, stdio: 'pipe' });
  server = spawn(codeServer, ['--auth', 'none', '--bind-addr', '127.0.0.1:0', '--user-data-dir', dirs.data,
    '--extensions-dir', dirs.extensions, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
    dirs.workspace], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const url = await new Promise<string>((resolve, reject) => {
    let log = '';
    const read = (d: Buffer) => {
      log += d;
      const m = /HTTP server listening on (http:\/\/[\d.]+:\d+)/.exec(log);
      if (m) resolve(m[1]);
    };
    server.stdout!.on('data', read);
    server.stderr!.on('data', read);
    server.on('exit', (code) => reject(new Error(`code-server exited (${code}): ${log}`)));
  });
  browser = await chromium.launch({ executablePath: process.env.QCODER_CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage();
  await page.goto(`${url}/?folder=${encodeURIComponent(dirs.workspace)}`);
});

afterAll(async () => {
  await browser?.close();
  if (server?.pid) process.kill(-server.pid, 'SIGTERM');  // code-server, its extension host and qcoder lsp
  fs.rmSync(root, { recursive: true, force: true });
});

it('shows ghost text from the real server and accepts it with Tab', async () => {
  const status = page.locator('.statusbar-item', { hasText: 'qcoder' });
  await page.locator('.explorer-viewlet .monaco-list-row', { hasText: 'main.py' }).dblclick({ timeout: 60000 });
  await status.locator('.codicon-check').waitFor({ timeout: 120000 });  // the model is loaded: idle

  await page.locator('.monaco-editor .view-lines').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type('print(', { delay: 30 });
  const ghost = page.locator('.monaco-editor .ghost-text-decoration');
  await ghost.first().waitFor({ timeout: 60000 });
  await expect.poll(() => status.textContent(), { timeout: 60000 }).toMatch(/tok\/s/);  // a completion finished

  // The ghost text stops changing once the answer is drawn; then accept it.
  let shown = '';
  await expect.poll(async () => {
    const before = shown;
    shown = nbsp((await ghost.allTextContents()).join(''));
    return shown !== '' && shown === before;
  }, { timeout: 30000, intervals: [300] }).toBe(true);
  await page.keyboard.press('Tab');
  await expect.poll(async () => (await page.locator('.monaco-editor .view-line').allTextContents()).map(nbsp))
    .toContainEqual(expect.stringMatching(new RegExp(`^print\\(${shown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)));
  expect(shown.trim().length).toBeGreaterThan(0);
}, 300000);

// Runs a command from the palette by its title.
async function runCommand(title: string): Promise<void> {
  await page.keyboard.press('F1');
  await page.keyboard.type(title);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().click();
}

it('shows the status in an output channel from the command palette', async () => {
  await runCommand('qcoder: Show status');
  // The channel ends with the status as JSON, which is what the panel scrolls to.
  const output = page.locator('.part.panel .monaco-editor .view-lines');
  await expect.poll(async () => nbsp((await output.textContent()) ?? ''), { timeout: 30000 }).toContain('"state": "idle"');
  expect(nbsp((await output.textContent()) ?? '')).toMatch(/"openDocuments": 1,.*"tokensPerSecond": \d/);
}, 120000);

it('rewrites the selection with the instruction typed', async () => {
  const lines = () => page.locator('.editor-group-container .monaco-editor .view-line').allTextContents();
  await page.locator('.editor-group-container .monaco-editor .view-lines').click();
  await page.keyboard.press('Control+Home');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');                 // line 3: def total(rects):
  await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+End');                 // through "    pass"
  const before = (await lines()).map(nbsp);
  await runCommand('qcoder: Rewrite selection');
  await page.locator('.quick-input-box input').fill('rename rects to boxes');
  await page.keyboard.press('Enter');
  await expect.poll(async () => (await lines()).map(nbsp), { timeout: 60000 }).not.toEqual(before);
  const after = (await lines()).map(nbsp);
  expect(after[0]).toBe('from shapes import area');     // outside the selection: untouched
}, 120000);
