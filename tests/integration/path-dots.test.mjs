// Dot segments are resolved before routing (src/path_dots.h): a request for
// /public/../admin is a request for /admin, routed (and guarded) as such,
// never proxied under /public's route for the upstream to resolve; %2e
// spellings count; a '..' above the root is a 400.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, rawRequest, startSluice, waitFor } from './lib/harness.mjs';

const skip = binaryMissing();
let fake, sl;

before(async () => {
  if (skip) return;
  fake = await startFake();
  sl = await startSluice({
    config: {
      _format_version: '3.0',
      services: [
        { name: 'public', url: `${fake.url}/publicbase`, routes: [{ name: 'public', paths: ['/public'] }] },
        // Its plugins (auth, limits...) are what /public/../admin must not get around.
        { name: 'admin', url: `${fake.url}/adminbase`, routes: [{ name: 'admin', paths: ['/admin'] }] },
      ],
    },
  });
});

after(async () => {
  if (sl) await sl.stop();
  await fake?.close();
});

// Raw bytes: clients (and node's http) would resolve the dots themselves.
async function get(target) {
  const r = await rawRequest({
    port: sl.proxyPort,
    data: `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
  });
  const text = r.toString('latin1');
  const status = Number(text.slice(9, 12));
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  return { status, body, text };
}

test('plain dots inside a route resolve before the upstream path is built', { skip }, async () => {
  const r = await get('/public/a/./b/../c?x=1');
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.body).path, '/publicbase/a/c');
});

for (const target of ['/public/../admin/x', '/public/%2e%2e/admin/x', '/public/.%2E/admin/x', '/public/./../admin/x']) {
  test(`${target} is routed as /admin/x (admin's service and plugins), not under /public`, { skip }, async () => {
    const r = await get(target);
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.body).path, '/adminbase/x');
  });
}

for (const target of ['/..', '/../admin', '/public/../../publicbase', '/%2e%2e/etc/passwd']) {
  test(`${target}: a '..' above the root is a 400 with a JSON error`, { skip }, async () => {
    const r = await get(target);
    assert.equal(r.status, 400, r.text);
    const j = JSON.parse(r.body);
    assert.match(j.message, /above the root/);
    assert.match(j.request_id, /^[0-9a-f]{32}$/);
  });
}

test('the access log keeps the path as the client sent it', { skip }, async () => {
  const r = await get('/public/x/../y');
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.body).path, '/publicbase/y');
  await waitFor(() => sl.stderr().includes('uri=/public/x/../y') || sl.stderr().includes('uri="/public/x/../y"'));
});

test('names with dots are not dot segments', { skip }, async () => {
  const r = await get('/public/.well-known/a..b/...');
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.body).path, '/publicbase/.well-known/a..b/...');
});
