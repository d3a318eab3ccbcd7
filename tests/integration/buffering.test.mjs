// Kong's route fields request_buffering and response_buffering (decK writes
// both on every route). sluice's defaults are false (stream both ways with
// backpressure); true changes what the upstream sees:
// - request_buffering: the upstream gets the request only once the client
//   has sent all of its body (nginx's proxy_request_buffering);
// - response_buffering: the upstream may send up to 8 MiB ahead of a client
//   that does not read (nginx's proxy_buffering, in memory and bounded).
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, listenLocal, sleep, startSluice } from './lib/harness.mjs';

const BIG = 24 * 1024 * 1024;

describe('request_buffering and response_buffering', { skip: binaryMissing() }, () => {
  let up, sl;
  const arrivals = new Map(); // request tag -> time the upstream saw its head
  const written = new Map(); // request tag -> response bytes the upstream got written so far
  before(async () => {
    up = await listenLocal(http.createServer((req, res) => {
      const tag = new URL(req.url, 'http://x').searchParams.get('tag');
      arrivals.set(tag, Date.now());
      if (req.url.startsWith('/big')) {
        // Writes as fast as the socket takes it, counting what it got out.
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let sent = 0;
        written.set(tag, 0);
        res.writeHead(200, { 'content-length': BIG });
        const pump = () => {
          while (sent < BIG) {
            sent += chunk.length;
            const more = res.write(chunk, () => written.set(tag, (written.get(tag) ?? 0) + chunk.length));
            if (!more) return res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      req.resume();
      req.on('end', () => res.end('ok'));
    }));
    const svc = (name, path, extra) => ({ name, url: up.url, routes: [{ name, paths: [path], strip_path: false, ...extra }] });
    sl = await startSluice({
      workers: 1,
      config: {
        services: [
          svc('stream-req', '/upload-streamed', {}),
          svc('buffer-req', '/upload-buffered', { request_buffering: true }),
          svc('stream-resp', '/big-streamed', {}),
          svc('buffer-resp', '/big-buffered', { response_buffering: true, request_buffering: true }),
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await up?.close();
  });

  // A chunked upload whose second half comes 600 ms after the first; resolves
  // with the time the last byte was sent.
  async function slowUpload(path, tag) {
    return new Promise((resolve, reject) => {
      const s = net.connect(sl.proxyPort, '127.0.0.1', async () => {
        s.write(`POST ${path}?tag=${tag} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n`);
        await sleep(600);
        const lastAt = Date.now();
        s.write('5\r\nworld\r\n0\r\n\r\n');
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('end', () => resolve({ lastAt, out }));
      });
      s.on('error', reject);
    });
  }

  test('request_buffering: true: the upstream sees the request only after the whole body; false: before it', async () => {
    const streamed = await slowUpload('/upload-streamed', 's1');
    assert.match(streamed.out, /^HTTP\/1\.1 200 /);
    assert.ok(arrivals.get('s1') < streamed.lastAt - 300, `streamed: upstream saw it ${streamed.lastAt - arrivals.get('s1')} ms before the last byte`);
    const buffered = await slowUpload('/upload-buffered', 'b1');
    assert.match(buffered.out, /^HTTP\/1\.1 200 /);
    assert.ok(arrivals.get('b1') >= buffered.lastAt, `buffered: upstream saw it ${buffered.lastAt - arrivals.get('b1')} ms before the last byte`);
  });

  // Opens a GET for a 24 MiB body and reads nothing; returns how much the
  // upstream got written before it was held back.
  async function stalledRead(path, tag) {
    const s = net.connect(sl.proxyPort, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    s.pause();
    s.write(`GET ${path}?tag=${tag} HTTP/1.1\r\nHost: x\r\n\r\n`);
    // Until the upstream is held back: no progress for 500 ms (6 s at most,
    // for a loaded machine).
    let n = -1;
    for (const t0 = Date.now(); Date.now() - t0 < 6000;) {
      await sleep(500);
      const now = written.get(tag) ?? 0;
      if (now === n && now > 0) break;
      n = now;
    }
    s.destroy();
    return n;
  }

  test('response_buffering: true lets the upstream run several MiB further ahead of a client that does not read', async () => {
    const streamed = await stalledRead('/big-streamed', 'r1');
    const buffered = await stalledRead('/big-buffered', 'r2');
    // Kernel socket buffers (loopback autotuning: several MB, not the same
    // for every connection) count in both; the 8 MiB read-ahead is ours.
    assert.ok(buffered - streamed >= 4 * 1024 * 1024, `buffered ${buffered} vs streamed ${streamed} bytes written upstream`);
    assert.ok(buffered < BIG, `bounded: ${buffered} of ${BIG}`);
  });

  test('a route exported by decK (both fields, Kong defaults) loads', async () => {
    await sl.reload({ services: [{ name: 'deck', url: up.url, routes: [{ name: 'deck', paths: ['/d'], request_buffering: true, response_buffering: true, https_redirect_status_code: 426, path_handling: 'v0', preserve_host: false, protocols: ['http', 'https'], regex_priority: 0, strip_path: true }] }] });
    const r = await new Promise((resolve) => http.get({ port: sl.proxyPort, path: '/d/x?tag=d' }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }));
    assert.equal(r, 200);
  });
});
