// Streaming through the daemon: chunked upstream replies reach the client
// chunk by chunk (first bytes before the upstream finished), SSE frames
// pass through as they are produced, a client that goes away aborts the
// upstream transfer, a client that does not read pauses it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, sleep, startSluice } from './lib/harness.mjs';

// Opens a GET and resolves with the response object (not yet read).
function open(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false }, resolve);
    req.setTimeout(20000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

describe('streaming', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({
      config: {
        services: [
          { name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] },
          { name: 'llm', url: `${fake.url}/v1`, routes: [{ name: 'llm', paths: ['/llm/v1'] }] },
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  test('chunks reach the client while the upstream is still sending', async () => {
    fake.clearRequests();
    const t0 = Date.now();
    const res = await open(sl.proxyPort, '/up/chunked?n=5&size=100&delay=400');
    assert.equal(res.statusCode, 200);
    const arrivals = [];
    const parts = [];
    let upstreamStateAtFirst;
    await new Promise((resolve, reject) => {
      res.on('data', (d) => {
        if (!arrivals.length) upstreamStateAtFirst = fake.requests.find((r) => r.path === '/chunked')?.state;
        arrivals.push(Date.now() - t0);
        parts.push(d);
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    const body = Buffer.concat(parts);
    assert.equal(body.length, 500);
    assert.equal(createHash('sha256').update(body).digest('hex'), res.headers['x-fake-sha256']);
    assert.equal(upstreamStateAtFirst, 'open', 'first bytes must arrive before the upstream finished');
    assert.ok(arrivals[0] < 1000, `first chunk after ${arrivals[0]} ms (upstream needs 1600 ms for all)`);
    assert.ok(arrivals.length >= 4, `body arrived in ${arrivals.length} reads: ${arrivals}`);
  });

  test('SSE frames pass through one by one (OpenAI stream, plain proxy)', async () => {
    const client = new OpenAI({ apiKey: 'sk-x', baseURL: `${sl.proxyUrl}/llm/v1`, maxRetries: 0, timeout: 10000 });
    const t0 = Date.now();
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'one two three four five' }] },
      { headers: { 'x-fake-frame-delay-ms': '150' } },
    );
    const times = [];
    let text = '';
    let usage;
    for await (const c of stream) {
      times.push(Date.now() - t0);
      if (c.choices.length) text += c.choices[0].delta.content ?? '';
      else usage = c.usage;
    }
    assert.equal(text, 'echo: one two three four five');
    assert.equal(usage.total_tokens, 11);
    assert.ok(times[times.length - 1] - times[0] > 1000, `chunks spread over ${times[times.length - 1] - times[0]} ms: ${times}`);
  });

  test('SSE frames cut at odd byte boundaries are passed through byte for byte', async () => {
    const body = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'odd cuts here' }] });
    const headers = { authorization: 'Bearer k', 'content-type': 'application/json', 'x-fake-split': 'odd', 'x-fake-frame-delay-ms': '1' };
    fake.clearRequests();
    const r = await request({ port: sl.proxyPort, method: 'POST', path: '/llm/v1/chat/completions', headers, body });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/event-stream/);
    const frames = r.text.split('\n\n').filter(Boolean);
    assert.equal(frames.at(-1), 'data: [DONE]');
    const text = frames.slice(0, -1).map((f) => JSON.parse(f.slice(6)).choices[0].delta.content ?? '').join('');
    assert.equal(text, 'echo: odd cuts here');
  });

  test('a 4 MB chunked body arrives intact', async () => {
    const r = await request({ port: sl.proxyPort, path: '/up/chunked?n=64&size=65536', timeoutMs: 30000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 64 * 65536);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), r.headers['x-fake-sha256']);
  });

  test('a client that goes away mid-stream aborts the upstream transfer', async () => {
    fake.clearRequests();
    // 200 chunks, 50 ms apart: 10 s if nobody stops it.
    const res = await open(sl.proxyPort, '/up/chunked?n=200&size=1000&delay=50&abort=1');
    let got = 0;
    await new Promise((resolve) => {
      res.on('data', (d) => {
        got += d.length;
        if (got >= 2000) {
          res.destroy();
          resolve();
        }
      });
    });
    const rec = await fake.waitFor((r) => r.query.abort === '1' && r.state !== 'open', 3000);
    assert.equal(rec.state, 'aborted');
    assert.ok(rec.bytesFlushed < 200 * 1000, `upstream sent ${rec.bytesFlushed} bytes`);
    const ok = await request({ port: sl.proxyPort, path: '/up/echo' });
    assert.equal(ok.status, 200);
  });

  test('a client that does not read pauses the upstream (no unbounded buffering)', async () => {
    fake.clearRequests();
    // 128 MB offered in 64 KB chunks, as fast as the proxy takes them.
    const res = await open(sl.proxyPort, '/up/chunked?n=2048&size=65536&slow=1');
    res.pause();
    await sleep(2000);
    const rec = fake.requests.find((r) => r.query.slow === '1');
    assert.ok(rec, 'upstream saw the request');
    const flushed = rec.bytesFlushed;
    res.destroy();
    assert.ok(flushed < 48 * 1024 * 1024, `upstream got ${flushed} bytes out while the client read nothing`);
    await fake.waitFor((r) => r.query.slow === '1' && r.state === 'aborted', 3000);
  });
});
