// RFC 9110 9.2.2: "A proxy MUST NOT automatically retry non-idempotent
// requests." libcurl on its own sends a request again on a fresh connection
// when a reused keep-alive connection ends without a byte of answer; it
// cannot tell an upstream that closed before reading from one that read the
// request, acted on it (an LLM call billed) and then died. sluice lets it do
// so for idempotent methods only, as nginx (since 1.9.13) and Kong do; a POST
// gets a 502 instead of a second delivery.
//
// The upstream here answers the first request of its first connection and
// keeps the connection; on that same connection it reads the next request
// whole and closes without answering. Every later connection answers.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, test } from 'node:test';

import { assertErrorBody, binaryMissing, request, startSluice } from './lib/harness.mjs';

function dyingUpstream() {
  const seen = []; // every request that arrived: { conn, method, path, body }
  let conns = 0;
  const server = net.createServer((sock) => {
    const connNo = ++conns;
    let served = 0;
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const body = buf.subarray(end + 4, end + 4 + len).toString('latin1');
        buf = buf.subarray(end + 4 + len);
        const [method, path] = head.split(' ');
        seen.push({ conn: connNo, method, path, body });
        if (connNo === 1 && served === 1) {
          sock.destroy(); // read it all, answered nothing
          return;
        }
        served++;
        const text = `${method} ${path} on ${connNo}`;
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    seen,
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections?.(); }),
  })));
}

const skip = binaryMissing();

describe('no automatic retry of non-idempotent requests (RFC 9110 9.2.2)', { skip }, () => {
  let sl;
  let up;
  after(async () => {
    await sl?.stop();
    await up?.close();
  });

  async function start() {
    await sl?.stop();
    await up?.close();
    up = await dyingUpstream();
    sl = await startSluice({
      workers: 1, // one worker: one upstream connection pool
      config: { services: [{ name: 'up', url: up.url, routes: [{ name: 'r', paths: ['/'] }] }] },
    });
  }

  // The warm-up request leaves connection 1 idle in sluice's pool; the next
  // request reuses it and the upstream drops it after reading that request.
  async function warmThen(method, body) {
    const warm = await request({ port: sl.proxyPort, path: '/warm' });
    assert.equal(warm.status, 200);
    assert.equal(warm.text, 'GET /warm on 1');
    return request({ port: sl.proxyPort, method, path: '/act', body,
      headers: body ? { 'content-type': 'application/json' } : {} });
  }

  test('a POST the upstream read and dropped is delivered once and answered 502', async () => {
    await start();
    const r = await warmThen('POST', '{"model":"m","messages":[]}');
    assertErrorBody(r, 502, /upstream/i);
    const posts = up.seen.filter((s) => s.path === '/act');
    assert.equal(posts.length, 1, `the POST reached the upstream ${posts.length} times`);
    assert.equal(posts[0].body, '{"model":"m","messages":[]}');
    const line = await sl.waitForLog(/status=502/);
    assert.match(line, /request_id=[0-9a-f]{32}/);
  });

  test('a streamed POST body (over 64 KiB) is not sent twice either', async () => {
    await start();
    const body = 'x'.repeat(200 * 1024);
    const r = await warmThen('POST', body);
    assertErrorBody(r, 502, /upstream/i);
    const posts = up.seen.filter((s) => s.path === '/act');
    assert.equal(posts.length, 1);
    assert.equal(posts[0].body.length, body.length);
  });

  test('a PATCH is not sent twice either', async () => {
    await start();
    const r = await warmThen('PATCH', '{"a":1}');
    assertErrorBody(r, 502, /upstream/i);
    assert.equal(up.seen.filter((s) => s.path === '/act').length, 1);
  });

  test('a GET is retried on a fresh connection and answered', async () => {
    await start();
    const r = await warmThen('GET');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'GET /act on 2');
    assert.deepEqual(up.seen.filter((s) => s.path === '/act').map((s) => s.conn), [1, 2]);
  });

  test('a PUT (idempotent) is retried with its body', async () => {
    await start();
    const r = await warmThen('PUT', '{"k":"v"}');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'PUT /act on 2');
    const puts = up.seen.filter((s) => s.path === '/act');
    assert.deepEqual(puts.map((s) => [s.conn, s.body]), [[1, '{"k":"v"}'], [2, '{"k":"v"}']]);
  });

  test('after the refused retry the next POST goes out on a fresh connection', async () => {
    await start();
    const r = await warmThen('POST', '{}');
    assert.equal(r.status, 502);
    const again = await request({ port: sl.proxyPort, method: 'POST', path: '/act', body: '{}' });
    assert.equal(again.status, 200);
    assert.match(again.text, /^POST \/act on \d+$/);
    assert.notEqual(again.text, 'POST /act on 1');
  });
});
