// Tests run under node with `vscode` replaced by a small mock (test/vscode.ts): test/unit needs nothing
// else; test/e2e starts the real `qcoder lsp` (QCODER_BINARY, QCODER_MODEL); test/package checks the .vsix
// (QCODER_VSIX); test/browser runs it in code-server (its own node_modules). ctest runs each folder.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { alias: { vscode: fileURLToPath(new URL('./test/vscode.ts', import.meta.url)) } },
  test: { include: ['test/**/*.test.ts'], testTimeout: 120000, hookTimeout: 120000 },
});
