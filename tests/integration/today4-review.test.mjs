// Adversarial review of the changes in f22b06e..HEAD (6279338, 0f3d300):
// YAML merges through a hash index and the early stop at 20M expanded nodes
// (yaml_node.c), signals blocked then ignored at teardown (main.c), a stale
// socket slot dropped when curl opens a socket on its number and the pool
// sweep never pushed back (upstream.c), URL masking to the last '@' of the
// authority (url_userinfo.c), and an oversized Redis reply named as such
// (rate-limiting/redis_counters.c).
//
// Not redone here: billion-laughs refused on -t and on SIGHUP (yaml-review),
// SIGTERM/SIGUSR1 alternated while stopping (shutdown), the 500 mixed
// requests (today3-review), the 2^28-element Redis array (redis-failures-review).
//
// Tests marked todo assert the correct behaviour of a bug found by this
// review: they fail today, and the marker goes when it is fixed.
//
//   cd tests && SLUICE_BIN=../build-asan/sluice node --test integration/today4-review.test.mjs
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { startFakeRedis } from './lib/fake-redis.mjs';
import {
  assertCleanExit, binaryMissing, request, runSluice, sanitizerReport, sleep, startSluice, tempDir, waitFor,
} from './lib/harness.mjs';

const skip = binaryMissing();
const noRedisCli = spawnSync('redis-server', ['--version']).status !== 0 && 'redis-server not installed';

const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const lines = (...l) => l.join('\n') + '\n';

function listen(server, host = '127.0.0.1') {
  return new Promise((resolve) => server.listen(0, host, () => resolve(server.address().port)));
}

// Writes a config file in a fresh directory and runs `sluice -t` on it.
async function checkText(text) {
  const dir = tempDir('sluice-t4-');
  const file = path.join(dir, 'kong.yml');
  writeFileSync(file, text);
  const t0 = Date.now();
  const r = await runSluice(['-t', '-c', file], { timeoutMs: 20000 });
  rmSync(dir, { recursive: true, force: true });
  return { ...r, out: r.stdout + r.stderr, ms: Date.now() - t0, file };
}

const services = (cfg) => cfg.services ?? cfg.config?.services;

// Kong's alias "billion laughs": 10 strings, then 9 levels each listing the
// level below 10 times. Line 3 holds &a0, line 3 + i holds &ai.
function billionLaughs(head = ['_format_version: "3.0"']) {
  const l = [...head, '_ignore:', '- &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let i = 1; i <= 9; i++) l.push(`- &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
  return lines(...l);
}

// --- YAML merges through the hash index (6279338) ----------------------------

describe('YAML merge keys (<<) through the hash index', { skip }, () => {
  test('merge lists with overlapping keys: the first source wins, the map\'s own keys win (before or after <<), a merged map that merges', async () => {
    const text = lines(
      '_format_version: "3.0"',
      '_ignore:',
      '- &a {url: "http://127.0.0.1:7001", retries: 1, connect_timeout: 1001}',
      '- &b {url: "http://127.0.0.1:7002", retries: 2, connect_timeout: 1002, write_timeout: 2002}',
      '- &c {<<: *a, retries: 3}',
      '- &d {<<: [*c, *b], read_timeout: 3003}',
      'services:',
      '- {<<: [*a, *b], name: s1}',
      '- {<<: [*b, *a], name: s2, retries: 5}',
      '- {<<: [*c, *b], name: s3}',
      '- {name: s4, <<: *c, connect_timeout: 4}',
      '- {<<: *d, name: s5, write_timeout: 5}',
      '- name: s6',
      '  <<: [*b, *c]',
      '  url: "http://127.0.0.1:7006"',
    );
    const t = await checkText(text);
    assert.equal(t.code, 0, t.out);
    const sl = await startSluice({ workers: 1, config: text });
    try {
      const svcs = services((await request({ port: sl.adminPort, path: '/config' })).json());
      const pick = (name) => {
        const s = svcs.find((x) => x.name === name);
        assert.ok(s, `service ${name} in GET /config`);
        const port = /:(\d+)/.exec(s.url ?? `:${s.port}`)?.[1] ?? String(s.port);
        return [port, s.retries, s.connect_timeout, s.write_timeout, s.read_timeout];
      };
      // [url port, retries, connect_timeout, write_timeout, read_timeout]
      assert.deepEqual(pick('s1').slice(0, 4), ['7001', 1, 1001, 2002], 's1: <<: [*a, *b] -> a first');
      assert.deepEqual(pick('s2').slice(0, 4), ['7002', 5, 1002, 2002], 's2: <<: [*b, *a], own retries');
      assert.deepEqual(pick('s3').slice(0, 4), ['7001', 3, 1001, 2002], 's3: c (a + own retries 3) before b');
      assert.deepEqual(pick('s4').slice(0, 3), ['7001', 3, 4], 's4: own key after << wins');
      assert.deepEqual(pick('s5'), ['7001', 3, 1001, 5, 3003], 's5: a merged map that merges a merge list');
      assert.deepEqual(pick('s6').slice(0, 4), ['7006', 2, 1002, 2002], 's6: block style, own url after the merge list');
    } finally {
      await sl.stop();
    }
  });

  test('a 100 000-key anchor merged 5 times (plus overrides, a second 100 000-key source overlapping it): -t in under 10 s, exit 0', async () => {
    const big = (p, n) => `{${Array.from({ length: n }, (_, i) => `${p}${i}: ${i}`).join(', ')}}`;
    const text = lines(
      '_format_version: "3.0"',
      '_ignore:',
      `- &big ${big('k', 100000)}`,
      `- &big2 ${big('k', 100000).replace('{', '{extra: 1, ')}`,
      '- {<<: *big, k5: own}',
      '- {<<: [*big, *big2], k7: own}',
      '- {<<: [*big2, *big]}',
      '- &m {<<: *big, z: 1}',
      '- {<<: [*m, *big2]}',
      'services: []',
    );
    const r = await checkText(text);
    assert.equal(r.code, 0, r.out.slice(0, 800));
    assert.ok(r.ms < 10000, `-t took ${r.ms} ms`);
    assert.equal(sanitizerReport(r.stderr), null);
  });

  test('a merge source that is not a map, inside a merge list after 50 000 merged keys: refused at its line and column, no sanitizer report', async () => {
    const keys = Array.from({ length: 50000 }, (_, i) => `k${i}: ${i}`).join(', ');
    const text = lines('_format_version: "3.0"', '_ignore:', `- &big {${keys}}`, '- &s [1, 2]', '- {<<: [*big, *s]}', 'services: []');
    const r = await checkText(text);
    assert.equal(r.code, 1, r.out.slice(0, 500));
    assert.match(r.out, new RegExp(`${r.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:\\d+: a merge \\('<<'\\) takes a map or a list of maps`), r.out.slice(0, 800));
    assert.equal(sanitizerReport(r.stderr), null, sanitizerReport(r.stderr) ?? '');
  });
});

// --- the early 20M-node stop (6279338, 0f3d300) -------------------------------

describe('YAML: the early stop where the expansion passes 20M nodes', { skip }, () => {
  test('billion laughs: refused in well under 5 s with one error line, no sanitizer report (frames, anchors and merges left open)', async () => {
    // Stopped inside a flow map that also has a pending merge, 3 levels deep.
    const text = billionLaughs().replace(/- &a7 \[(.*)\]\n/, '- {<<: {x: 1}, deep: [[&a7 [$1]]]}\n');
    assert.match(text, /deep: \[\[&a7 \[\*a6, .*\*a6\]\]\]\}\n/);
    const r = await checkText(text);
    assert.equal(r.code, 1, r.out);
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
    const errs = r.out.split('\n').filter((l) => l.startsWith(r.file + ':'));
    assert.equal(errs.length, 1, r.out);
    assert.match(errs[0], /its aliases expand the document past 20000000 nodes/);
    assert.equal(sanitizerReport(r.stderr), null, sanitizerReport(r.stderr) ?? '');
  });

  test('billion laughs: the error is placed at the alias where the expansion passes 20M (10:13), not at the anchor it names (9:3)', {
    // fixed: placed at the alias
  }, async () => {
    // &a6 weighs 11 111 111 nodes: the second *a6 of line 10 (column 13)
    // takes &a7's sequence past 20 000 000.
    const r = await checkText(billionLaughs());
    assert.equal(r.code, 1, r.out);
    const errs = r.out.split('\n').filter((l) => l.startsWith(r.file + ':'));
    assert.equal(errs.length, 1, r.out);
    assert.match(errs[0], /:10:(13|7): its aliases expand the document past/, errs[0]);
  });

  test('SIGHUP with a billion laughs under services (a merge pending): refused, the old config keeps serving, a good reload after works', async () => {
    const fake = await startFake();
    const good = lines('_format_version: "3.0"', 'services:', '- name: up', `  url: ${fake.url}`, '  routes:', '  - {name: one, paths: ["/one"]}');
    const sl = await startSluice({ workers: 2, config: good });
    try {
      const sha = (await sl.status()).config.sha256;
      const bad = billionLaughs(['_format_version: "3.0"', 'services:', `- {<<: {retries: 1}, name: up, url: "${fake.url}", tags: [&t x]}`]);
      const mark = sl.logMark();
      sl.writeConfig(bad);
      sl.signal('SIGHUP');
      await sl.waitForLog(/its aliases expand (it to|the document past) \d+ nodes/, { from: mark, timeoutMs: 8000 });
      assert.equal((await sl.status()).config.sha256, sha);
      for (let i = 0; i < 5; i++) assert.equal((await request({ port: sl.proxyPort, path: '/one/echo' })).status, 200);
      await sl.reload(good.replace('/one', '/two'));
      assert.equal((await request({ port: sl.proxyPort, path: '/two/echo' })).status, 200);
    } finally {
      await sl.stop();
      await fake.close();
    }
  });
});

// --- signals while stopping (6279338: all five blocked then ignored) ---------

describe('signal storms while stopping', { skip }, () => {
  const cfg = (url) => ({ services: [{ name: 'up', url, routes: [{ name: 'up', paths: ['/up'] }] }] });

  test('SIGHUP, SIGUSR1, SIGUSR2 and SIGTERM round-robin until the process is gone: exit 0, pid file removed (6 stops)', async () => {
    const fake = await startFake();
    try {
      for (let i = 0; i < 6; i++) {
        const pidFile = path.join(tmpdir(), `sluice-t4-${process.pid}-${i}.pid`);
        const sl = await startSluice({ config: cfg(fake.url), args: ['--pid-file', pidFile] });
        try {
          assert.equal((await request({ port: sl.proxyPort, path: '/up/echo' })).status, 200);
          assert.ok(existsSync(pidFile));
          const sigs = ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
          // Start at a different signal each round, so each kind lands first.
          for (let n = i; sl.exitStatus === undefined; n++) {
            try { process.kill(sl.pid, sigs[n % 4]); } catch { break; }
            await new Promise(setImmediate);
          }
          assertCleanExit(await sl.waitExit(10000), sl.stderr());
          assert.equal(existsSync(pidFile), false, 'the pid file is removed');
        } finally {
          await sl.kill();
          rmSync(pidFile, { force: true });
        }
      }
    } finally {
      await fake.close();
    }
  });

  test('a storm of SIGHUP/SIGUSR1/SIGUSR2 during a drain (one request in flight): it completes 200, exit 0, pid file removed', async () => {
    const fake = await startFake();
    const pidFile = path.join(tmpdir(), `sluice-t4-drain-${process.pid}.pid`);
    const sl = await startSluice({ config: cfg(fake.url), args: ['--pid-file', pidFile] });
    try {
      const inflight = request({ port: sl.proxyPort, path: '/up/delay?ms=1500&t4=drain', timeoutMs: 8000 });
      await fake.waitFor((r) => r.query?.t4 === 'drain', 5000);
      sl.signal('SIGTERM');
      const sigs = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'];
      for (let n = 0; sl.exitStatus === undefined; n++) {
        try { process.kill(sl.pid, sigs[n % 3]); } catch { break; }
        await sleep(2);
      }
      const r = await inflight;
      assert.equal(r.status, 200, r.text);
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
      assert.equal(existsSync(pidFile), false, 'the pid file is removed');
    } finally {
      await sl.kill();
      rmSync(pidFile, { force: true });
      await fake.close();
    }
  });
});

// --- sockets after failed lookups, kept-alive client connections, TLS --------

function selfSignedCert() {
  const dir = tempDir('sluice-tls-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  const out = { key: readFileSync(key), cert: readFileSync(cert) };
  rmSync(dir, { recursive: true, force: true });
  return out;
}

describe('upstream sockets after failed lookups (stale slots dropped)', { skip }, () => {
  test('one kept-alive client connection alternating failed lookup / TLS / plain / refused, 180 requests and a burst of 30: no hang, fds back to the baseline', { timeout: 30000 }, async () => {
    const fake = await startFake();
    const tls = https.createServer(selfSignedCert(), (req, res) => res.end('tls'));
    const tlsPort = await listen(tls);
    const dead = net.createServer();
    const deadPort = await listen(dead);
    await new Promise((r) => dead.close(r));
    // RES_OPTIONS: this sandbox's DNS server drops about one query in 26 and
    // glibc's default retry is 5 s (getent shows it too): 1 s keeps every
    // failed lookup well inside the 5 s bound without hiding a real hang.
    const sl = await startSluice({ workers: 1, env: { RES_OPTIONS: 'timeout:1 attempts:2' },
      // Idle upstream connections (the burst's) closed within ~2 s: the count goes back.
      args: ['--upstream-keepalive-idle-timeout', '1'], config: { services: [
      { name: 'plain', url: fake.url, routes: [{ name: 'plain', paths: ['/plain'] }] },
      { name: 'tls', url: `https://127.0.0.1:${tlsPort}`, tls_verify: false, routes: [{ name: 'tls', paths: ['/tls'] }] },
      { name: 'nodns', url: 'http://no-such-host.invalid', retries: 0, routes: [{ name: 'nodns', paths: ['/nodns'] }] },
      { name: 'nodns2', url: 'https://also-no-such-host.invalid', retries: 1, routes: [{ name: 'nodns2', paths: ['/nodns2'] }] },
      { name: 'refused', url: `http://127.0.0.1:${deadPort}`, retries: 0, routes: [{ name: 'refused', paths: ['/refused'] }] },
    ] } });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const kinds = [['/nodns/x', 503], ['/tls/x', 200], ['/nodns2/x', 503], ['/plain/echo', 200], ['/refused/x', 502], ['/tls/y', 200]];
      for (const [p] of kinds) await request({ port: sl.proxyPort, path: p, agent });
      await sleep(300);
      const base = fdCount(sl.pid);
      const wrong = [];
      for (let i = 0; i < 30; i++) {
        for (const [p, want] of kinds) {
          const r = await request({ port: sl.proxyPort, path: p, agent, timeoutMs: 5000 }).catch((e) => ({ status: `error ${e.message}` }));
          if (r.status !== want) wrong.push([i, p, r.status]);
        }
      }
      // And a parallel burst on fresh connections.
      const burst = await Promise.all(Array.from({ length: 30 }, (_, k) => {
        const [p, want] = kinds[k % kinds.length];
        return request({ port: sl.proxyPort, path: p, timeoutMs: 5000 }).then((r) => [p, r.status, want], (e) => [p, e.message, want]);
      }));
      for (const [p, got, want] of burst) if (got !== want) wrong.push(['burst', p, got]);
      assert.deepEqual(wrong, [], `${wrong.length} requests not answered as expected`);
      agent.destroy();
      await waitFor(() => fdCount(sl.pid) <= base + 3, 4000);
      assert.ok(fdCount(sl.pid) <= base + 3, `descriptors: ${base} after warm-up, ${fdCount(sl.pid)} after 210 requests`);
    } finally {
      agent.destroy();
      await sl.stop();
      await fake.close();
      tls.close();
      tls.closeAllConnections?.();
    }
  });
});

// --- URL masking to the last '@' of the authority -----------------------------

describe('URL password masking (url_userinfo.c)', { skip }, () => {
  const refused = async (url) => {
    const r = await checkText(lines('_format_version: "3.0"', 'services:', '- name: s', `  url: "${url}"`, '  routes: [{name: r, paths: [/r]}]'));
    assert.equal(r.code, 1, r.out);
    return r.out;
  };

  test('a refused service url http://u:p@ss@h/x@y: the error masks from the password to the last @ (a refused url may hold anything there)', async () => {
    const out = await refused('http://u:p@ss@h/x@y');
    assert.match(out, /invalid url 'http:\/\/u:\*\*\*@y'/, out);
    assert.ok(!out.includes('p@ss'), out);
  });

  test('GET /config: @ in the password masked to the last @ of the authority; @ and : in a path, query or fragment untouched', async () => {
    const tags = ['http://u:p@ss@h/x@y', 'http://h/a@b:c', 'http://h?q=a:b@c', 'http://h#f:g@h', 'https://u:@h/a@b', 'x http://a:b@c@d/e@f:g@h y'];
    const sl = await startSluice({ workers: 1, config: { services: [{ name: 's', url: 'http://127.0.0.1:9', tags, routes: [{ name: 'r', paths: ['/r'] }] }] } });
    try {
      const shown = services((await request({ port: sl.adminPort, path: '/config' })).json())[0].tags;
      assert.deepEqual(shown, ['http://u:***@h/x@y', 'http://h/a@b:c', 'http://h?q=a:b@c', 'http://h#f:g@h', 'https://u:@h/a@b', 'x http://a:***@d/e@f:g@h y']);
    } finally {
      await sl.stop();
    }
  });

  test('a refused service url with a raw \'#\' or \'?\' in its password (http://u:pa#ss@h/x) does not print the password', {
    // fixed: masked to the last '@' in refused urls
  }, async () => {
    for (const url of ['http://u:pa#ss@h/x', 'http://u:pa?ss@h/x']) {
      const out = await refused(url);
      assert.match(out, /invalid url/, out);
      assert.ok(!out.includes(url.slice(9, 14)), `the password is printed: ${out.split('\n')[0]}`);
    }
  });
});

// --- the pool sweep under a stream of closing connections --------------------

describe('upstream idle timeout with connections closing one after another', { skip }, () => {
  test('idle timeout 2 s: an idle upstream connection is closed 1.5-4.5 s after its last use while other parked connections close every 150 ms', { timeout: 15000 }, async () => {
    // Upstream A: keeps alive, records when sluice closes its connection.
    const aClosed = [];
    const a = http.createServer((req, res) => res.end('a'));
    a.on('connection', (s) => s.on('close', () => aClosed.push(Date.now())));
    const aPort = await listen(a);
    // Upstream B: answers keep-alive, then closes the connection 50 ms later
    // (a parked connection closed behind curl's back).
    const b = http.createServer((req, res) => {
      res.end('b');
      setTimeout(() => req.socket.destroy(), 50);
    });
    const bPort = await listen(b);
    const sl = await startSluice({ workers: 1, args: ['--upstream-keepalive-idle-timeout', '2'], config: { services: [
      { name: 'a', url: `http://127.0.0.1:${aPort}`, routes: [{ name: 'a', paths: ['/a'] }] },
      { name: 'b', url: `http://127.0.0.1:${bPort}`, routes: [{ name: 'b', paths: ['/b'] }] },
    ] } });
    try {
      assert.equal((await request({ port: sl.proxyPort, path: '/a/x' })).status, 200);
      const tA = Date.now();
      let stop = false;
      const stream = (async () => {
        let n = 0;
        while (!stop) {
          const r = await request({ port: sl.proxyPort, path: '/b/x', timeoutMs: 5000 });
          assert.equal(r.status, 200);
          n++;
          await sleep(150);
        }
        return n;
      })();
      await waitFor(() => aClosed.length > 0, 6000);
      stop = true;
      const n = await stream;
      assert.equal(aClosed.length, 1, `A's connection not closed within 6 s (${n} closing connections to B meanwhile)`);
      const after = aClosed[0] - tA;
      assert.ok(after >= 1500 && after <= 4500, `A closed ${after} ms after its last use (idle timeout 2 s)`);
    } finally {
      await sl.stop();
      a.close();
      a.closeAllConnections();
      b.close();
      b.closeAllConnections();
    }
  });
});

// --- Redis replies larger than the script returns -----------------------------

describe('rate-limiting: Redis replies larger than the script returns', { skip: skip || noRedisCli }, () => {
  const conf = (port) => ({ hour: 10, policy: 'redis', limit_by: 'ip', fault_tolerant: true, redis: { host: '127.0.0.1', port, timeout: 1000 } });
  const run = (reply, { setup = false } = {}) => async () => {
    const fr = await startFakeRedis((args, sock) => {
      if (setup && (args[0] === 'AUTH' || args[0] === 'SELECT')) return sock.write(reply);
      if (args[0] !== 'EVAL' && args[0] !== 'EVALSHA') return sock.write('+OK\r\n');
      sock.write(reply);
    });
    const fake = await startFake();
    const redis = { host: '127.0.0.1', port: fr.port, timeout: 1000, ...(setup ? { password: 'pw', database: 2 } : {}) };
    const sl = await startSluice({ workers: 1, config: { services: [{ name: 's', url: fake.url, routes: [
      { name: 'r', paths: ['/r'], plugins: [{ name: 'rate-limiting', config: { ...conf(fr.port), redis } }] },
    ] }] } });
    try {
      const mark = sl.logMark();
      const t0 = Date.now();
      const r = await request({ port: sl.proxyPort, path: '/r/echo', timeoutMs: 8000 });
      assert.equal(r.status, 200, r.text);
      assert.ok(Date.now() - t0 < 900, `the check took ${Date.now() - t0} ms (the refusal is at once, not at redis.timeout)`);
      const line = await sl.waitForLog(/rate-limiting: /, { from: mark, timeoutMs: 3000 });
      assert.match(line, /reply larger than the rate-limiting script returns/, line);
      // Served again: the connection is made anew.
      assert.equal((await request({ port: sl.proxyPort, path: '/r/echo', timeoutMs: 8000 })).status, 200);
    } finally {
      await sl.stop();
      await fr.close();
      await fake.close();
    }
  };

  test('a 1000-element array to the check: refused at once, the log line says "reply larger than ..."', run('*1000\r\n'));
  test('an array nested in a small one (*2 / *100000): refused at once, named the same', run('*2\r\n:1\r\n*100000\r\n'));
  test('a 50-element array in answer to AUTH: refused at once, named the same', run('*50\r\n', { setup: true }));
});
