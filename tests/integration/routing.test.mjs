// Kong's route matching through the daemon: hosts (exact and wildcard),
// methods, headers, longest path prefix, regex paths, strip_path.
// Each service has its own base path on the fake, so the path the upstream
// saw tells which service (and which path rewriting) was used.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, startSluice } from './lib/harness.mjs';

describe('routing', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    const svc = (name, routes) => ({ name, url: `${fake.url}/${name}`, routes });
    sl = await startSluice({
      config: {
        services: [
          svc('svc-a', [
            { name: 'api', paths: ['/api'] },
            { name: 'm-any', paths: ['/m'] },
            { name: 'hdr-any', paths: ['/hdr'] },
            { name: 'h-any', paths: ['/h'] },
          ]),
          svc('svc-b', [
            { name: 'api-v2', paths: ['/api/v2'] },
            { name: 'm-post', paths: ['/m'], methods: ['POST', 'PUT'] },
            { name: 'hdr-v2', paths: ['/hdr'], headers: { 'x-version': ['v2', 'v3'] } },
            { name: 'del-only', paths: ['/delonly'], methods: ['DELETE'] },
          ]),
          svc('svc-c', [
            { name: 'h-host', hosts: ['api.example.test'], paths: ['/h'] },
            { name: 'wild', hosts: ['*.wild.test'] },
            { name: 'wild-suffix', hosts: ['suffix.*'], paths: ['/sfx'] },
            { name: 'regex', paths: ['~/items/\\d+$'], strip_path: false },
          ]),
          { name: 'svc-keep', url: fake.url, routes: [{ name: 'keep', paths: ['/keep'], strip_path: false }] },
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  async function upstreamPath(path, { method = 'GET', headers = {} } = {}) {
    const r = await request({ port: sl.proxyPort, method, path, headers, body: method === 'GET' ? undefined : '' });
    if (r.status !== 200) return r.status;
    return r.json().url;
  }

  test('strip_path (default true) joins the rest onto the service path', async () => {
    assert.equal(await upstreamPath('/api/users?id=7'), '/svc-a/users?id=7');
    assert.equal(await upstreamPath('/api/'), '/svc-a/');
  });

  test('strip_path false keeps the whole request path', async () => {
    assert.equal(await upstreamPath('/keep/x/y?z=1'), '/keep/x/y?z=1');
  });

  test('longest prefix wins', async () => {
    assert.equal(await upstreamPath('/api/v2/items'), '/svc-b/items');
    assert.equal(await upstreamPath('/api/v1/items'), '/svc-a/v1/items');
  });

  test('prefixes match at any character, as in Kong', async () => {
    // Kong path prefixes are plain string prefixes: /apix starts with /api.
    const p = await upstreamPath('/apix');
    assert.ok(typeof p === 'string' && p.startsWith('/svc-a'), `upstream path ${p}`);
  });

  test('methods', async () => {
    assert.equal(await upstreamPath('/m/1', { method: 'POST' }), '/svc-b/1');
    assert.equal(await upstreamPath('/m/1', { method: 'PUT' }), '/svc-b/1');
    assert.equal(await upstreamPath('/m/1'), '/svc-a/1');
    assert.equal(await upstreamPath('/delonly'), 404);
    assert.equal(await upstreamPath('/delonly', { method: 'DELETE' }), '/svc-b');
  });

  test('headers', async () => {
    assert.equal(await upstreamPath('/hdr/x', { headers: { 'x-version': 'v3' } }), '/svc-b/x');
    assert.equal(await upstreamPath('/hdr/x', { headers: { 'x-version': 'v9' } }), '/svc-a/x');
    assert.equal(await upstreamPath('/hdr/x'), '/svc-a/x');
  });

  test('hosts: exact (port ignored), wildcards, and host+path beating path alone', async () => {
    assert.equal(await upstreamPath('/h/1', { headers: { host: 'api.example.test' } }), '/svc-c/1');
    assert.equal(await upstreamPath('/h/1', { headers: { host: 'API.Example.Test:8000' } }), '/svc-c/1');
    assert.equal(await upstreamPath('/h/1', { headers: { host: 'other.test' } }), '/svc-a/1');
    assert.equal(await upstreamPath('/anything', { headers: { host: 'foo.wild.test' } }), '/svc-c/anything');
    assert.equal(await upstreamPath('/anything', { headers: { host: 'wild.test' } }), 404);
    assert.equal(await upstreamPath('/sfx', { headers: { host: 'suffix.example.org' } }), '/svc-c');
  });

  test('regex paths', async () => {
    assert.equal(await upstreamPath('/items/42'), '/svc-c/items/42');
    assert.equal(await upstreamPath('/items/abc'), 404);
  });

  test('no match: 404 with Kong\'s message', async () => {
    const r = await request({ port: sl.proxyPort, path: '/nope' });
    assert.equal(r.status, 404);
    assert.equal(r.json().message, 'no Route matched with those values');
  });
});
