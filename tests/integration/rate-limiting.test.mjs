// The rate-limiting plugin (Kong's, priority 910) through the daemon: local
// counters (shared by workers, kept across SIGHUP), redis counters (shared by
// every sluice on the same redis, Kong's key names and TTLs), limit_by,
// the X-RateLimit-* / RateLimit-* / Retry-After headers, the 429, redis
// failures (refused, silent, error reply) with and without fault_tolerant,
// graceful stop and client aborts while a request waits on redis, and the
// config errors `sluice -t` reports.
//
// Counters never collide between tests or runs: every test has its own route
// and service names, suffixed with a per-run id (redis keeps counters across
// runs). Counting tests use `hour`/`day` and step clear of a period edge.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import {
  assertCleanExit, assertErrorBody, binaryMissing, closedPort, configText, request, runSluice, sleep, startSluice,
  tempDir, waitFor,
} from './lib/harness.mjs';

const REDIS_PORT = process.env.SLUICE_TEST_REDIS_PORT ? Number(process.env.SLUICE_TEST_REDIS_PORT) : null;
const NO_REDIS = !REDIS_PORT && 'no redis (set SLUICE_TEST_REDIS_PORT)';
const RUN = `${process.pid}-${Date.now().toString(36)}`;
const ZERO_UUID = '00000000-0000-0000-0000-000000000000';
const SEC = 1000;
const HOUR = 3600 * SEC;
const DAY = 86400 * SEC;

// ---------------------------------------------------------------- helpers

const uniq = (name) => `${name}-${RUN}`;

// Waits past the end of the current UTC period if it ends within marginMs, so
// a counting test never straddles two periods.
async function clearOfEdge(periodMs, marginMs = 15 * SEC) {
  const left = periodMs - (Date.now() % periodMs);
  if (left < marginMs) await sleep(left + 200);
}

const periodStart = (periodMs, t = Date.now()) => Math.floor(t / periodMs) * periodMs;

// A redis counter key: ratelimit:<route>:<service>:<identifier>:<period start ms>:<period>,
// route and service being the plugin's scope (ZERO_UUID where it has none).
const rlKey = ({ route, service }, id, periodMs, period) => `ratelimit:${route}:${service}:${id}:${calendarPeriod(periodMs).start}:${period}`;
// A plugin declared under a route is scoped to the route alone, as in Kong
// (its service_id is null there): the key's service part is the zero UUID.
const routeScope = (route, _service) => ({ route, service: ZERO_UUID });
const serviceScope = (service) => ({ route: ZERO_UUID, service });
const globalScope = { route: ZERO_UUID, service: ZERO_UUID };

const RL_HEADER = /^(x-ratelimit-|ratelimit-|retry-after$)/;
function rlHeaders(r) {
  return Object.fromEntries(Object.entries(r.headers).filter(([k]) => RL_HEADER.test(k)));
}

// The UTC calendar period containing t: {start, end} in ms, length in s.
// `period` is a length in ms (second..day) or 'month' / 'year'.
function calendarPeriod(period, t = Date.now()) {
  if (typeof period === 'number') {
    const start = periodStart(period, t);
    return { start, end: start + period, length: period / 1000 };
  }
  const d = new Date(t);
  const y = d.getUTCFullYear();
  const start = period === 'month' ? Date.UTC(y, d.getUTCMonth(), 1) : Date.UTC(y, 0, 1);
  const end = period === 'month' ? Date.UTC(y, d.getUTCMonth() + 1, 1) : Date.UTC(y + 1, 0, 1);
  return { start, end, length: (end - start) / 1000 };
}

// RateLimit-Reset: whole seconds until the end of the period, 1..length.
function assertReset(value, period, what = 'RateLimit-Reset') {
  assert.match(String(value), /^\d+$/, `${what}: ${value}`);
  const reset = Number(value);
  const { end, length } = calendarPeriod(period);
  const expected = (end - Date.now()) / 1000;
  assert.ok(reset >= 1 && reset <= length, `${what} ${reset} out of [1, ${length}]`);
  assert.ok(Math.abs(reset - expected) <= 2, `${what} ${reset}, expected about ${expected.toFixed(1)} (until ${new Date(end).toISOString()})`);
}

// An allowed response: X-RateLimit-{Limit,Remaining}-<P> for every period of
// `limits` ({Hour: [limit, remaining], ...}), RateLimit-* for `main`.
function assertAllowed(r, limits, main) {
  assert.equal(r.status, 200, `status (body ${r.text.slice(0, 300)})`);
  for (const [P, [limit, remaining]] of Object.entries(limits)) {
    assert.equal(r.headers[`x-ratelimit-limit-${P.toLowerCase()}`], String(limit), `X-RateLimit-Limit-${P}`);
    assert.equal(r.headers[`x-ratelimit-remaining-${P.toLowerCase()}`], String(remaining), `X-RateLimit-Remaining-${P}`);
  }
  for (const P of ['Second', 'Minute', 'Hour', 'Day', 'Month', 'Year']) {
    if (limits[P]) continue;
    assert.equal(r.headers[`x-ratelimit-limit-${P.toLowerCase()}`], undefined, `no X-RateLimit-Limit-${P}`);
    assert.equal(r.headers[`x-ratelimit-remaining-${P.toLowerCase()}`], undefined, `no X-RateLimit-Remaining-${P}`);
  }
  const [limit, remaining, period] = main;
  assert.equal(r.headers['ratelimit-limit'], String(limit), 'RateLimit-Limit');
  assert.equal(r.headers['ratelimit-remaining'], String(remaining), 'RateLimit-Remaining');
  assertReset(r.headers['ratelimit-reset'], period);
  assert.equal(r.headers['retry-after'], undefined, 'no Retry-After on an allowed response');
}

// A rejected response: status, JSON {message, request_id}, Retry-After =
// RateLimit-Reset, RateLimit-Remaining 0, X-RateLimit-Remaining-<P> 0.
function assertLimited(r, { status = 429, message = 'API rate limit exceeded', period = 'Hour', periodMs = HOUR, limit } = {}) {
  assertErrorBody(r, status);
  assert.equal(r.json().message, message, 'error message');
  assert.equal(r.headers['retry-after'], r.headers['ratelimit-reset'], 'Retry-After = RateLimit-Reset');
  assertReset(r.headers['retry-after'], periodMs, 'Retry-After');
  assert.equal(r.headers['ratelimit-remaining'], '0', 'RateLimit-Remaining');
  assert.equal(r.headers[`x-ratelimit-remaining-${period.toLowerCase()}`], '0', `X-RateLimit-Remaining-${period}`);
  if (limit !== undefined) {
    assert.equal(r.headers['ratelimit-limit'], String(limit), 'RateLimit-Limit');
    assert.equal(r.headers[`x-ratelimit-limit-${period.toLowerCase()}`], String(limit), `X-RateLimit-Limit-${period}`);
  }
}

function assertNoRateLimitHeaders(r) {
  assert.deepEqual(rlHeaders(r), {}, 'no rate-limit headers');
}

const rl = (config) => ({ name: 'rate-limiting', config });
const rlRoute = (name, config, extra = {}) => ({ name, paths: [`/${name}`], ...extra, plugins: [rl(config)] });

// ------------------------------------------------------- a tiny RESP client

function encodeCommand(args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.from(String(a));
    s += `$${b.length}\r\n${b.toString('latin1')}\r\n`;
  }
  return Buffer.from(s, 'latin1');
}

// Parses one RESP reply at buf[i]: {value, next} or null if incomplete.
function parseReply(buf, i = 0) {
  const eol = buf.indexOf('\r\n', i);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[i]);
  const line = buf.toString('latin1', i + 1, eol);
  const next = eol + 2;
  if (type === '+') return { value: line, next };
  if (type === '-') return { value: Object.assign(new Error(line), { redis: true }), next };
  if (type === ':') return { value: Number(line), next };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, next };
    if (buf.length < next + n + 2) return null;
    return { value: buf.toString('utf8', next, next + n), next: next + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, next };
    const out = [];
    let at = next;
    for (let k = 0; k < n; k++) {
      const e = parseReply(buf, at);
      if (!e) return null;
      out.push(e.value);
      at = e.next;
    }
    return { value: out, next: at };
  }
  throw new Error(`bad RESP reply: ${buf.toString('latin1', i, i + 80)}`);
}

function redis(...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(REDIS_PORT, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`redis ${args.join(' ')}: no reply within 3 s`));
    }, 3000);
    s.on('connect', () => s.write(encodeCommand(args)));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseReply(buf);
      if (!r) return;
      clearTimeout(timer);
      s.end();
      if (r.value instanceof Error) reject(r.value);
      else resolve(r.value);
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// A "redis" that accepts connections and never answers.
function silentRedis() {
  const sockets = new Set();
  const state = { connections: 0, bytes: 0 };
  const server = net.createServer((s) => {
    state.connections++;
    sockets.add(s);
    s.on('data', (d) => (state.bytes += d.length));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    state,
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  })));
}

// ------------------------------------------------------------------ tests

describe('rate-limiting', { skip: binaryMissing() }, () => {
  let fake;
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  const get = (sl, p, headers = {}, opts = {}) => request({ port: sl.proxyPort, path: p, headers, ...opts });
  const upstreamSaw = (t) => fake.requests.filter((q) => q.query.t === t).length;

  describe('local policy', () => {
    test('1. 3 per hour: Remaining 2,1,0 then 429 with Retry-After; the upstream sees 3', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({ config: { services: [{ name: 's1', url: fake.url, routes: [rlRoute('t1', { hour: 3 })] }] } });
      try {
        for (let i = 0; i < 3; i++) {
          const r = await get(sl, '/t1/echo?t=t1');
          assertAllowed(r, { Hour: [3, 2 - i] }, [3, 2 - i, HOUR]);
        }
        const r = await get(sl, '/t1/echo?t=t1');
        assertLimited(r, { limit: 3 });
        // A rejected request does not count, and is not proxied.
        assertLimited(await get(sl, '/t1/echo?t=t1'), { limit: 3 });
        assert.equal(upstreamSaw('t1'), 3, 'the upstream saw exactly 3 requests');
      } finally {
        await sl.stop();
      }
    });

    test('2. workers: 4, 20 concurrent fresh connections, limit 10: exactly 10 pass', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({ workers: 4, config: { services: [{ name: 's2', url: fake.url, routes: [rlRoute('t2', { hour: 10 })] }] } });
      try {
        const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => get(sl, `/t2/echo?t=t2&i=${i}`, {}, { agent: false })));
        const ok = rs.filter((r) => r.status === 200);
        const limited = rs.filter((r) => r.status === 429);
        assert.equal(ok.length, 10, `200s: ${rs.map((r) => r.status).join(' ')}`);
        assert.equal(limited.length, 10, `429s: ${rs.map((r) => r.status).join(' ')}`);
        // One shared counter: every allowed request saw a different count.
        assert.deepEqual(ok.map((r) => Number(r.headers['x-ratelimit-remaining-hour'])).sort((a, b) => a - b),
          [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'X-RateLimit-Remaining-Hour of the allowed requests');
        for (const r of limited) assertLimited(r, { limit: 10 });
        assert.equal(upstreamSaw('t2'), 10, 'the upstream saw exactly 10 requests');
        // Later requests, sequential, on any worker: still limited.
        for (let i = 0; i < 8; i++) assert.equal((await get(sl, '/t2/echo?t=t2')).status, 429);
        assert.equal(upstreamSaw('t2'), 10);
      } finally {
        await sl.stop();
      }
    });

    test('3. SIGHUP: a reload keeping the plugin keeps the counter; a new limit applies to the same counter', async () => {
      await clearOfEdge(HOUR, 30 * SEC);
      const cfg = (limit, ...more) => ({ services: [{ name: 's3', url: fake.url, routes: [rlRoute('t3', { hour: limit }), ...more] }] });
      const sl = await startSluice({ config: cfg(3) });
      try {
        assertAllowed(await get(sl, '/t3/echo?t=t3'), { Hour: [3, 2] }, [3, 2, HOUR]);
        assertAllowed(await get(sl, '/t3/echo?t=t3'), { Hour: [3, 1] }, [3, 1, HOUR]);
        // Same plugin, another route added: the count (2) is kept.
        await sl.reload(cfg(3, { name: 't3-extra', paths: ['/t3-extra'] }));
        assert.equal((await get(sl, '/t3-extra/echo')).status, 200, 'the reload took effect');
        assertAllowed(await get(sl, '/t3/echo?t=t3'), { Hour: [3, 0] }, [3, 0, HOUR]);
        assertLimited(await get(sl, '/t3/echo?t=t3'), { limit: 3 });
        // A reload raising the limit to 5: the count is still 3.
        await sl.reload(cfg(5));
        assertAllowed(await get(sl, '/t3/echo?t=t3'), { Hour: [5, 1] }, [5, 1, HOUR]);
        assertAllowed(await get(sl, '/t3/echo?t=t3'), { Hour: [5, 0] }, [5, 0, HOUR]);
        assertLimited(await get(sl, '/t3/echo?t=t3'), { limit: 5 });
        // A reload lowering it to 2: over the limit at once.
        await sl.reload(cfg(2));
        assertLimited(await get(sl, '/t3/echo?t=t3'), { limit: 2 });
        assert.equal(upstreamSaw('t3'), 5);
      } finally {
        await sl.stop();
      }
    });

    test('4. limit_by header: separate budgets per value; no header falls back to the IP budget', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({
        config: { services: [{ name: 's4', url: fake.url, routes: [rlRoute('t4', { hour: 2, limit_by: 'header', header_name: 'X-Client-Key' })] }] },
      });
      try {
        const a = { 'x-client-key': 'alpha' };
        const b = { 'X-Client-Key': 'beta' };
        assertAllowed(await get(sl, '/t4/echo?t=t4', a), { Hour: [2, 1] }, [2, 1, HOUR]);
        assertAllowed(await get(sl, '/t4/echo?t=t4', a), { Hour: [2, 0] }, [2, 0, HOUR]);
        assertLimited(await get(sl, '/t4/echo?t=t4', a), { limit: 2 });
        assertAllowed(await get(sl, '/t4/echo?t=t4', b), { Hour: [2, 1] }, [2, 1, HOUR]);
        // No header: the client IP's own budget, untouched so far.
        assertAllowed(await get(sl, '/t4/echo?t=t4'), { Hour: [2, 1] }, [2, 1, HOUR]);
        assertAllowed(await get(sl, '/t4/echo?t=t4'), { Hour: [2, 0] }, [2, 0, HOUR]);
        assertLimited(await get(sl, '/t4/echo?t=t4'), { limit: 2 });
        // beta still has one left; alpha is still out.
        assertAllowed(await get(sl, '/t4/echo?t=t4', b), { Hour: [2, 0] }, [2, 0, HOUR]);
        assertLimited(await get(sl, '/t4/echo?t=t4', a), { limit: 2 });
        assert.equal(upstreamSaw('t4'), 6);
      } finally {
        await sl.stop();
      }
    });

    test('5a. limit_by path: the configured path has its own budget, other paths use the IP', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({
        config: { services: [{ name: 's5p', url: fake.url, routes: [rlRoute('t5p', { hour: 2, limit_by: 'path', path: '/t5p/exact' })] }] },
      });
      try {
        assertAllowed(await get(sl, '/t5p/exact?t=t5p'), { Hour: [2, 1] }, [2, 1, HOUR]);
        assertAllowed(await get(sl, '/t5p/exact?t=t5p'), { Hour: [2, 0] }, [2, 0, HOUR]);
        // The query string is not part of the path.
        assertLimited(await get(sl, '/t5p/exact?t=t5p&x=1'), { limit: 2 });
        // Not exactly the path: the IP budget, fresh.
        assertAllowed(await get(sl, '/t5p/other?t=t5p'), { Hour: [2, 1] }, [2, 1, HOUR]);
        assertAllowed(await get(sl, '/t5p/exact/more?t=t5p'), { Hour: [2, 0] }, [2, 0, HOUR]);
        assertLimited(await get(sl, '/t5p/other?t=t5p'), { limit: 2 });
        assert.equal(upstreamSaw('t5p'), 4);
      } finally {
        await sl.stop();
      }
    });

    test('5b. limit_by service (global plugin): one budget per service, shared by its routes', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({
        config: {
          plugins: [rl({ hour: 2, limit_by: 'service' })],
          services: [
            { name: 's5a', url: fake.url, routes: [{ name: 't5a1', paths: ['/t5a1'] }, { name: 't5a2', paths: ['/t5a2'] }] },
            { name: 's5b', url: fake.url, routes: [{ name: 't5b1', paths: ['/t5b1'] }] },
          ],
        },
      });
      try {
        assertAllowed(await get(sl, '/t5a1/echo?t=t5s'), { Hour: [2, 1] }, [2, 1, HOUR]);
        assertAllowed(await get(sl, '/t5a2/echo?t=t5s'), { Hour: [2, 0] }, [2, 0, HOUR]);
        assertLimited(await get(sl, '/t5a1/echo?t=t5s'), { limit: 2 });
        assertLimited(await get(sl, '/t5a2/echo?t=t5s'), { limit: 2 });
        // Same client IP, another service: its own budget.
        assertAllowed(await get(sl, '/t5b1/echo?t=t5s'), { Hour: [2, 1] }, [2, 1, HOUR]);
        assertAllowed(await get(sl, '/t5b1/echo?t=t5s'), { Hour: [2, 0] }, [2, 0, HOUR]);
        assertLimited(await get(sl, '/t5b1/echo?t=t5s'), { limit: 2 });
        assert.equal(upstreamSaw('t5s'), 4);
      } finally {
        await sl.stop();
      }
    });

    test('6. hide_client_headers; custom error_code and error_message', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({
        config: {
          services: [{
            name: 's6',
            url: fake.url,
            routes: [
              rlRoute('t6h', { hour: 1, hide_client_headers: true }),
              rlRoute('t6c', { hour: 1, error_code: 403, error_message: 'Slow down, t6' }),
            ],
          }],
        },
      });
      try {
        const ok = await get(sl, '/t6h/echo?t=t6h');
        assert.equal(ok.status, 200);
        assertNoRateLimitHeaders(ok);
        const no = await get(sl, '/t6h/echo?t=t6h');
        assertErrorBody(no, 429);
        assert.equal(no.json().message, 'API rate limit exceeded');
        assertNoRateLimitHeaders(no);
        assert.equal(upstreamSaw('t6h'), 1);

        assertAllowed(await get(sl, '/t6c/echo?t=t6c'), { Hour: [1, 0] }, [1, 0, HOUR]);
        assertLimited(await get(sl, '/t6c/echo?t=t6c'), { status: 403, message: 'Slow down, t6', limit: 1 });
        assert.equal(upstreamSaw('t6c'), 1);
      } finally {
        await sl.stop();
      }
    });

    test('7a. hour 5 + day 8: both header pairs; RateLimit-* follow the most restrictive (hour)', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({ config: { services: [{ name: 's7', url: fake.url, routes: [rlRoute('t7', { hour: 5, day: 8 })] }] } });
      try {
        for (let i = 0; i < 5; i++) {
          assertAllowed(await get(sl, '/t7/echo?t=t7'), { Hour: [5, 4 - i], Day: [8, 7 - i] }, [5, 4 - i, HOUR]);
        }
        const r = await get(sl, '/t7/echo?t=t7');
        assertLimited(r, { limit: 5 });
        assert.equal(r.headers['x-ratelimit-limit-day'], '8', 'X-RateLimit-Limit-Day on the 429');
        assert.equal(upstreamSaw('t7'), 5);
      } finally {
        await sl.stop();
      }
    });

    test('7b. hour 3 + day 3: a tie goes to the longest period (Reset counts to the end of the UTC day)', async () => {
      await clearOfEdge(HOUR);
      const sl = await startSluice({ config: { services: [{ name: 's7t', url: fake.url, routes: [rlRoute('t7t', { hour: 3, day: 3 })] }] } });
      try {
        for (let i = 0; i < 3; i++) {
          assertAllowed(await get(sl, '/t7t/echo?t=t7t'), { Hour: [3, 2 - i], Day: [3, 2 - i] }, [3, 2 - i, DAY]);
        }
        assertLimited(await get(sl, '/t7t/echo?t=t7t'), { period: 'Day', periodMs: DAY, limit: 3 });
      } finally {
        await sl.stop();
      }
    });

    test('7c. second: 1 — the counter resets in the next second', async () => {
      const sl = await startSluice({ config: { services: [{ name: 's7s', url: fake.url, routes: [rlRoute('t7s', { second: 1 })] }] } });
      try {
        let done = false;
        for (let attempt = 0; attempt < 5 && !done; attempt++) {
          await sleep(SEC - (Date.now() % SEC) + 30); // just after a second starts
          const sec = Math.floor(Date.now() / SEC);
          const a = await get(sl, '/t7s/echo?t=t7s');
          const b = await get(sl, '/t7s/echo?t=t7s');
          if (Math.floor(Date.now() / SEC) !== sec) continue; // straddled an edge: try again
          assertAllowed(a, { Second: [1, 0] }, [1, 0, SEC]);
          assertLimited(b, { period: 'Second', periodMs: SEC, limit: 1 });
          assert.equal(b.headers['retry-after'], '1');
          done = true;
        }
        assert.ok(done, 'could not fit two requests into one second in 5 tries');
        await sleep(SEC - (Date.now() % SEC) + 30);
        assertAllowed(await get(sl, '/t7s/echo?t=t7s'), { Second: [1, 0] }, [1, 0, SEC]);
      } finally {
        await sl.stop();
      }
    });

    test('7e. month 2 + year 5: Reset counts to the end of the UTC calendar month', async () => {
      const sl = await startSluice({ config: { services: [{ name: 's7m', url: fake.url, routes: [rlRoute('t7m', { month: 2, year: 5 })] }] } });
      try {
        assertAllowed(await get(sl, '/t7m/echo?t=t7m'), { Month: [2, 1], Year: [5, 4] }, [2, 1, 'month']);
        assertAllowed(await get(sl, '/t7m/echo?t=t7m'), { Month: [2, 0], Year: [5, 3] }, [2, 0, 'month']);
        assertLimited(await get(sl, '/t7m/echo?t=t7m'), { period: 'Month', periodMs: 'month', limit: 2 });
      } finally {
        await sl.stop();
      }
    });

    test('7f. month 3 + year 3: a tie goes to the year (Reset until the end of the UTC year)', async () => {
      const sl = await startSluice({ config: { services: [{ name: 's7y', url: fake.url, routes: [rlRoute('t7y', { month: 3, year: 3 })] }] } });
      try {
        assertAllowed(await get(sl, '/t7y/echo?t=t7y'), { Month: [3, 2], Year: [3, 2] }, [3, 2, 'year']);
      } finally {
        await sl.stop();
      }
    });
  });

  describe('redis policy', { skip: NO_REDIS }, () => {
    const redisConf = (extra = {}) => ({ policy: 'redis', redis: { host: '127.0.0.1', port: REDIS_PORT, ...extra } });

    test('8. two sluice processes on one redis share one budget; key name, value and TTL', async () => {
      await clearOfEdge(HOUR);
      const svc = uniq('s8');
      const route = uniq('t8');
      const cfg = (conf) => ({ services: [{ name: svc, url: fake.url, routes: [{ name: route, paths: ['/t8'], plugins: [rl({ hour: 4, ...conf })] }] }] });
      // One with the nested redis record, one with Kong's older flat names.
      const a = await startSluice({ config: cfg(redisConf()) });
      const b = await startSluice({ config: cfg({ policy: 'redis', redis_host: '127.0.0.1', redis_port: REDIS_PORT }) });
      try {
        assertAllowed(await get(a, '/t8/echo?t=t8'), { Hour: [4, 3] }, [4, 3, HOUR]);
        assertAllowed(await get(b, '/t8/echo?t=t8'), { Hour: [4, 2] }, [4, 2, HOUR]);
        assertAllowed(await get(a, '/t8/echo?t=t8'), { Hour: [4, 1] }, [4, 1, HOUR]);
        assertAllowed(await get(b, '/t8/echo?t=t8'), { Hour: [4, 0] }, [4, 0, HOUR]);
        assertLimited(await get(a, '/t8/echo?t=t8'), { limit: 4 });
        assertLimited(await get(b, '/t8/echo?t=t8'), { limit: 4 });
        assert.equal(upstreamSaw('t8'), 4);
        const key = rlKey(routeScope(route, svc), '127.0.0.1', HOUR, 'hour');
        assert.deepEqual(await redis('KEYS', `ratelimit:${route}:*`), [key], 'the only key of this route');
        assert.equal(await redis('GET', key), '4', 'count (rejected requests do not count)');
        const ttl = await redis('TTL', key);
        assert.ok(ttl > 0 && ttl <= 3600, `TTL ${ttl}`);
      } finally {
        await a.stop();
        await b.stop();
      }
    });

    test('8b. key scopes and identifiers: route, service, global; ip, header, path, service, consumer fallbacks', async () => {
      await clearOfEdge(DAY, 30 * SEC);
      const svc = uniq('s8b');
      const svcG = uniq('s8g');
      const hdr = uniq('hv');
      const sl = await startSluice({
        config: {
          plugins: [rl({ day: 10, limit_by: 'header', header_name: 'X-G-Key', ...redisConf() })],
          services: [
            {
              name: svc,
              url: fake.url,
              plugins: [rl({ day: 10, limit_by: 'service', ...redisConf() })],
              routes: [
                { name: uniq('r-ip'), paths: ['/r-ip'], plugins: [rl({ day: 10, limit_by: 'ip', ...redisConf() })] },
                { name: uniq('r-hdr'), paths: ['/r-hdr'], plugins: [rl({ day: 10, limit_by: 'header', header_name: 'X-Key', ...redisConf() })] },
                { name: uniq('r-path'), paths: ['/r-path'], plugins: [rl({ day: 10, limit_by: 'path', path: '/r-path/p', ...redisConf() })] },
                { name: uniq('r-cons'), paths: ['/r-cons'], plugins: [rl({ day: 10, ...redisConf() })] },
                { name: uniq('r-cred'), paths: ['/r-cred'], plugins: [rl({ day: 10, limit_by: 'credential', ...redisConf() })] },
                { name: uniq('r-svc'), paths: ['/r-svc'] }, // the service's instance
              ],
            },
            { name: svcG, url: fake.url, routes: [{ name: uniq('r-glob'), paths: ['/r-glob'] }] }, // the global instance
          ],
        },
      });
      try {
        const k = (scope, id) => rlKey(scope, id, DAY, 'day');
        const rs = (name) => routeScope(uniq(name), svc);
        const cases = [
          ['/r-ip/echo', {}, k(rs('r-ip'), '127.0.0.1')],
          ['/r-hdr/echo', { 'x-key': hdr }, k(rs('r-hdr'), hdr)],
          ['/r-hdr/echo', {}, k(rs('r-hdr'), '127.0.0.1')],
          ['/r-path/p', {}, k(rs('r-path'), '/r-path/p')],
          ['/r-path/q', {}, k(rs('r-path'), '127.0.0.1')],
          ['/r-cons/echo', {}, k(rs('r-cons'), '127.0.0.1')],
          ['/r-cred/echo', {}, k(rs('r-cred'), '127.0.0.1')],
          ['/r-svc/echo', {}, k(serviceScope(svc), svc)],
          ['/r-glob/echo', { 'x-g-key': hdr }, k(globalScope, hdr)],
        ];
        for (const [p, headers, key] of cases) {
          const r = await get(sl, p, headers);
          assertAllowed(r, { Day: [10, 9] }, [10, 9, DAY]);
          assert.equal(await redis('GET', key), '1', `${p} ${JSON.stringify(headers)}: key ${key} (keys now: ${(await redis('KEYS', `ratelimit:*${RUN}*`)).join(' ')})`);
          const ttl = await redis('TTL', key);
          assert.ok(ttl > 0 && ttl <= 86400, `${key} TTL ${ttl}`);
        }
      } finally {
        await sl.stop();
      }
    });

    test('8c. month and year keys: calendar period start; the key lives until its period ends', async () => {
      const svc = uniq('s8c');
      const route = uniq('t8c');
      const sl = await startSluice({
        config: { services: [{ name: svc, url: fake.url, routes: [{ name: route, paths: ['/t8c'], plugins: [rl({ month: 10, year: 20, ...redisConf() })] }] }] },
      });
      try {
        assertAllowed(await get(sl, '/t8c/echo'), { Month: [10, 9], Year: [20, 19] }, [10, 9, 'month']);
        for (const period of ['month', 'year']) {
          const key = rlKey(routeScope(route, svc), '127.0.0.1', period, period);
          assert.equal(await redis('GET', key), '1', `key ${key} (keys: ${(await redis('KEYS', `ratelimit:${route}:*`)).join(' ')})`);
          const ttl = await redis('TTL', key);
          const { end, length } = calendarPeriod(period);
          const untilEnd = (end - Date.now()) / 1000;
          assert.ok(ttl > 0 && ttl <= length, `${period} TTL ${ttl} out of (0, ${length}]`);
          assert.ok(ttl >= untilEnd - 2, `${period} TTL ${ttl}: the counter would vanish before its period ends (in ${untilEnd.toFixed(0)} s)`);
        }
      } finally {
        await sl.stop();
      }
    });

    test('7d. hour 5 + day 8 with the day nearly used up (seeded in redis): RateLimit-* follow the day', async () => {
      await clearOfEdge(HOUR);
      const svc = uniq('s7d');
      const route = uniq('t7d');
      const dayKey = rlKey(routeScope(route, svc), '127.0.0.1', DAY, 'day');
      await redis('SET', dayKey, '6', 'EX', '86400');
      const sl = await startSluice({
        config: { services: [{ name: svc, url: fake.url, routes: [{ name: route, paths: ['/t7d'], plugins: [rl({ hour: 5, day: 8, ...redisConf() })] }] }] },
      });
      try {
        assertAllowed(await get(sl, '/t7d/echo?t=t7d'), { Hour: [5, 4], Day: [8, 1] }, [8, 1, DAY]);
        assertAllowed(await get(sl, '/t7d/echo?t=t7d'), { Hour: [5, 3], Day: [8, 0] }, [8, 0, DAY]);
        const r = await get(sl, '/t7d/echo?t=t7d');
        assertLimited(r, { period: 'Day', periodMs: DAY, limit: 8 });
        assert.equal(r.headers['x-ratelimit-limit-hour'], '5');
        assert.equal(await redis('GET', dayKey), '8');
        assert.equal(upstreamSaw('t7d'), 2);
      } finally {
        await sl.stop();
      }
    });

    test('the redis password is redacted from GET /config and never logged', async () => {
      const secret = `pw-${RUN}-secret`;
      const sl = await startSluice({
        config: { services: [{ name: uniq('spw'), url: fake.url, routes: [{ name: uniq('tpw'), paths: ['/tpw'], plugins: [rl({ hour: 5, ...redisConf({ password: secret }) })] }] }] },
      });
      try {
        const r = await request({ port: sl.adminPort, path: '/config' });
        assert.equal(r.status, 200);
        assert.ok(!r.text.includes(secret), 'password in GET /config');
        await get(sl, '/tpw/echo'); // redis refuses AUTH: logged, maybe
      } finally {
        await sl.stop();
      }
      assert.ok(!sl.stderr().includes(secret), 'password in the log');
    });
  });

  describe('redis failures', () => {
    test('9a. redis down: fault_tolerant → 200 without rate-limit headers; not → 500, upstream not called', async () => {
      const port = await closedPort();
      const conf = (ft) => ({ hour: 5, fault_tolerant: ft, policy: 'redis', redis: { host: '127.0.0.1', port, timeout: 500 } });
      const sl = await startSluice({
        config: { services: [{ name: 's9', url: fake.url, routes: [rlRoute('t9t', conf(true)), rlRoute('t9f', conf(false))] }] },
      });
      try {
        for (let i = 0; i < 2; i++) {
          const r = await get(sl, '/t9t/echo?t=t9t', {}, { timeoutMs: 5000 });
          assert.equal(r.status, 200, r.text);
          assertNoRateLimitHeaders(r);
          const f = await get(sl, '/t9f/echo?t=t9f', {}, { timeoutMs: 5000 });
          assertErrorBody(f, 500, /^An unexpected error occurred$/);
          assertNoRateLimitHeaders(f);
        }
        assert.equal(upstreamSaw('t9t'), 2);
        assert.equal(upstreamSaw('t9f'), 0, 'the upstream must not be called on a 500');
      } finally {
        await sl.stop();
      }
    });

    test('9d. redis down under many requests: each log line names the failure, the error log stays short', async () => {
      const port = await closedPort();
      const sl = await startSluice({
        workers: 1,
        config: { services: [{ name: 's9d', url: fake.url, routes: [rlRoute('t9d', { hour: 5, policy: 'redis', redis: { host: '127.0.0.1', port, timeout: 500 } })] }] },
      });
      try {
        const mark = sl.stderr().length;
        for (let i = 0; i < 40; i++) {
          const r = await get(sl, '/t9d/echo?t=t9d', {}, { timeoutMs: 5000 });
          assert.equal(r.status, 200, r.text);
        }
        assert.ok(await waitFor(() => (sl.stderr().slice(mark).match(/rate_limit_error="redis 127\.0\.0\.1:\d+: Connection refused"/g) ?? []).length === 40), "every request logs its failure");
        const errors = sl.stderr().slice(mark).split('\n').filter((l) => / error \[w0\] .*rate-limiting: redis/.test(l));
        assert.ok(errors.length >= 1 && errors.length <= 3, `error log lines: ${errors.length}\n${errors.join('\n')}`);
        assert.match(errors[0], /rate-limiting: redis 127\.0\.0\.1:\d+: Connection refused/);
      } finally {
        await sl.stop();
      }
    });

    test('9b. redis error reply (AUTH refused): fault_tolerant → 200 without headers; not → 500', { skip: NO_REDIS }, async () => {
      const conf = (ft) => ({ hour: 5, fault_tolerant: ft, policy: 'redis', redis: { host: '127.0.0.1', port: REDIS_PORT, password: 'no-such-password', timeout: 1000 } });
      const sl = await startSluice({
        config: { services: [{ name: uniq('s9b'), url: fake.url, routes: [rlRoute('t9bt', conf(true)), rlRoute('t9bf', conf(false))] }] },
      });
      try {
        const r = await get(sl, '/t9bt/echo?t=t9bt', {}, { timeoutMs: 5000 });
        assert.equal(r.status, 200, r.text);
        assertNoRateLimitHeaders(r);
        const f = await get(sl, '/t9bf/echo?t=t9bf', {}, { timeoutMs: 5000 });
        assertErrorBody(f, 500, /^An unexpected error occurred$/);
        assert.equal(upstreamSaw('t9bt'), 1);
        assert.equal(upstreamSaw('t9bf'), 0);
      } finally {
        await sl.stop();
      }
    });

    test('9c. redis error reply (the counter is not an integer): fault_tolerant → 200 without headers; not → 500', { skip: NO_REDIS }, async () => {
      await clearOfEdge(HOUR);
      const svc = uniq('s9c');
      const conf = (ft) => ({ hour: 5, fault_tolerant: ft, ...{ policy: 'redis', redis: { host: '127.0.0.1', port: REDIS_PORT } } });
      for (const r of [uniq('t9ct'), uniq('t9cf')]) {
        await redis('SET', rlKey(routeScope(r, svc), '127.0.0.1', HOUR, 'hour'), 'not-a-number', 'EX', '3600');
      }
      const sl = await startSluice({
        config: {
          services: [{
            name: svc,
            url: fake.url,
            routes: [
              { name: uniq('t9ct'), paths: ['/t9ct'], plugins: [rl(conf(true))] },
              { name: uniq('t9cf'), paths: ['/t9cf'], plugins: [rl(conf(false))] },
            ],
          }],
        },
      });
      try {
        const r = await get(sl, '/t9ct/echo?t=t9ct', {}, { timeoutMs: 5000 });
        assert.equal(r.status, 200, r.text);
        assertNoRateLimitHeaders(r);
        const f = await get(sl, '/t9cf/echo?t=t9cf', {}, { timeoutMs: 5000 });
        assertErrorBody(f, 500, /^An unexpected error occurred$/);
        assert.equal(upstreamSaw('t9ct'), 1);
        assert.equal(upstreamSaw('t9cf'), 0);
      } finally {
        await sl.stop();
      }
    });

    test('10. a silent redis with timeout 300: answered in about 0.3 s, not hung', async () => {
      const silent = await silentRedis();
      const conf = (ft) => ({ hour: 5, fault_tolerant: ft, policy: 'redis', redis: { host: '127.0.0.1', port: silent.port, timeout: 300 } });
      const sl = await startSluice({
        config: { services: [{ name: 's10', url: fake.url, routes: [rlRoute('t10t', conf(true)), rlRoute('t10f', conf(false))] }] },
      });
      try {
        let t0 = Date.now();
        const r = await get(sl, '/t10t/echo?t=t10t', {}, { timeoutMs: 5000 });
        let took = Date.now() - t0;
        assert.equal(r.status, 200, r.text);
        assertNoRateLimitHeaders(r);
        assert.ok(took >= 250 && took < 2000, `fault-tolerant request took ${took} ms`);
        assert.ok(silent.state.connections >= 1, 'sluice connected to the silent redis');
        t0 = Date.now();
        const f = await get(sl, '/t10f/echo?t=t10f', {}, { timeoutMs: 5000 });
        took = Date.now() - t0;
        assertErrorBody(f, 500, /^An unexpected error occurred$/);
        assert.ok(took < 2000, `non-fault-tolerant request took ${took} ms`);
        // Again, a few at once: each bounded by the timeout, none hangs.
        t0 = Date.now();
        const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => get(sl, `/t10${i % 2 ? 'f' : 't'}/echo?t=t10x`, {}, { timeoutMs: 5000 })));
        took = Date.now() - t0;
        assert.deepEqual(rs.map((x) => x.status), [200, 500, 200, 500, 200, 500]);
        assert.ok(took < 2000, `6 concurrent requests took ${took} ms`);
        assert.equal(upstreamSaw('t10t'), 1);
        assert.equal(upstreamSaw('t10f'), 0);
        assert.equal(upstreamSaw('t10x'), 3);
      } finally {
        await sl.stop();
        await silent.close();
      }
    });

    test('11. SIGTERM while a request waits on a silent redis (--drain-timeout 1): 503, exit 0', async () => {
      const silent = await silentRedis();
      const sl = await startSluice({
        args: ['--drain-timeout', '1'],
        config: { services: [{ name: 's11', url: fake.url, routes: [rlRoute('t11', { hour: 5, policy: 'redis', redis: { host: '127.0.0.1', port: silent.port, timeout: 20000 } })] }] },
      });
      try {
        const pending = get(sl, '/t11/echo?t=t11', {}, { timeoutMs: 15000 }).catch((e) => e);
        assert.ok(await waitFor(() => silent.state.bytes > 0, 5000), 'sluice sent a command to the silent redis');
        await sleep(100);
        const t0 = Date.now();
        sl.signal('SIGTERM');
        const r = await pending;
        const took = Date.now() - t0;
        assert.ok(!(r instanceof Error), `the waiting request failed: ${r?.message}`);
        assertErrorBody(r, 503, /^The gateway is shutting down$/);
        assert.ok(took < 5000, `503 came ${took} ms after SIGTERM`);
        assertCleanExit(await sl.waitExit(8000), sl.stderr());
        assert.equal(upstreamSaw('t11'), 0);
      } finally {
        await sl.kill();
        await silent.close();
      }
    });

    test('12. a client that leaves while its request waits on redis: no crash, sluice keeps serving, clean exit', async () => {
      const slowTimeout = await silentRedis(); // the redis timeout fires after the client left
      const dropping = await silentRedis(); // the redis connection drops after the client left
      const conf = (port, timeout) => ({ hour: 5, policy: 'redis', redis: { host: '127.0.0.1', port, timeout } });
      const sl = await startSluice({
        config: {
          services: [{
            name: 's12',
            url: fake.url,
            routes: [rlRoute('t12a', conf(slowTimeout.port, 1500)), rlRoute('t12b', conf(dropping.port, 20000)), { name: 't12p', paths: ['/t12p'] }],
          }],
        },
      });
      const abandon = (p, silent) => new Promise((resolve, reject) => {
        const before = silent.state.bytes;
        const s = net.connect(sl.proxyPort, '127.0.0.1', () => s.write(`GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`));
        s.on('error', () => {});
        waitFor(() => silent.state.bytes > before, 5000).then((ok) => {
          s.destroy();
          if (ok) resolve();
          else reject(new Error(`no redis command for ${p}`));
        });
      });
      try {
        for (let i = 0; i < 3; i++) await abandon('/t12a/echo?t=t12', slowTimeout);
        await abandon('/t12b/echo?t=t12', dropping);
        await abandon('/t12b/echo?t=t12', dropping);
        await sleep(300);
        dropping.dropAll();
        await sleep(1700); // past the 1.5 s timeout of the abandoned t12a requests
        assert.equal((await get(sl, '/t12p/echo')).status, 200);
        const r = await get(sl, '/t12a/echo?t=t12a', {}, { timeoutMs: 5000 });
        assert.equal(r.status, 200, 'fault tolerant after the timeout');
        assertNoRateLimitHeaders(r);
        assert.equal(sl.exitStatus, undefined, 'sluice still running');
      } finally {
        await sl.stop();
        await slowTimeout.close();
        await dropping.close();
      }
    });
  });

  describe('config errors (sluice -t)', () => {
    const dir = tempDir();
    const P = 'services[0].routes[0].plugins[0].config';
    const check = async (name, config) => {
      const file = path.join(dir, `${name.replace(/\W+/g, '_')}.yml`);
      writeFileSync(file, configText({ services: [{ name: 's', url: 'http://127.0.0.1:9', routes: [{ name: 'r', paths: ['/r'], plugins: [rl(config)] }] }] }));
      return { file, ...(await runSluice(['-t', '-c', file])) };
    };
    const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

    const bad = [
      ['no limit at all', {}, `${esc(P)}(\\.\\w+)?`, /at least one|required|no limit|must set/i],
      ['minute: 0', { minute: 0 }, `${esc(P)}\\.minute`, /greater|positive|> ?0|>=|at least|minimum|must be/i],
      ['hour: -5', { hour: -5 }, `${esc(P)}\\.hour`, /greater|positive|> ?0|>=|at least|minimum|must be/i],
      ['limit_by header without header_name', { minute: 5, limit_by: 'header' }, `${esc(P)}\\.header_name`, /required|header_name|must/i],
      ['limit_by path without path', { minute: 5, limit_by: 'path' }, `${esc(P)}\\.path`, /required|path|must/i],
      ['policy cluster', { minute: 5, policy: 'cluster' }, `${esc(P)}\\.policy`, /cluster|database|supported/i],
      ['policy redis without host', { minute: 5, policy: 'redis' }, `${esc(P)}\\.redis[._]host`, /required|host|must/i],
      ['policy redis with only a port', { minute: 5, policy: 'redis', redis: { port: 6379 } }, `${esc(P)}\\.redis[._]host`, /required|host|must/i],
      ['sync_rate 10', { minute: 5, sync_rate: 10 }, `${esc(P)}\\.sync_rate`, /-1|supported|synchronous/i],
      ['second 20 > minute 10', { second: 20, minute: 10 }, `${esc(P)}(\\.(second|minute))?`, /lower|higher|greater|less|exceed|cannot/i],
      ['hour 100 > day 50', { hour: 100, day: 50 }, `${esc(P)}(\\.(hour|day))?`, /lower|higher|greater|less|exceed|cannot/i],
      ['limit_by bogus', { minute: 5, limit_by: 'bogus' }, `${esc(P)}\\.limit_by`, /expected one of/i],
    ];
    for (const [name, config, pathRe, msgRe] of bad) {
      test(`refused: ${name}`, { skip: binaryMissing() }, async () => {
        const r = await check(name, config);
        assert.equal(r.code, 1, `exit code; output:\n${r.stdout}${r.stderr}`);
        const lines = (r.stderr + r.stdout).split('\n');
        const re = new RegExp(`^${esc(r.file)}:\\d+:\\d+: ${pathRe}: (?<msg>.*)$`);
        const hit = lines.map((l) => re.exec(l)).find(Boolean);
        assert.ok(hit, `no line like ${re}; output:\n${r.stderr}${r.stdout}`);
        assert.match(hit.groups.msg, msgRe, `message: ${hit[0]}`);
      });
    }

    const good = [
      ['a minute limit', { minute: 5 }],
      ['every period, every option', {
        second: 1, minute: 60, hour: 3600, day: 86400, month: 1000000, year: 10000000, limit_by: 'header', header_name: 'X-K',
        fault_tolerant: false, hide_client_headers: true, error_code: 403, error_message: 'no', sync_rate: -1,
      }],
      ['equal limits', { second: 5, minute: 5 }],
      ['limit_by path with path', { minute: 5, limit_by: 'path', path: '/r/x' }],
      ['each limit_by', { minute: 5, limit_by: 'consumer-group' }],
      ['redis record', { minute: 5, policy: 'redis', redis: { host: '127.0.0.1', port: 6390, username: 'u', password: 'p', database: 2, timeout: 100 } }],
      ['flat redis names', { minute: 5, policy: 'redis', redis_host: '127.0.0.1', redis_port: 6390, redis_password: 'p', redis_database: 1, redis_timeout: 100 }],
    ];
    for (const [name, config] of good) {
      test(`accepted: ${name}`, { skip: binaryMissing() }, async () => {
        const r = await check(`good ${name}`, config);
        assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      });
    }
  });
});
