// The upstream path Kong builds from service.path, the route's path,
// strip_path and path_handling (Kong's admin API table), and routes whose
// protocols leave out http (426, or a redirect with https_redirect_status_code).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { assertErrorBody, binaryMissing, request, startSluice } from './lib/harness.mjs';

const skip = binaryMissing();
let fake, sl;

// [service path, route path, strip_path, path_handling, request path, proxied path]
const TABLE = [
  ['/s', '/fv0', false, 'v0', '/fv0req', '/s/fv0req'],
  ['/s', '/fv1', false, 'v1', '/fv1req', '/sfv1req'],
  ['/s', '/tv0', true, 'v0', '/tv0req', '/s/req'],
  ['/s', '/tv1', true, 'v1', '/tv1req', '/sreq'],
  ['/s', '/fv0/', false, 'v0', '/fv0/req', '/s/fv0/req'],
  ['/s', '/fv1/', false, 'v1', '/fv1/req', '/sfv1/req'],
  ['/s', '/tv0/', true, 'v0', '/tv0/req', '/s/req'],
  ['/s', '/tv1/', true, 'v1', '/tv1/req', '/sreq'],
  ['/s/', '/uv0', true, 'v0', '/uv0/req', '/s/req'],
  ['/s/', '/uv1', true, 'v1', '/uv1req', '/s/req'],
  ['/s', '/ev0', true, 'v0', '/ev0', '/s'],
  ['/s', '/ev1', true, 'v1', '/ev1', '/s'],
];

before(async () => {
  if (skip) return;
  fake = await startFake();
  const services = TABLE.map(([spath, rpath, strip, ph], i) => ({
    name: `s${i}`, url: `${fake.url}${spath}`,
    routes: [{ name: `r${i}`, paths: [rpath], strip_path: strip, path_handling: ph }],
  }));
  services.push({ name: 'secure', url: fake.url, routes: [
    { name: 'https-only', paths: ['/secure'], protocols: ['https'] },
    { name: 'https-redirect', paths: ['/moved'], protocols: ['https'], https_redirect_status_code: 308 },
  ] });
  services.push({ name: 'off', url: `${fake.url}/disabled`, enabled: false,
    routes: [{ name: 'off', paths: ['/off'] }] });
  services.push({ name: 'fallback', url: `${fake.url}/fallback`,
    routes: [{ name: 'fallback', paths: ['/o'] }] });
  sl = await startSluice({ config: { _format_version: '3.0', services } });
});

after(async () => {
  if (sl) await sl.stop();
  await fake?.close();
});

for (const [spath, rpath, strip, ph, req, want] of TABLE) {
  test(`service ${spath}, route ${rpath}, strip_path ${strip}, ${ph}: ${req} -> ${want}`, { skip }, async () => {
    const r = await request({ port: sl.proxyPort, path: `${req}?q=1` });
    assert.equal(r.status, 200, r.text);
    const j = r.json();
    assert.equal(j.path, want);
    assert.equal(j.query.q, '1');
  });
}

test('a route for https only answers plain http with 426 and Upgrade', { skip }, async () => {
  const r = await request({ port: sl.proxyPort, path: '/secure/x' });
  assertErrorBody(r, 426, /Please use HTTPS protocol/);
  assert.equal(r.headers.upgrade, 'TLS/1.2, HTTP/1.1');
});

test('https_redirect_status_code 308 redirects to the https URL', { skip }, async () => {
  const r = await request({ port: sl.proxyPort, path: '/moved/y?a=b', headers: { host: 'api.example.com' } });
  assert.equal(r.status, 308);
  assert.equal(r.headers.location, 'https://api.example.com/moved/y?a=b');
});

test('the routes of a disabled service do not exist: a shorter route matches instead', { skip }, async () => {
  const r = await request({ port: sl.proxyPort, path: '/off/x' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().path, '/fallback/ff/x');
});
