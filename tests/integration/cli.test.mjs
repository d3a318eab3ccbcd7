// The command line and the admin endpoints: -t on good and bad files
// (every error, file:line:col: path: message), -V, -h, environment
// variables, GET /status and GET /config with secrets redacted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { REPO, SLUICE_BIN, binaryMissing, freePort, request, runSluice, sleep, startSluice, tempDir } from './lib/harness.mjs';

const BAD = [
  '_format_version: "3.0"',
  'services:',
  '  - name: up',
  '    url: http://127.0.0.1:9',
  '    routes:',
  '      - name: r',
  '        paths: ["/r"]',
  '        plugins:',
  '          - name: correlation-id',
  '            config:',
  '              generator: bogus',
  '        nope: 1',
  '',
].join('\n');

describe('command line', { skip: binaryMissing() }, () => {
  const dir = tempDir();

  test('-t on a good file exits 0', async () => {
    const f = path.join(dir, 'good.yml');
    writeFileSync(f, BAD.replace('bogus', 'uuid').replace('        nope: 1\n', ''));
    const r = await runSluice(['-t', '-c', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, new RegExp(`${f}:\\d+`));
  });

  test('-t on a bad file prints every error with file:line:col: path: message and exits 1', async () => {
    const f = path.join(dir, 'bad.yml');
    writeFileSync(f, BAD);
    const r = await runSluice(['-t', '-c', f]);
    assert.equal(r.code, 1);
    const lines = (r.stderr + r.stdout).split('\n');
    assert.ok(lines.includes(`${f}:11:26: services[0].routes[0].plugins[0].config.generator: expected one of uuid, uuid#counter, tracker`), r.stderr);
    assert.ok(lines.includes(`${f}:12:9: services[0].routes[0].nope: unknown field`), r.stderr);
  });

  test('-t: an unset environment variable is an error, a default is not', async () => {
    const f = path.join(dir, 'env.yml');
    writeFileSync(f, '_format_version: "3.0"\nservices:\n  - name: up\n    url: "${SLUICE_TEST_UNSET_VAR}"\n  - name: up2\n    url: "${SLUICE_TEST_UNSET_VAR:-http://127.0.0.1:9}"\n');
    delete process.env.SLUICE_TEST_UNSET_VAR;
    const r = await runSluice(['-t', '-c', f]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${f}:4:10: services[0].url: environment variable SLUICE_TEST_UNSET_VAR is not set`), r.stderr);
    assert.doesNotMatch(r.stderr, /services\[1\]/);
    const ok = await runSluice(['-t', '-c', f], { env: { SLUICE_TEST_UNSET_VAR: 'http://127.0.0.1:9' } });
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('-t on a missing file exits 1 naming the file', async () => {
    const f = path.join(dir, 'missing.yml');
    const r = await runSluice(['-t', '-c', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${f}: No such file`));
  });

  test('-t reads SLUICE_CONFIG', async () => {
    const f = path.join(dir, 'bad-env.yml');
    writeFileSync(f, BAD);
    const r = await runSluice(['-t'], { env: { SLUICE_CONFIG: f } });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${f}:12:9:`), r.stderr);
  });

  test('-V and -h', async () => {
    const v = await runSluice(['-V']);
    assert.equal(v.code, 0);
    assert.match(v.stdout + v.stderr, /sluice \d+\.\d+\.\d+/);
    // what it runs on, for a bug report: the libraries as loaded, and the allocator linked
    const libs = v.stdout.split('\n')[1] ?? '';
    for (const re of [/libcurl \d+\.\d+\.\d+/, /OpenSSL \d+\.\d+/, /libevent \d+\.\d+/, /cJSON \d+\.\d+/,
      /hiredis \d+\.\d+/, /libyaml \d+\.\d+/, /PCRE2 \d+\.\d+/]) assert.match(libs, re);
    const ldd = spawnSync('ldd', [SLUICE_BIN], { encoding: 'utf8' }).stdout ?? '';
    assert.match(libs, /libmimalloc/.test(ldd) ? /malloc mimalloc \d+\.\d+\.\d+$/
      : /libasan/.test(ldd) ? /malloc AddressSanitizer's$/ : /malloc glibc$/);
    const h = await runSluice(['-h']);
    assert.equal(h.code, 0);
    for (const opt of ['-c', '-t', '--proxy-listen', '--admin-listen', '--workers', '--log-level', '--pid-file']) {
      assert.ok((h.stdout + h.stderr).includes(opt), `-h mentions ${opt}`);
    }
  });

  test('a flag wins over its SLUICE_* variable, which is then not read (a bad value there is no error)', async () => {
    const f = path.join(REPO, 'conf/kong.yml');
    const bad = { SLUICE_WORKERS: 'banana' };
    const overridden = await runSluice(['-t', '-c', f, '--workers', '2'], { env: bad });
    assert.equal(overridden.code, 0, overridden.stderr);
    const alone = await runSluice(['-t', '-c', f], { env: bad });
    assert.equal(alone.code, 2, alone.stderr);
    assert.match(alone.stderr, /--workers: expected an integer between 1 and 256, got 'banana'\n.*\(from SLUICE_WORKERS\)/s);
  });

  test('an unknown option or a bad value exits non-zero', async () => {
    assert.notEqual((await runSluice(['--no-such-option'])).code, 0);
    assert.notEqual((await runSluice(['--workers', 'many', '-t', '-c', '/dev/null'])).code, 0);
  });
});

describe('admin endpoints and process settings', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({
      env: { SLUICE_TEST_SECRET: 'env-secret-value-42' },
      config: {
        services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }],
        consumers: [{ username: 'alice', custom_id: 'a-1', keyauth_credentials: [{ key: 'super-secret-key-123' }, { key: '${SLUICE_TEST_SECRET}' }] }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  test('a second sluice on the same proxy address refuses to start, and the first keeps every connection', async () => {
    // SO_REUSEPORT would let it join the port and take a share of the traffic.
    const admin = await freePort();
    const r = await runSluice(['-c', sl.configPath, '--proxy-listen', `127.0.0.1:${sl.proxyPort}`, '--admin-listen', `127.0.0.1:${admin}`, '--workers', '2'], { timeoutMs: 5000, env: { SLUICE_TEST_SECRET: 'x' } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${sl.proxyPort}: Address already in use \\(another process listens there\\)`));
    const before = (await sl.status()).requests;
    const answers = await Promise.all(Array.from({ length: 40 }, () => request({ port: sl.proxyPort, path: '/up/x' })));
    assert.deepEqual(answers.map((a) => a.status), Array(40).fill(200));
    assert.equal((await sl.status()).requests - before, 40);
  });

  test('GET /status', async () => {
    await request({ port: sl.proxyPort, path: '/up/echo' });
    await sleep(50);
    const st = await sl.status();
    assert.equal(typeof st.uptime_seconds, 'number');
    assert.equal(st.workers, 2);
    assert.equal(st.config.file, sl.configPath);
    assert.equal(st.config.sha256, createHash('sha256').update(readFileSync(sl.configPath)).digest('hex'));
    assert.ok(!Number.isNaN(Date.parse(st.config.loaded_at)), `loaded_at ${st.config.loaded_at}`);
    assert.equal(typeof st.connections, 'number');
    assert.ok(st.requests >= 1, `requests ${st.requests}`);
  });

  test('GET /config shows the config with credentials redacted', async () => {
    const r = await request({ port: sl.adminPort, path: '/config' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /application\/json/);
    const text = r.text;
    const cfg = r.json();
    assert.ok(!text.includes('super-secret-key-123'), 'credential leaked in /config');
    assert.ok(!text.includes('env-secret-value-42'), 'credential from the environment leaked in /config');
    assert.ok(text.includes('<redacted>'));
    assert.ok(text.includes('alice'), 'non-secret fields are shown');
    assert.ok(JSON.stringify(cfg).includes(fake.url.replace('http://', '')) || JSON.stringify(cfg).includes(String(fake.port)), 'service url shown');
  });

  test('the admin listener answers 404 for unknown paths and the proxy does not serve admin paths', async () => {
    assert.equal((await request({ port: sl.adminPort, path: '/no-such-endpoint' })).status, 404);
    assert.equal((await request({ port: sl.proxyPort, path: '/status' })).status, 404);
  });

  test('no secret in the log', async () => {
    assert.ok(!sl.stderr().includes('super-secret-key-123'));
    assert.ok(!sl.stderr().includes('env-secret-value-42'));
  });
});

describe('process settings from the environment', { skip: binaryMissing() }, () => {
  test('SLUICE_CONFIG, SLUICE_PROXY_LISTEN, SLUICE_ADMIN_LISTEN, SLUICE_WORKERS, SLUICE_PID_FILE', async () => {
    const fake = await startFake();
    const dir = tempDir();
    const cfg = path.join(dir, 'kong.yml');
    writeFileSync(cfg, `_format_version: "3.0"\nservices:\n  - name: up\n    url: ${fake.url}\n    routes:\n      - name: up\n        paths: ["/up"]\n`);
    const [pp, ap] = [await freePort(), await freePort()];
    const pidFile = path.join(dir, 'sluice.pid');
    const { spawn } = await import('node:child_process');
    const { SLUICE_BIN, assertCleanExit } = await import('./lib/harness.mjs');
    const p = spawn(SLUICE_BIN, [], {
      env: { ...process.env, SLUICE_CONFIG: cfg, SLUICE_PROXY_LISTEN: `127.0.0.1:${pp}`, SLUICE_ADMIN_LISTEN: `127.0.0.1:${ap}`, SLUICE_WORKERS: '3', SLUICE_PID_FILE: pidFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => p.on('close', (code, signal) => resolve({ code, signal })));
    try {
      let st;
      for (let i = 0; i < 200 && !st; i++) {
        st = await request({ port: ap, path: '/status', timeoutMs: 500 }).then((r) => r.json(), () => null);
        if (!st) await sleep(50);
      }
      assert.ok(st, `not ready; stderr:\n${stderr}`);
      assert.equal(st.workers, 3);
      assert.equal(st.config.file, cfg);
      assert.equal(readFileSync(pidFile, 'utf8').trim(), String(p.pid));
      assert.equal((await request({ port: pp, path: '/up/echo' })).status, 200);
      p.kill('SIGTERM');
      assertCleanExit(await exited, stderr);
    } finally {
      p.kill('SIGKILL');
      await fake.close();
    }
  });
});

describe('default number of workers', { skip: binaryMissing() }, () => {
  // The CPUs the process may use (sched_getaffinity: taskset, CPUAffinity=,
  // a cpuset), not every CPU of the machine.
  test('one per CPU the process may run on', async () => {
    const { availableParallelism } = await import('node:os');
    for (const [wrap, want] of [[[], availableParallelism()], [['taskset', '-c', '0'], 1]]) {
      const sl = await startSluice({ workers: null, wrap });
      try {
        assert.equal((await sl.status()).workers, want, `wrap ${JSON.stringify(wrap)}`);
        assert.match(sl.stderr(), new RegExp(`started: ${want} workers`));
      } finally {
        await sl.stop();
      }
    }
  });
});
