// Kong's service timeouts: write_timeout bounds a pause while the request
// body is being sent, read_timeout a silence while waiting for the answer.
// A slow but steady upload must not be cut by read_timeout.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { assertErrorBody, binaryMissing, request, startSluice } from './lib/harness.mjs';

const skip = binaryMissing();
const BODY = Buffer.alloc(12 * 1024 * 1024, 'b');
let upstream, sl;

before(async () => {
  if (skip) return;
  upstream = http.createServer((req, res) => {
    if (req.url.startsWith('/stall')) {
      req.pause(); // never reads: the body stops flowing once the socket buffers are full
      return;
    }
    // Reads slowly but steadily: about 10 s for the whole body.
    let got = 0;
    req.on('data', (d) => {
      got += d.length;
      req.pause();
      setTimeout(() => req.resume(), 50);
    });
    req.on('end', () => res.end(JSON.stringify({ got })));
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${upstream.address().port}`;
  sl = await startSluice({
    workers: 1,
    config: { _format_version: '3.0', services: [
      { name: 'stall', url: `${url}/stall`, write_timeout: 700, read_timeout: 60000,
        routes: [{ name: 'stall', paths: ['/stall'] }] },
      // read_timeout covers what the upstream still has to read from the
      // socket buffers once the body has left (a few MB at this pace).
      { name: 'slow', url: `${url}/slow`, write_timeout: 1000, read_timeout: 5000,
        routes: [{ name: 'slow', paths: ['/slow'] }] },
    ] },
  });
});

after(async () => {
  if (sl) await sl.stop();
  upstream?.close();
});

test('an upstream that stops reading the body: 504 after write_timeout, not read_timeout', { skip, timeout: 30000 }, async () => {
  const t0 = Date.now();
  const r = await request({ port: sl.proxyPort, method: 'POST', path: '/stall', body: BODY, timeoutMs: 20000 });
  assertErrorBody(r, 504, /timing out/);
  assert.ok(Date.now() - t0 < 10000, `answered after ${Date.now() - t0} ms`);
});

test('a slow, steady upload longer than read_timeout completes', { skip, timeout: 30000 }, async () => {
  const t0 = Date.now();
  const r = await request({ port: sl.proxyPort, method: 'POST', path: '/slow', body: BODY, timeoutMs: 25000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().got, BODY.length);
  assert.ok(Date.now() - t0 > 5000, 'the upload took longer than read_timeout');
});
