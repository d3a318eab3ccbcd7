// Message framing at the edges: HTTP/1.0 keep-alive clients and bodies of
// unknown length, a stream the upstream breaks while the client is still
// reading, and the number of connect retries.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { binaryMissing, closedPort, rawRequest, sleep, startSluice } from './lib/harness.mjs';

const skip = binaryMissing();
let upstream, sl;

before(async () => {
  if (skip) return;
  upstream = http.createServer((req, res) => {
    if (req.url.startsWith('/chunked')) {
      res.writeHead(200, { 'content-type': 'text/plain' }); // no length: chunked to us
      res.write('hello ');
      setTimeout(() => res.end('world'), 20);
    } else if (req.url.startsWith('/broken')) {
      // 3 MB of a promised 4 MB, then the connection ends.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 4 * 1024 * 1024 });
      res.write(Buffer.alloc(3 * 1024 * 1024, 'x'), () => setTimeout(() => res.socket.destroy(), 50));
    } else {
      res.end('ok');
    }
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${upstream.address().port}`;
  const dead = `http://127.0.0.1:${await closedPort()}`;
  sl = await startSluice({
    workers: 1,
    args: ['--log-level', 'debug'],
    config: { _format_version: '3.0', services: [
      { name: 'up', url, routes: [{ name: 'up', paths: ['/'] }] },
      { name: 'dead0', url: dead, retries: 0, routes: [{ name: 'dead0', paths: ['/dead0'] }] },
      { name: 'dead2', url: dead, retries: 2, routes: [{ name: 'dead2', paths: ['/dead2'] }] },
    ] },
  });
});

after(async () => {
  if (sl) await sl.stop();
  upstream?.close();
});

test('HTTP/1.0 keep-alive client, body of unknown length: no false Content-Length, the close ends the body', { skip }, async () => {
  const raw = (await rawRequest({ port: sl.proxyPort, data: 'GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', timeoutMs: 5000 })).toString('latin1');
  const [head, body] = raw.split('\r\n\r\n');
  // RFC 9110 §2.5: the server's own version (1.1), as nginx answers too.
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, /\r\nConnection: close(\r\n|$)/i, 'the close delimits the body');
  assert.doesNotMatch(head, /content-length/i, head);
  assert.doesNotMatch(head, /transfer-encoding/i, 'no chunked encoding for HTTP/1.0');
  assert.equal(body, 'hello world');
});

test('the upstream breaks a body while the client reads slowly: the client sees the cut soon after the last byte', { skip, timeout: 30000 }, async () => {
  const sock = net.connect(sl.proxyPort, '127.0.0.1');
  sock.write('GET /broken HTTP/1.1\r\nHost: x\r\n\r\n');
  let bytes = 0, lastData = 0;
  // Read slowly: pause for 30 ms after every read.
  sock.on('data', (d) => {
    bytes += d.length;
    lastData = Date.now();
    sock.pause();
    setTimeout(() => sock.resume(), 30);
  });
  const closedAt = await new Promise((resolve) => {
    sock.on('close', () => resolve(Date.now()));
    setTimeout(() => resolve(null), 20000);
  });
  sock.destroy();
  assert.ok(closedAt, 'the connection was closed by sluice');
  assert.ok(bytes > 3 * 1024 * 1024 && bytes < 4 * 1024 * 1024, `got ${bytes} bytes`);
  assert.ok(closedAt - lastData < 2000, `closed ${closedAt - lastData} ms after the last byte`);
  await sleep(100);
  const line = sl.lines.find((l) => l.includes('uri="/broken"'));
  assert.ok(line, 'logged');
  assert.match(line, /error="upstream stream broke/);
  assert.doesNotMatch(line, /client_aborted=true/);
});

test('retries counts retries: 0 means one attempt, 2 means three', { skip }, async () => {
  for (const [path, want] of [['/dead0', 0], ['/dead2', 2]]) {
    const mark = sl.lines.length;
    const raw = (await rawRequest({ port: sl.proxyPort, data: `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n` })).toString('latin1');
    assert.match(raw, /^HTTP\/1\.1 502/);
    await sleep(50);
    const retries = sl.lines.slice(mark).filter((l) => l.includes('retrying upstream connect')).length;
    assert.equal(retries, want, path);
  }
});
