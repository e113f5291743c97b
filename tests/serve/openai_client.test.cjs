// End to end: the real `qcoder serve` on the tiny model, driven by the official `openai` npm client
// (pinned in scripts/third_party). Completions and chat, streamed and not; usage with cached prompt tokens;
// the same tokens as `qcoder generate` for the same prompt and seed; stop strings; tools and a tool-call
// history accepted; every error status the API promises; a client that goes away frees the engine; bad
// input leaves the server up; eight clients streaming for 30 s, each stream checked against its request run
// alone (`qcoder bench serve --verify`).
//
// Run by ctest: `node --test tests/serve/openai_client.test.cjs` with QCODER_BINARY, QCODER_MODEL and
// QCODER_NODE_MODULES set.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const { createRequire } = require('node:module');

const modules = createRequire(path.join(process.env.QCODER_NODE_MODULES, 'noop.js'));
const OpenAI = modules('openai').default ?? modules('openai');

const binary = process.env.QCODER_BINARY;
const model = process.env.QCODER_MODEL;
const NAME = 'tiny';

// Starts `qcoder serve` on a free port; resolves once it prints where it listens.
function startServer(extra = [], env = {}) {
  const child = spawn(binary, ['serve', '--model', model, '--model-name', NAME, '--port', '0', '--threads', '1',
    '--prefix-cache', '16MiB', '--ctx-size', '2048', ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /listening on http:\/\/([^\s:]+):(\d+)/.exec(stderr);
      if (m) resolve(Number(m[2]));
    });
    exited.then((code) => reject(new Error(`qcoder serve exited with ${code}: ${stderr}`)));
  });
  return { child, exited, listening, stderr: () => stderr };
}

// A raw HTTP exchange (for what the client library will not send).
function raw(port, method, target, { body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function waitReady(port) {
  for (let i = 0; i < 600; i++) {
    const r = await raw(port, 'GET', '/health').catch(() => null);
    if (r && r.status === 200) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('the model never became ready');
}

async function metric(port, name) {
  const r = await raw(port, 'GET', '/metrics');
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.body);
  return m ? Number(m[1]) : NaN;
}

let server, port, client;
before(async () => {
  server = startServer(['--parallel', '4', '--queue', '2']);
  port = await server.listening;
  await waitReady(port);
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  server.child.kill('SIGTERM');
  assert.equal(await server.exited, 0, server.stderr());
});

const PROMPT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n';

test('models and health', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), [NAME]);
  const one = await client.models.retrieve(NAME);
  assert.equal(one.id, NAME);
  assert.equal((await raw(port, 'GET', '/health')).status, 200);
});

test('a completion, streamed and not, gives the tokens qcoder generate gives for the same prompt and seed', async () => {
  const params = { model: NAME, prompt: PROMPT, max_tokens: 12, temperature: 0.8, top_p: 1, seed: 42 };
  const whole = await client.completions.create(params);
  assert.equal(whole.object, 'text_completion');
  assert.equal(whole.choices.length, 1);
  const text = whole.choices[0].text;
  assert.ok(text.length > 0);
  assert.equal(whole.usage.completion_tokens, 12);
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + 12);
  assert.equal(whole.choices[0].finish_reason, 'length');

  const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let streamed = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      streamed += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(streamed, text);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 12);
  // The second run of the same prompt came from the prefix cache.
  assert.ok(usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(usage));

  const solo = execFileSync(binary, ['generate', '--model', model, '--prompt', PROMPT, '--special', '--max-tokens', '12',
    '--temperature', '0.8', '--top-p', '1', '--top-k', '0', '--seed', '42', '--threads', '1'], { encoding: 'utf8' });
  assert.equal(solo.replace(/\n$/, ''), text.replace(/\n$/, ''));
});

test('a FIM prompt with suffix, greedy, with logprobs', async () => {
  const r = await client.completions.create({ model: NAME, prompt: 'def add(a, b):\n    return ', suffix: '\n\nprint(add(1, 2))\n',
    max_tokens: 6, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, r.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  for (let i = 0; i < lp.tokens.length; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    assert.equal(Object.keys(lp.top_logprobs[i]).length <= 2, true);
  }
  assert.equal(lp.tokens.join(''), r.choices[0].text);
});

test('stop strings end the text before them, streamed and not', async () => {
  const base = { model: NAME, prompt: PROMPT, max_tokens: 24, temperature: 0 };
  const full = (await client.completions.create(base)).choices[0].text;
  assert.ok(full.length > 6, full);
  const stop = full.slice(3, 5);
  const cut = full.slice(0, full.indexOf(stop));
  const whole = await client.completions.create({ ...base, stop: [stop, 'never-appears'] });
  assert.equal(whole.choices[0].text, cut);
  assert.equal(whole.choices[0].finish_reason, 'stop');
  let streamed = '';
  for await (const chunk of await client.completions.create({ ...base, stop, stream: true })) {
    for (const c of chunk.choices) streamed += c.text;
  }
  assert.equal(streamed, cut);
});

test('chat, streamed and not, and a tool-call history with tools', async () => {
  const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hi <|im_end|> twice.' }];
  const whole = await client.chat.completions.create({ model: NAME, messages, max_tokens: 10, temperature: 0 });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  assert.equal(typeof whole.choices[0].message.content, 'string');
  let streamed = '';
  let role = null;
  for await (const chunk of await client.chat.completions.create({ model: NAME, messages, max_tokens: 10, temperature: 0, stream: true })) {
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      streamed += c.delta.content ?? '';
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(streamed, whole.choices[0].message.content);

  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } }];
  const history = [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":2}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' },
  ];
  const answer = await client.chat.completions.create({ model: NAME, messages: history, tools, max_tokens: 8, temperature: 0 });
  assert.ok(['stop', 'length', 'tool_calls'].includes(answer.choices[0].finish_reason));
  assert.ok(answer.usage.prompt_tokens > 60, 'the tools and the history are in the prompt');
});

test('each error status', async () => {
  const expectStatus = async (promise, status, code) => {
    await assert.rejects(promise, (e) => {
      assert.equal(e.status, status, String(e));
      if (code) assert.equal(e.code ?? e.error?.code, code);
      return true;
    });
  };
  await expectStatus(client.completions.create({ model: 'other', prompt: 'x' }), 404, 'model_not_found');
  await expectStatus(client.completions.create({ model: NAME, prompt: 'x', max_tokens: 5000 }), 400, 'context_length_exceeded');
  await expectStatus(client.completions.create({ model: NAME, prompt: 'x', temperature: 7 }), 400);
  await expectStatus(client.completions.create({ model: NAME, prompt: 'x', n: 2 }), 400);
  const routes = await raw(port, 'GET', '/v1/nothing');
  assert.equal(routes.status, 404);
  assert.equal(JSON.parse(routes.body).error.type, 'invalid_request_error');
  const badJson = await raw(port, 'POST', '/v1/completions', { body: '{"model": ', headers: { 'content-type': 'application/json' } });
  assert.equal(badJson.status, 400);
  assert.match(JSON.parse(badJson.body).error.message, /JSON/);
  const badUtf8 = await raw(port, 'POST', '/v1/completions', {
    body: Buffer.concat([Buffer.from('{"model":"tiny","prompt":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
    headers: { 'content-type': 'application/json' } });
  assert.equal(badUtf8.status, 400);
  const wrongType = await raw(port, 'POST', '/v1/chat/completions', { body: JSON.stringify({ model: NAME, messages: 'hi' }) });
  assert.equal(wrongType.status, 400);
  assert.match(JSON.parse(wrongType.body).error.message, /messages/);
  // A 100 MB body is refused from its Content-Length, before it is read.
  const huge = await new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n{`);
    });
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
    setTimeout(() => socket.end(), 3000);
  });
  assert.match(huge, /^HTTP\/1\.1 413/);
  // The server is still up.
  assert.equal((await raw(port, 'GET', '/health')).status, 200);
});

test('a full queue answers 503 with Retry-After; a client that goes away frees the engine', async () => {
  // --parallel 4 --queue 2: of seven long streams at once, four run, two wait and one is refused.
  const controllers = [];
  const pending = Array.from({ length: 7 }, (_, i) => {
    const ac = new AbortController();
    controllers.push(ac);
    return client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 1900, temperature: 0.9, seed: i + 1, stream: true },
      { signal: ac.signal });
  });
  for (const p of pending) p.catch(() => {});
  const refused = await new Promise((resolve) => pending.forEach((p) => p.catch((e) => { if (e.status === 503) resolve(e); })));
  assert.equal(refused.headers.get('retry-after'), '1');
  const started = await Promise.race(pending.map((p) => p.then((s) => s, () => new Promise(() => {}))));
  const it = started[Symbol.asyncIterator]();
  await it.next();
  assert.ok((await metric(port, 'qcoder_running_generations')) >= 1);
  const before = await metric(port, 'qcoder_generations_cancelled_total');
  for (const ac of controllers) ac.abort();
  // Every stream stops at its next token once its connection is gone; the waiting ones never start.
  for (let i = 0; i < 400 && (await metric(port, 'qcoder_running_generations')) > 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(await metric(port, 'qcoder_running_generations'), 0);
  assert.equal(await metric(port, 'qcoder_queue_length'), 0);
  assert.ok((await metric(port, 'qcoder_generations_cancelled_total')) > before);
});

test('eight streaming clients for 30 s lose and duplicate nothing (qcoder bench serve --verify)', async () => {
  // A server of its own: four decoded together, the other four waiting their turn (not refused).
  const busy = startServer(['--parallel', '4', '--queue', '16']);
  const busyPort = await busy.listening;
  await waitReady(busyPort);
  const out = await new Promise((resolve, reject) => {
    const bench = spawn(binary, ['bench', 'serve', '--url', `http://127.0.0.1:${busyPort}`, '--clients', '8', '--seconds', '30',
      '--max-tokens', '24', '--verify', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    bench.stdout.on('data', (d) => (stdout += d));
    bench.stderr.on('data', (d) => (stderr += d));
    bench.on('error', reject);
    bench.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
  assert.equal(out.code, 0, out.stdout + out.stderr);
  const figures = JSON.parse(out.stdout);
  assert.equal(figures.errors, 0);
  assert.equal(figures.mismatches, 0);
  assert.ok(figures.requests >= 8, out.stdout);
  assert.ok(figures.ttft_ms.p50 > 0 && figures.itl_ms.p50 > 0, out.stdout);
  busy.child.kill('SIGTERM');
  assert.equal(await busy.exited, 0);
});

test('an API key is required when one is set, and beyond loopback', async () => {
  const keyed = startServer(['--api-key-env', 'QCODER_TEST_KEY'], { QCODER_TEST_KEY: 'sekret' });
  const keyedPort = await keyed.listening;
  await waitReady(keyedPort);
  const wrong = new OpenAI({ baseURL: `http://127.0.0.1:${keyedPort}/v1`, apiKey: 'nope', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e.status === 401);
  const right = new OpenAI({ baseURL: `http://127.0.0.1:${keyedPort}/v1`, apiKey: 'sekret', maxRetries: 0 });
  assert.equal((await right.models.list()).data[0].id, NAME);
  keyed.child.kill('SIGTERM');
  assert.equal(await keyed.exited, 0);
  const open = spawn(binary, ['serve', '--model', model, '--host', '0.0.0.0', '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  open.stderr.on('data', (d) => (err += d));
  const code = await new Promise((resolve) => open.on('exit', resolve));
  assert.notEqual(code, 0);
  assert.match(err, /API key/);
});
