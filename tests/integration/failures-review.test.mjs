// Adversarial review of failure handling (src/proxy.c timers, retries,
// fail_stream and client-gone; src/upstream.c; src/client_conn.c
// backpressure): misbehaving upstreams written here as raw TCP servers
// (silent, trickling, stalling after the head, answering late, sending
// unsolicited bytes on an idle keep-alive connection), a blackhole for
// connect timeouts (a listener that never accepts, its queue full), clients
// that leave at every stage or never read, and crowds of failures at once.
//
// Four tests are marked todo: each asserts the correct behaviour of a bug
// found in this review and fails today (connect timeouts not retried, a
// response smuggled onto the next request through an idle upstream
// connection, read_timeout firing while the upstream is still sending a
// slow head, a DNS failure answered 502 instead of Kong's 503). The others
// guard behaviour that was right.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { postJson } from './lib/ai-helpers.mjs';
import { HEX32, assertErrorBody, binaryMissing, closedPort, request, sleep, startSluice, waitFor } from './lib/harness.mjs';

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;
// ASan keeps freed memory in quarantine: without it RSS measures what the
// daemon holds, on either build (as ops-review.test.mjs does).
const NO_QUARANTINE = { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}quarantine_size_mb=0` };

// A raw HTTP/1.1 upstream: each request head (a Content-Length body is not
// waited for) goes to handlers[path] || handlers['*'] as (sock, req, conn).
// conns records every connection: its requests and whether it closed.
function rawUpstream(handlers) {
  const conns = [];
  const server = net.createServer((sock) => {
    const conn = { sock, reqs: [], closed: false };
    conns.push(conn);
    sock.on('close', () => (conn.closed = true));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        const [method, target] = head.split(' ');
        const req = { method, target, path: target.split('?')[0], head };
        conn.reqs.push(req);
        const h = handlers[req.path] ?? handlers['*'];
        if (h) h(sock, req, conn);
        if (conn.swallow) break; // the rest is a body nobody parses
      }
      if (conn.swallow) buf = Buffer.alloc(0);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    conns,
    url: `http://127.0.0.1:${server.address().port}`,
    connOf: (path) => conns.find((c) => c.reqs.some((r) => r.path === path)),
    close() {
      for (const c of conns) c.sock.destroy();
      return new Promise((r) => server.close(r));
    },
  })));
}

// Answers with the request target as the body: each response says which
// request it belongs to.
const echoTarget = (sock, req) => sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${req.target.length}\r\n\r\n${req.target}`);

// Writes text one byte every ms milliseconds.
function trickle(sock, text, ms) {
  let i = 0;
  const t = setInterval(() => {
    if (sock.destroyed || i >= text.length) return clearInterval(t);
    sock.write(text[i++]);
  }, ms);
}

// A listener that never accepts, its one-slot queue taken: a connect to it
// hangs (the SYN is dropped) until the connect timeout.
async function blackhole() {
  const proc = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(300)'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number(await new Promise((r) => proc.stdout.once('data', (d) => r(String(d).trim()))));
  const fillers = [];
  for (let i = 0; i < 3; i++) fillers.push(net.connect(port, '127.0.0.1').on('error', () => {}));
  await sleep(200);
  return { port, close: () => { fillers.forEach((f) => f.destroy()); proc.kill(); } };
}

// A raw client connection that keeps what it reads.
function rawClient(port, data) {
  const st = { buf: '', closed: false };
  st.sock = net.connect(port, '127.0.0.1');
  if (data) st.sock.write(data); // queued until connected, in order with later writes
  st.sock.on('data', (d) => (st.buf += d.toString('latin1')));
  st.sock.on('close', () => (st.closed = true));
  st.sock.on('error', () => {});
  return st;
}

// A GET that reports how it ended: 'end' (a complete message) or 'aborted'
// (the connection closed before the message was complete).
function getUntilEnd(port, path, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let body = '';
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.setEncoding('latin1');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ end: 'end', status: res.statusCode, headers: res.headers, body, ms: Date.now() - t0 }));
      res.on('aborted', () => resolve({ end: 'aborted', status: res.statusCode, headers: res.headers, body, ms: Date.now() - t0 }));
      res.on('error', () => {});
    });
    req.on('error', (e) => (body ? null : reject(e)));
    setTimeout(() => {
      req.destroy();
      reject(new Error(`${path}: no end within ${timeoutMs} ms (a hang); got ${JSON.stringify(body.slice(0, 100))}`));
    }, timeoutMs);
  });
}

const accessLine = (sl, re, opts) => sl.waitForLog(re, { timeoutMs: 5000, ...opts });

describe('failure handling under review', { skip: binaryMissing() }, () => {
  let sl, up, hole, dead;
  const providerHits = [];

  before(async () => {
    up = await rawUpstream({
      '/trickle': (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n');
        trickle(s, 'hello, world', 120); // 1.4 s in all, never 500 ms silent
      },
      '/head-trickle': (s) => trickle(s, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 60),
      '/sse': (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
        let n = 0;
        const t = setInterval(() => {
          if (s.destroyed) return clearInterval(t);
          const ev = `data: {"n":${n}}\n\n`;
          s.write(`${ev.length.toString(16)}\r\n${ev}\r\n`);
          if (++n === 6) {
            clearInterval(t);
            s.write('0\r\n\r\n');
          }
        }, 300);
      },
      '/stall-length': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes!'),
      '/stall-chunked': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nten bytes!\r\n'),
      '/late': (s) => setTimeout(() => !s.destroyed && s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLATE'), 900),
      '/hang': () => {},
      '/close-after-request': (s, req, conn) => {
        conn.swallow = true;
        setTimeout(() => s.destroy(), 50);
      },
      '/upload-hang': (s, req, conn) => {
        conn.swallow = true; // reads the body, never answers
      },
      '/v1/chat/completions': (s, req) => providerHits.push(req), // never answers
      '/head-with-body': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!'),
      '/no-content-with-body': (s) => s.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nEVIL!'),
      '/stream': (s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write('5\r\nhello\r\n')), 20);
      },
      '*': echoTarget,
    });
    hole = await blackhole();
    dead = await closedPort();
    const aiConfig = {
      route_type: 'llm/v1/chat',
      auth: { header_name: 'Authorization', header_value: 'Bearer k' },
      model: { provider: 'openai', name: 'gpt-4o', options: { upstream_url: `${up.url}/v1/chat/completions` } },
    };
    sl = await startSluice({
      workers: 1,
      args: ['--log-level', 'debug'],
      config: {
        services: [
          { name: 'up', url: up.url, read_timeout: 500, write_timeout: 500, routes: [
            { name: 'up', paths: ['/'] },
            { name: 'ai', paths: ['/ai'], plugins: [{ name: 'ai-proxy', config: aiConfig }] },
          ] },
          { name: 'hole', url: `http://127.0.0.1:${hole.port}`, connect_timeout: 500, retries: 2, routes: [{ name: 'hole', paths: ['/hole'] }] },
          { name: 'hole-slow', url: `http://127.0.0.1:${hole.port}`, connect_timeout: 3000, routes: [{ name: 'hole-slow', paths: ['/hole-slow'] }] },
          { name: 'dead', url: `http://127.0.0.1:${dead}`, retries: 5, routes: [{ name: 'dead', paths: ['/dead'] }] },
          { name: 'nxdomain', url: 'http://sluice-review-no-such-host.invalid', routes: [{ name: 'nxdomain', paths: ['/nxdomain'] }] },
        ],
      },
    });
  });

  after(async () => {
    await sl?.stop();
    await up?.close();
    hole?.close();
  });

  // --- timeouts -------------------------------------------------------------

  test('read_timeout is the silence between reads: a body trickled for 3x read_timeout arrives whole', async () => {
    const r = await getUntilEnd(sl.proxyPort, '/trickle');
    assert.equal(r.end, 'end');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hello, world');
    assert.ok(r.ms > 1000, `the trickle took ${r.ms} ms, more than read_timeout (500)`);
  });

  test('read_timeout is the silence between reads: a head trickled a byte every 60 ms (read_timeout 500) arrives', async () => {
    // libcurl calls back per whole header line only: progress is counted
    // when the socket has bytes (upstream.c), or this was a 504 at 500 ms.
    const r = await request({ port: sl.proxyPort, path: '/head-trickle', timeoutMs: 10000 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'ok');
  });

  test('an event stream with gaps shorter than read_timeout passes whole, event by event', async () => {
    const r = await getUntilEnd(sl.proxyPort, '/sse');
    assert.equal(r.end, 'end');
    assert.equal(r.status, 200);
    assert.equal(r.body, [0, 1, 2, 3, 4, 5].map((n) => `data: {"n":${n}}\n\n`).join(''));
    assert.ok(r.ms > 1500, `took ${r.ms} ms`);
  });

  for (const path of ['/stall-length', '/stall-chunked']) {
    test(`${path}: a stall after the head is a cut the client can see, never a clean end or a hang`, async () => {
      const mark = sl.logMark();
      const r = await getUntilEnd(sl.proxyPort, path);
      assert.equal(r.status, 200);
      assert.equal(r.end, 'aborted', `the response must not look complete: ${JSON.stringify(r.body)}`);
      assert.equal(r.body, 'ten bytes!');
      assert.ok(r.ms >= 450 && r.ms < 3000, `cut after ${r.ms} ms (read_timeout 500)`);
      const line = await accessLine(sl, new RegExp(`uri="${path}".*status=200`), { from: mark });
      assert.match(line, /error="upstream stream broke: Timeout was reached"/);
      assert.doesNotMatch(line, /client_aborted/);
      assert.ok(await waitFor(() => up.connOf(path)?.closed, 2000), 'the upstream connection was closed');
    });
  }

  test('an answer that comes after read_timeout never reaches a later request (the connection is not reused)', async () => {
    const r = await request({ port: sl.proxyPort, path: '/late' });
    const j = assertErrorBody(r, 504, /timing out/);
    const line = await accessLine(sl, new RegExp(`request_id=${j.request_id} .*status=504`));
    assert.match(line, /upstream_status=0/);
    assert.ok(await waitFor(() => up.connOf('/late')?.closed, 2000), 'the timed-out upstream connection was closed');
    // The late answer is due 900 ms after the request: ask again across that moment.
    for (let i = 0; i < 4; i++) {
      const n = await request({ port: sl.proxyPort, path: `/after-late-${i}` });
      assert.equal(n.text, `/after-late-${i}`);
      await sleep(150);
    }
  });

  test('a 504 keeps the client connection: a request pipelined behind it is answered', async () => {
    const c = rawClient(sl.proxyPort, 'GET /hang HTTP/1.1\r\nHost: x\r\n\r\nGET /behind-504 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.ok(await waitFor(() => c.closed, 5000), 'the connection closed after the second answer');
    const statuses = [...c.buf.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [504, 200], c.buf);
    assert.ok(c.buf.endsWith('/behind-504'), c.buf.slice(-200));
  });

  test('connect_timeout against a blackhole: 504 JSON with the request id after about connect_timeout', async () => {
    const t0 = Date.now();
    const r = await request({ port: sl.proxyPort, path: '/hole/x' });
    const ms = Date.now() - t0;
    const j = assertErrorBody(r, 504, /timing out/);
    assert.equal(r.headers['x-sluice-request-id'], j.request_id);
    // 500 ms per attempt; up to three attempts with retries: 2.
    assert.ok(ms >= 450 && ms < 4000, `504 after ${ms} ms`);
    const line = await accessLine(sl, new RegExp(`request_id=${j.request_id} .*status=504`));
    assert.match(line, /route=hole service=hole/);
  });

  test('BUG: a connect that timed out is retried `retries` times', {
  }, async () => {
    const r = await request({ port: sl.proxyPort, path: '/hole/retry' });
    const j = assertErrorBody(r, 504);
    await accessLine(sl, new RegExp(`request_id=${j.request_id} .*status=504`));
    const retries = sl.lines.filter((l) => l.includes(`request_id=${j.request_id} retrying upstream connect`)).length;
    assert.equal(retries, 2, 'retries: 2 after a connect timeout, as after a refused connect');
  });

  test('BUG: a host that does not resolve gets 503 "name resolution failed", as in Kong', {
  }, async () => {
    const r = await request({ port: sl.proxyPort, path: '/nxdomain/x', timeoutMs: 8000 });
    assertErrorBody(r, 503, /^name resolution failed$/);
  });

  // --- retries ---------------------------------------------------------------

  test('a request the upstream received is not sent again when it closes without answering (GET and streamed POST)', async () => {
    // A GET that went out on a reused keep-alive connection which then died
    // without an answer is sent once more on a fresh one (libcurl's retry;
    // RFC 9110 9.2.2 allows repeating an idempotent request, and it is how
    // the keep-alive race, an upstream closing an idle connection as the
    // request leaves, is survived). Never a third time, and never a POST
    // whose body streamed.
    for (const [method, body, most] of [['GET', undefined, 2], ['POST', Buffer.alloc(200 * 1024, 0x61), 1]]) {
      const before = up.conns.flatMap((c) => c.reqs).filter((q) => q.path === '/close-after-request').length;
      const r = await request({ port: sl.proxyPort, method, path: '/close-after-request', body });
      assertErrorBody(r, 502);
      await sleep(100);
      const seen = up.conns.flatMap((c) => c.reqs).filter((q) => q.path === '/close-after-request').length - before;
      assert.ok(seen >= 1 && seen <= most, `${method}: the upstream got the request ${seen} times`);
    }
  });

  // --- client aborts ---------------------------------------------------------

  test('a client that leaves during the upstream connect: 499 client_aborted=true at once, the socket freed', async () => {
    const fds = fdCount(sl.pid);
    const mark = sl.logMark();
    const c = rawClient(sl.proxyPort, 'GET /hole-slow/leave HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(300); // connecting (3 s connect_timeout)
    const t0 = Date.now();
    c.sock.destroy();
    const line = await accessLine(sl, /uri="\/hole-slow\/leave"/, { from: mark });
    assert.ok(Date.now() - t0 < 1000, `logged ${Date.now() - t0} ms after the client left`);
    assert.match(line, /status=499 upstream_status=0 .*client_aborted=true/);
    assert.ok(await waitFor(() => fdCount(sl.pid) <= fds, 2000), `descriptors: ${fds} before, ${fdCount(sl.pid)} after`);
  });

  test('a client that leaves while ai-proxy waits on the provider: the provider connection closes at once, 499', async () => {
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
    const mark = sl.logMark();
    const hits = providerHits.length;
    const c = rawClient(sl.proxyPort, `POST /ai HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    assert.ok(await waitFor(() => providerHits.length > hits), 'the provider got the request');
    const conn = up.conns.find((k) => k.reqs.includes(providerHits[hits]));
    c.sock.destroy();
    assert.ok(await waitFor(() => conn.closed, 1000), 'the provider connection was closed within 1 s');
    const line = await accessLine(sl, /uri="\/ai".*route=ai/, { from: mark });
    assert.match(line, /status=499 .*client_aborted=true/);
  });

  test('a client that leaves mid-upload: the upstream connection closes at once, client_aborted=true', async () => {
    const mark = sl.logMark();
    const c = rawClient(sl.proxyPort, `POST /upload-hang HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
    c.sock.write(Buffer.alloc(300 * 1024, 0x62));
    assert.ok(await waitFor(() => up.connOf('/upload-hang')), 'the upstream got the head');
    await sleep(100);
    c.sock.destroy();
    assert.ok(await waitFor(() => up.connOf('/upload-hang').closed, 1000), 'the upstream connection was closed within 1 s');
    const line = await accessLine(sl, /uri="\/upload-hang"/, { from: mark });
    assert.match(line, /status=499 .*client_aborted=true/);
  });

  test('200 clients that leave mid-stream: every upstream connection closes, no descriptor kept', async () => {
    const fds = fdCount(sl.pid);
    const mark = sl.logMark();
    for (let i = 0; i < 200; i++) {
      const c = rawClient(sl.proxyPort, `GET /stream?i=${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await new Promise((r) => c.sock.once('data', r));
      c.sock.destroy();
    }
    assert.ok(await waitFor(() => sl.lines.slice(mark).filter((l) => /uri="\/stream\?i=\d+".*client_aborted=true/.test(l)).length === 200, 3000),
      'an access line with client_aborted=true for each');
    assert.ok(await waitFor(() => up.conns.filter((c) => c.reqs.some((q) => q.path === '/stream')).every((c) => c.closed), 2000),
      'every upstream stream connection closed');
    assert.ok(await waitFor(() => fdCount(sl.pid) <= fds, 2000), `descriptors: ${fds} before, ${fdCount(sl.pid)} after`);
  });

  // --- upstream keep-alive reuse --------------------------------------------

  test('bytes after a HEAD or 204 head in the same segment never reach the next request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const [method, path] of [['HEAD', '/head-with-body'], ['GET', '/no-content-with-body']]) {
        const r = await request({ port: sl.proxyPort, method, path, agent });
        assert.equal(r.text, '');
        for (let i = 0; i < 2; i++) {
          const n = await request({ port: sl.proxyPort, path: `/after${path}-${i}`, agent });
          assert.equal(n.text, `/after${path}-${i}`, `the answer after ${method} ${path}`);
        }
      }
    } finally {
      agent.destroy();
    }
  });

  // --- many failures at once -------------------------------------------------

  for (const [path, status] of [['/dead', 502], ['/hole', 504]]) {
    test(`100 requests at once to ${path}: all answered ${status} JSON, the worker still serves meanwhile`, async () => {
      const all = Promise.allSettled(Array.from({ length: 100 }, (_, i) => request({ port: sl.proxyPort, path: `${path}/crowd-${i}` })));
      await sleep(50);
      const t0 = Date.now();
      const ok = await request({ port: sl.proxyPort, path: '/healthy' });
      const okMs = Date.now() - t0;
      const res = await all;
      assert.equal(ok.text, '/healthy');
      assert.ok(okMs < 1000, `a healthy route answered in ${okMs} ms`);
      const bad = res.filter((r) => r.status !== 'fulfilled' || r.value.status !== status);
      assert.equal(bad.length, 0, `not ${status}: ${bad.slice(0, 3).map((r) => r.reason?.message ?? r.value.status)}`);
      for (const r of res) assert.match(String(r.value.json().request_id), HEX32);
    });
  }
});

// An idle keep-alive upstream connection that receives bytes nobody asked
// for must not be used again: nginx's keepalive module closes such a
// connection as soon as it turns readable. Its own upstream, so that the
// poisoned connection cannot reach the other tests.
describe('unsolicited bytes on an idle upstream connection', { skip: binaryMissing() }, () => {
  let sl, up;
  before(async () => {
    up = await rawUpstream({
      '/then-more': (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        setTimeout(() => !s.destroyed && s.write('HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED'), 100);
      },
      '*': echoTarget,
    });
    sl = await startSluice({ workers: 1, config: { services: [{ name: 'up', url: up.url, routes: [{ name: 'up', paths: ['/'] }] }] } });
  });
  after(async () => {
    await sl?.stop();
    await up?.close();
  });

  test('BUG: a response the upstream sends unasked is never served to the next request', {
  }, async () => {
    const r = await request({ port: sl.proxyPort, path: '/then-more' });
    assert.equal(r.text, 'ok');
    await sleep(400); // the unsolicited response is now waiting on the idle connection
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await request({ port: sl.proxyPort, path: `/next-${i}` })).text);
    assert.deepEqual(got, ['/next-0', '/next-1', '/next-2']);
  });
});

// Clients that never read: each transfer pauses at the connection's high
// water mark instead of buffering the upstream's body, on many connections
// at once.
describe('backpressure on many connections', { skip: binaryMissing() }, () => {
  const TOTAL = 64 * 1024 * 1024;
  const CLIENTS = 30;
  let sl, upstream;
  let finished = 0;
  before(async () => {
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    upstream = http.createServer((req, res) => {
      res.writeHead(200, { 'content-length': TOTAL });
      let sent = 0;
      const pump = () => {
        while (sent < TOTAL) {
          sent += chunk.length;
          if (!res.write(chunk)) return res.once('drain', pump);
        }
        res.end(() => finished++);
      };
      pump();
    });
    await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
    sl = await startSluice({
      workers: 1,
      env: NO_QUARANTINE,
      config: { services: [{ name: 'big', url: `http://127.0.0.1:${upstream.address().port}`, routes: [{ name: 'big', paths: ['/'] }] }] },
    });
  });
  after(async () => {
    await sl?.stop();
    upstream?.closeAllConnections();
    upstream?.close();
  });

  test(`${CLIENTS} clients that never read 64 MiB each: memory stays bounded, the worker still serves`, { timeout: 20000 }, async () => {
    const base = rssKiB(sl.pid);
    const clients = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = rawClient(sl.proxyPort, `GET /big-${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      c.sock.once('data', () => c.sock.pause());
      clients.push(c);
    }
    try {
      await sleep(2000);
      const grew = rssKiB(sl.pid) - base;
      assert.equal(finished, 0, 'no upstream transfer could finish: each is paused');
      // About 0.5 MiB a connection (256 KiB high water plus curl's buffers);
      // without backpressure it would be GiBs.
      assert.ok(grew < 48 * 1024, `sluice grew by ${grew} KiB for ${CLIENTS} stalled clients`);
      const t0 = Date.now();
      const r = await request({ port: sl.proxyPort, method: 'HEAD', path: '/other' });
      assert.equal(r.status, 200);
      assert.ok(Date.now() - t0 < 1000, `another request took ${Date.now() - t0} ms`);
    } finally {
      clients.forEach((c) => c.sock.destroy());
    }
  });
});
