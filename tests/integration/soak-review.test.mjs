// Resources over time: many requests of every kind through the real daemon
// (plain GET/POST, ai-proxy JSON and SSE against the OpenAI and Anthropic
// fakes, 502 from a refused port, 504 from a hang, an upstream reset
// mid-body, clients that leave mid-stream or after half a head, 400s, 413s,
// 1000 requests on one keep-alive connection, SIGHUP reloads with changing
// services in between), and after each batch: descriptors, threads and
// upstream connections back to a small bound, RSS flat over the second half
// of the run (Release build), and the ASan build exits 0 with no
// LeakSanitizer report.
//
// One test is todo: an idle upstream connection the upstream closed keeps
// its descriptor in sluice until the worker's next transfer (forever on an
// idle worker). Not testable in 30 s, seen by hand: a pooled connection
// the upstream keeps open stays ESTABLISHED past libcurl's 118 s maxage on
// an idle worker (pruned only when a new transfer starts); Kong closes idle
// upstream keep-alive connections after 60 s.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { aiRoute, postJson, postStream } from './lib/ai-helpers.mjs';
import { RELEASE_WRAP, binaryMissing, closedPort, listenLocal, releaseMissing, request, sleep, startSluice, waitFor } from './lib/harness.mjs';

// RSS figures come from the Release build (ASan's shadow memory and
// quarantine would hide a leak or invent one); leaks from SLUICE_BIN.

const procStatus = (pid, key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const rssKiB = (pid) => procStatus(pid, 'VmRSS');
const threads = (pid) => procStatus(pid, 'Threads');
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

// The inodes of the sockets a process holds.
function socketInodes(pid) {
  const out = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

// TCP connections the process holds whose remote port is `port` (its
// upstream connections to that server), by state name.
const TCP_STATE = { '01': 'ESTABLISHED', '02': 'SYN_SENT', '06': 'TIME_WAIT', '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0B': 'CLOSING', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2' };
function upstreamConns(pid, port) {
  const mine = socketInodes(pid);
  const out = { total: 0 };
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const l of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const p = l.trim().split(/\s+/);
      if (p.length < 10 || !mine.has(p[9])) continue;
      if (parseInt(p[2].split(':')[1], 16) !== port) continue;
      const st = TCP_STATE[p[3]] ?? p[3];
      out[st] = (out[st] ?? 0) + 1;
      out.total++;
    }
  }
  return out;
}

const KEY = { authorization: 'Bearer sk-soak' };
const CLAUDE = 'claude-3-5-sonnet-20241022';
const msgs = (t) => [{ role: 'user', content: t }];

// kong.yml for the mix: a plain service, one whose port refuses, one with a
// short read_timeout, and ai-proxy routes for OpenAI and Anthropic. `gen`
// changes names and paths so that a reload really changes services.
function mixConfig(fakeUrl, refusedUrl, gen = 0) {
  const F = fakeUrl;
  const chat = (provider, name, upstream_url, extra = {}) => ({ route_type: 'llm/v1/chat', model: { provider, name, options: { upstream_url } }, ...extra });
  return {
    services: [
      { name: `plain-${gen}`, url: F, routes: [{ name: `plain-${gen}`, paths: ['/p'] }, { name: `extra-${gen}`, paths: [`/gen${gen}`] }] },
      { name: `refused-${gen}`, url: refusedUrl, connect_timeout: 1000, routes: [{ name: `refused-${gen}`, paths: ['/refused'] }] },
      { name: `slow-${gen}`, url: F, read_timeout: 300, routes: [{ name: `slow-${gen}`, paths: ['/slow'] }] },
      {
        name: `ai-${gen}`, url: F, routes: [
          aiRoute(`openai-${gen}`, '/openai', chat('openai', 'gpt-4o', `${F}/v1/chat/completions`, { logging: { log_statistics: true } })),
          aiRoute(`anthropic-${gen}`, '/anthropic', chat('anthropic', CLAUDE, `${F}/v1/messages`,
            { auth: { header_name: 'x-api-key', header_value: 'sk-ant-soak' }, logging: { log_statistics: true } })),
        ],
      },
    ],
  };
}

// Reads the first body chunk of a GET, then destroys the socket.
function abortAfterFirstChunk(port, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, agent: false, headers }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve(res.statusCode);
      });
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => {});
    req.setTimeout(8000, () => {
      req.destroy();
      reject(new Error(`${p}: no first chunk within 8 s`));
    });
    req.end();
  });
}

// The same for an ai-proxy SSE answer (POST).
function abortStreamAfterFirstChunk(port, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const raw = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(raw), ...headers } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve(res.statusCode);
      });
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => {});
    req.setTimeout(8000, () => {
      req.destroy();
      reject(new Error(`${p}: no first chunk within 8 s`));
    });
    req.end(raw);
  });
}

// Sends `data` and closes after `ms` without waiting for anything.
function sendAndLeave(port, data, ms = 30) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(data);
      setTimeout(() => {
        s.destroy();
        resolve();
      }, ms);
    });
    s.on('error', () => resolve());
  });
}

// Raw request, resolves with the status code of the first answer.
function rawStatus(port, data) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const s = net.connect(port, '127.0.0.1', () => s.write(data));
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer to ${JSON.stringify(data.slice(0, 40))}`));
    }, 5000);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m && buf.includes('\r\n\r\n')) {
        clearTimeout(t);
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
  });
}

// `n` requests in sequence on one keep-alive connection (one agent socket).
async function keepAliveRun(port, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let conns = 0;
  agent.on('free', (sock) => {
    if (!sock.soakSeen) conns++;
    sock.soakSeen = true;
  });
  try {
    for (let i = 0; i < n; i++) {
      const r = await request({ port, agent, path: `/p/echo?k=${i}`, ...(i % 2 ? { method: 'POST', body: `body-${i}` } : {}) });
      assert.equal(r.status, 200, `keep-alive request ${i}`);
    }
    assert.equal(conns, 1, `${n} requests over one client connection`);
  } finally {
    agent.destroy();
  }
}

// One batch of every kind. Returns counts by kind for the assertions.
async function batch(port, { keepAlive = 1000, i = 0 } = {}) {
  const jobs = [];
  const expect = (name, p, want) => jobs.push(p.then((got) => assert.equal(got, want, `${name} (batch ${i})`)));
  const status = (p) => p.then((r) => r.status);
  const big = Buffer.alloc(200 * 1024, 'b'); // over 64 KiB: streamed to the upstream
  for (let k = 0; k < 10; k++) {
    expect('GET', status(request({ port, path: `/p/echo?g=${k}` })), 200);
    expect('POST small', status(request({ port, method: 'POST', path: '/p/echo', body: `x${k}`.repeat(100) })), 200);
    expect('POST streamed', status(request({ port, method: 'POST', path: '/p/echo', body: big })), 200);
    expect('POST chunked', status(request({ port, method: 'POST', path: '/p/echo', body: big, headers: { 'transfer-encoding': 'chunked' } })), 200);
    expect('bytes', status(request({ port, path: '/p/bytes?n=300000' })), 200);
    expect('openai json', status(postJson(port, '/openai', { model: 'gpt-4o', messages: msgs(`hello ${k}`) }, { headers: KEY })), 200);
    expect('anthropic json', status(postJson(port, '/anthropic', { messages: msgs(`hello ${k}`) })), 200);
    expect('openai stream', postStream(port, '/openai', { stream: true, messages: msgs(`a b c ${k}`) }, { headers: KEY }).then((r) => `${r.status} ${r.end}`), '200 end');
    expect('anthropic stream', postStream(port, '/anthropic', { stream: true, messages: msgs(`a b c ${k}`) }).then((r) => `${r.status} ${r.end}`), '200 end');
    expect('502 refused', status(request({ port, path: '/refused/x' })), 502);
    expect('504 hang', status(request({ port, path: '/slow/hang' })), 504);
    expect('reset mid-body', request({ port, path: '/p/reset' }).then((r) => `complete ${r.status}`, (e) => e.code === 'ECONNRESET' ? 'cut' : String(e)), 'cut');
    expect('client abort mid-stream', abortAfterFirstChunk(port, '/p/chunked?n=100&size=1000&delay=20'), 200);
    expect('client abort mid-SSE (openai)', abortStreamAfterFirstChunk(port, '/openai', { stream: true, messages: msgs('one two three four five six seven eight') },
      { ...KEY, 'x-fake-frame-delay-ms': '30' }), 200);
    expect('client abort mid-SSE (anthropic)', abortStreamAfterFirstChunk(port, '/anthropic', { stream: true, messages: msgs('one two three four five six seven eight') },
      { 'x-fake-frame-delay-ms': '30' }), 200);
    expect('client abort while waiting', sendAndLeave(port, 'GET /p/delay?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n', 50).then(() => 'left'), 'left');
    expect('half a head', sendAndLeave(port, 'GET /p/echo HTTP/1.1\r\nHost: x\r\nX-Half: ').then(() => 'left'), 'left');
    expect('half a body', sendAndLeave(port, 'POST /p/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc').then(() => 'left'), 'left');
    expect('400 bad request line', rawStatus(port, 'GET /p/echo HTTP/1.1 extra\r\nHost: x\r\n\r\n'), 400);
    expect('400 no host', rawStatus(port, 'GET /p/echo HTTP/1.1\r\n\r\n'), 400);
    expect('413', rawStatus(port, `POST /p/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${4 * 1024 * 1024}\r\n\r\n`), 413);
    expect('413 ai', rawStatus(port, `POST /openai HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${4 * 1024 * 1024}\r\n\r\n{`), 413);
  }
  jobs.push(keepAliveRun(port, keepAlive));
  const res = await Promise.allSettled(jobs);
  const failed = res.filter((r) => r.status === 'rejected').map((r) => r.reason?.message ?? String(r.reason));
  assert.deepEqual(failed, [], `batch ${i}: ${failed.length} failed`);
}

const MAX_BODY = ['--max-body-size', String(1024 * 1024), '--client-timeout', '5'];

// After a batch: the daemon is back to its idle shape once the connections
// the clients left have been seen.
async function settled(sl, fakePort, baseFds, baseThreads, label) {
  const ok = await waitFor(() => {
    const up = upstreamConns(sl.pid, fakePort);
    // Idle keep-alive connections to the fake may stay pooled, but every
    // other descriptor must be gone: no client socket, no dead upstream.
    return fdCount(sl.pid) - up.total <= baseFds + 2 && (up.total === (up.ESTABLISHED ?? 0));
  }, 5000);
  const up = upstreamConns(sl.pid, fakePort);
  const fds = fdCount(sl.pid);
  assert.ok(ok, `${label}: ${fds} descriptors (${JSON.stringify(up)} to the upstream), ${baseFds} at start`);
  // The pool is bounded by how many transfers ran at once (about 10 x 20
  // kinds at most), far under libcurl's MAXCONNECTS of 256 per worker.
  assert.ok(up.total <= 250, `${label}: ${JSON.stringify(up)} pooled upstream connections`);
  assert.equal(threads(sl.pid), baseThreads, `${label}: thread count`);
  return { fds, up };
}

describe('resources over time (Release build: descriptors, threads, RSS)', { skip: releaseMissing || binaryMissing() }, () => {
  let fake, sl, refused;
  before(async () => {
    fake = await startFake();
    refused = `http://127.0.0.1:${await closedPort()}`;
  });
  after(async () => {
    await sl?.kill();
    await fake?.close();
  });

  test('16 batches of every kind of request: descriptors and threads back to idle each time, RSS flat in the second half',
    { timeout: 60000 }, async () => {
      sl = await startSluice({ config: mixConfig(fake.url, refused), args: MAX_BODY, wrap: RELEASE_WRAP });
      const baseFds = fdCount(sl.pid);
      const baseThreads = threads(sl.pid);
      const rss = [];
      for (let i = 0; i < 16; i++) {
        await batch(sl.proxyPort, { keepAlive: i === 0 ? 1000 : 200, i });
        await settled(sl, fake.port, baseFds, baseThreads, `after batch ${i}`);
        rss.push(rssKiB(sl.pid));
        if (process.env.SOAK_DEBUG) console.log(i, rss.at(-1), fdCount(sl.pid), JSON.stringify(upstreamConns(sl.pid, fake.port)), baseFds, threads(sl.pid), fake.requests.length);
        fake.clearRequests();
      }
      // Growth over the second half (batches 8..15). Measured: about 3 MiB
      // over the first 8 batches (allocator warm-up, flattening), under
      // 0.7 MiB over the next 8; a leak of 1 KiB per request (~360 requests
      // a batch) would add about 2.8 MiB.
      const growth2 = rss[15] - rss[7];
      assert.ok(growth2 <= 1536, `RSS grew ${growth2} KiB over the last 8 batches: ${rss.join(' ')} KiB`);
      await sl.stop();
      sl = null;
    });

  test('one keep-alive connection, 4000 requests (plain, streamed POST, ai-proxy JSON and SSE): RSS flat after the first 1000',
    { timeout: 30000 }, async () => {
      sl = await startSluice({ workers: 1, config: mixConfig(fake.url, refused), args: MAX_BODY, wrap: RELEASE_WRAP });
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let conns = 0;
      agent.on('free', (sock) => {
        if (!sock.soakSeen) conns++;
        sock.soakSeen = true;
      });
      const big = Buffer.alloc(100 * 1024, 'k');
      const one = (i) => {
        switch (i % 4) {
          case 0: return request({ port: sl.proxyPort, agent, path: `/p/echo?i=${i}` });
          case 1: return request({ port: sl.proxyPort, agent, method: 'POST', path: '/p/echo', body: big });
          case 2: return request({ port: sl.proxyPort, agent, method: 'POST', path: '/openai', headers: { ...KEY, 'content-type': 'application/json' },
            body: JSON.stringify({ messages: msgs(`keep ${i}`) }) });
          default: return request({ port: sl.proxyPort, agent, method: 'POST', path: '/anthropic', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ stream: true, messages: msgs(`keep ${i} a b`) }) });
        }
      };
      const rss = [];
      try {
        for (let i = 0; i < 4000; i++) {
          const r = await one(i);
          assert.equal(r.status, 200, `request ${i}: ${r.text.slice(0, 200)}`);
          if (i % 1000 === 999) {
            rss.push(rssKiB(sl.pid));
            fake.clearRequests();
          }
        }
      } finally {
        agent.destroy();
      }
      assert.equal(conns, 1, 'all 4000 over one client connection');
      if (process.env.SOAK_DEBUG) console.log(rss);
      // 3000 requests after the first 1000: a leak of 256 bytes each is 750 KiB.
      assert.ok(rss[3] - rss[0] <= 512, `RSS at 1000/2000/3000/4000 requests: ${rss.join(' ')} KiB`);
      await sl.stop();
      sl = null;
    });
});

describe('resources over time (SLUICE_BIN, ASan: reloads under traffic, clean exit)', { skip: binaryMissing() }, () => {
  let fake, sl, refused;
  before(async () => {
    fake = await startFake();
    refused = `http://127.0.0.1:${await closedPort()}`;
  });
  after(async () => {
    await sl?.kill();
    await fake?.close();
  });

  test('batches of every kind with SIGHUP reloads changing services in between and during: descriptors back to idle, exit 0 without a LeakSanitizer report',
    { timeout: 30000 }, async () => {
      sl = await startSluice({ config: mixConfig(fake.url, refused, 0), args: MAX_BODY });
      const baseFds = fdCount(sl.pid);
      const baseThreads = threads(sl.pid);
      for (let i = 0; i < 4; i++) {
        // One reload between batches, one while the batch runs.
        await sl.reload(mixConfig(fake.url, refused, 2 * i + 1));
        const during = sleep(100).then(() => sl.reload(mixConfig(fake.url, refused, 2 * i + 2)));
        await batch(sl.proxyPort, { keepAlive: 300, i });
        await during;
        // The newest file serves: its generation's extra route answers.
        assert.equal((await request({ port: sl.proxyPort, path: `/gen${2 * i + 2}/echo` })).status, 200);
        assert.equal((await request({ port: sl.proxyPort, path: `/gen${2 * i + 1}/echo` })).status, 404);
        await settled(sl, fake.port, baseFds, baseThreads, `after batch ${i}`);
      }
      await sl.stop(); // SIGTERM: exit 0, no sanitizer report (harness)
      sl = null;
    });
});

describe('clients that stay silent', { skip: binaryMissing() }, () => {
  test('100 clients that send half a head (or half a body) and then wait: closed at --client-timeout, every descriptor back', { timeout: 15000 }, async () => {
    const fake = await startFake();
    const sl = await startSluice({ config: { services: [{ name: 'p', url: fake.url, routes: [{ name: 'p', paths: ['/p'] }] }] }, args: ['--client-timeout', '1'] });
    const socks = [];
    try {
      const base = fdCount(sl.pid);
      for (let i = 0; i < 100; i++) {
        const s = net.connect(sl.proxyPort, '127.0.0.1');
        s.on('error', () => {});
        s.closedByPeer = false;
        s.on('end', () => (s.closedByPeer = true));
        s.on('close', () => (s.closedByPeer = true));
        s.write(i % 2 ? 'GET /p/echo HTTP/1.1\r\nHost: x\r\nX-Half: ' : 'POST /p/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc');
        socks.push(s);
      }
      assert.ok(await waitFor(() => fdCount(sl.pid) >= base + 100, 3000), `100 client connections held: ${fdCount(sl.pid)} (base ${base})`);
      assert.ok(await waitFor(() => socks.every((s) => s.closedByPeer), 5000), `${socks.filter((s) => !s.closedByPeer).length} still open after the timeout`);
      assert.ok(await waitFor(() => fdCount(sl.pid) <= base + 50, 3000), `${fdCount(sl.pid)} descriptors (base ${base})`);
      // The half bodies went upstream (streamed): those transfers ended too.
      assert.ok(await waitFor(() => fdCount(sl.pid) - upstreamConns(sl.pid, fake.port).total <= base, 3000),
        `${fdCount(sl.pid)} descriptors, ${JSON.stringify(upstreamConns(sl.pid, fake.port))} upstream (base ${base})`);
      assert.equal((await request({ port: sl.proxyPort, path: '/p/echo' })).status, 200);
    } finally {
      for (const s of socks) s.destroy();
      await sl.stop();
      await fake.close();
    }
  });
});

describe('idle upstream connections', { skip: binaryMissing() }, () => {
  test('an idle upstream connection the upstream closed gives its descriptor back within a few seconds, without waiting for new traffic', {
    timeout: 20000,
  }, async () => {
    // An upstream that closes idle keep-alive connections after 300 ms, as
    // nginx (keepalive_timeout) or Node (keepAliveTimeout) do.
    const srv = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    srv.keepAliveTimeout = 300;
    const up = await listenLocal(srv);
    const sl = await startSluice({ workers: 1, config: { services: [{ name: 'a', url: up.url, routes: [{ name: 'a', paths: ['/a'] }] }] } });
    try {
      const base = fdCount(sl.pid);
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => request({ port: sl.proxyPort, path: `/a/${i}` })));
      assert.deepEqual(rs.map((r) => r.status), Array(20).fill(200));
      assert.ok(upstreamConns(sl.pid, up.port).total >= 10, 'several upstream connections were pooled');
      // The upstream closes them all; sluice sees each one readable at once.
      assert.ok(await waitFor(() => upstreamConns(sl.pid, up.port).ESTABLISHED === undefined, 3000),
        `the upstream closed its side: ${JSON.stringify(upstreamConns(sl.pid, up.port))}`);
      // nginx's keepalive module closes a cached upstream connection as soon
      // as it turns readable (ngx_http_upstream_keepalive_close_handler).
      const freed = await waitFor(() => fdCount(sl.pid) <= base + 1, 5000);
      assert.ok(freed, `${fdCount(sl.pid)} descriptors 5 s after the upstream closed every idle connection (${base} before the requests)`);
    } finally {
      await sl.stop();
      await up.close();
    }
  });

  test('--upstream-keepalive-idle-timeout: a live idle upstream connection is closed after it, without new traffic (Kong: upstream_keepalive_idle_timeout)', {
    timeout: 20000,
  }, async () => {
    const srv = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    srv.keepAliveTimeout = 0; // never closes an idle connection itself
    const up = await listenLocal(srv);
    const sl = await startSluice({ workers: 1, args: ['--upstream-keepalive-idle-timeout', '2'],
      config: { services: [{ name: 'a', url: up.url, routes: [{ name: 'a', paths: ['/a'] }] }] } });
    try {
      const base = fdCount(sl.pid);
      const rs = await Promise.all(Array.from({ length: 5 }, (_, i) => request({ port: sl.proxyPort, path: `/a/${i}` })));
      assert.deepEqual(rs.map((r) => r.status), Array(5).fill(200));
      const t0 = Date.now();
      assert.ok(upstreamConns(sl.pid, up.port).ESTABLISHED >= 1, 'pooled');
      assert.ok(await waitFor(() => upstreamConns(sl.pid, up.port).ESTABLISHED === undefined && fdCount(sl.pid) <= base + 1, 8000),
        `after ${Date.now() - t0} ms: ${JSON.stringify(upstreamConns(sl.pid, up.port))}, ${fdCount(sl.pid)} descriptors (base ${base})`);
      assert.ok(Date.now() - t0 >= 1500, `kept until the idle timeout, not closed at once (${Date.now() - t0} ms)`);
      // And the pool works as before afterwards.
      assert.equal((await request({ port: sl.proxyPort, path: '/a/again' })).status, 200);
    } finally {
      await sl.stop();
      await up.close();
    }
  });
});
