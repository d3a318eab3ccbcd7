// The correlation-id plugin through the daemon: id generated (uuid,
// uuid#counter, tracker) or kept from the client, forwarded upstream,
// echoed downstream when asked, under a configurable header name.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, startSluice } from './lib/harness.mjs';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('correlation-id', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    const route = (name, config) => ({ name, paths: [`/${name}`], plugins: [{ name: 'correlation-id', config }] });
    sl = await startSluice({
      config: {
        services: [{
          name: 'up',
          url: fake.url,
          routes: [
            route('default', {}),
            route('uuid', { generator: 'uuid', echo_downstream: true }),
            route('counter', { generator: 'uuid#counter', echo_downstream: true }),
            route('tracker', { generator: 'tracker', echo_downstream: true }),
            route('custom', { header_name: 'X-Trace-Id', generator: 'uuid', echo_downstream: false }),
            { name: 'none', paths: ['/none'] },
          ],
        }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  async function get(path, headers = {}) {
    const r = await request({ port: sl.proxyPort, path, headers });
    assert.equal(r.status, 200, r.text);
    return { res: r.headers, up: r.json().headers };
  }

  test('defaults: Kong-Request-ID, uuid#counter, forwarded but not echoed', async () => {
    const { res, up } = await get('/default/echo');
    assert.match(up['kong-request-id'], /^[0-9a-f-]{36}#\d+$/);
    assert.equal(res['kong-request-id'], undefined);
  });

  test('uuid generator: a fresh v4 uuid per request, echoed downstream', async () => {
    const a = await get('/uuid/echo');
    const b = await get('/uuid/echo');
    assert.match(a.up['kong-request-id'], UUID4);
    assert.equal(a.res['kong-request-id'], a.up['kong-request-id']);
    assert.notEqual(a.up['kong-request-id'], b.up['kong-request-id']);
  });

  test('uuid#counter: same worker uuid, increasing counter', async () => {
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push((await get('/counter/echo')).res['kong-request-id']);
    const parsed = ids.map((id) => /^([0-9a-f-]{36})#(\d+)$/.exec(id));
    assert.ok(parsed.every(Boolean), ids.join(' '));
    // Two workers: at most two distinct uuids, and per uuid the counter grows.
    const byUuid = new Map();
    for (const [, u, n] of parsed) byUuid.set(u, [...(byUuid.get(u) || []), Number(n)]);
    assert.ok(byUuid.size <= 2, `${byUuid.size} worker uuids`);
    for (const ns of byUuid.values()) assert.deepEqual(ns, [...ns].sort((x, y) => x - y));
    assert.equal(new Set(ids).size, ids.length);
  });

  test('tracker generator: unique, starts with the client address', async () => {
    const a = (await get('/tracker/echo')).res['kong-request-id'];
    const b = (await get('/tracker/echo')).res['kong-request-id'];
    assert.match(a, /^127\.0\.0\.1-/);
    assert.notEqual(a, b);
  });

  test('custom header name, not echoed', async () => {
    const { res, up } = await get('/custom/echo');
    assert.match(up['x-trace-id'], UUID4);
    assert.equal(up['kong-request-id'], undefined);
    assert.equal(res['x-trace-id'], undefined);
  });

  test('an id sent by the client is kept and echoed', async () => {
    const { res, up } = await get('/uuid/echo', { 'kong-request-id': 'client-chosen-id' });
    assert.equal(up['kong-request-id'], 'client-chosen-id');
    assert.equal(res['kong-request-id'], 'client-chosen-id');
  });

  test('routes without the plugin get no id header', async () => {
    const { res, up } = await get('/none/echo');
    assert.equal(up['kong-request-id'], undefined);
    assert.equal(res['kong-request-id'], undefined);
  });
});
