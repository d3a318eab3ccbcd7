// sluice reuses libcurl easy handles from one request to the next with
// their shared options kept (src/upstream.c): nothing a request set for
// itself (method, body, streamed upload, header list) may reach the next
// one. One worker, one client connection, one upstream connection, so every
// request below runs on the handle the previous one used.
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, startSluice } from './lib/harness.mjs';

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
