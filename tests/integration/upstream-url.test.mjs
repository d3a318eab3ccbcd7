// The request line the upstream receives, byte for byte. The core hands
// libcurl a pre-parsed URL for the common case (src/snapshot.h); these pin
// that nothing changes for the cases where a parsed URL and the whole URL
// string would differ: %XX escapes keep their case, a '#' part is not sent,
// dot segments of a service's own path are resolved, queries pass as sent.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { binaryMissing, listenLocal, rawRequest, requestLineRecorder, startSluice } from './lib/harness.mjs';

const skip = binaryMissing();
let upstream, sl;
const lines = [];

before(async () => {
  if (skip) return;
  upstream = requestLineRecorder({ lines }).server;
  const { port } = await listenLocal(upstream);
  sl = await startSluice({
    workers: 1, // one parsed-URL cache, so that the last test overflows it
    config: {
      _format_version: '3.0',
      services: [
        { name: 'plain', url: `http://127.0.0.1:${port}/base`, routes: [{ name: 'r', paths: ['/r'] }] },
        { name: 'dotted', url: `http://127.0.0.1:${port}/x/../base2`, routes: [{ name: 'd', paths: ['/d'] }] },
        { name: 'root', url: `http://127.0.0.1:${port}`, routes: [{ name: 'root', paths: ['/'], strip_path: false }] },
        // A URL a plugin sets: one per tenant here, more than a worker keeps parsed (64).
        {
          name: 'ai', url: `http://127.0.0.1:${port}`,
          routes: [{
            name: 'ai', paths: ['/ai'],
            plugins: [{
              name: 'ai-proxy',
              config: {
                route_type: 'llm/v1/chat',
                model: {
                  provider: 'openai', name: 'gpt-4o',
                  options: { upstream_url: `http://127.0.0.1:${port}/t/$(headers.x-tenant)/v1/chat/completions?v=%2F` },
                },
              },
            }],
          }],
        },
      ],
    },
  });
});

after(async () => {
  if (sl) await sl.stop();
  upstream?.close();
});

async function sent(target) {
  const before = lines.length;
  const r = await rawRequest({
    port: sl.proxyPort,
    data: `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
  });
  assert.match(r.toString('latin1'), /^HTTP\/1\.1 200 /, r.toString('latin1'));
  assert.equal(lines.length, before + 1);
  return lines[lines.length - 1];
}

const CASES = [
  ['/r/v1/chat/completions', 'GET /base/v1/chat/completions HTTP/1.1'],
  ['/r/a?q=1&b=x+y', 'GET /base/a?q=1&b=x+y HTTP/1.1'],
  ['/r', 'GET /base HTTP/1.1'],
  ['/r/a%2Fb?x=%2F&y=%7e', 'GET /base/a%2Fb?x=%2F&y=%7e HTTP/1.1'],
  ['/r/a%20b', 'GET /base/a%20b HTTP/1.1'],
  ['/r/a#frag', 'GET /base/a HTTP/1.1'],
  ['/r/a?q=1#frag', 'GET /base/a?q=1 HTTP/1.1'],
  ['/r/a;v=1/~u', 'GET /base/a;v=1/~u HTTP/1.1'],
  ['/d/y', 'GET /base2/y HTTP/1.1'],
  ['/other?x=[1]', 'GET /other?x=[1] HTTP/1.1'],
];

for (const [target, line] of CASES) {
  test(`${target} -> ${line}`, { skip }, async () => {
    assert.equal(await sent(target), line);
  });
}

test('URLs set by a plugin: each request goes to its own, past the parsed-URL cache and back', { skip }, async () => {
  const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
  // 100 tenants (more than the 64 URLs a worker keeps parsed), each twice,
  // in an order that mixes cached and uncached URLs.
  const tenants = [...Array(100).keys()].map((i) => `tenant${i}`);
  for (const t of [...tenants, ...tenants.reverse()]) {
    const before = lines.length;
    await rawRequest({
      port: sl.proxyPort,
      data: `POST /ai HTTP/1.1\r\nHost: x\r\nX-Tenant: ${t}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    });
    assert.equal(lines.length, before + 1, t);
    assert.equal(lines[lines.length - 1], `POST /t/${t}/v1/chat/completions?v=%2F HTTP/1.1`);
  }
});
