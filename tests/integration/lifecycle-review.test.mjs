// Review of the process lifecycle under stress: SIGHUP storms over hundreds
// of requests and SSE streams in flight, a SIGHUP while the previous reload
// is still validating, /status after good and bad reloads, SIGHUP then
// SIGTERM at once, what a client sees when the drain timeout cuts its stream,
// a request pipelined behind one in flight at drain time, new connections
// and the admin listener during the drain, a request head half received at
// SIGTERM, systemd notifications (order, MONOTONIC_USEC on the monotonic
// clock, nothing after STOPPING=1), and startup failures (exit code, no pid
// file). Tests marked todo assert the correct behaviour of a bug found here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { postStream } from './lib/ai-helpers.mjs';
import {
  SLUICE_BIN, assertCleanExit, binaryMissing, configText, request, runSluice, sleep, startSluice, tempDir, waitFor,
} from './lib/harness.mjs';

// Polls an async predicate every 25 ms: true once it holds, false after ms.
async function until(pred, ms) {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) return false;
    await sleep(25);
  }
  return true;
}

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

// An editor's save: a new file renamed over the old one (atomic).
function writeAtomic(file, config) {
  writeFileSync(`${file}.tmp`, typeof config === 'string' ? config : configText(config));
  renameSync(`${file}.tmp`, file);
}

// A TCP connection that keeps what it reads.
function openConn(port) {
  const s = net.connect(port, '127.0.0.1');
  const st = { sock: s, data: '', closed: false, error: null };
  s.on('data', (d) => (st.data += d.toString('latin1')));
  s.on('error', (e) => (st.error = e.code || e.message));
  s.on('close', () => (st.closed = true));
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(st));
    s.once('error', reject);
  });
}

// Connects and reports what happened within ms: 'refused', 'closed', 'data',
// or 'hang' (accepted by the kernel, nothing more).
function probe(port, send, ms) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (what) => {
      clearTimeout(timer);
      s.destroy();
      resolve(what);
    };
    const timer = setTimeout(() => done('hang'), ms);
    s.on('connect', () => send && s.write(send));
    s.on('data', () => done('data'));
    s.on('end', () => done('closed'));
    s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' ? 'closed' : e.code));
  });
}

const anthropic = (fakeUrl, key) => ({
  name: 'ai-proxy',
  config: {
    route_type: 'llm/v1/chat',
    auth: { header_name: 'x-api-key', header_value: key },
    model: { provider: 'anthropic', name: 'claude-x', options: { upstream_url: `${fakeUrl}/v1/messages`, anthropic_version: '2023-06-01' } },
  },
});

const sseText = (events) => events.filter((e) => e.data !== '[DONE]')
  .map((e) => JSON.parse(e.data).choices?.[0]?.delta?.content ?? '').join('');

// --------------------------------------------------------------- reloads

describe('reload storms', { skip: binaryMissing() }, () => {
  let fake;
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  // Generation n: /llm with key-n; /old only in generation 0.
  const gen = (n) => ({
    services: [{
      name: 'up',
      url: fake.url,
      routes: [
        ...(n === 0 ? [{ name: 'old', paths: ['/old'] }] : []),
        { name: `plain${n}`, paths: ['/plain'] },
        { name: 'ai', paths: ['/llm'], plugins: [anthropic(fake.url, `key-${n}`)] },
      ],
    }],
  });

  test('50 SIGHUPs in a second over 200 requests and 8 SSE streams in flight: each ends on the snapshot it started with; the last file serves', async () => {
    const sl = await startSluice({ config: gen(0) });
    try {
      const tag = `storm${Date.now()}`;
      // 200 requests on a route only generation 0 has, held 1.5 s upstream.
      const plain = Array.from({ length: 200 }, (_, i) => request({ port: sl.proxyPort, path: `/old/delay?ms=1500&${tag}=${i}`, timeoutMs: 15000 })
        .then((r) => (r.status === 200 && r.json().query[tag] === String(i) ? 'ok' : `${r.status}`), (e) => e.message));
      // 8 SSE streams of 20 words, 60 ms between frames (~1.3 s each).
      const words = (k) => Array.from({ length: 20 }, (_, i) => `s${k}w${i}`).join(' ');
      let started = 0;
      const streams = Array.from({ length: 8 }, (_, k) => postStream(sl.proxyPort, '/llm', { stream: true, messages: [{ role: 'user', content: words(k) }] },
        { headers: { 'x-fake-frame-delay-ms': '60' }, timeoutMs: 15000, onChunk: (_d, n) => n === 1 && started++ }));
      assert.ok(await waitFor(() => fake.requests.filter((r) => r.query[tag] !== undefined).length === 200 && started === 8, 8000),
        'all 200 requests reached the upstream and all 8 streams started');

      // Meanwhile one keep-alive client asks in sequence: it stays on one
      // worker, so the generations it sees must never go back.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let seqStop = false;
      const seen = [];
      const seq = (async () => {
        for (let i = 0; !seqStop; i++) {
          const body = JSON.stringify({ messages: [{ role: 'user', content: `${tag}-seq-${i}` }] });
          const r = await new Promise((resolve, reject) => {
            const q = http.request({ host: '127.0.0.1', port: sl.proxyPort, method: 'POST', path: '/llm', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
              let t = '';
              res.on('data', (d) => (t += d));
              res.on('end', () => resolve({ status: res.statusCode, text: t }));
            });
            q.on('error', reject);
            q.end(body);
          });
          assert.equal(r.status, 200, r.text);
          const rec = fake.requests.findLast((x) => x.json?.messages?.some((m) => JSON.stringify(m.content).includes(`${tag}-seq-${i}"`)));
          seen.push(Number(rec.headers['x-api-key'].slice(4)));
        }
      })();

      for (let n = 1; n <= 50; n++) {
        writeAtomic(sl.configPath, gen(n));
        sl.signal('SIGHUP');
        await sleep(18);
      }
      const last = sha256(readFileSync(sl.configPath));

      const results = await Promise.all(plain);
      assert.deepEqual(results.filter((x) => x !== 'ok'), [], 'every request on the removed route completes with its own answer');
      for (const [k, r] of (await Promise.all(streams)).entries()) {
        assert.equal(r.status, 200);
        assert.equal(r.end, 'end', `stream ${k} ended cleanly`);
        assert.equal(r.events.at(-1).data, '[DONE]');
        assert.equal(sseText(r.events), `echo: ${words(k)}`);
      }
      const streamKeys = fake.requests.filter((r) => r.path === '/v1/messages' && r.json?.stream && /^s\dw0 /.test(r.json.messages[0].content[0]?.text ?? r.json.messages[0].content))
        .map((r) => r.headers['x-api-key']);
      assert.deepEqual(streamKeys, Array(8).fill('key-0'), 'the streams started before the storm used generation 0');

      assert.ok(await until(async () => (await sl.status()).config.sha256 === last, 8000), 'the last file written is the one loaded');
      seqStop = true;
      await seq;
      agent.destroy();
      assert.ok(seen.length >= 5, `sequential requests during the storm: ${seen.length}`);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `generations went back on one connection: ${seen.join(',')}`);
      assert.equal((await request({ port: sl.proxyPort, path: '/old/echo' })).status, 404);
      assert.ok(!sl.lines.some((l) => /reload refused/.test(l)), 'no reload read a half-written file');
    } finally {
      await sl.stop();
    }
  });

  test('a SIGHUP while the previous reload is still validating a large file: the file written last wins', async () => {
    // 20000 regex routes: a reload takes a few hundred ms.
    const big = (tagv) => ({
      services: [{
        name: 'up',
        url: fake.url,
        routes: Array.from({ length: 20000 }, (_, i) => ({ name: `r${i}`, paths: [`~/r${i}/[a-z]+/(?<id>\\d+)$`] }))
          .concat([{ name: `which-${tagv}`, paths: [`/which-${tagv}`] }]),
      }],
    });
    const sl = await startSluice({ config: big('a') });
    try {
      const mark = sl.logMark();
      writeAtomic(sl.configPath, big('b'));
      sl.signal('SIGHUP');
      await sl.waitForLog(/reloading /, { from: mark });
      writeAtomic(sl.configPath, big('c'));
      sl.signal('SIGHUP');
      const secondHup = Date.now();
      const want = sha256(readFileSync(sl.configPath));
      // Both reloads end (the first may already have read the file written
      // second: "reloading" is logged before the file is opened), and the
      // log line of the second is written by the log thread, maybe after
      // /status shows its result.
      assert.ok(await until(async () => { const st = await sl.status(); return st.config.sha256 === want && st.config.generation === 3; }, 15000),
        `final sha256 ${want}, generation 3:\n${sl.lines.slice(mark).join('\n')}`);
      await sl.waitForLog(/config reloaded: .*generation=3/, { from: mark });
      const reloaded = sl.lines.slice(mark).filter((l) => /config reloaded/.test(l));
      assert.equal(reloaded.length, 2, sl.lines.slice(mark).join('\n'));
      assert.ok(Date.parse(reloaded[0].split(' ')[0]) >= secondHup - 5, 'the second SIGHUP came while the first reload was running');
      assert.equal((await sl.status()).config.generation, 3);
      assert.notEqual((await request({ port: sl.proxyPort, path: '/which-c' })).status, 404);
      assert.equal((await request({ port: sl.proxyPort, path: '/which-b' })).status, 404);
      assert.equal((await request({ port: sl.proxyPort, path: '/r7/abc/42' })).status, 200);
    } finally {
      await sl.stop();
    }
  });

  test('/status after a good reload (new hash, generation, load time) and a refused one (all unchanged)', async () => {
    const cfg = (n) => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: `r${n}`, paths: [`/r${n}`] }] }] });
    const sl = await startSluice({ config: cfg(1) });
    try {
      const s0 = await sl.status();
      assert.equal(s0.config.sha256, sha256(readFileSync(sl.configPath)));
      assert.equal(s0.config.file, sl.configPath);
      // loaded_at has one-second resolution: let a second pass so that a
      // new load time is visible.
      await sleep(1100);
      const s1 = await sl.reload(cfg(2));
      assert.equal(s1.config.sha256, sha256(readFileSync(sl.configPath)));
      assert.equal(s1.config.generation, s0.config.generation + 1);
      assert.ok(Date.parse(s1.config.loaded_at) > Date.parse(s0.config.loaded_at), `${s0.config.loaded_at} -> ${s1.config.loaded_at}`);
      assert.ok(Math.abs(Date.parse(s1.config.loaded_at) - Date.now()) < 5000);
      assert.ok(s1.uptime_seconds >= 1);

      await sleep(1100);
      const mark = sl.logMark();
      writeAtomic(sl.configPath, '_format_version: "3.0"\nservices:\n- name: up\n  url: 12\n');
      sl.signal('SIGHUP');
      await sl.waitForLog(/reload refused: still serving config sha256=([0-9a-f]{64})/, { from: mark });
      assert.ok(sl.lines.slice(mark).some((l) => l.includes(`still serving config sha256=${s1.config.sha256}`)));
      const s2 = await sl.status();
      assert.deepEqual(s2.config, s1.config, 'a refused reload changes nothing in /status');
      assert.equal((await request({ port: sl.proxyPort, path: '/r2/echo' })).status, 200);
    } finally {
      writeAtomic(sl.configPath, cfg(2));
      await sl.stop();
    }
  });
});

// ------------------------------------------------------------------ stop

describe('stop under load', { skip: binaryMissing() }, () => {
  let fake;
  const cfg = (n = 1) => ({
    services: [{
      name: 'up',
      url: fake.url,
      routes: [{ name: `up${n}`, paths: ['/up'] }, { name: 'ai', paths: ['/llm'], plugins: [anthropic(fake.url, `key-${n}`)] }],
    }],
  });
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  test('SIGHUP then SIGTERM at once: the reload completes or not, the request in flight completes, exit 0', async () => {
    const sl = await startSluice({ config: cfg(1) });
    try {
      const tag = `ht${Date.now()}`;
      const slow = request({ port: sl.proxyPort, path: `/up/delay?ms=600&${tag}=1`, timeoutMs: 10000 });
      await fake.waitFor((r) => r.query[tag] === '1', 5000);
      writeAtomic(sl.configPath, cfg(2));
      sl.signal('SIGHUP');
      sl.signal('SIGTERM');
      const r = await slow;
      assert.equal(r.status, 200);
      assert.equal(r.json().query[tag], '1');
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
      const i = sl.lines.findIndex((l) => /received SIGTERM: draining/.test(l));
      assert.ok(i >= 0, sl.stderr());
      // Whatever the reload did, it did it before the drain began.
      assert.ok(!sl.lines.slice(i).some((l) => /reloading|config reloaded/.test(l)), sl.stderr());
      assert.ok(sl.lines.some((l) => / stopped$/.test(l)), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('the drain timeout cuts an SSE stream: an error event and [DONE], then a chunked body left unterminated (visible as truncated)', async () => {
    const sl = await startSluice({ config: cfg(), args: ['--drain-timeout', '1'] });
    try {
      let chunks = 0;
      const words = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
      const s = postStream(sl.proxyPort, '/llm', { stream: true, messages: [{ role: 'user', content: words }] },
        { headers: { 'x-fake-frame-delay-ms': '100' }, timeoutMs: 15000, onChunk: () => chunks++ });
      assert.ok(await waitFor(() => chunks >= 2, 5000), 'streaming');
      const t0 = Date.now();
      sl.signal('SIGTERM');
      const r = await s;
      const took = Date.now() - t0;
      assert.equal(r.status, 200);
      assert.ok(took >= 900, `stream cut ${took} ms after SIGTERM, before --drain-timeout 1`);
      assert.notEqual(r.end, 'end', 'a cut stream must not end like a complete one');
      const err = r.events.find((e) => e.data.includes('"error"'));
      assert.ok(err, r.text.slice(-400));
      assert.equal(JSON.parse(err.data).error.message, 'the gateway is shutting down');
      assert.equal(r.events.at(-1).data, '[DONE]');
      assert.ok(sseText(r.events).startsWith('echo: w0 w1'), 'what came before the cut is intact');
      assertCleanExit(await sl.waitExit(8000), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('a request pipelined behind one in flight at SIGTERM: the first is answered with Connection: close, the second is not processed', async () => {
    const sl = await startSluice({ config: cfg() });
    try {
      const tag = `pp${Date.now()}`;
      const c = await openConn(sl.proxyPort);
      c.sock.write(`GET /up/delay?ms=700&${tag}=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /up/echo?${tag}=2 HTTP/1.1\r\nHost: x\r\n\r\n`);
      await fake.waitFor((r) => r.query[tag] === '1', 5000);
      sl.signal('SIGTERM');
      assert.ok(await waitFor(() => c.closed, 5000), 'connection closed after the answer');
      assert.match(c.data, /^HTTP\/1\.1 200 /);
      assert.match(c.data, /\r\nConnection: close\r\n/i);
      const body = c.data.slice(c.data.indexOf('\r\n\r\n') + 4);
      assert.equal(JSON.parse(body).query[tag], '1');
      assert.equal((c.data.match(/HTTP\/1\.1 /g) || []).length, 1, 'one answer only (RFC 9112 9.6: no further request after close)');
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
      assert.ok(!fake.requests.some((r) => r.query[tag] === '2'), 'the pipelined request never reached the upstream');
    } finally {
      await sl.kill();
    }
  });

  test('an upload half sent at SIGTERM: the drain waits for the rest of the body and answers it whole', async () => {
    const sl = await startSluice({ config: cfg() });
    try {
      const body = Buffer.alloc(512 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 7) % 251;
      const c = await openConn(sl.proxyPort);
      c.sock.write(`POST /up/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
      const piece = body.length / 8;
      for (let i = 0; i < 4; i++) {
        c.sock.write(body.subarray(i * piece, (i + 1) * piece));
        await sleep(50);
      }
      sl.signal('SIGTERM');
      await sl.waitForLog(/received SIGTERM: draining/);
      for (let i = 4; i < 8; i++) {
        c.sock.write(body.subarray(i * piece, (i + 1) * piece));
        await sleep(50);
      }
      assert.ok(await waitFor(() => c.closed, 8000), 'answer complete');
      assert.match(c.data, /^HTTP\/1\.1 200 /);
      assert.match(c.data, /\r\nConnection: close\r\n/i);
      const echo = JSON.parse(c.data.slice(c.data.indexOf('\r\n\r\n') + 4));
      assert.equal(echo.bodyLength, body.length);
      assert.equal(echo.bodySha256, sha256(body));
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('new proxy connections during the drain are refused at once (the listeners are closed)', async () => {
    const sl = await startSluice({ config: cfg() });
    try {
      const tag = `nc${Date.now()}`;
      const slow = request({ port: sl.proxyPort, path: `/up/delay?ms=1500&${tag}=1`, timeoutMs: 10000 });
      await fake.waitFor((r) => r.query[tag] === '1', 5000);
      sl.signal('SIGTERM');
      await sl.waitForLog(/received SIGTERM: draining/);
      await sleep(100);
      const outcomes = [];
      for (let i = 0; i < 5; i++) outcomes.push(await probe(sl.proxyPort, 'GET /up/echo HTTP/1.1\r\nHost: x\r\n\r\n', 1000));
      assert.deepEqual(outcomes, Array(5).fill('refused'));
      assert.equal((await slow).status, 200);
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('the admin listener during the drain answers /status or refuses; it does not leave connections hanging', {
    // fixed: the main loop runs through the drain
  }, async () => {
    const sl = await startSluice({ config: cfg(), args: ['--drain-timeout', '5'] });
    try {
      const tag = `ad${Date.now()}`;
      const slow = request({ port: sl.proxyPort, path: `/up/delay?ms=3000&${tag}=1`, timeoutMs: 10000 }).catch((e) => ({ status: e.message }));
      await fake.waitFor((r) => r.query[tag] === '1', 5000);
      sl.signal('SIGTERM');
      await sl.waitForLog(/received SIGTERM: draining/);
      await sleep(100);
      const what = await probe(sl.adminPort, 'GET /status HTTP/1.1\r\nHost: x\r\n\r\n', 1500);
      assert.ok(what === 'data' || what === 'refused', `admin /status during the drain: ${what}`);
      // It answers, and says what is going on.
      const st = await request({ port: sl.adminPort, path: '/status', timeoutMs: 1500 });
      assert.equal(st.status, 200);
      assert.equal(st.json().state, 'draining');
      assert.equal(st.json().requests_in_flight, 1);
      assert.equal((await slow).status, 200);
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('a request head half received at SIGTERM is finished and answered (Connection: close), not dropped as idle', {
    // fixed: a begun head is answered, then closed
  }, async () => {
    const sl = await startSluice({ config: cfg() });
    try {
      const tag = `ph${Date.now()}`;
      const c = await openConn(sl.proxyPort);
      c.sock.write(`GET /up/echo?${tag}=1 HTTP/1.1\r\nHo`);
      await sleep(150);
      sl.signal('SIGTERM');
      await sl.waitForLog(/received SIGTERM: draining/);
      await sleep(150);
      if (!c.closed) c.sock.write('st: x\r\n\r\n');
      assert.ok(await waitFor(() => c.closed, 5000));
      assert.match(c.data, /^HTTP\/1\.1 200 /, `got ${JSON.stringify(c.data.slice(0, 80))}`);
      assert.match(c.data, /\r\nConnection: close\r\n/i);
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('startup that cannot listen: exit 1, the reason named, no pid file left', async () => {
    const holder = net.createServer();
    await new Promise((r) => holder.listen(0, '127.0.0.1', r));
    const port = holder.address().port;
    const dir = tempDir('sluice-lc-');
    const conf = path.join(dir, 'kong.yml');
    const pidFile = path.join(dir, 'sluice.pid');
    writeFileSync(conf, configText(cfg()));
    try {
      const r = await runSluice(['-c', conf, '--proxy-listen', `127.0.0.1:${port}`, '--admin-listen', 'off', '--pid-file', pidFile, '--workers', '2']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use`));
      assert.equal(existsSync(pidFile), false);
    } finally {
      holder.close();
    }
  });
});

// --------------------------------------------------------------- systemd

// A datagram listener standing in for systemd's notify socket; it stamps each
// message with CLOCK_MONOTONIC at receipt (Node cannot open AF_UNIX datagram
// sockets).
const LISTENER = `
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data = s.recv(4096).decode()
    print("%d %s" % (time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000, data.replace("\\n", "|")), flush=True)
`;

function startListener(sockPath) {
  const py = spawn('python3', ['-c', LISTENER, sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages = [];
  const rl = createInterface({ input: py.stdout });
  let ready;
  const listening = new Promise((r) => (ready = r));
  rl.on('line', (l) => {
    if (l === 'listening') return ready();
    const sp = l.indexOf(' ');
    messages.push({ at: Number(l.slice(0, sp)), text: l.slice(sp + 1) });
  });
  return { py, messages, listening };
}

describe('systemd notify', { skip: binaryMissing() }, () => {
  let fake;
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  test('order over good and refused reloads, MONOTONIC_USEC on CLOCK_MONOTONIC, one STOPPING=1 and nothing after it', async () => {
    const sockPath = path.join(tempDir('sluice-lc-notify-'), 'n.sock');
    const l = startListener(sockPath);
    const cfg = (n) => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: `r${n}`, paths: [`/r${n}`] }] }] });
    let sl;
    try {
      await l.listening;
      sl = await startSluice({ config: cfg(1), env: { NOTIFY_SOCKET: sockPath } });
      assert.ok(await waitFor(() => l.messages.length >= 1, 5000));
      await sl.reload(cfg(2));
      assert.ok(await waitFor(() => l.messages.length >= 3, 5000));
      const mark = sl.logMark();
      writeAtomic(sl.configPath, 'services: [\n');
      sl.signal('SIGHUP');
      await sl.waitForLog(/reload refused/, { from: mark });
      assert.ok(await waitFor(() => l.messages.length >= 5, 5000));
      const tag = `sd${Date.now()}`;
      const slow = request({ port: sl.proxyPort, path: `/r2/delay?ms=500&${tag}=1`, timeoutMs: 10000 });
      await fake.waitFor((r) => r.query[tag] === '1', 5000);
      sl.signal('SIGTERM');
      await sleep(100);
      sl.signal('SIGHUP'); // ignored while draining: no RELOADING=1 after STOPPING=1
      sl.signal('SIGTERM');
      assert.equal((await slow).status, 200);
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
      await sleep(200);
      const texts = l.messages.map((m) => m.text.replace(/MONOTONIC_USEC=\d+/, 'MONOTONIC_USEC=N'));
      assert.deepEqual(texts, [
        'READY=1',
        'RELOADING=1|MONOTONIC_USEC=N', 'READY=1',
        'RELOADING=1|MONOTONIC_USEC=N', 'READY=1',
        'STOPPING=1',
      ]);
      for (const m of l.messages.filter((x) => x.text.startsWith('RELOADING=1'))) {
        const usec = Number(/MONOTONIC_USEC=(\d+)/.exec(m.text)[1]);
        // sd_notify(3): the CLOCK_MONOTONIC time at which the reload began.
        assert.ok(usec <= m.at && m.at - usec < 2_000_000, `MONOTONIC_USEC ${usec}, received at ${m.at}`);
      }
    } finally {
      l.py.kill();
      if (sl) await sl.kill();
    }
  });
});
