// sluice reuses libcurl easy handles from one request to the next with
// their shared options kept (src/upstream.c): nothing a request set for
// itself (method, body, streamed upload, header list) may reach the next
// one. One worker, one client connection, one upstream connection, so every
// request below runs on the handle the previous one used.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, startSluice, tempDir } from './lib/harness.mjs';

const sha = (b) => createHash('sha256').update(b).digest('hex');

describe('easy handles reused across requests', { skip: binaryMissing() }, () => {
  let fake, sl, agent;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({
      workers: 1,
      config: { services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] },
    });
    agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  });
  after(async () => {
    agent?.destroy();
    await sl?.stop();
    await fake?.close();
  });

  test('method, body and headers of each request are its own', async () => {
    const big = randomBytes(300 * 1024); // over 64 KiB: streamed to the upstream
    const steps = [
      { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json', 'x-only-first': '1' } },
      { method: 'GET' },
      { method: 'HEAD' },
      { method: 'GET' },
      { method: 'PUT', body: big, headers: { 'transfer-encoding': 'chunked' } },
      { method: 'GET' },
      { method: 'DELETE' },
      { method: 'PATCH', body: 'patch-body' },
      { method: 'OPTIONS' },
      { method: 'POST', body: big },
      { method: 'GET' },
    ];
    fake.clearRequests();
    for (const [i, s] of steps.entries()) {
      const r = await request({
        port: sl.proxyPort, agent, method: s.method, path: `/up/echo?step=${i}`,
        headers: { 'x-step': String(i), ...(s.headers ?? {}) }, body: s.body,
      });
      assert.equal(r.status, 200, `step ${i} ${s.method}`);
    }
    assert.equal(fake.requests.length, steps.length);
    for (const [i, s] of steps.entries()) {
      const got = fake.requests.find((q) => q.query.step === String(i));
      assert.ok(got, `step ${i} reached the upstream`);
      const what = `step ${i} ${s.method}`;
      assert.equal(got.method, s.method, what);
      assert.equal(got.headers['x-step'], String(i), what);
      if (i > 0) assert.equal(got.headers['x-only-first'], undefined, `${what}: a header of step 0 leaked`);
      const body = s.body === undefined ? Buffer.alloc(0) : Buffer.from(s.body);
      assert.equal(got.bodyLength, body.length, what);
      assert.equal(got.bodySha256, sha(body), what);
      if (!s.body) {
        assert.equal(got.headers['transfer-encoding'], undefined, `${what}: no body, no chunked framing`);
        assert.ok(!got.headers['content-length'] || got.headers['content-length'] === '0', `${what}: content-length ${got.headers['content-length']}`);
      }
    }
    // All on one upstream connection: the handles were reused, not rebuilt.
    const ports = new Set(fake.requests.map((q) => q.remotePort));
    assert.equal(ports.size, 1, `upstream connections: ${[...ports]}`);
  });
});

// What differs per service or per body size: tls_verify (false on one
// service must not stick to the handle when it serves another, nor true),
// and a whole body over 64 KiB (read by a plugin, so sent from memory with
// a progress callback) followed by requests with no body.
describe('per-service and per-body options on reused handles', { skip: binaryMissing() }, () => {
  let fake, tls, sl, agent;
  before(async () => {
    fake = await startFake();
    const dir = tempDir('sluice-reuse-tls-');
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    tls = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      req.resume();
      res.end('tls ok');
    });
    await new Promise((r) => tls.listen(0, '127.0.0.1', r));
    const tlsUrl = `https://127.0.0.1:${tls.address().port}`;
    sl = await startSluice({
      workers: 1,
      config: {
        services: [
          { name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] },
          { name: 'guarded', url: fake.url, routes: [{ name: 'guarded', paths: ['/guarded'],
            plugins: [{ name: 'ai-prompt-guard', config: { deny_patterns: ['NEVER-MATCHES'], max_request_body_size: 1000000 } }] }] },
          { name: 'noverify', url: tlsUrl, tls_verify: false, routes: [{ name: 'noverify', paths: ['/noverify'] }] },
          { name: 'verify', url: tlsUrl, routes: [{ name: 'verify', paths: ['/verify'] }] },
        ],
      },
    });
    agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  });
  after(async () => {
    agent?.destroy();
    await sl?.stop();
    await fake?.close();
    tls?.closeAllConnections();
    tls?.close();
  });

  test('tls_verify is each service\'s own', async () => {
    for (const [p, status] of [['/verify', 502], ['/noverify', 200], ['/verify', 502], ['/noverify', 200], ['/up/echo', 200], ['/verify', 502]]) {
      const r = await request({ port: sl.proxyPort, agent, path: p });
      assert.equal(r.status, status, `${p}: ${r.text.slice(0, 200)}`);
    }
  });

  test('a large body sent from memory, then requests with none', async () => {
    const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(300 * 1024) }] });
    fake.clearRequests();
    const steps = [
      { method: 'POST', path: '/guarded/echo?step=0', body: big, headers: { 'content-type': 'application/json' } },
      { method: 'GET', path: '/up/echo?step=1' },
      { method: 'HEAD', path: '/up/echo?step=2' },
      { method: 'DELETE', path: '/up/echo?step=3' },
    ];
    for (const s of steps) {
      const r = await request({ port: sl.proxyPort, agent, method: s.method, path: s.path, headers: s.headers, body: s.body });
      assert.equal(r.status, 200, `${s.method} ${s.path}: ${r.text?.slice(0, 200)}`);
    }
    for (const [i, s] of steps.entries()) {
      const got = fake.requests.find((q) => q.query.step === String(i));
      assert.ok(got, `step ${i} reached the upstream`);
      assert.equal(got.method, s.method, `step ${i}`);
      const body = Buffer.from(s.body ?? '');
      assert.equal(got.bodyLength, body.length, `step ${i}`);
      assert.equal(got.bodySha256, sha(body), `step ${i}`);
    }
    // The progress callback of step 0 is gone: no curl progress meter.
    assert.ok(!/% Total/.test(sl.stderr()), 'curl progress meter on stderr');
  });
});
