// Adversarial review of the client-connection layer (src/client_conn.c and
// its proxy.c side): lifetimes, backpressure both ways, timeouts, early
// answers while a body still streams, drain. The first and third tests
// failed before 2026-11-25's fixes (timer wrap, reading left paused).
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, rawRequest, request, sleep, startSluice, waitFor } from './lib/harness.mjs';

// Everything read on a socket, and whether it closed.
function collect(sock) {
  const st = { buf: Buffer.alloc(0), closed: false };
  sock.on('data', (d) => (st.buf = Buffer.concat([st.buf, d])));
  sock.on('close', () => (st.closed = true));
  sock.on('error', () => {});
  return st;
}

function statuses(buf) {
  return [...buf.toString('latin1').matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

function connect(port) {
  const sock = net.connect(port, '127.0.0.1');
  return new Promise((r) => sock.once('connect', () => r(sock)));
}

describe('client connections under review', { skip: binaryMissing() }, () => {
  let sl, upstream, rawUp, hole;
  const fillers = [];
  // The raw upstream's pending connections, by the path they asked for.
  const held = new Map();

  before(async () => {
    // An HTTP upstream: /silent reads the whole body and never answers;
    // anything else echoes how many body bytes it got.
    upstream = http.createServer((req, res) => {
      let n = 0;
      req.on('data', (d) => (n += d.length));
      req.on('end', () => {
        if (req.url.startsWith('/silent')) return; // never answers
        const body = JSON.stringify({ bytes: n, url: req.url });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
    // A raw upstream that reads the head and then stops reading (the body
    // piles up in sluice), answering only when the test says so.
    rawUp = net.createServer((s) => {
      let head = '';
      s.on('error', () => {});
      const onData = (d) => {
        head += d.toString('latin1');
        const m = /^[A-Z]+ (\S+)/.exec(head);
        if (!m || !head.includes('\r\n\r\n')) return;
        s.off('data', onData);
        s.pause();
        held.set(m[1], s);
      };
      s.on('data', onData);
    });
    await new Promise((r) => rawUp.listen(0, '127.0.0.1', r));
    // A listener that never accepts, its one-slot queue taken: connecting to
    // it hangs (SYNs dropped) until curl's connect timeout.
    hole = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const holePort = Number(await new Promise((r) => hole.stdout.once('data', (d) => r(String(d).trim()))));
    for (let i = 0; i < 3; i++) fillers.push(net.connect(holePort, '127.0.0.1').on('error', () => {}));
    await sleep(200);
    const url = `http://127.0.0.1:${upstream.address().port}`;
    const rawUrl = `http://127.0.0.1:${rawUp.address().port}`;
    sl = await startSluice({
      workers: 1,
      args: ['--max-body-size', String(64 * 1024 * 1024), '--client-timeout', '30', '--drain-timeout', '5'],
      config: {
        _format_version: '3.0',
        services: [
          { name: 'up', url, write_timeout: 300, read_timeout: 1500, routes: [{ name: 'up', paths: ['/up'] }] },
          { name: 'raw', url: rawUrl, routes: [{ name: 'raw', paths: ['/raw'] }] },
          { name: 'hole', url: `http://127.0.0.1:${holePort}`, connect_timeout: 1500, retries: 0, routes: [{ name: 'hole', paths: ['/hole'] }] },
        ],
      },
    });
  });

  after(async () => {
    for (const s of held.values()) s.destroy();
    await sl?.stop();
    upstream?.close();
    rawUp?.close();
    for (const f of fillers) f.destroy();
    hole?.kill();
  });

  test('read_timeout still applies after the client paused its streamed body longer than write_timeout',
    { timeout: 20000 }, async () => {
      const sock = await connect(sl.proxyPort);
      const st = collect(sock);
      sock.write('POST /up/silent HTTP/1.1\r\nHost: t\r\nContent-Length: 200\r\n\r\n');
      sock.write('a'.repeat(100));
      await sleep(1200); // the upload waits on the client for 4x write_timeout
      sock.write('b'.repeat(100));
      const t0 = Date.now();
      // The upstream has the whole body and stays silent: 504 after read_timeout (1.5 s).
      const got = await waitFor(() => statuses(st.buf).length > 0, 8000);
      sock.destroy();
      assert.ok(got, `no answer ${Date.now() - t0} ms after the body was complete (read_timeout is 1500 ms)`);
      assert.deepEqual(statuses(st.buf), [504]);
    });

  test('an early upstream answer while reading is paused on a full body buffer does not strand the connection',
    { timeout: 20000 }, async () => {
      const sock = await connect(sl.proxyPort);
      const st = collect(sock);
      // 40 MiB: more than every buffer on the way (the upstream's and
      // sluice's socket buffers, loopback autotuned up to 32 MiB here, and
      // sluice's own 256 KiB), so that sluice has to stop reading.
      const L = 40 * 1024 * 1024;
      sock.write(`POST /raw/early HTTP/1.1\r\nHost: t\r\nContent-Length: ${L}\r\n\r\n`);
      sock.write(Buffer.alloc(L, 0x61));
      assert.ok(await waitFor(() => held.has('/early')), 'the upstream got the request head');
      await sleep(1000);
      // The pause reached the client: part of its body is still unsent.
      assert.ok(sock.writableLength > 0, 'sluice kept reading a body nobody consumed');
      held.get('/early').write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n');
      assert.ok(await waitFor(() => statuses(st.buf).length === 1), 'the 413 reached the client');
      assert.equal(statuses(st.buf)[0], 413);
      // The client sent its whole body; the connection must now either take
      // the next request or close, not sit there unread and untimed.
      sock.write('GET /up/next HTTP/1.1\r\nHost: t\r\n\r\n');
      const moved = await waitFor(() => st.closed || statuses(st.buf).length === 2, 5000);
      sock.destroy();
      assert.ok(moved, `connection stuck after the early answer: ${st.buf.toString('latin1').slice(0, 300)}`);
    });
  test('a 504 (connect timeout) while reading is paused on a full streamed body does not strand the keep-alive connection',
    { timeout: 20000 }, async () => {
      const sock = await connect(sl.proxyPort);
      const st = collect(sock);
      // 600 KiB: sluice buffers 256 KiB+ (curl is still connecting), stops
      // reading, and after the 504 less than 1 MiB is left: keep-alive.
      const L = 600 * 1024;
      sock.write(`POST /hole/x HTTP/1.1\r\nHost: t\r\nContent-Length: ${L}\r\n\r\n`);
      sock.write(Buffer.alloc(L, 0x62));
      assert.ok(await waitFor(() => statuses(st.buf).length === 1, 8000), 'an answer came');
      assert.equal(statuses(st.buf)[0], 504);
      sock.write('GET /up/next HTTP/1.1\r\nHost: t\r\n\r\n');
      const moved = await waitFor(() => st.closed || statuses(st.buf).length === 2, 5000);
      sock.destroy();
      assert.ok(moved, `connection neither reads nor closes after the 504: ${st.buf.toString('latin1').slice(0, 200)}`);
    });
});
