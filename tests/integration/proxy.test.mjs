// Plain reverse proxying through the daemon: bodies both ways (up to
// several MB, checked by sha256), request/response headers, status codes,
// the latency and request-id headers and the access log line.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { HEX32, binaryMissing, rawRequest, request, startSluice } from './lib/harness.mjs';

const sha = (b) => createHash('sha256').update(b).digest('hex');

describe('proxying', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({
      config: { services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  test('GET: path stripped, query kept, latency and request-id headers, log line', async () => {
    const mark = sl.logMark();
    const r = await request({ port: sl.proxyPort, path: '/up/echo?a=1&b=%20x&a=2' });
    assert.equal(r.status, 200);
    const got = r.json();
    assert.equal(got.method, 'GET');
    assert.equal(got.url, '/echo?a=1&b=%20x&a=2');
    assert.equal(got.bodyLength, 0);
    for (const h of ['x-sluice-upstream-latency', 'x-sluice-proxy-latency']) {
      assert.match(String(r.headers[h]), /^\d+$/, `${h}: ${r.headers[h]}`);
    }
    const id = r.headers['x-sluice-request-id'];
    assert.match(String(id), HEX32);
    const line = await sl.waitForLog(new RegExp(`request_id=${id}`), { from: mark });
    assert.match(line, /status=200\b/);
  });

  for (const size of [0, 1, 65536, 5 * 1024 * 1024 + 3]) {
    test(`POST body of ${size} bytes arrives intact (Content-Length)`, async () => {
      const body = randomBytes(size);
      const r = await request({ port: sl.proxyPort, method: 'POST', path: '/up/echo', headers: { 'content-type': 'application/octet-stream' }, body, timeoutMs: 30000 });
      assert.equal(r.status, 200, r.text.slice(0, 200));
      const got = r.json();
      assert.equal(got.bodyLength, size);
      assert.equal(got.bodySha256, sha(body));
    });
  }

  test('POST 3 MB with chunked transfer encoding from the client arrives intact', async () => {
    const parts = Array.from({ length: 48 }, () => randomBytes(65536));
    const whole = Buffer.concat(parts);
    const r = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: sl.proxyPort, method: 'PUT', path: '/up/echo', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        const b = [];
        res.on('data', (d) => b.push(d));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(b).toString() }));
      });
      req.setTimeout(30000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      (async () => {
        for (const p of parts) {
          req.write(p);
          await new Promise((r2) => setImmediate(r2));
        }
        req.end();
      })();
    });
    assert.equal(r.status, 200, r.body.slice(0, 200));
    const got = JSON.parse(r.body);
    assert.equal(got.method, 'PUT');
    assert.equal(got.bodyLength, whole.length);
    assert.equal(got.bodySha256, sha(whole));
  });

  test('GET 8 MB response arrives intact', async () => {
    const r = await request({ port: sl.proxyPort, path: `/up/bytes?n=${8 * 1024 * 1024}`, timeoutMs: 30000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 8 * 1024 * 1024);
    assert.equal(sha(r.body), r.headers['x-fake-sha256']);
  });

  test('upstream status codes and headers pass through', async () => {
    for (const status of [201, 400, 404, 418, 500, 503]) {
      const r = await request({ port: sl.proxyPort, path: `/up/status/${status}` });
      assert.equal(r.status, status);
      assert.deepEqual(r.json(), { status });
    }
    const nc = await request({ port: sl.proxyPort, path: '/up/status/204' });
    assert.equal(nc.status, 204);
    assert.equal(nc.body.length, 0);
    const b = await request({ port: sl.proxyPort, path: '/up/bytes?n=10' });
    assert.equal(b.headers['content-type'], 'application/octet-stream');
    assert.equal(b.headers['x-fake-sha256'], sha(b.body));
  });

  test('hop-by-hop request headers are dropped, the rest forwarded', async () => {
    fake.clearRequests();
    const req = [
      'GET /up/echo HTTP/1.1',
      'Host: client.example.test:8443',
      'Connection: keep-alive, X-Drop-Me',
      'Keep-Alive: timeout=5',
      'X-Drop-Me: secret',
      'TE: trailers',
      'Trailer: X-Checksum',
      'Upgrade: h2c',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      'Proxy-Connection: keep-alive',
      'X-Keep-Me: yes',
      'Authorization: Bearer end-to-end',
      'Cookie: a=b',
      '',
      '',
    ].join('\r\n');
    const raw = await rawRequest({ port: sl.proxyPort, data: req, endAfter: '}' });
    assert.match(raw.toString('latin1'), /^HTTP\/1\.1 200/);
    const rec = await fake.waitFor((r) => r.path === '/echo');
    const h = rec.headers;
    for (const dropped of ['keep-alive', 'x-drop-me', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'transfer-encoding']) {
      assert.equal(h[dropped], undefined, `${dropped} must not be forwarded (got ${h[dropped]})`);
    }
    assert.ok(!/x-drop-me|upgrade/i.test(h.connection || ''), `connection: ${h.connection}`);
    assert.equal(h['x-keep-me'], 'yes');
    assert.equal(h.authorization, 'Bearer end-to-end');
    assert.equal(h.cookie, 'a=b');
  });

  test('X-Forwarded-*, X-Real-IP, Via and the upstream Host', async () => {
    fake.clearRequests();
    const r = await request({ port: sl.proxyPort, path: '/up/echo/sub?q=1', headers: { host: 'api.example.test' } });
    assert.equal(r.status, 200);
    const h = r.json().headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-real-ip'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'api.example.test');
    assert.equal(h['x-forwarded-port'], String(sl.proxyPort));
    assert.equal(h['x-forwarded-path'], '/up/echo/sub');
    assert.match(h.via || '', /(^|,\s*)1\.1 sluice\b/);
    assert.equal(h.host, `127.0.0.1:${fake.port}`, 'preserve_host defaults to false');
  });

  test('an incoming X-Forwarded-For is appended to', async () => {
    const r = await request({ port: sl.proxyPort, path: '/up/echo', headers: { 'x-forwarded-for': '203.0.113.7' } });
    assert.equal(r.json().headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
  });

  test('keep-alive: several requests on one client connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports = new Set();
      for (let i = 0; i < 5; i++) {
        const r = await request({ port: sl.proxyPort, path: `/up/echo?i=${i}`, agent });
        assert.equal(r.status, 200);
        assert.equal(r.json().query.i, String(i));
        ports.add(r.json().remoteAddress);
      }
    } finally {
      agent.destroy();
    }
  });
});
