// Review of operating the daemon: long runs of SIGHUP (descriptors and
// memory), reloads of files replaced, emptied, deleted or not UTF-8, reloads
// under in-flight streams and uploads, SIGTERM drains (idle keep-alive,
// clients that never read, streams that never end, signals during the
// drain), the admin listener (/status counters, /config redaction, methods,
// limits), secrets and the format of log lines, process settings and their
// exit codes, and the systemd unit's install steps.
//
// Eight of these found bugs (admin HEAD with a body, no Allow on 405, no
// admin body/head limits, refused-request lines ignoring --log-level,
// control bytes in plugin log fields, any string as a route or service
// name, port 0): each failed before its fix. The others guard behaviour
// that was right.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { postJson, postStream } from './lib/ai-helpers.mjs';
import {
  REPO, SLUICE_BIN, assertCleanExit, binaryMissing, configText, rawRequest, request, runSluice, sleep,
  startSluice, tempDir, waitFor,
} from './lib/harness.mjs';

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;
// ASan keeps freed memory in quarantine (up to 256 MiB): without it, RSS is
// a fair measure of what the daemon holds, on either build.
const NO_QUARANTINE = { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}quarantine_size_mb=0` };
// One log line: "2026-01-02T03:04:05.678Z level [who] text" (src/log.c).
const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|notice|warn|error) \[(main|w\d+|log)\] \S/;

// A TCP connection that keeps what it reads; end() waits for the close.
function openConn(port) {
  const s = net.connect(port, '127.0.0.1');
  const st = { sock: s, data: '', closed: false };
  s.on('data', (d) => (st.data += d.toString('latin1')));
  s.on('error', () => {});
  s.on('close', () => (st.closed = true));
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(st));
    s.once('error', reject);
  });
}

// ------------------------------------------------------------------ reload

describe('reload over time and under traffic', { skip: binaryMissing() }, () => {
  let fake;
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  const bigConfig = (i) => ({
    _comment: `generation ${i}`,
    services: [{
      name: 'up',
      url: fake.url,
      routes: [
        { name: 'a', paths: ['/a'] },
        { name: 're', paths: ['~/re/\\d+$'], plugins: [{ name: 'correlation-id' }] },
        {
          name: 'ai', paths: ['/chat'], plugins: [
            { name: 'ai-proxy', config: { route_type: 'llm/v1/chat', auth: { header_name: 'Authorization', header_value: `Bearer sk-${i}` }, model: { provider: 'openai', name: 'gpt-4o', options: { upstream_url: `${fake.url}/v1/chat/completions` } } } },
            { name: 'rate-limiting', config: { minute: 100000, policy: 'local' } },
          ],
        },
      ],
      plugins: [{ name: 'rate-limiting', config: { second: 100000 } }],
    }],
  });

  test('200 SIGHUP reloads: no descriptor and no memory kept per reload', async () => {
    const sl = await startSluice({ config: bigConfig(0), env: NO_QUARANTINE });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await request({ port: sl.proxyPort, path: '/re/1' })).status, 200);
      await sl.reload(bigConfig(1));
      await sl.reload(bigConfig(2));
      const rss0 = rssKiB(sl.pid);
      const fds0 = fdCount(sl.pid);
      for (let i = 3; i < 203; i++) {
        await sl.reload(bigConfig(i));
        if (i % 20 === 0) assert.equal((await request({ port: sl.proxyPort, path: '/re/7' })).status, 200);
      }
      const st = await sl.status();
      assert.equal(st.config.generation, 203);
      // A connection or two may be opening or closing at either moment; one
      // descriptor kept per reload would be 200.
      const fds1 = fdCount(sl.pid);
      assert.ok(fds1 <= fds0 + 2, `open descriptors: ${fds0} before 200 reloads, ${fds1} after`);
      const grown = rssKiB(sl.pid) - rss0;
      assert.ok(grown < 8 * 1024, `RSS grew by ${grown} KiB over 200 reloads`);
      const ai = await postJson(sl.proxyPort, '/chat', { messages: [{ role: 'user', content: 'a b' }] });
      assert.equal(ai.status, 200, ai.text);
      assert.equal(fake.requests.at(-1).headers.authorization, 'Bearer sk-202', 'the last config serves');
    } finally {
      await sl.stop();
    }
  });

  test('a SIGHUP storm (50 signals in ~100 ms): still serving the newest file, clean exit', async () => {
    const cfg = (n) => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: `r${n}`, paths: [`/r${n}`] }] }] });
    const sl = await startSluice({ config: cfg(1) });
    try {
      const inflight = Array.from({ length: 20 }, (_, i) => request({ port: sl.proxyPort, path: `/r1/delay?ms=400&storm=1&i=${i}` }).then((r) => r.status, (e) => e.message));
      assert.ok(await waitFor(() => fake.requests.filter((r) => r.query.storm === '1').length === 20, 5000), 'all 20 reached the upstream');
      sl.writeConfig(cfg(2));
      for (let i = 0; i < 50; i++) {
        sl.signal('SIGHUP');
        await sleep(2);
      }
      assert.deepEqual(await Promise.all(inflight), Array(20).fill(200), 'requests in flight during the storm');
      assert.ok(await waitFor(() => sl.lines.filter((l) => /config reloaded/.test(l)).length >= 1, 5000));
      const hash = createHash('sha256').update(readFileSync(sl.configPath)).digest('hex');
      assert.ok(await waitFor(() => sl.lines.some((l) => l.includes(`sha256=${hash}`)), 5000));
      assert.equal((await sl.status()).config.sha256, hash);
      assert.equal((await request({ port: sl.proxyPort, path: '/r2/echo' })).status, 200);
      assert.equal((await request({ port: sl.proxyPort, path: '/r1/echo' })).status, 404);
    } finally {
      await sl.stop();
    }
  });

  test('the file replaced by rename is read; emptied, deleted or not UTF-8 it is refused and the old one serves', async () => {
    const cfg = (n) => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: `r${n}`, paths: [`/r${n}`] }] }] });
    const sl = await startSluice({ config: cfg(1) });
    try {
      // An editor's save: a new file renamed over the old one.
      writeFileSync(`${sl.configPath}.swp`, configText(cfg(2)));
      renameSync(`${sl.configPath}.swp`, sl.configPath);
      const good = (await sl.reload()).config.sha256;
      assert.equal((await request({ port: sl.proxyPort, path: '/r2/echo' })).status, 200);

      const refused = async (write, errRe) => {
        const mark = sl.logMark();
        write();
        sl.signal('SIGHUP');
        await sl.waitForLog(/reload refused: still serving config sha256=/, { from: mark });
        assert.ok(sl.lines.slice(mark).some((l) => errRe.test(l)), `expected ${errRe} in:\n${sl.lines.slice(mark).join('\n')}`);
        assert.equal((await sl.status()).config.sha256, good);
        assert.equal((await request({ port: sl.proxyPort, path: '/r2/echo' })).status, 200);
      };
      await refused(() => writeFileSync(sl.configPath, ''), /kong\.yml:1:1: the config is empty/);
      await refused(() => unlinkSync(sl.configPath), /kong\.yml: No such file or directory/);
      await refused(() => writeFileSync(sl.configPath, Buffer.concat([Buffer.from(configText(cfg(3))), Buffer.from('# \xff\xfe\n', 'latin1')])),
        /kong\.yml:\d+:\d+: invalid leading UTF-8 octet/);
      await refused(() => writeFileSync(sl.configPath, '_format_version: "3.0"\nservices: [\n'), /kong\.yml:\d+:\d+:/);
      assert.equal((await request({ port: sl.proxyPort, path: '/r3/echo' })).status, 404);
    } finally {
      sl.writeConfig(cfg(2));
      await sl.stop();
    }
  });

  test('an SSE stream in flight finishes on its old config when a reload removes its route and changes its key', async () => {
    const ai = (key) => ({ name: 'ai-proxy', config: { route_type: 'llm/v1/chat', auth: { header_name: 'x-api-key', header_value: key }, model: { provider: 'anthropic', name: 'claude-x', options: { upstream_url: `${fake.url}/v1/messages`, anthropic_version: '2023-06-01' } } } });
    const cfg = (withAi) => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: 'plain', paths: ['/plain'] }, ...(withAi ? [{ name: 'ai', paths: ['/llm'], plugins: [ai('key-old-gen')] }] : [])] }] });
    const sl = await startSluice({ config: cfg(true) });
    try {
      const words = Array.from({ length: 10 }, (_, i) => `w${i}`).join(' ');
      let chunks = 0;
      const stream = postStream(sl.proxyPort, '/llm', { stream: true, messages: [{ role: 'user', content: words }] },
        { headers: { 'x-fake-frame-delay-ms': '80' }, timeoutMs: 15000, onChunk: () => chunks++ });
      assert.ok(await waitFor(() => chunks >= 2, 5000), 'the stream started');
      await sl.reload(cfg(false));
      const r = await stream;
      assert.equal(r.status, 200);
      assert.equal(r.end, 'end');
      assert.equal(r.events.at(-1).data, '[DONE]');
      const text = r.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data).choices?.[0]?.delta?.content ?? '').join('');
      assert.equal(text, `echo: ${words}`);
      assert.equal(fake.requests.filter((q) => q.path === '/v1/messages').at(-1).headers['x-api-key'], 'key-old-gen');
      assert.equal((await postJson(sl.proxyPort, '/llm', { messages: [{ role: 'user', content: 'x' }] })).status, 404, 'the route is gone for new requests');
    } finally {
      await sl.stop();
    }
  });

  test('a slow streamed upload finishes on its old route when a reload removes it', async () => {
    const cfg = (n) => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: `u${n}`, paths: [`/u${n}`] }] }] });
    const sl = await startSluice({ config: cfg(1) });
    try {
      const body = Buffer.alloc(512 * 1024, 'x');
      for (let i = 0; i < body.length; i += 4096) body[i] = i % 251;
      const c = await openConn(sl.proxyPort);
      c.sock.write(`POST /u1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      const piece = body.length / 8;
      for (let i = 0; i < 4; i++) {
        c.sock.write(body.subarray(i * piece, (i + 1) * piece));
        await sleep(60);
      }
      await sl.reload(cfg(2));
      for (let i = 4; i < 8; i++) {
        c.sock.write(body.subarray(i * piece, (i + 1) * piece));
        await sleep(60);
      }
      assert.ok(await waitFor(() => c.closed, 8000), 'answer complete');
      assert.match(c.data, /^HTTP\/1\.1 200 /);
      const echo = JSON.parse(c.data.slice(c.data.indexOf('\r\n\r\n') + 4));
      assert.equal(echo.bodyLength, body.length);
      assert.equal(echo.bodySha256, createHash('sha256').update(body).digest('hex'));
      assert.equal((await request({ port: sl.proxyPort, path: '/u1/echo' })).status, 404);
    } finally {
      await sl.stop();
    }
  });
});

// ------------------------------------------------------------------- stop

describe('SIGTERM drain', { skip: binaryMissing() }, () => {
  let fake;
  const cfg = () => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] });
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  test('idle keep-alive clients do not hold the drain; an answer in flight says Connection: close; the pid file goes', async () => {
    const pidFile = path.join(tempDir('sluice-pid-'), 'sluice.pid');
    const sl = await startSluice({ config: cfg(), args: ['--pid-file', pidFile] });
    try {
      assert.equal(readFileSync(pidFile, 'utf8').trim(), String(sl.pid));
      const idle = await openConn(sl.proxyPort);
      idle.sock.write('GET /up/echo HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.ok(await waitFor(() => idle.data.includes('"path"'), 5000));
      const busy = await openConn(sl.proxyPort);
      busy.sock.write('GET /up/delay?ms=600&drainka=1 HTTP/1.1\r\nHost: x\r\n\r\n');
      await fake.waitFor((r) => r.query.drainka === '1', 5000);
      const t0 = Date.now();
      sl.signal('SIGTERM');
      assert.ok(await waitFor(() => idle.closed, 2000), 'the idle keep-alive connection is closed at once');
      const st = await sl.waitExit(10000);
      const took = Date.now() - t0;
      assertCleanExit(st, sl.stderr());
      assert.ok(took < 5000, `exit ${took} ms after SIGTERM (drain timeout 30 s)`);
      assert.match(busy.data, /^HTTP\/1\.1 200 /);
      assert.match(busy.data, /\r\nConnection: close\r\n/i);
      assert.equal(existsSync(pidFile), false, 'pid file removed on exit');
    } finally {
      await sl.kill();
    }
  });

  test('a client that never reads its answer: cut at --drain-timeout, exit 0', async () => {
    const sl = await startSluice({ config: cfg(), args: ['--drain-timeout', '1'] });
    const c = await openConn(sl.proxyPort);
    try {
      c.sock.pause();
      c.sock.write('GET /up/bytes?n=50000000 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.ok(await waitFor(() => fake.requests.some((r) => r.query.n === '50000000'), 5000));
      await sleep(200);
      assert.equal((await sl.status()).requests_in_flight, 1);
      const t0 = Date.now();
      sl.signal('SIGTERM');
      const st = await sl.waitExit(8000);
      const took = Date.now() - t0;
      assertCleanExit(st, sl.stderr());
      assert.ok(took >= 900 && took < 4000, `exit ${took} ms after SIGTERM with --drain-timeout 1`);
      assert.ok(sl.lines.some((l) => /drain timeout: dropping 1 requests in flight/.test(l)), sl.stderr());
    } finally {
      c.sock.destroy();
      await sl.kill();
    }
  });

  test('a stream that never ends, with SIGTERM, SIGHUP and SIGINT again during the drain: one drain, cut at the timeout, exit 0', async () => {
    const sl = await startSluice({ config: cfg(), args: ['--drain-timeout', '1'] });
    try {
      let got = 0;
      const c = await openConn(sl.proxyPort);
      c.sock.on('data', (d) => (got += d.length));
      c.sock.write('GET /up/chunked?n=100000&size=10&delay=50 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.ok(await waitFor(() => got > 200, 5000), 'streaming');
      const t0 = Date.now();
      sl.signal('SIGTERM');
      await sleep(100);
      sl.writeConfig('_format_version: "3.0"\nservices: [\n');
      sl.signal('SIGTERM');
      sl.signal('SIGHUP');
      sl.signal('SIGINT');
      const st = await sl.waitExit(8000);
      const took = Date.now() - t0;
      assertCleanExit(st, sl.stderr());
      assert.ok(took >= 900 && took < 4000, `exit ${took} ms after SIGTERM`);
      assert.equal(sl.lines.filter((l) => /draining/.test(l)).length, 1, sl.stderr());
      assert.ok(!sl.lines.some((l) => /reloading/.test(l)), 'no reload once draining');
      assert.ok(await waitFor(() => c.closed, 2000), 'the stream is cut');
    } finally {
      await sl.kill();
    }
  });
});

// ------------------------------------------------------------------ admin

// Every kind of secret: literal, from $VAR, from {vault://env/...}, shared by
// a YAML anchor and a merge key, Kong's flat redis_password, key-auth keys.
const SECRETS = {
  header: 'lit-header-secret-A1',
  query: 'env-vault-secret-A2',
  body: 'lit-body-secret-A3',
  redis: 'lit-redis-secret-A4',
  legacyRedis: 'env-redis-secret-A5',
  keyauth: 'lit-keyauth-secret-A6',
  clientAuth: 'client-bearer-secret-A7',
  clientKey: 'client-xapikey-secret-A8',
};

function secretsConfig(fakeUrl, redisPort) {
  return `_format_version: "3.0"
services:
  - name: ai
    url: ${fakeUrl}
    routes:
      - name: h
        paths: ["/h"]
        plugins:
          - name: ai-proxy
            config: &base
              route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: &k "Bearer ${SECRETS.header}"}
              logging: {log_statistics: true, log_payloads: true}
              model: {provider: openai, name: gpt-4o, options: {upstream_url: "${fakeUrl}/v1/chat/completions"}}
      - name: h2
        paths: ["/h2"]
        tags: [*k]
        plugins:
          - name: ai-proxy
            config:
              <<: *base
      - name: q
        paths: ["/q"]
        plugins:
          - name: ai-proxy
            config:
              route_type: llm/v1/chat
              auth: {param_name: key, param_value: "{vault://env/sluice-ops-vault}", param_location: query}
              logging: {log_statistics: true, log_payloads: true}
              model: {provider: openai, name: gpt-4o, options: {upstream_url: "${fakeUrl}/noauth/v1/chat/completions"}}
      - name: b
        paths: ["/b"]
        plugins:
          - name: ai-proxy
            config:
              route_type: llm/v1/chat
              auth: {param_name: key, param_value: "${SECRETS.body}", param_location: body}
              logging: {log_statistics: true, log_payloads: true}
              model: {provider: openai, name: gpt-4o, options: {upstream_url: "${fakeUrl}/noauth/v1/chat/completions"}}
  - name: plain
    url: ${fakeUrl}
    routes:
      - name: rl
        paths: ["/rl"]
        plugins:
          - name: rate-limiting
            config: {minute: 1000, policy: redis, redis: {host: 127.0.0.1, port: ${redisPort}, password: "${SECRETS.redis}", timeout: 500}}
      - name: rl2
        paths: ["/rl2"]
        plugins:
          - name: rate-limiting
            config: {minute: 1000, policy: redis, redis_host: 127.0.0.1, redis_port: ${redisPort}, redis_password: "\${SLUICE_OPS_REDIS_PW}", redis_timeout: 500}
consumers:
  - username: alice
    keyauth_credentials: [{key: "${SECRETS.keyauth}"}]
`;
}

describe('admin listener', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  let redis;
  let redisCommands = 0;
  before(async () => {
    fake = await startFake();
    // A Redis that refuses every password: the AUTH path and its error line.
    redis = net.createServer((s) => {
      s.on('data', () => {
        redisCommands++;
        s.write('-WRONGPASS invalid username-password pair or user is disabled.\r\n');
      });
      s.on('error', () => {});
    });
    await new Promise((r) => redis.listen(0, '127.0.0.1', r));
    sl = await startSluice({
      config: secretsConfig(fake.url, redis.address().port),
      args: ['--log-level', 'debug'],
      env: { SLUICE_OPS_VAULT: SECRETS.query, SLUICE_OPS_REDIS_PW: SECRETS.legacyRedis, ...NO_QUARANTINE },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
    redis?.close();
  });

  test('GET /config redacts every secret, wherever it came from', async () => {
    const r = await request({ port: sl.adminPort, path: '/config' });
    assert.equal(r.status, 200);
    for (const [what, s] of Object.entries(SECRETS)) assert.ok(!r.text.includes(s), `${what} secret in /config`);
    const cfg = r.json();
    const routes = cfg.services[0].routes;
    assert.equal(routes[0].plugins[0].config.auth.header_value, '<redacted>');
    assert.deepEqual(routes[1].tags, ['<redacted>'], 'the anchor is the secret wherever it is used');
    assert.equal(routes[2].plugins[0].config.auth.param_value, '<redacted>');
    assert.equal(routes[3].plugins[0].config.auth.param_value, '<redacted>');
    const rl = cfg.services[1].routes;
    assert.equal(rl[0].plugins[0].config.redis.password, '<redacted>');
    assert.equal(rl[1].plugins[0].config.redis_password, '<redacted>');
    assert.equal(cfg.consumers[0].keyauth_credentials[0].key, '<redacted>');
    assert.equal(routes[2].plugins[0].config.model.name, 'gpt-4o', 'other fields are shown');
  });

  test('--log-level debug: no secret in any log line, and every line is one well-formed event', async () => {
    const client = { authorization: `Bearer ${SECRETS.clientAuth}`, 'x-api-key': SECRETS.clientKey };
    const ids = [];
    for (const p of ['/h', '/h2', '/q', '/b']) {
      const r = await postJson(sl.proxyPort, p, { messages: [{ role: 'user', content: 'hello there' }] }, { headers: client });
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      ids.push(r.headers['x-sluice-request-id']);
    }
    // The upstream got the configured credentials (so they were in play).
    const up = fake.requests.filter((q) => q.path.endsWith('/chat/completions'));
    assert.equal(up.at(-4).headers.authorization, `Bearer ${SECRETS.header}`);
    assert.equal(up.at(-2).query.key, SECRETS.query);
    assert.equal(up.at(-1).json.key, SECRETS.body);
    for (const p of ['/rl/echo', '/rl2/echo']) {
      const r = await request({ port: sl.proxyPort, path: p, headers: client });
      assert.equal(r.status, 200, `${p} (fault tolerant): ${r.text}`);
      ids.push(r.headers['x-sluice-request-id']);
    }
    assert.ok(redisCommands >= 2, 'sluice sent AUTH to the fake redis');
    await rawRequest({ port: sl.proxyPort, data: `GARBAGE\r\nAuthorization: Bearer ${SECRETS.clientAuth}\r\n\r\n` });
    for (const id of ids) await sl.waitForLog(new RegExp(`request_id=${id} `));
    await sl.waitForLog(/WRONGPASS/);
    const text = sl.stderr();
    for (const [what, s] of Object.entries(SECRETS)) assert.ok(!text.includes(s), `${what} secret in the log`);
    const bad = sl.lines.filter((l) => !LOG_LINE.test(l));
    assert.deepEqual(bad, [], 'lines that are not one log event each');
  });

  test('GET /status: counters add up after a mixed load', async () => {
    const before = await sl.status();
    const jobs = [];
    let n = 0;
    for (let i = 0; i < 60; i++, n++) jobs.push(request({ port: sl.proxyPort, path: '/rl/echo' }));
    for (let i = 0; i < 10; i++, n++) jobs.push(request({ port: sl.proxyPort, path: '/nowhere' }));
    for (let i = 0; i < 10; i++, n++) jobs.push(request({ port: sl.proxyPort, path: '/rl/delay?ms=2000', timeoutMs: 150 }).catch(() => null));
    for (let i = 0; i < 5; i++, n += 2) {
      jobs.push(rawRequest({ port: sl.proxyPort, data: 'GET /rl/echo HTTP/1.1\r\nHost: x\r\n\r\nGET /rl/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' }));
    }
    for (let i = 0; i < 5; i++, n++) {
      jobs.push(rawRequest({ port: sl.proxyPort, data: 'POST /rl/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc', timeoutMs: 150 }).catch(() => null));
    }
    await Promise.allSettled(jobs);
    let st;
    const deadline = Date.now() + 5000;
    do {
      st = await sl.status();
      if (st.connections === 0 && st.requests_in_flight === 0) break;
      await sleep(50);
    } while (Date.now() < deadline);
    assert.equal(st.requests_in_flight, 0, JSON.stringify(st));
    assert.equal(st.connections, 0, JSON.stringify(st));
    assert.equal(st.requests - before.requests, n, 'requests counted');
  });

  test('HEAD on the admin listener: an answer without content, so the next answer on the connection is intact', async () => {
    const b = (await rawRequest({
      port: sl.adminPort,
      data: 'HEAD /status HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      timeoutMs: 3000,
    })).toString('latin1');
    const first = b.indexOf('\r\n\r\n');
    assert.ok(first > 0, b);
    // RFC 9110 §9.3.2: the server MUST NOT send content in a HEAD response.
    assert.match(b.slice(first + 4), /^HTTP\/1\.1 200 /, `what follows the HEAD answer's head:\n${b.slice(first + 4, first + 200)}`);
  });

  test('405 from the admin listener names the allowed methods (Allow)', async () => {
    const r = await request({ port: sl.adminPort, method: 'POST', path: '/status', body: '' });
    assert.equal(r.status, 405);
    assert.match(String(r.headers.allow), /\bGET\b/);
  });

  test('the admin listener does not buffer an unbounded request body', async () => {
    const rss0 = rssKiB(sl.pid);
    const c = await openConn(sl.adminPort);
    const total = 64 * 1024 * 1024;
    c.sock.write(`POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 97);
    for (let sent = 0; sent < total && !c.closed && !c.sock.destroyed; sent += chunk.length) {
      if (!c.sock.write(chunk)) await new Promise((r) => { c.sock.once('drain', r); c.sock.once('close', r); });
    }
    await sleep(200);
    const grown = rssKiB(sl.pid) - rss0;
    c.sock.destroy();
    assert.ok(grown < 16 * 1024, `RSS grew by ${grown} KiB for one 64 MiB admin request body`);
    assert.doesNotMatch(c.data, /^HTTP\/1\.1 [23]/, 'a body on an admin request is not accepted');
  });

  test('the admin listener refuses a request head of 1 MiB', async () => {
    const pad = `X-Pad: ${'a'.repeat(1000)}\r\n`.repeat(1024);
    const b = (await rawRequest({ port: sl.adminPort, data: `GET /status HTTP/1.1\r\nHost: x\r\n${pad}Connection: close\r\n\r\n`, timeoutMs: 5000 }).catch((e) => Buffer.from(e.message))).toString('latin1');
    assert.doesNotMatch(b, /^HTTP\/1\.1 200 /, 'a 1 MiB head was served (the proxy listener stops at 64 KiB with 431)');
  });
});

// ------------------------------------------------------------------- logs

describe('log lines', { skip: binaryMissing() }, () => {
  let fake;
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  test('--log-level warn: no info line for requests the connection layer refuses', async () => {
    const sl = await startSluice({ config: { services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] }, args: ['--log-level', 'warn'] });
    try {
      assert.equal((await request({ port: sl.proxyPort, path: '/up/echo' })).status, 200);
      const b = (await rawRequest({ port: sl.proxyPort, data: 'GARBAGE\r\n\r\n' })).toString('latin1');
      assert.match(b, /^HTTP\/1\.1 400 /);
      // An error line queued after the 400 was answered: the log is FIFO.
      const mark = sl.logMark();
      sl.writeConfig('_format_version: "3.0"\nservices: [\n');
      sl.signal('SIGHUP');
      await sl.waitForLog(/reload refused/, { from: mark });
      const below = sl.lines.filter((l) => / (debug|info|notice) \[/.test(l));
      assert.deepEqual(below, [], 'lines below warn');
    } finally {
      sl.writeConfig({ services: [] });
      await sl.stop();
    }
  });

  test('plugin log fields escape control bytes: a client cannot start a line of its own', async () => {
    const config = { services: [{ name: 'ai', url: fake.url, routes: [{ name: 'chat', paths: ['/chat'], plugins: [{ name: 'ai-proxy', config: { route_type: 'llm/v1/chat', auth: { header_name: 'Authorization', header_value: 'Bearer k' }, logging: { log_statistics: true, log_payloads: true }, model: { provider: 'openai', options: { upstream_url: `${fake.url}/v1/chat/completions` } } } }] }] }] };
    const sl = await startSluice({ config });
    try {
      const forged = 'gpt-4o\r2026-01-01T00:00:00.000Z error [main] forged line\u001b[2K';
      const r = await postJson(sl.proxyPort, '/chat', { model: forged, messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(r.status, 200, r.text);
      const line = await sl.waitForLog(new RegExp(`request_id=${r.headers['x-sluice-request-id']} `));
      assert.match(line, /ai\.model=/);
      // Readers that split on CR (Node's readline, Python's splitlines) would
      // see "error [main] forged line" as an event of its own.
      assert.doesNotMatch(line, /[\x00-\x1f\x7f]/, `raw control bytes in: ${JSON.stringify(line)}`);
    } finally {
      await sl.stop();
    }
  });

  test('route and service names are Kong names: spaces and line breaks are refused at load', async () => {
    const dir = tempDir();
    const f = path.join(dir, 'names.yml');
    writeFileSync(f, '_format_version: "3.0"\nservices:\n  - name: "svc one"\n    url: http://127.0.0.1:9\n    routes:\n      - name: "r\\nstatus=200 route=other"\n        paths: ["/r"]\n');
    const r = await runSluice(['-t', '-c', f]);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 1, `-t accepted names Kong refuses:\n${r.stderr}`);
    assert.match(r.stderr, /services\[0\]\.name/);
    assert.match(r.stderr, /services\[0\]\.routes\[0\]\.name/);
  });
});

// --------------------------------------------------------------- settings

describe('process settings', { skip: binaryMissing() }, () => {
  const dir = tempDir();
  const ok = path.join(dir, 'ok.yml');
  writeFileSync(ok, '_format_version: "3.0"\nservices:\n  - name: up\n    url: http://127.0.0.1:9\n    routes:\n      - name: r\n        paths: ["/r"]\n');
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('exit codes: 2 for a bad setting (flag or SLUICE_*, named), 1 for a bad config, 0 for a good one', async () => {
    const cases = [
      [['--workers', '0'], 2, /--workers: expected an integer between 1 and 256, got '0'/],
      [['--workers', '257'], 2, /--workers/],
      [['--proxy-listen', '127.0.0.1:65536'], 2, /--proxy-listen: cannot parse/],
      [['--proxy-listen', '127.0.0.1:8000 ssl'], 1, /a --proxy-listen with ssl needs --ssl-cert and --ssl-cert-key \(SLUICE_SSL_CERT, SLUICE_SSL_CERT_KEY\), or certificates with snis in the config/],
      [['--proxy-listen', '127.0.0.1:8000 tls'], 2, /--proxy-listen '127\.0\.0\.1:8000 tls': unknown flag \(known: ssl, backlog=N, deferred, reuseport, bind\)/],
      [['--proxy-listen', '127.0.0.1:8443 http2 ssl'], 2, /'127\.0\.0\.1:8443 http2 ssl': http2: clients speak HTTP\/1\.1 \(over TLS too\); HTTP\/2 from clients is not supported/],
      [['--proxy-listen', '127.0.0.1:8000 proxy_protocol'], 2, /proxy_protocol: the PROXY protocol is not supported/],
      [['--proxy-listen', '127.0.0.1:8000 backlog=0'], 2, /backlog=N: N between 1 and 65535/],
      [['--proxy-listen', '127.0.0.1:8000 reuseport backlog=16384 deferred bind'], 0, /is ok/],
      [['--admin-listen', '127.0.0.1:8001 backlog=5'], 2, /the admin listener takes no flags/],
      [['--proxy-listen', '127.0.0.1:8000', '--proxy-listen', '127.0.0.1:8000 ssl'], 2, /--proxy-listen: 127\.0\.0\.1:8000 is given twice/],
      [['--proxy-listen', '127.0.0.1:8000\tbacklog=5'], 0, /is ok/],
      [['--admin-listen', '127.0.0.1:8001 ssl'], 2, /--admin-listen '127\.0\.0\.1:8001 ssl': the admin listener speaks plain HTTP only/],
      [['--admin-listen', 'nope'], 2, /--admin-listen: cannot parse/],
      [['--log-level', 'loud'], 2, /--log-level/],
      [['--max-body-size', '0'], 2, /--max-body-size/],
      [['--drain-timeout', '-1'], 2, /--drain-timeout/],
      [['--client-timeout', '0'], 2, /--client-timeout/],
      [['--bogus'], 2, /Usage/],
      [['stray'], 2, /unexpected argument 'stray'/],
    ];
    for (const [args, code, re] of cases) {
      const r = await runSluice(['-t', '-c', ok, ...args]);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
    const env = await runSluice(['-t', '-c', ok], { env: { SLUICE_DRAIN_TIMEOUT: 'soon' } });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /\(from SLUICE_DRAIN_TIMEOUT\)/);
    assert.equal((await runSluice(['-t', '-c', ok, '--workers', '256'])).code, 0);
    assert.equal((await runSluice(['-t', '-c', '/dev/null'])).code, 1);
    assert.equal((await runSluice(['-t', '-c', dir])).code, 1, 'a directory');
  });

  test('SLUICE_MAX_BODY_SIZE, SLUICE_LOG_LEVEL and SLUICE_CLIENT_TIMEOUT are honoured; a flag wins over its variable', async () => {
    const fake = await startFake();
    const sl = await startSluice({
      config: { services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] },
      env: { SLUICE_MAX_BODY_SIZE: '100', SLUICE_LOG_LEVEL: 'warn', SLUICE_CLIENT_TIMEOUT: '1', SLUICE_WORKERS: '7' },
    });
    try {
      assert.equal((await sl.status()).workers, 2, '--workers 2 (the harness flag) wins over SLUICE_WORKERS=7');
      assert.equal((await request({ port: sl.proxyPort, method: 'POST', path: '/up/echo', body: 'x'.repeat(100) })).status, 200);
      assert.equal((await request({ port: sl.proxyPort, method: 'POST', path: '/up/echo', body: 'x'.repeat(101) })).status, 413);
      const c = await openConn(sl.proxyPort);
      const t0 = Date.now();
      assert.ok(await waitFor(() => c.closed, 4000), 'idle connection closed by SLUICE_CLIENT_TIMEOUT=1');
      assert.ok(Date.now() - t0 >= 700, 'not before the timeout');
      assert.ok(!sl.lines.some((l) => / info \[w/.test(l)), 'SLUICE_LOG_LEVEL=warn: no access lines');
    } finally {
      await sl.stop();
      await fake.close();
    }
  });

  test('proxy and admin listeners on [::1]', async () => {
    const probe = net.createServer();
    const v6 = await new Promise((r) => {
      probe.once('error', () => r(false));
      probe.listen(0, '::1', () => r(true));
    });
    probe.close();
    if (!v6) return;
    const fake = await startFake();
    const [pp, ap] = await Promise.all([0, 1].map(() => new Promise((r) => {
      const s = net.createServer().listen(0, '::1', () => {
        const { port } = s.address();
        s.close(() => r(port));
      });
    })));
    const cfgFile = path.join(dir, 'v6.yml');
    writeFileSync(cfgFile, configText({ services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] }));
    const { spawn } = await import('node:child_process');
    const p = spawn(SLUICE_BIN, ['-c', cfgFile, '--proxy-listen', `[::1]:${pp}`, '--admin-listen', `[::1]:${ap}`, '--workers', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((r) => p.on('close', (code, signal) => r({ code, signal })));
    try {
      let st = null;
      for (let i = 0; i < 100 && !st; i++) {
        st = await request({ host: '::1', port: ap, path: '/status', timeoutMs: 500 }).then((r) => r.json(), () => null);
        if (!st) await sleep(50);
      }
      assert.ok(st, stderr);
      const r = await request({ host: '::1', port: pp, path: '/up/echo' });
      assert.equal(r.status, 200);
      assert.equal(r.json().headers['x-real-ip'], '::1');
      // Addresses in the log as they are written on the command line.
      assert.match(stderr, new RegExp(`proxy listening on \\[::1\\]:${pp}\\n`));
      assert.match(stderr, new RegExp(`admin listening on \\[::1\\]:${ap}\\n`));
      p.kill('SIGTERM');
      assertCleanExit(await exited, stderr);
    } finally {
      p.kill('SIGKILL');
      await fake.close();
    }
  });

  test('--proxy-listen with port 0 is refused', async () => {
    const r = await runSluice(['-t', '-c', ok, '--proxy-listen', '127.0.0.1:0']);
    assert.equal(r.code, 2, r.stderr);
  });

  test("Kong's listen flags act: backlog=N sizes the accept queue, deferred waits for the client's first bytes", async () => {
    const { freePort } = await import('./lib/harness.mjs');
    const port = await freePort();
    const sl = await startSluice({ args: ['--proxy-listen', `127.0.0.1:${port} deferred backlog=77 reuseport`], workers: 1 });
    try {
      // ss shows a listening socket's backlog as its Send-Q.
      const ss = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).stdout;
      assert.match(ss, /^LISTEN\s+\d+\s+77\s/m, ss);
      // A client that connects and says nothing is not accepted yet (no connection in /status)...
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      await sleep(300);
      assert.equal((await sl.status()).connections, 0);
      // ...and is served as soon as it speaks.
      const answer = new Promise((resolve) => {
        let got = '';
        sock.on('data', (d) => { got += d; if (got.includes('\r\n\r\n')) resolve(got); });
      });
      sock.write('GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(await answer, /^HTTP\/1\.1 404 /);
      sock.destroy();
    } finally {
      await sl.stop();
    }
  });
});

// ---------------------------------------------------------------- systemd

describe('conf/sluice.service', { skip: binaryMissing() }, () => {
  const unit = readFileSync(path.join(REPO, 'conf/sluice.service'), 'utf8');
  const root = process.getuid?.() === 0;
  const setpriv = spawnSync('setpriv', ['--version']).status === 0;

  test('the unit runs as a DynamicUser and reads its config from /etc/sluice', () => {
    assert.match(unit, /^DynamicUser=yes$/m);
    assert.match(unit, /^ExecStartPre=\S+ -t -c \/etc\/sluice\/kong\.yml$/m);
    assert.match(unit, /^ExecStart=\S+ -c \/etc\/sluice\/kong\.yml$/m);
  });

  // Found in this review as 'install -m 0640' (root:root, unreadable by the
  // dynamic user: systemd never chowns ConfigurationDirectory=); fixed in
  // f5d0c37 while the review ran. This guards it.
  test('kong.yml installed as the unit says can be read by the unit\'s dynamic user', {
    skip: !root || !setpriv ? 'needs root and setpriv' : false,
  }, async () => {
    // "#   install -D -m 0640 conf/kong.yml /etc/sluice/kong.yml"
    const m = /install\s+(?:-D\s+)?-m\s+(\d{3,4})\s+conf\/kong\.yml\s+\/etc\/sluice\/kong\.yml/.exec(unit);
    assert.ok(m, 'install line for kong.yml');
    const etc = tempDir('sluice-etc-');
    try {
      chmodSync(etc, 0o755); // ConfigurationDirectoryMode= defaults to 0755, owned by root
      const f = path.join(etc, 'kong.yml');
      writeFileSync(f, readFileSync(path.join(REPO, 'conf/kong.yml')));
      // A dynamic user: an unallocated uid/gid with no supplementary groups.
      const check = () => spawnSync('setpriv', ['--reuid=61934', '--regid=61934', '--clear-groups', SLUICE_BIN, '-t', '-c', f], {
        encoding: 'utf8', timeout: 10000, env: { ...process.env, ANTHROPIC_API_KEY: 'x', OPENAI_API_KEY: 'x' },
      });
      chmodSync(f, 0o640); // the control: what the unit used to say is refused
      assert.match(check().stderr, /Permission denied/);
      chmodSync(f, parseInt(m[1], 8)); // owner root:root, as install(1) run by root leaves it
      const r = check();
      assert.doesNotMatch(r.stderr, /Permission denied/, r.stderr);
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });
});
