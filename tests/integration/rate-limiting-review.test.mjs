// Review of the rate-limiting plugin (commit 08a7021): the redis policy's
// connection handling (setup failures, timeouts shared by pipelined checks,
// a Redis that closes or answers garbage), suspended requests (client gone,
// SIGHUP, graceful stop with and without the drain timeout), early answers
// and the other plugins' hooks, and Kong's identifiers.
//
// Most tests speak to a fake Redis (node:net speaking RESP) so that replies
// can be delayed, withheld, cut or garbled; the ones that need a real Redis
// use SLUICE_TEST_REDIS_PORT.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { evalOk, startFakeRedis } from './lib/fake-redis.mjs';
import { assertErrorBody, binaryMissing, request, sleep, startSluice, waitFor } from './lib/harness.mjs';

const REDIS_PORT = process.env.SLUICE_TEST_REDIS_PORT ? Number(process.env.SLUICE_TEST_REDIS_PORT) : null;
const NO_REDIS = !REDIS_PORT && 'no redis (set SLUICE_TEST_REDIS_PORT)';
const RUN = `${process.pid}-${Date.now().toString(36)}`;
const uniq = (name) => `${name}-${RUN}`;

// A request whose client goes away once sluice has it (before the answer).
function abortedRequest(port, path) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
    s.on('error', () => {});
    setTimeout(() => {
      s.destroy();
      resolve();
    }, 150);
  });
}

function realRedis(...args) {
  return execFileSync('redis-cli', ['-p', String(REDIS_PORT), ...args], { encoding: 'utf8' }).trim();
}

const rl = (config) => ({ name: 'rate-limiting', config });
const fakeRedisConf = (fr, extra = {}) => ({
  policy: 'redis', limit_by: 'ip', redis: { host: '127.0.0.1', port: fr.port, timeout: 2000, ...extra },
});

describe('rate-limiting review', { skip: binaryMissing() }, () => {
  let fake;
  before(async () => {
    fake = await startFake();
  });
  after(async () => {
    await fake?.close();
  });

  const oneRoute = (name, plugins, extraRoutes = []) => ({
    services: [{ name: uniq(`svc-${name}`), url: fake.url, routes: [{ name: uniq(name), paths: [`/${name}`], plugins }, ...extraRoutes] }],
  });

  // ------------------------------------------------------------------ bugs

  test('BUG: a failed SELECT must not let the check count in database 0', { skip: NO_REDIS }, async () => {
    // Redis has 16 databases by default: SELECT 100 fails. The EVAL was
    // pipelined behind it, so Redis runs it in database 0 anyway.
    const svc = uniq('svc-select');
    const route = uniq('select');
    const sl = await startSluice({
      config: {
        services: [{
          name: svc, url: fake.url,
          routes: [{ name: route, paths: ['/select'], plugins: [rl({ hour: 100, limit_by: 'ip', policy: 'redis', redis: { host: '127.0.0.1', port: REDIS_PORT, database: 100 } })] }],
        }],
      },
    });
    try {
      const r = await request({ port: sl.proxyPort, path: '/select/echo' });
      assert.equal(r.status, 200, r.text); // fault_tolerant: through, uncounted
      await sl.waitForLog(/SELECT failed/);
      const keys = realRedis('-n', '0', '--scan', '--pattern', `ratelimit:${route}:*`);
      assert.equal(keys, '', `counted in database 0 although SELECT 100 failed: ${keys}`);
    } finally {
      await sl.stop();
    }
  });

  test('BUG: a failed AUTH must not let the check run unauthenticated', { skip: NO_REDIS }, async () => {
    // The test Redis has no password: AUTH fails ("called without any
    // password configured"), and the EVAL pipelined behind it still counts.
    const svc = uniq('svc-auth');
    const route = uniq('auth');
    const sl = await startSluice({
      config: {
        services: [{
          name: svc, url: fake.url,
          routes: [{ name: route, paths: ['/auth'], plugins: [rl({ hour: 100, limit_by: 'ip', policy: 'redis', redis: { host: '127.0.0.1', port: REDIS_PORT, password: 'wrong' } })] }],
        }],
      },
    });
    try {
      const r = await request({ port: sl.proxyPort, path: '/auth/echo' });
      assert.equal(r.status, 200, r.text);
      await sl.waitForLog(/AUTH failed/);
      const keys = realRedis('-n', '0', '--scan', '--pattern', `ratelimit:${route}:*`);
      assert.equal(keys, '', `counted although AUTH failed: ${keys}`);
    } finally {
      await sl.stop();
    }
  });

  test('BUG: a short redis.timeout of one plugin instance fails the checks of another that allows longer', async () => {
    // Both instances share the worker's connection to the same Redis. Redis
    // answers every EVAL in 300 ms: within route "patient"'s 2000 ms, past
    // route "hasty"'s 50 ms. hasty's timeout drops the shared connection
    // and with it patient's pending check, 250 ms before Redis answers it.
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] === 'EVAL') setTimeout(() => sock.writable && sock.write(evalOk(args)), 300);
      else sock.write('+OK\r\n');
    });
    const sl = await startSluice({
      workers: 1,
      config: oneRoute('patient', [rl({ hour: 100, fault_tolerant: false, ...fakeRedisConf(fr, { timeout: 2000 }) })], [
        { name: uniq('hasty'), paths: ['/hasty'], plugins: [rl({ hour: 100, fault_tolerant: true, ...fakeRedisConf(fr, { timeout: 50 }) })] },
      ]),
    });
    try {
      // Alone, patient is fine.
      const alone = await request({ port: sl.proxyPort, path: '/patient/echo' });
      assert.equal(alone.status, 200, alone.text);
      const p = request({ port: sl.proxyPort, path: '/patient/echo' });
      await sleep(20);
      const h = await request({ port: sl.proxyPort, path: '/hasty/echo' });
      assert.equal(h.status, 200, h.text); // fault tolerant after its own 50 ms
      const r = await p;
      assert.equal(r.status, 200, `patient's check failed before its own 2000 ms timeout: ${r.text}`);
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('BUG: the error logged when Redis closes the connection names that, not an older failure', async () => {
    // Connection 0 never answers the EVAL (timeout: the connection is
    // dropped, why = "an earlier command timed out"); connection 1 is
    // closed by Redis on the EVAL. hiredis fails the pending callbacks
    // before it calls the disconnect callback, so op_reply reads the stale
    // reason of the previous connection.
    const fr = await startFakeRedis((args, sock, conn) => {
      if (args[0] !== 'EVAL') return sock.write('+OK\r\n');
      if (conn === 1) sock.destroy();
      // conn 0: silence
    });
    const sl = await startSluice({ workers: 1, config: oneRoute('why', [rl({ hour: 100, ...fakeRedisConf(fr, { timeout: 200 }) })]) });
    try {
      const a = await request({ port: sl.proxyPort, path: '/why/echo' });
      assert.equal(a.status, 200);
      await sl.waitForLog(/rate-limiting: redis .*no reply within the timeout/);
      const mark = sl.logMark();
      const b = await request({ port: sl.proxyPort, path: '/why/echo' });
      assert.equal(b.status, 200);
      // Each failing request names its failure in its own log line (the
      // error log keeps one line a second per worker).
      const id = b.headers['x-sluice-request-id'];
      const line = await sl.waitForLog(new RegExp(`request_id=${id} .*rate_limit_error="redis [^"]*"`), { from: mark });
      assert.doesNotMatch(line, /earlier command timed out/, `misleading reason: ${line}`);
      assert.match(line, /rate_limit_error="redis [^"]*: Server closed the connection"/);
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  // ------------------------------------------------- verified behaviours

  test('client gone while its check waits on Redis: finished once Redis answers (499), no leak', async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] === 'EVAL') setTimeout(() => sock.writable && sock.write(evalOk(args)), 600);
      else sock.write('+OK\r\n');
    });
    const sl = await startSluice({ workers: 1, config: oneRoute('gone', [rl({ hour: 100, ...fakeRedisConf(fr) })]) });
    try {
      const mark = sl.logMark();
      await abortedRequest(sl.proxyPort, '/gone/echo');
      await waitFor(() => fr.evals().length === 1);
      const line = await sl.waitForLog(/uri="\/gone\/echo" status=/, { from: mark, timeoutMs: 3000 });
      assert.match(line, /status=499/);
      assert.match(line, /client_aborted=true/);
      assert.equal(fake.requests.filter((q) => q.path === '/gone/echo').length, 0, 'proxied for a client that left');
      const r = await request({ port: sl.proxyPort, path: '/gone/echo' });
      assert.equal(r.status, 200, r.text);
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('client gone, then the check times out: finished once, no leak', async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] !== 'EVAL') sock.write('+OK\r\n');
    });
    const sl = await startSluice({ workers: 1, config: oneRoute('gone2', [rl({ hour: 100, fault_tolerant: false, ...fakeRedisConf(fr, { timeout: 300 }) })]) });
    try {
      const mark = sl.logMark();
      await abortedRequest(sl.proxyPort, '/gone2/echo');
      const line = await sl.waitForLog(/uri="\/gone2\/echo" status=/, { from: mark, timeoutMs: 3000 });
      assert.match(line, /status=499/);
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('pipelined checks on one connection, the first never answered: all complete, then a new connection', async () => {
    const fr = await startFakeRedis((args, sock, conn, i) => {
      if (args[0] !== 'EVAL') return sock.write('+OK\r\n');
      if (fr.evals().length === 1) return; // the first EVAL: silence
      sock.write(evalOk(args));
    });
    const sl = await startSluice({ workers: 1, config: oneRoute('pipe', [rl({ hour: 100, ...fakeRedisConf(fr, { timeout: 400 }) })]) });
    try {
      const first = request({ port: sl.proxyPort, path: '/pipe/echo' });
      await waitFor(() => fr.evals().length === 1);
      // Queued behind the silent one on the same connection: Redis answers
      // them (pipelining), but hiredis hands replies out in order.
      const more = [1, 2, 3].map(() => request({ port: sl.proxyPort, path: '/pipe/echo' }));
      const all = await Promise.all([first, ...more]);
      assert.deepEqual(all.map((r) => r.status), [200, 200, 200, 200]);
      const after = await request({ port: sl.proxyPort, path: '/pipe/echo' });
      assert.equal(after.status, 200);
      assert.equal(fr.connections, 2, 'the timed-out connection was dropped and a new one made');
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('Redis closes mid-reply, answers garbage or an error: 500 without fault_tolerant, 200 with it', async () => {
    let mode = 'cut';
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] !== 'EVAL') return sock.write('+OK\r\n');
      if (mode === 'cut') {
        sock.write('*2\r\n:0');
        setTimeout(() => sock.destroy(), 20);
      } else if (mode === 'garbage') {
        sock.write('!!! not resp\r\n');
      } else if (mode === 'wrong') {
        sock.write('*2\r\n$3\r\nabc\r\n:0\r\n');
      } else if (mode === 'error') {
        sock.write('-BUSY Redis is busy running a script\r\n');
      } else {
        sock.write(evalOk(args));
      }
    });
    const sl = await startSluice({
      workers: 1,
      config: oneRoute('strict', [rl({ hour: 100, fault_tolerant: false, ...fakeRedisConf(fr) })], [
        { name: uniq('lenient'), paths: ['/lenient'], plugins: [rl({ hour: 100, fault_tolerant: true, ...fakeRedisConf(fr) })] },
      ]),
    });
    try {
      for (const m of ['cut', 'garbage', 'wrong', 'error']) {
        mode = m;
        const s = await request({ port: sl.proxyPort, path: '/strict/echo' });
        assertErrorBody(s, 500, /^An unexpected error occurred$/);
        assert.equal(s.headers['x-ratelimit-limit-hour'], undefined, m);
        const l = await request({ port: sl.proxyPort, path: '/lenient/echo' });
        assert.equal(l.status, 200, `${m}: ${l.text}`);
        assert.equal(l.headers['x-ratelimit-limit-hour'], undefined, m);
      }
      mode = 'ok';
      const ok = await request({ port: sl.proxyPort, path: '/strict/echo' });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.headers['x-ratelimit-remaining-hour'], '99');
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('early answers (429 and the 500 of a Redis failure) still run the other plugins\' header hooks', async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] !== 'EVAL') return sock.write('+OK\r\n');
      sock.write('-ERR boom\r\n');
    });
    const corr = { name: 'correlation-id', config: { header_name: 'X-Corr', generator: 'uuid', echo_downstream: true } };
    const sl = await startSluice({
      config: oneRoute('early', [corr, rl({ hour: 1, limit_by: 'ip' })], [
        { name: uniq('early500'), paths: ['/early500'], plugins: [corr, rl({ hour: 5, fault_tolerant: false, ...fakeRedisConf(fr) })] },
      ]),
    });
    try {
      const a = await request({ port: sl.proxyPort, path: '/early/echo' });
      assert.equal(a.status, 200);
      const b = await request({ port: sl.proxyPort, path: '/early/echo' });
      assertErrorBody(b, 429, /^API rate limit exceeded$/);
      assert.match(b.headers['x-corr'] ?? '', /^[0-9a-f-]{36}$/, 'correlation-id header on the 429');
      assert.equal(b.headers['retry-after'] !== undefined, true);
      assert.equal(b.headers['x-ratelimit-remaining-hour'], '0');
      const c = await request({ port: sl.proxyPort, path: '/early500/echo' });
      assertErrorBody(c, 500, /^An unexpected error occurred$/);
      assert.match(c.headers['x-corr'] ?? '', /^[0-9a-f-]{36}$/, 'correlation-id header on the 500 after resume');
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('SIGHUP while a check waits on Redis: it finishes on its old config', async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] === 'EVAL') setTimeout(() => sock.writable && sock.write(evalOk(args)), 700);
      else sock.write('+OK\r\n');
    });
    const cfg = oneRoute('hup', [rl({ hour: 100, ...fakeRedisConf(fr) })]);
    const sl = await startSluice({ workers: 1, config: cfg });
    try {
      const p = request({ port: sl.proxyPort, path: '/hup/echo' });
      await waitFor(() => fr.evals().length === 1);
      await sl.reload(oneRoute('hup', [rl({ hour: 50, ...fakeRedisConf(fr) })]));
      const r = await p;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-ratelimit-limit-hour'], '100', 'the config it started with');
      const q = await request({ port: sl.proxyPort, path: '/hup/echo' });
      assert.equal(q.headers['x-ratelimit-limit-hour'], '50');
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('graceful stop while a check waits on Redis (within the drain timeout): answered normally', async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] === 'EVAL') setTimeout(() => sock.writable && sock.write(evalOk(args)), 800);
      else sock.write('+OK\r\n');
    });
    const sl = await startSluice({ workers: 1, config: oneRoute('drain', [rl({ hour: 100, ...fakeRedisConf(fr) })]) });
    try {
      const p = request({ port: sl.proxyPort, path: '/drain/echo' });
      await waitFor(() => fr.evals().length === 1);
      sl.signal('SIGTERM');
      const r = await p;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-ratelimit-remaining-hour'], '99');
      await sl.waitExit();
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('drain timeout passes while a check waits on Redis: 503, clean exit', async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] !== 'EVAL') sock.write('+OK\r\n');
    });
    const sl = await startSluice({
      workers: 1,
      args: ['--drain-timeout', '1'],
      config: oneRoute('dt', [rl({ hour: 100, fault_tolerant: true, ...fakeRedisConf(fr, { timeout: 60000 }) })]),
    });
    try {
      const p = request({ port: sl.proxyPort, path: '/dt/echo' });
      await waitFor(() => fr.evals().length === 1);
      sl.signal('SIGTERM');
      const r = await p;
      assertErrorBody(r, 503, /^The gateway is shutting down$/);
      await sl.waitExit();
      assert.equal(fake.requests.filter((q) => q.path === '/dt/echo').length, 0);
    } finally {
      await sl.stop();
      await fr.close();
    }
  });

  test('drain timeout while one check waits on Redis and its client is gone: clean exit', async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (args[0] !== 'EVAL') sock.write('+OK\r\n');
    });
    const sl = await startSluice({
      workers: 1,
      args: ['--drain-timeout', '1'],
      config: oneRoute('dt2', [rl({ hour: 100, ...fakeRedisConf(fr, { timeout: 60000 }) })]),
    });
    try {
      const p = request({ port: sl.proxyPort, path: '/dt2/echo' });
      await abortedRequest(sl.proxyPort, '/dt2/echo');
      await waitFor(() => fr.evals().length === 2);
      sl.signal('SIGTERM');
      const r = await p;
      assertErrorBody(r, 503, /^The gateway is shutting down$/);
      await sl.waitExit();
    } finally {
      await sl.stop();
      await fr.close();
    }
  });
});
