// A slow client must pause the upstream transfer rather than make sluice
// buffer the whole body: memory stays bounded, and everything still arrives.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { binaryMissing, sleep, startSluice } from './lib/harness.mjs';

const skip = binaryMissing();
const TOTAL = 64 * 1024 * 1024;
const CHUNK = Buffer.alloc(1024 * 1024, 'x');

let upstream, sluice, upstreamDone = false;

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

before(async () => {
  if (skip) return;
  // Writes 64 MiB as fast as the socket takes it.
  upstream = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
    let sent = 0;
    const pump = () => {
      while (sent < TOTAL) {
        sent += CHUNK.length;
        if (!res.write(CHUNK)) return res.once('drain', pump);
      }
      res.end(() => (upstreamDone = true));
    };
    pump();
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  sluice = await startSluice({
    workers: 1,
    config: { _format_version: '3.0',
      services: [{ name: 'big', url: `http://127.0.0.1:${upstream.address().port}`, routes: [{ name: 'r', paths: ['/'] }] }] },
  });
});

after(async () => {
  if (sluice) await sluice.stop();
  upstream?.close();
});

test('a client that does not read pauses the upstream; sluice memory stays bounded', { skip, timeout: 60000 }, async () => {
  const baseline = rssKiB(sluice.pid);
  const sock = net.connect(sluice.proxyPort, '127.0.0.1');
  sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
  // Count body bytes from the first read on (the head ends at the blank line).
  let head = Buffer.alloc(0), bodyBytes = -1;
  const onData = (d) => {
    if (bodyBytes < 0) {
      head = Buffer.concat([head, d]);
      const i = head.indexOf('\r\n\r\n');
      if (i < 0) return;
      bodyBytes = head.length - (i + 4);
      return;
    }
    bodyBytes += d.length;
  };
  sock.on('data', onData);
  while (bodyBytes < 0) await sleep(10);
  sock.pause();
  await sleep(1500);
  const held = rssKiB(sluice.pid) - baseline;
  assert.equal(upstreamDone, false, 'the upstream could not have finished: the transfer is paused');
  assert.ok(held < 24 * 1024, `sluice grew by ${held} KiB while the client did not read`);
  assert.ok(bodyBytes < TOTAL / 2, `the client had read only ${bodyBytes} bytes`);

  // Reading again resumes the transfer; every byte arrives.
  sock.resume();
  const deadline = Date.now() + 30000;
  while (bodyBytes < TOTAL && Date.now() < deadline) await sleep(20);
  sock.destroy();
  assert.equal(bodyBytes, TOTAL, 'every byte arrived once the client read again');
  assert.equal(upstreamDone, true);
});
