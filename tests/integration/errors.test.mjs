// What the daemon answers itself: 404 (no route), 413 (body too large),
// 502 (upstream refused, garbage, closed, reset) and 504 (upstream timeout),
// with the JSON error body and the request id in the log line.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { assertErrorBody, binaryMissing, closedPort, request, startSluice } from './lib/harness.mjs';

const MAX_BODY = 64 * 1024;

describe('error responses', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    const dead = await closedPort();
    sl = await startSluice({
      args: ['--max-body-size', String(MAX_BODY)],
      config: {
        services: [
          { name: 'up', url: fake.url, read_timeout: 500, routes: [{ name: 'up', paths: ['/up'] }] },
          { name: 'dead', url: `http://127.0.0.1:${dead}`, connect_timeout: 2000, routes: [{ name: 'dead', paths: ['/dead'] }] },
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  async function logged(id, status) {
    const line = await sl.waitForLog(new RegExp(`request_id=${id}`));
    assert.match(line, new RegExp(`status=${status}\\b`), line);
  }

  test('404 when no route matches', async () => {
    const r = await request({ port: sl.proxyPort, path: '/nothing/here' });
    assert.equal(r.status, 404);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.equal(r.json().message, 'no Route matched with those values');
    assert.equal(fake.requests.filter((x) => x.path.includes('nothing')).length, 0);
  });

  test('413 when the body is over --max-body-size (Content-Length and chunked)', async () => {
    fake.clearRequests();
    const ok = await request({ port: sl.proxyPort, method: 'POST', path: '/up/echo', body: randomBytes(MAX_BODY) });
    assert.equal(ok.status, 200);
    let r;
    try {
      r = await request({ port: sl.proxyPort, method: 'POST', path: '/up/echo', body: randomBytes(MAX_BODY + 1) });
    } catch (e) {
      assert.fail(`expected a 413 answer, the connection failed instead: ${e.message}`);
    }
    assert.equal(r.status, 413);
    let chunked;
    try {
      chunked = await request({ port: sl.proxyPort, method: 'POST', path: '/up/echo', headers: { 'transfer-encoding': 'chunked' }, body: randomBytes(4 * MAX_BODY) });
    } catch (e) {
      assert.fail(`expected a 413 answer to the chunked body, the connection failed instead: ${e.message}`);
    }
    assert.equal(chunked.status, 413);
    assert.equal(fake.requests.filter((x) => x.bodyLength > MAX_BODY).length, 0, 'oversized body reached the upstream');
  });

  test('502 when the upstream refuses the connection', async () => {
    const r = await request({ port: sl.proxyPort, path: '/dead/x' });
    const j = assertErrorBody(r, 502);
    await logged(j.request_id, 502);
  });

  test('502 when the upstream answers garbage', async () => {
    const r = await request({ port: sl.proxyPort, path: '/up/garbage' });
    const j = assertErrorBody(r, 502);
    await logged(j.request_id, 502);
  });

  test('502 when the upstream closes without answering', async () => {
    const r = await request({ port: sl.proxyPort, path: '/up/close' });
    assertErrorBody(r, 502);
  });

  test('upstream reset mid-body: 502, or a response the client can tell is incomplete', async () => {
    let r;
    try {
      r = await request({ port: sl.proxyPort, path: '/up/reset' });
    } catch (e) {
      assert.ok(!e.partial || e.partial.length < 1000, 'a truncated body must not be complete');
      return;
    }
    // Answered: only acceptable as a 502 error, never as a clean 200.
    assertErrorBody(r, 502);
  });

  test('504 when the upstream does not answer within read_timeout', async () => {
    const t0 = Date.now();
    const r = await request({ port: sl.proxyPort, path: '/up/hang', timeoutMs: 10000 });
    const elapsed = Date.now() - t0;
    const j = assertErrorBody(r, 504);
    assert.ok(elapsed >= 400 && elapsed < 5000, `504 after ${elapsed} ms with read_timeout 500`);
    await logged(j.request_id, 504);
    await fake.waitFor((x) => x.path === '/hang' && x.state === 'aborted', 3000);
  });

  test('504 also when the upstream stalls mid-body', async () => {
    // Headers at once, then a 3 s pause between chunks: longer than read_timeout.
    let r;
    try {
      r = await request({ port: sl.proxyPort, path: '/up/chunked?n=3&size=10&delay=3000', timeoutMs: 10000 });
    } catch (e) {
      assert.ok(!/timed out/.test(e.message), `the daemon must end a stalled transfer itself: ${e.message}`);
      return;
    }
    assert.ok(r.status === 504 || r.body.length < 30, `status ${r.status}, ${r.body.length} bytes`);
  });

  test('the daemon still serves after all of these', async () => {
    const r = await request({ port: sl.proxyPort, path: '/up/echo' });
    assert.equal(r.status, 200);
    const st = await sl.status();
    assert.ok(st.requests >= 8, `requests served: ${st.requests}`);
  });
});
