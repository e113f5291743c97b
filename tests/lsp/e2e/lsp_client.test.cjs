// End to end: the real `qcoder lsp` binary under a real LSP client library (vscode-jsonrpc +
// vscode-languageserver-protocol), on the tiny model. initialize, open, type, a streamed inline completion,
// a generation cancelled midway, a code action requested and resolved (its edit checked and applied),
// shutdown, exit code 0. The same session runs twice: with the model in the server's process, and with
// `--backend` pointing at a `qcoder serve` on loopback; that one then kills the server mid-request (the
// editor gets an error and a message) and starts it again (completions work again, and the editor is told).
//
// Run by ctest: `node --test tests/lsp/e2e/lsp_client.test.cjs` with QCODER_BINARY, QCODER_MODEL and
// QCODER_NODE_MODULES set.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createRequire } = require('node:module');

const modules = createRequire(path.join(process.env.QCODER_NODE_MODULES, 'noop.js'));
const rpc = modules('vscode-jsonrpc/node');
const lsp = modules('vscode-languageserver-protocol');

const binary = process.env.QCODER_BINARY;
const model = process.env.QCODER_MODEL;

// Waits until `predicate()` holds, polling; fails after `ms`.
async function until(predicate, what, ms = 60000) {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// `qcoder serve` on the tiny model; resolves once it listens, with its port.
function startServe(port = 0) {
  const child = spawn(binary, ['serve', '--model', model, '--port', String(port), '--threads', '1', '--prefix-cache', '16MiB'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`qcoder serve exited with ${code}: ${stderr}`)));
  });
}

function startServer(workspace, extraArgs = ['--model', model]) {
  const child = spawn(binary, ['lsp', ...extraArgs, '--prefix-cache', '16MiB', '--debounce', '0', '--threads', '1'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  const seen = { partials: [], status: [], progress: [], applied: [], messages: [] };
  connection.onNotification(lsp.ShowMessageNotification.type, (p) => seen.messages.push(p));
  connection.onNotification('qcoder/inlineCompletionPartial', (p) => seen.partials.push(p));
  connection.onNotification('qcoder/status', (p) => seen.status.push(p));
  connection.onNotification(lsp.ProgressType.type ?? '$/progress', (p) => seen.progress.push(p));
  connection.onRequest(lsp.WorkDoneProgressCreateRequest.type, () => null);
  connection.onRequest(lsp.ConfigurationRequest.type, () => [{ acceptIncompleteEdits: true, editMaxTokens: 24, maxTokens: 48 }]);
  connection.onRequest(lsp.ApplyWorkspaceEditRequest.type, (p) => {
    seen.applied.push(p);
    return { applied: true };
  });
  connection.listen();
  return { child, connection, seen, exited, stderr: () => stderr };
}

// The session: everything up to (not including) shutdown. `remote` (the backend's serve process and
// how to restart it) adds the outage at the end.
async function session(extraArgs, remote) {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'qcoder-e2e-'));
  fs.writeFileSync(path.join(workspace, 'shapes.py'), 'def area(w, h):\n    return w * h\n');
  const file = path.join(workspace, 'main.py');
  const uri = 'file://' + file;
  const server = startServer(workspace, extraArgs);
  const { connection, seen } = server;
  try {
    const init = await connection.sendRequest(lsp.InitializeRequest.type, {
      processId: process.pid,
      rootUri: 'file://' + workspace,
      workspaceFolders: [{ uri: 'file://' + workspace, name: 'e2e' }],
      capabilities: {
        general: { positionEncodings: ['utf-16'] },
        window: { workDoneProgress: true },
        workspace: { configuration: true, workspaceEdit: { documentChanges: true }, applyEdit: true },
        textDocument: { codeAction: { resolveSupport: { properties: ['edit'] } }, inlineCompletion: {} },
      },
    });
    assert.equal(init.capabilities.positionEncoding, 'utf-16');
    assert.equal(init.capabilities.inlineCompletionProvider, true);
    assert.equal(init.capabilities.codeActionProvider.resolveProvider, true);
    await connection.sendNotification(lsp.InitializedNotification.type, {});
    await until(() => seen.status.some((s) => s.state === 'idle'), 'the model to load');

    // Open, then type a line character by character, as an editor sends it.
    let text = 'from shapes import area\n\ndef total(rects):\n    pass\n\n';
    await connection.sendNotification(lsp.DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: 'python', version: 1, text },
    });
    const typed = 'print(';
    let version = 1;
    for (let i = 0; i < typed.length; i++) {
      await connection.sendNotification(lsp.DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version: ++version },
        contentChanges: [{ range: { start: { line: 5, character: i }, end: { line: 5, character: i } }, text: typed[i] }],
      });
    }
    text += typed;

    // A streamed inline completion: partial notifications for this request, then the items.
    const completion = await connection.sendRequest(lsp.InlineCompletionRequest.type, {
      textDocument: { uri },
      position: { line: 5, character: typed.length },
      context: { triggerKind: lsp.InlineCompletionTriggerKind.Invoked },
    });
    assert.ok(Array.isArray(completion.items), JSON.stringify(completion));
    for (const item of completion.items) {
      assert.equal(typeof item.insertText, 'string');
      assert.deepEqual(item.range.start, { line: 5, character: typed.length });
    }
    const first = completion.items[0]?.insertText ?? '';
    // The tiny model's greedy answer here is not empty, so it was streamed before the reply.
    assert.ok(first.length > 0, JSON.stringify(completion));
    assert.ok(seen.partials.length > 0, 'the completion was streamed');
    for (const p of seen.partials) {
      assert.equal(p.uri, uri);
      assert.deepEqual(p.position, { line: 5, character: typed.length });
      assert.ok(p.text.length > 0);
    }

    // A code action: offered inside the function, resolved into a versioned edit of that function only.
    const actions = await connection.sendRequest(lsp.CodeActionRequest.type, {
      textDocument: { uri },
      range: { start: { line: 3, character: 4 }, end: { line: 3, character: 4 } },
      context: { diagnostics: [] },
    });
    const complete = actions.find((a) => a.title === 'qcoder: Complete function total');
    assert.ok(complete, JSON.stringify(actions));
    const resolved = await connection.sendRequest(lsp.CodeActionResolveRequest.type, complete);
    const change = resolved.edit.documentChanges[0];
    assert.deepEqual(change.textDocument, { uri, version });
    for (const e of change.edits) {
      assert.ok(e.range.start.line >= 2 && e.range.end.line <= 4, JSON.stringify(e));
    }
    assert.ok(seen.progress.some((p) => p.value.kind === 'begin' && p.value.title === 'qcoder: complete function total'));

    // Cancel a long generation midway: wait for its first progress report, then cancel.
    await connection.sendNotification(lsp.DidChangeConfigurationNotification.type, {
      settings: { qcoder: { editMaxTokens: 30000, acceptIncompleteEdits: true } },
    });
    const source = new rpc.CancellationTokenSource();
    const reportsBefore = seen.progress.filter((p) => p.value.kind === 'report').length;
    const long = connection.sendRequest(lsp.CodeActionResolveRequest.type, complete, source.token);
    await until(() => seen.progress.filter((p) => p.value.kind === 'report').length > reportsBefore, 'generation to be under way');
    source.cancel();
    await assert.rejects(long, (e) => e.code === lsp.LSPErrorCodes.RequestCancelled);

    if (remote) {
      // The inference server dies mid-request: frozen first (SIGSTOP: the kernel still accepts the
      // connection, nothing answers), so the request is surely in flight when it is killed. The editor gets
      // the request's error and one message.
      remote.serve.child.kill('SIGSTOP');
      const begun = seen.progress.filter((p) => p.value.kind === 'begin').length;
      const doomed = connection.sendRequest(lsp.CodeActionResolveRequest.type, complete);
      await until(() => seen.progress.filter((p) => p.value.kind === 'begin').length > begun, 'the edit to start');
      await new Promise((r) => setTimeout(r, 200));
      remote.serve.child.kill('SIGKILL');
      await assert.rejects(doomed, (e) => e.message.includes(`127.0.0.1:${remote.serve.port}`));
      await until(() => seen.messages.some((m) => m.type === lsp.MessageType.Error), 'the outage message');
      const outage = seen.messages.find((m) => m.type === lsp.MessageType.Error);
      assert.match(outage.message, new RegExp(`127\\.0\\.0\\.1:${remote.serve.port}`));
      assert.ok(seen.status.some((s) => s.state === 'offline'), JSON.stringify(seen.status.slice(-3)));
      // It comes back on the same port: completions work again, and the editor hears it.
      remote.serve = await startServe(remote.serve.port);
      const again = await connection.sendRequest(lsp.InlineCompletionRequest.type, {
        textDocument: { uri },
        position: { line: 5, character: typed.length },
        context: { triggerKind: lsp.InlineCompletionTriggerKind.Invoked },
      });
      // Working again, not the same text: the alternatives are sampled, and `qcoder serve` batches them
      // with whatever else is running, so under load they can differ in the last bits of a logit (and the tiny
      // random model's logits are nearly tied). Failed twice in CI for that, never for an outage bug.
      assert.ok(again.items.length > 0, JSON.stringify(again));
      for (const item of again.items) {
        assert.ok(typeof item.insertText === 'string' && item.insertText.length > 0, JSON.stringify(item));
        assert.deepEqual(item.range.start, { line: 5, character: typed.length });
      }
      await until(() => seen.messages.some((m) => m.type === lsp.MessageType.Info), 'the server-is-back message');
      assert.equal(seen.messages.filter((m) => m.type === lsp.MessageType.Error).length, 1);
    }

    // Shutdown and exit: code 0.
    await connection.sendRequest(lsp.ShutdownRequest.type);
    await connection.sendNotification(lsp.ExitNotification.type);
    assert.equal(await server.exited, 0, server.stderr());
  } finally {
    connection.dispose();
    server.child.kill();
    fs.rmSync(workspace, { recursive: true, force: true });
  }
}

test('qcoder lsp under vscode-languageserver-protocol', { timeout: 120000 }, async () => {
  await session(['--model', model]);
});

test('qcoder lsp --backend: the same session over qcoder serve, which then dies and comes back', { timeout: 120000 }, async () => {
  const remote = { serve: await startServe() };
  try {
    // The model folder still gives the tokenizer; the weights are not loaded.
    await session(['--model', model, '--backend', `http://127.0.0.1:${remote.serve.port}/v1`], remote);
  } finally {
    remote.serve.child.kill();
  }
});
