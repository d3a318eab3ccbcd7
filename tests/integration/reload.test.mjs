// SIGHUP reload: a new route starts working and the config hash changes; a
// broken file is refused with file:line:col errors and the old config keeps
// serving; ~300 requests in flight during a reload all succeed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, sleep, startSluice } from './lib/harness.mjs';

describe('reload', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  const one = () => ({ name: 'one', paths: ['/one'] });
  const two = () => ({ name: 'two', paths: ['/two'] });
  const cfg = (...routes) => ({ services: [{ name: 'up', url: fake.url, routes }] });

  before(async () => {
    fake = await startFake();
    sl = await startSluice({ config: cfg(one()) });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  test('reload adding a route', async () => {
    const before1 = await sl.status();
    assert.equal((await request({ port: sl.proxyPort, path: '/two/echo' })).status, 404);
    const after1 = await sl.reload(cfg(one(), two()));
    assert.notEqual(after1.config.sha256, before1.config.sha256);
    assert.match(after1.config.sha256, /^[0-9a-f]{64}$/);
    assert.ok(Date.parse(after1.config.loaded_at) >= Date.parse(before1.config.loaded_at), `loaded_at ${before1.config.loaded_at} -> ${after1.config.loaded_at}`);
    assert.equal((await request({ port: sl.proxyPort, path: '/two/echo' })).status, 200);
    assert.equal((await request({ port: sl.proxyPort, path: '/one/echo' })).status, 200);
  });

  test('reload with a broken file: refused, errors logged with file:line:col, old config serves', async () => {
    const good = (await sl.status()).config.sha256;
    const mark = sl.logMark();
    // Line 7, column 9: the unknown field of the second route.
    sl.writeConfig([
      '_format_version: "3.0"',
      'services:',
      `  - name: up`,
      `    url: ${fake.url}`,
      '    routes:',
      '      - name: one',
      '        bogus_field: 1',
      '        paths: ["/one"]',
      '',
    ].join('\n'));
    sl.signal('SIGHUP');
    const line = await sl.waitForLog(/kong\.yml:\d+:\d+:/, { from: mark });
    assert.ok(line.includes(`${sl.configPath}:7:9: services[0].routes[0].bogus_field: unknown field`), line);
    await sleep(200);
    const st = await sl.status();
    assert.equal(st.config.sha256, good, 'the refused file must not become the running config');
    assert.equal((await request({ port: sl.proxyPort, path: '/two/echo' })).status, 200);
    assert.equal((await request({ port: sl.proxyPort, path: '/one/echo' })).status, 200);
  });

  test('reload with a file that is not YAML: refused, old config serves', async () => {
    const good = (await sl.status()).config.sha256;
    const mark = sl.logMark();
    sl.writeConfig('_format_version: "3.0"\nservices: [\n  {name: up, url: "http://x"\n');
    sl.signal('SIGHUP');
    await sl.waitForLog(/kong\.yml:\d+:\d+:/, { from: mark });
    await sleep(200);
    assert.equal((await sl.status()).config.sha256, good);
    assert.equal((await request({ port: sl.proxyPort, path: '/two/echo' })).status, 200);
  });

  test('reload while ~300 requests are in flight: zero failures', async () => {
    sl.writeConfig(cfg(one(), two()));
    await sl.reload(cfg(one(), two(), { name: 'three', paths: ['/three'] }));
    const N = 300;
    const results = [];
    const fire = (i, prefix) => request({ port: sl.proxyPort, path: `${prefix}/delay?ms=400&i=${i}`, timeoutMs: 20000 })
      .then((r) => results.push(r.status === 200 && r.json().query.i === String(i) ? 'ok' : `status ${r.status}`))
      .catch((e) => results.push(e.message));
    const first = [];
    for (let i = 0; i < N; i++) first.push(fire(i, i % 2 ? '/one' : '/two'));
    await sleep(150);
    const hashBefore = (await sl.status()).config.sha256;
    sl.writeConfig(cfg(one(), two(), { name: 'four', paths: ['/four'] }));
    sl.signal('SIGHUP');
    // A second wave while the reload is being applied.
    const second = [];
    for (let i = 0; i < 50; i++) second.push(fire(N + i, '/one'));
    await Promise.all([...first, ...second]);
    const failures = results.filter((r) => r !== 'ok');
    assert.deepEqual(failures, [], `${failures.length} of ${results.length} failed`);
    const deadline = Date.now() + 5000;
    while ((await sl.status()).config.sha256 === hashBefore && Date.now() < deadline) await sleep(25);
    assert.notEqual((await sl.status()).config.sha256, hashBefore);
    assert.equal((await request({ port: sl.proxyPort, path: '/four/echo' })).status, 200);
    assert.equal((await request({ port: sl.proxyPort, path: '/three/echo' })).status, 404);
  });
});
