// The client side of HTTP/1.1 as sluice speaks it (src/client_conn.c):
// request bodies streaming to the upstream while the client still sends
// them, JSON errors for requests that cannot be parsed or framed, 413 before
// the body is read, Expect: 100-continue, pipelining, absolute-form targets
// and the client timeout. Everything over raw sockets where Node's own
// client would refuse to send what we test.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { assertErrorBody, binaryMissing, rawRequest, request, sleep, startSluice, waitFor } from './lib/harness.mjs';

const MAX_BODY = 1024 * 1024;

// Parses one or more HTTP/1.1 responses with Content-Length bodies.
function parseResponses(buf) {
  const out = [];
  let s = buf.toString('latin1');
  while (s.length) {
    const end = s.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = s.slice(0, end);
    const [statusLine, ...lines] = head.split('\r\n');
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    const body = s.slice(end + 4, end + 4 + len);
    out.push({ status: Number(statusLine.split(' ')[1]), statusLine, headers, text: body, json: () => JSON.parse(body) });
    s = s.slice(end + 4 + len);
  }
  return out;
}

describe('client HTTP/1.1', { skip: binaryMissing() }, () => {
  let upstream, sl;
  // What the upstream saw of each request, by x-test-id.
  const seen = new Map();

  before(async () => {
    upstream = http.createServer((req, res) => {
      const id = req.headers['x-test-id'] ?? '-';
      const rec = { method: req.method, url: req.url, headers: req.headers, firstByteAt: 0, bytes: 0, hash: createHash('sha256'), chunks: [] };
      seen.set(id, rec);
      if (req.url.startsWith('/stall')) {
        // Never reads: the body stops flowing once the socket buffers are full.
        req.pause();
        return;
      }
      req.on('data', (d) => {
        if (!rec.firstByteAt) rec.firstByteAt = Date.now();
        rec.bytes += d.length;
        rec.hash.update(d);
        if (rec.bytes < 65536) rec.chunks.push(d);
      });
      req.on('end', () => {
        const body = JSON.stringify({ method: req.method, url: req.url, bytes: rec.bytes, sha256: rec.hash.digest('hex'), host: req.headers.host ?? null, te: req.headers['transfer-encoding'] ?? null });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${upstream.address().port}`;
    sl = await startSluice({
      workers: 1,
      args: ['--max-body-size', String(MAX_BODY), '--client-timeout', '2'],
      config: { _format_version: '3.0', services: [
        { name: 'stall', url, routes: [{ name: 'stall', paths: ['/stall'], strip_path: false }] },
        { name: 'up', url, routes: [
        { name: 'up', paths: ['/up'] },
        // A plugin that reads the body (needs_body): the core reads it whole first.
        { name: 'deco', paths: ['/deco'], plugins: [{ name: 'ai-prompt-decorator', config: { prompts: { prepend: [{ role: 'system', content: 'Be brief.' }] } } }] },
      ] }] },
    });
  });
  after(async () => {
    await sl?.stop();
    upstream?.close();
  });

  for (const framing of ['content-length', 'chunked']) {
    test(`a request body streams to the upstream while the client is still sending it (${framing})`, async () => {
      const id = `stream-${framing}`;
      const first = randomBytes(100 * 1024), second = randomBytes(300 * 1024);
      const sock = net.connect(sl.proxyPort, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      const chunk = (b) => (framing === 'chunked' ? Buffer.concat([Buffer.from(b.length.toString(16) + '\r\n'), b, Buffer.from('\r\n')]) : b);
      const lenHeader = framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${first.length + second.length}`;
      sock.write(`POST /up/stream HTTP/1.1\r\nHost: t\r\nX-Test-Id: ${id}\r\n${lenHeader}\r\n\r\n`);
      sock.write(chunk(first));
      const reply = [];
      sock.on('data', (d) => reply.push(d));
      // The upstream sees the first part while the rest has not been sent.
      assert.ok(await waitFor(() => seen.get(id)?.bytes >= first.length), 'the first part reached the upstream before the client finished');
      assert.equal(seen.get(id).bytes, first.length, 'the upstream got exactly what was sent so far');
      sock.write(chunk(second));
      if (framing === 'chunked') sock.write('0\r\n\r\n');
      assert.ok(await waitFor(() => parseResponses(Buffer.concat(reply)).length === 1), 'an answer came');
      sock.destroy();
      const [res] = parseResponses(Buffer.concat(reply));
      assert.equal(res.status, 200, res.text);
      const j = res.json();
      assert.equal(j.bytes, first.length + second.length);
      assert.equal(j.sha256, createHash('sha256').update(first).update(second).digest('hex'));
      assert.equal(j.te, framing === 'chunked' ? 'chunked' : null, 'framing towards the upstream');
    });
  }

  test('a plugin that reads the body gets it whole, even when it arrives in slow chunks', async () => {
    const id = 'deco-slow';
    const json = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello there' }] });
    const a = Buffer.from(json.slice(0, 20)), b = Buffer.from(json.slice(20));
    const sock = net.connect(sl.proxyPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const reply = [];
    sock.on('data', (d) => reply.push(d));
    sock.write(`POST /deco/chat HTTP/1.1\r\nHost: t\r\nX-Test-Id: ${id}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    sock.write(`${a.length.toString(16)}\r\n${a}\r\n`);
    await sleep(300);
    assert.equal(seen.has(id), false, 'nothing reached the upstream before the body was complete');
    sock.write(`${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`);
    assert.ok(await waitFor(() => parseResponses(Buffer.concat(reply)).length === 1), 'an answer came');
    sock.destroy();
    const [res] = parseResponses(Buffer.concat(reply));
    assert.equal(res.status, 200, res.text);
    const rec = seen.get(id);
    assert.equal(rec.headers['transfer-encoding'], undefined, 'the re-serialised body has a length');
    const sent = JSON.parse(Buffer.concat(rec.chunks).toString());
    assert.deepEqual(sent.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }]);
  });

  test('a small body of known length is read whole first, then sent upstream with its head (as nginx buffers)', async () => {
    const id = 'small-split';
    const sock = net.connect(sl.proxyPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const reply = [];
    sock.on('data', (d) => reply.push(d));
    sock.write(`POST /up/small HTTP/1.1\r\nHost: t\r\nX-Test-Id: ${id}\r\nContent-Length: 10\r\n\r\n`);
    await sleep(300);
    assert.equal(seen.has(id), false, 'the upstream was not called before the body was complete');
    sock.write('0123456789');
    assert.ok(await waitFor(() => parseResponses(Buffer.concat(reply)).length === 1), 'an answer came');
    sock.destroy();
    const [res] = parseResponses(Buffer.concat(reply));
    assert.equal(res.status, 200);
    assert.equal(res.json().bytes, 10);
    assert.equal(seen.get(id).headers['content-length'], '10');
  });

  test('a client that leaves while reading is paused (pipeline buffer full) is noticed at once', async () => {
    // The request waits on an upstream that never answers; 100 KiB of
    // pipelined bytes fill the connection's buffer, so sluice stops reading
    // it. The client's close must still end the request (EPOLLRDHUP), not
    // wait for read_timeout (60 s).
    const sock = net.connect(sl.proxyPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.on('error', () => {});
    sock.write('GET /stall/pipe HTTP/1.1\r\nHost: t\r\nX-Test-Id: pipe-stall\r\n\r\n');
    assert.ok(await waitFor(() => seen.has('pipe-stall')), 'the upstream got the request');
    sock.write(Buffer.alloc(100 * 1024, 0x61));
    await sleep(500);
    const leftAt = Date.now();
    sock.destroy();
    const line = await sl.waitForLog(/uri="\/stall\/pipe".*client_aborted=true/, { timeoutMs: 3000 });
    assert.match(line, /status=499/);
    assert.ok(Date.now() - leftAt < 2000, `noticed after ${Date.now() - leftAt} ms`);
  });

  test('a body larger than the socket buffers streams through with the upstream reading it all', async () => {
    const body = randomBytes(MAX_BODY);
    const r = await request({ port: sl.proxyPort, method: 'POST', path: '/up/big', headers: { 'x-test-id': 'big' }, body });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().sha256, createHash('sha256').update(body).digest('hex'));
  });

  const malformed = [
    ['a malformed request line', 'GET  / HTTP/1.1\r\nHost: t\r\n\r\n', 400, /request line|malformed/],
    ['an unsupported major HTTP version', 'GET / HTTP/2.0\r\nHost: t\r\n\r\n', 505, /HTTP version not supported/],
    ['HTTP/0.9 written as a version', 'GET / HTTP/0.9\r\nHost: t\r\n\r\n', 505, /HTTP version not supported/],
    ['a header with a space before the colon', 'GET / HTTP/1.1\r\nHost : t\r\n\r\n', 400, /colon/],
    ['a header without a colon', 'GET / HTTP/1.1\r\nHost: t\r\nnocolon\r\n\r\n', 400, /header/],
    ['both Content-Length and Transfer-Encoding', 'POST /up/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, /Content-Length and Transfer-Encoding/],
    ['two different Content-Lengths', 'POST /up/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400, /Content-Length/],
    ['a non-numeric Content-Length', 'POST /up/x HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n', 400, /Content-Length/],
    ['an HTTP/1.1 request without Host', 'GET /up/x HTTP/1.1\r\n\r\n', 400, /Host/],
    ['a transfer coding other than chunked', 'POST /up/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n', 501, /Transfer-Encoding/],
  ];
  for (const [what, data, status, re] of malformed) {
    test(`${what}: ${status} with a JSON body and a logged request id, connection closed`, async () => {
      const raw = await rawRequest({ port: sl.proxyPort, data, timeoutMs: 5000 });
      const [res] = parseResponses(raw);
      assert.ok(res, `an answer: ${raw.toString('latin1').slice(0, 200)}`);
      assert.equal(res.status, status, res.text);
      assert.match(res.headers['content-type'], /application\/json/);
      assert.match(res.headers.connection ?? '', /close/i);
      const j = res.json();
      assert.match(j.message, re);
      assert.match(j.request_id, /^[0-9a-f]{32}$/);
      assert.equal(res.headers['x-sluice-request-id'], j.request_id);
      const line = await sl.waitForLog(new RegExp(`request_id=${j.request_id}`));
      assert.match(line, new RegExp(`status=${status}\\b`));
      assert.equal(seen.has('-') && seen.get('-').url === '/x', false, 'nothing reached the upstream');
    });
  }

  test('a head over 64 KiB: 431 with a JSON body', async () => {
    const raw = await rawRequest({ port: sl.proxyPort, data: `GET /up/x HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`, timeoutMs: 5000 });
    const [res] = parseResponses(raw);
    assertErrorBody({ status: res.status, headers: res.headers, text: res.text, json: res.json }, 431, /too large/);
  });

  test('a malformed chunked body: 400 with a JSON body, never reaching the upstream whole', async () => {
    const raw = await rawRequest({ port: sl.proxyPort, data: 'POST /up/bad-chunk HTTP/1.1\r\nHost: t\r\nX-Test-Id: badchunk\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n', timeoutMs: 5000 });
    const [res] = parseResponses(raw);
    assert.ok(res, raw.toString('latin1'));
    assertErrorBody({ status: res.status, headers: res.headers, text: res.text, json: res.json }, 400, /chunked/);
  });

  test('413 as soon as the head declares a body over --max-body-size, without waiting for the body', async () => {
    const t0 = Date.now();
    const raw = await rawRequest({ port: sl.proxyPort, data: `POST /up/huge HTTP/1.1\r\nHost: t\r\nX-Test-Id: huge\r\nContent-Length: ${MAX_BODY * 10}\r\n\r\n`, timeoutMs: 5000 });
    const [res] = parseResponses(raw);
    assert.ok(res, raw.toString('latin1'));
    assertErrorBody({ status: res.status, headers: res.headers, text: res.text, json: res.json }, 413, /too large/);
    assert.ok(Date.now() - t0 < 1500, 'answered at once');
    assert.equal(seen.has('huge'), false, 'the upstream was not called');
  });

  test('Expect: 100-continue: 100 first, then the body, then the answer', async () => {
    const sock = net.connect(sl.proxyPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let got = Buffer.alloc(0);
    sock.on('data', (d) => (got = Buffer.concat([got, d])));
    sock.write('POST /up/expect HTTP/1.1\r\nHost: t\r\nX-Test-Id: expect\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    assert.ok(await waitFor(() => got.includes('\r\n\r\n')), 'an interim answer');
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    got = Buffer.alloc(0);
    sock.write('hello');
    assert.ok(await waitFor(() => parseResponses(got).length === 1), 'the final answer');
    sock.destroy();
    const [res] = parseResponses(got);
    assert.equal(res.status, 200);
    assert.equal(res.json().bytes, 5);
  });

  test('pipelined requests are answered in order on one connection', async () => {
    const data = ['a', 'b', 'c'].map((x) => `GET /up/pipe-${x} HTTP/1.1\r\nHost: t\r\nX-Test-Id: pipe-${x}\r\n\r\n`).join('') +
      'POST /up/pipe-d HTTP/1.1\r\nHost: t\r\nX-Test-Id: pipe-d\r\nContent-Length: 4\r\n\r\nbody' +
      'GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n';
    const raw = await rawRequest({ port: sl.proxyPort, data, timeoutMs: 5000 });
    const res = parseResponses(raw);
    assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 200, 404]);
    assert.deepEqual(res.slice(0, 4).map((r) => r.json().url), ['/pipe-a', '/pipe-b', '/pipe-c', '/pipe-d']);
    assert.equal(res[3].json().bytes, 4);
  });

  test('absolute-form request target: the authority is the Host', async () => {
    const raw = await rawRequest({ port: sl.proxyPort, data: 'GET http://example.test:8080/up/abs?q=1 HTTP/1.1\r\nHost: ignored\r\nX-Test-Id: abs\r\nConnection: close\r\n\r\n', timeoutMs: 5000 });
    const [res] = parseResponses(raw);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().url, '/abs?q=1');
    assert.equal(seen.get('abs').headers['x-forwarded-host'], 'example.test');
  });

  test('HTTP/1.0 with a Content-Length body, then the connection closes', async () => {
    const raw = await rawRequest({ port: sl.proxyPort, data: 'POST /up/ten HTTP/1.0\r\nX-Test-Id: ten\r\nContent-Length: 3\r\n\r\nabc', timeoutMs: 5000 });
    const [res] = parseResponses(raw);
    assert.equal(res.status, 200);
    assert.equal(res.json().bytes, 3);
    assert.match(res.headers.connection ?? '', /close/i);
  });

  test('an idle keep-alive connection is closed after --client-timeout', async () => {
    const sock = net.connect(sl.proxyPort, '127.0.0.1');
    const t0 = Date.now();
    const closed = await new Promise((resolve) => {
      sock.on('close', () => resolve(Date.now() - t0));
      sock.on('error', () => {});
      setTimeout(() => resolve(null), 6000);
    });
    sock.destroy();
    assert.ok(closed !== null, 'closed');
    assert.ok(closed >= 1500 && closed < 4500, `closed after ${closed} ms (timeout 2 s)`);
  });

  test('a head that never completes (slowloris) is closed after --client-timeout', async () => {
    const sock = net.connect(sl.proxyPort, '127.0.0.1');
    sock.on('error', () => {});
    sock.write('GET /up/x HTTP/1.1\r\nHost: t\r\n');
    const t0 = Date.now();
    const closed = await new Promise((resolve) => {
      sock.on('close', () => resolve(Date.now() - t0));
      setTimeout(() => resolve(null), 6000);
    });
    sock.destroy();
    assert.ok(closed !== null && closed < 4500, `closed after ${closed} ms`);
  });
});
