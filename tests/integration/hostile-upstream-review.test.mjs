// Adversarial review: a hostile or broken upstream, and compression
// (src/proxy.c: header_cb, check_upstream_length, on_upstream_headers,
// write_cb, gw_proxy_upstream_done; plugins/ai-proxy/ai_proxy.c: the
// request's Accept-Encoding, the reply's Content-Encoding).
//
// The upstream is a raw TCP server in this file writing exact bytes: status
// codes outside 100..599, an unasked 101, header lines without a colon or
// with a NUL, 10 000 fields, a 1 MB field, impossible lengths, bad chunk
// sizes, chunk extensions and trailers, bytes after the end of a reply on a
// keep-alive connection, HTTP/1.0 close-delimited replies, an answer before
// the request body, compressed replies and a compressed event stream. For
// each: what the client gets, whether the upstream connection is used
// again after a framing error (it must not be), and the access-log line.
//
// Not redone here (see upstream-framing, forwarding-review, failures-review):
// CL+TE, duplicate/invalid Content-Length, obs-fold, bad names / CR in a
// value, a 150 KB field, 103+100 on a plain route, Set-Cookie on a plain
// route, gzip passthrough with a Content-Length, unsolicited bytes arriving
// later on an idle connection.
//
// Tests marked todo assert the correct behaviour of a bug found by this
// review: they fail today, and the marker goes when it is fixed.
import assert from 'node:assert/strict';
import net from 'node:net';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import { assertErrorBody, binaryMissing, request, startSluice, waitFor } from './lib/harness.mjs';
import { assertChatCompletion, assertOpenaiError, logFields, postJson, postStream, streamChunks } from './lib/ai-helpers.mjs';

// --- replies --------------------------------------------------------------

const OAI = JSON.stringify({
  id: 'chatcmpl-hostile', object: 'chat.completion', created: 1700000000, model: 'gpt-4o',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi there' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
});
const ANT = JSON.stringify({
  id: 'msg_hostile', type: 'message', role: 'assistant', model: 'claude-x',
  content: [{ type: 'text', text: 'hi there' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 2 },
});
const chunk = (delta, finish) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const OAI_SSE = chunk({ role: 'assistant', content: 'hi there' }, null) + chunk({}, 'stop') + 'data: [DONE]\n\n';
const ant = (event, data) => `event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`;
const ANT_SSE = ant('message_start', { message: { id: 'msg_s', type: 'message', role: 'assistant', model: 'claude-x', content: [], usage: { input_tokens: 3, output_tokens: 0 } } })
  + ant('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })
  + ant('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'hi there' } })
  + ant('content_block_stop', { index: 0 })
  + ant('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } })
  + ant('message_stop', {});

const BR = zlib.brotliCompressSync(Buffer.from('hello, brotli'));
const SMUGGLED = 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED';

// "Status" + fields + a body with its Content-Length.
function fixed(status, fields, body) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
  return Buffer.concat([Buffer.from(`HTTP/1.1 ${status}\r\n${fields}Content-Length: ${b.length}\r\n\r\n`, 'latin1'), b]);
}
const chunked = (status, fields, body) => Buffer.from(`HTTP/1.1 ${status}\r\n${fields}Transfer-Encoding: chunked\r\n\r\n${body}`, 'latin1');

// An RFC 9110 12.5.3 server: with no Accept-Encoding any coding is
// acceptable, so it compresses unless the request says it may not.
function acceptsGzip(req) {
  const ae = req.fields['accept-encoding'];
  if (ae === undefined) return true;
  return /gzip|\*/i.test(ae) && !/gzip\s*;\s*q=0(\.0*)?\b/i.test(ae);
}

// The reply for a case: the X-Case request field (AI routes, whose path is
// fixed) or the last path segment (the plain route). A function gets the
// request; `onHead` cases answer before the request body.
const CASES = {
  // status lines
  s000: () => fixed('000 Zero', '', 'ok'),
  s099: () => fixed('099 Low', '', 'ok'),
  s600: () => fixed('600 Beyond', '', 'ok'),
  s999: () => fixed('999 Max', '', 'ok'),
  'no-reason': () => fixed('200', '', 'ok'),
  'no-reason-space': () => fixed('201 ', '', 'ok'),
  'repeated-100': () => Buffer.concat([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'.repeat(3)), fixed('200 OK', 'X-Final: 1\r\n', 'final')]),
  'unasked-101': () => Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW-UPGRADED-BYTES'),
  // header lines
  'no-colon': () => fixed('200 OK', 'X-A: 1\r\nthis line has no colon\r\nX-B: 2\r\n', 'ok'),
  'nul-in-value': () => fixed('200 OK', 'X-Nul: a\x00b\r\nX-B: 2\r\n', 'ok'),
  'lf-only': () => Buffer.from('HTTP/1.1 200 OK\nX-Lf: 1\nContent-Length: 2\n\nok'),
  'ten-thousand': () => fixed('200 OK', Array.from({ length: 10000 }, (_, i) => `X-H${i}: v${i}\r\n`).join(''), 'ok'),
  'one-mb-field': () => fixed('200 OK', `X-Big: ${'b'.repeat(1024 * 1024)}\r\n`, 'ok'),
  // lengths and chunks
  'cl-beyond-int64': () => Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok'),
  'cl-int64-max': () => Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nok'),
  'chunk-not-hex': () => chunked('200 OK', '', 'zz\r\nok\r\n0\r\n\r\n'),
  'chunk-negative': () => chunked('200 OK', '', '-2\r\nok\r\n0\r\n\r\n'),
  'chunk-overflow': () => chunked('200 OK', '', 'FFFFFFFFFFFFFFFFFF\r\nok\r\n0\r\n\r\n'),
  'te-unknown': () => Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\nok'),
  'chunk-ext-trailer': () => chunked('200 OK', 'Trailer: X-T\r\n', '2;name=value\r\nok\r\n3;x="q"\r\n!!!\r\n0;last\r\nX-T: tv\r\n\r\n'),
  // bytes after the end of a reply, in the same write
  'cl-then-more': () => Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok${SMUGGLED}`),
  'cl-then-lots': () => Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok${SMUGGLED.repeat(4000)}`),
  'chunked-then-more': () => chunked('200 OK', '', `2\r\nok\r\n0\r\n\r\n${SMUGGLED}`),
  'chunked-then-lots': () => chunked('200 OK', '', `2\r\nok\r\n0\r\n\r\n${SMUGGLED.repeat(4000)}`),
  // connection-delimited and early replies
  'http10-close': { close: true, reply: () => Buffer.from('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body') },
  'early-413': { onHead: true, close: true, reply: () => fixed('413 Payload Too Large', 'Connection: close\r\n', 'too big') },
  // compression, plain route
  br: () => fixed('200 OK', 'Content-Encoding: br\r\nContent-Type: text/plain\r\n', BR),
  'br-chunked': () => chunked('200 OK', 'Content-Encoding: br\r\n', `${BR.length.toString(16)}\r\n${BR.toString('latin1')}\r\n0\r\n\r\n`),
  // AI routes
  json: (req) => fixed('200 OK', 'Content-Type: application/json\r\n', req.ai),
  'json-cookies': (req) => fixed('200 OK', 'Content-Type: application/json\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\n', req.ai),
  'json-early-hints': (req) => Buffer.concat([Buffer.from('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n'), fixed('200 OK', 'Content-Type: application/json\r\n', req.ai)]),
  'json-http10': { close: true, reply: (req) => Buffer.from(`HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n${req.ai}`) },
  'json-short': { close: true, reply: (req) => Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${req.ai.length + 40}\r\n\r\n${req.ai}`) },
  'json-gzip': (req) => (acceptsGzip(req)
    ? fixed('200 OK', 'Content-Type: application/json\r\nContent-Encoding: gzip\r\nVary: Accept-Encoding\r\n', zlib.gzipSync(req.ai))
    : fixed('200 OK', 'Content-Type: application/json\r\nVary: Accept-Encoding\r\n', req.ai)),
  'sse-gzip': (req) => (acceptsGzip(req)
    ? chunked('200 OK', 'Content-Type: text/event-stream\r\nContent-Encoding: gzip\r\n', (() => { const z = zlib.gzipSync(req.sse); return `${z.length.toString(16)}\r\n${z.toString('latin1')}\r\n0\r\n\r\n`; })())
    : chunked('200 OK', 'Content-Type: text/event-stream\r\n', `${Buffer.byteLength(req.sse).toString(16)}\r\n${req.sse}\r\n0\r\n\r\n`)),
  // The first event, then a clean end of the body: no [DONE] / message_stop.
  'sse-no-end': (req) => {
    const first = req.sse.slice(0, req.sse.indexOf('\n\n') + 2);
    return chunked('200 OK', 'Content-Type: text/event-stream\r\n', `${Buffer.byteLength(first).toString(16)}\r\n${first}\r\n0\r\n\r\n`);
  },
  'sse-bad-chunk': (req) => {
    const first = req.sse.slice(0, req.sse.indexOf('\n\n') + 2);
    return chunked('200 OK', 'Content-Type: text/event-stream\r\n', `${Buffer.byteLength(first).toString(16)}\r\n${first}\r\nzz\r\nxx\r\n0\r\n\r\n`);
  },
};

// Records every connection ({reqs, closed}) and request ({path, fields, body}).
function rawUpstream() {
  const conns = [];
  const server = net.createServer((sock) => {
    const conn = { sock, reqs: [], closed: false };
    conns.push(conn);
    sock.on('close', () => (conn.closed = true));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let swallow = false;
    sock.on('data', (d) => {
      if (swallow) return;
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [line, ...rest] = buf.subarray(0, end).toString('latin1').split('\r\n');
        const fields = {};
        for (const l of rest) {
          const i = l.indexOf(':');
          fields[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
        }
        const [method, target] = line.split(' ');
        const path = target.split('?')[0];
        const name = fields['x-case'] ?? path.split('/').pop();
        const c = CASES[name];
        const spec = typeof c === 'function' ? { reply: c } : c;
        const len = Number(fields['content-length'] ?? 0);
        if (!spec?.onHead && buf.length < end + 4 + len) return; // the body is still coming
        const body = buf.subarray(end + 4, end + 4 + len).toString('latin1');
        const anthropic = path.endsWith('/v1/messages');
        const req = { method, target, path, name, fields, body, ai: anthropic ? ANT : OAI, sse: anthropic ? ANT_SSE : OAI_SSE };
        conn.reqs.push(req);
        const out = spec ? spec.reply(req) : Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`, 'latin1');
        if (spec?.onHead) {
          swallow = true;
          sock.end(out);
          return;
        }
        buf = buf.subarray(end + 4 + len);
        if (spec?.close) {
          sock.end(out);
          return;
        }
        sock.write(out);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    conns,
    url: `http://127.0.0.1:${server.address().port}`,
    connOf: (name) => conns.find((c) => c.reqs.some((r) => r.name === name)),
    reqOf: (name) => conns.flatMap((c) => c.reqs).find((r) => r.name === name),
    close() {
      for (const c of conns) c.sock.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  })));
}

// Raw bytes to the proxy; resolves {raw, head, status, fields, body, end}
// where end is 'close' (the proxy closed) or 'timeout' (we gave up); never
// rejects, so that a hang is an assertion, not a crash of the test.
function exchange(port, text, timeoutMs = 4000) {
  return new Promise((resolve) => {
    const parts = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from(text, 'latin1')));
    const done = (end) => {
      clearTimeout(timer);
      s.destroy();
      const raw = Buffer.concat(parts);
      const i = raw.indexOf('\r\n\r\n');
      const headText = (i < 0 ? raw : raw.subarray(0, i)).toString('latin1');
      const [line, ...rest] = headText.split('\r\n');
      const fields = rest.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
      resolve({ raw, line, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(line)?.[1] ?? 0), fields, body: i < 0 ? Buffer.alloc(0) : raw.subarray(i + 4), end });
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.on('data', (d) => parts.push(d));
    s.on('close', () => done('close'));
    s.on('error', () => {});
  });
}
const get = (port, path, timeoutMs) => exchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, timeoutMs);
const all = (fields, name) => fields.filter(([k]) => k === name).map(([, v]) => v);

// Decodes a chunked body; {body, complete} (complete: the 0-size chunk came).
function dechunk(buf) {
  const parts = [];
  let p = 0;
  for (;;) {
    const nl = buf.indexOf('\r\n', p);
    if (nl < 0) return { body: Buffer.concat(parts), complete: false };
    const size = parseInt(buf.subarray(p, nl).toString('latin1'), 16);
    if (size === 0) return { body: Buffer.concat(parts), complete: true };
    if (buf.length < nl + 2 + size) return { body: Buffer.concat(parts), complete: false };
    parts.push(buf.subarray(nl + 2, nl + 2 + size));
    p = nl + 2 + size + 2;
  }
}

const chatBody = (extra = {}) => ({ messages: [{ role: 'user', content: 'hi' }], ...extra });
const rawPost = (path, cs, body, more = '') => {
  const b = JSON.stringify(body);
  return `POST ${path} HTTP/1.1\r\nHost: x\r\nX-Case: ${cs}\r\nContent-Type: application/json\r\n${more}Content-Length: ${Buffer.byteLength(b)}\r\nConnection: close\r\n\r\n${b}`;
};

describe('a hostile upstream', { skip: binaryMissing() }, () => {
  let up, sl;
  before(async () => {
    up = await rawUpstream();
    const ai = (provider, name, path, auth) => ({
      route_type: 'llm/v1/chat', auth, model: { provider, name, options: { upstream_url: `${up.url}${path}` } },
    });
    sl = await startSluice({
      workers: 1,
      config: {
        services: [{
          // read_timeout bounds the hangs the todo tests find (60 s by default).
          name: 'raw', url: up.url, read_timeout: 2000, routes: [
            { name: 'plain', paths: ['/p'], strip_path: false },
            { name: 'oai', paths: ['/oai'], plugins: [{ name: 'ai-proxy', config: ai('openai', 'gpt-4o', '/v1/chat/completions', { header_name: 'Authorization', header_value: 'Bearer k' }) }] },
            { name: 'ant', paths: ['/ant'], plugins: [{ name: 'ai-proxy', config: ai('anthropic', 'claude-x', '/v1/messages', { header_name: 'x-api-key', header_value: 'k' }) }] },
          ],
        }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await up?.close();
  });

  // The access-log line of the one request to `uri` since mark, as fields.
  const logOf = async (uri, mark) => logFields(await sl.waitForLog(new RegExp(`uri="${uri.replace(/[?]/g, '\\?')}"`), { from: mark, timeoutMs: 5000 }));

  // Three more requests answered by their own replies: nothing left from a
  // broken reply is taken for one of them.
  async function nextAreOwn(tag) {
    for (let i = 0; i < 3; i++) {
      const n = await request({ port: sl.proxyPort, path: `/p/next-${tag}-${i}`, timeoutMs: 3000 });
      assert.equal(n.text, `/p/next-${tag}-${i}`, `request ${i} after ${tag}`);
    }
  }

  // --- status lines ------------------------------------------------------

  for (const cs of ['s000', 's099']) {
    test(`status ${cs.slice(1)} (below 100): 502 JSON, the connection closed, the log says why`, async () => {
      const mark = sl.logMark();
      const r = await request({ port: sl.proxyPort, path: `/p/${cs}`, timeoutMs: 3000 });
      assertErrorBody(r, 502, /^An invalid response was received from the upstream server: /);
      const f = await logOf(`/p/${cs}`, mark);
      assert.equal(f.status, '502');
      assert.match(f.error, /invalid response/);
      assert.ok(await waitFor(() => up.connOf(cs)?.closed, 2000), 'the upstream connection was closed');
      await nextAreOwn(cs);
    });
  }

  test('BUG: a status of 600 or 999 (outside 100..599, RFC 9110 15) is not relayed: 502', {
    // fixed: 502
  }, async () => {
    for (const cs of ['s600', 's999']) {
      const r = await request({ port: sl.proxyPort, path: `/p/${cs}`, timeoutMs: 3000 });
      assertErrorBody(r, 502, /invalid response/);
    }
  });

  test('a status line without a reason phrase (with or without the space): sluice writes its own reason', async () => {
    let r = await get(sl.proxyPort, '/p/no-reason');
    assert.equal(r.line, 'HTTP/1.1 200 OK');
    assert.equal(r.body.toString(), 'ok');
    r = await get(sl.proxyPort, '/p/no-reason-space');
    assert.equal(r.line, 'HTTP/1.1 201 Created');
    assert.equal(r.body.toString(), 'ok');
  });

  test('three 100 Continue before the answer: the client gets one response, the final one', async () => {
    const r = await get(sl.proxyPort, '/p/repeated-100');
    assert.equal((r.raw.toString('latin1').match(/HTTP\/1\.1 \d{3}/g) || []).length, 1, r.raw.toString('latin1'));
    assert.equal(r.status, 200);
    assert.deepEqual(all(r.fields, 'x-final'), ['1']);
    assert.equal(r.body.toString(), 'final');
  });

  test('BUG: a 101 the request never asked for (sluice sends no Upgrade) is a 502 at once, not a relayed 101 and a hang', {
    // fixed: 502 at once
  }, async () => {
    const mark = sl.logMark();
    const t0 = Date.now();
    const r = await get(sl.proxyPort, '/p/unasked-101', 4000);
    assert.equal(r.status, 502, r.raw.toString('latin1').slice(0, 300));
    assert.ok(Date.now() - t0 < 1000, `answered after ${Date.now() - t0} ms`);
    assert.doesNotMatch(r.raw.toString('latin1'), /RAW-UPGRADED-BYTES/);
    const f = await logOf('/p/unasked-101', mark);
    assert.equal(f.status, '502');
    assert.ok(await waitFor(() => up.connOf('unasked-101')?.closed, 2000), 'the upstream connection was closed');
  });

  // --- header lines ------------------------------------------------------

  for (const cs of ['no-colon', 'nul-in-value']) {
    test(`${cs}: libcurl refuses the head, 502 JSON "Weird server reply", the connection not reused`, async () => {
      const mark = sl.logMark();
      const r = await request({ port: sl.proxyPort, path: `/p/${cs}`, timeoutMs: 3000 });
      assertErrorBody(r, 502, /^An invalid response was received from the upstream server: Weird server reply$/);
      const f = await logOf(`/p/${cs}`, mark);
      assert.equal(f.upstream_status, '0');
      assert.ok(await waitFor(() => up.connOf(cs)?.closed, 2000), 'the upstream connection was closed');
      await nextAreOwn(cs);
    });
  }

  test('a head with bare LF line ends (RFC 9112 2.2 allows it) is read, and relayed with CRLF', async () => {
    const r = await get(sl.proxyPort, '/p/lf-only');
    assert.equal(r.status, 200);
    assert.deepEqual(all(r.fields, 'x-lf'), ['1']);
    assert.equal(r.body.toString(), 'ok');
    assert.doesNotMatch(r.raw.subarray(0, r.raw.indexOf('\r\n\r\n')).toString('latin1'), /[^\r]\n/);
  });

  test('10 000 header fields: relayed in order, the body intact, the worker still serves', async () => {
    const t0 = Date.now();
    const r = await get(sl.proxyPort, '/p/ten-thousand');
    assert.equal(r.status, 200);
    const xs = r.fields.filter(([k]) => /^x-h\d+$/.test(k));
    assert.equal(xs.length, 10000);
    assert.deepEqual(xs[9999], ['x-h9999', 'v9999']);
    assert.equal(r.body.toString(), 'ok');
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    await nextAreOwn('ten-thousand');
  });

  // --- lengths and chunks ------------------------------------------------

  for (const cs of ['cl-beyond-int64', 'cl-int64-max']) {
    test(`${cs}: 502 JSON, the connection not reused`, async () => {
      const mark = sl.logMark();
      const r = await request({ port: sl.proxyPort, path: `/p/${cs}`, timeoutMs: 3000 });
      assertErrorBody(r, 502, /conflicting or invalid Content-Length/);
      const f = await logOf(`/p/${cs}`, mark);
      assert.equal(f.upstream_status, '200');
      assert.ok(await waitFor(() => up.connOf(cs)?.closed, 2000), 'the upstream connection was closed');
      await nextAreOwn(cs);
    });
  }

  for (const cs of ['chunk-not-hex', 'chunk-negative', 'chunk-overflow', 'te-unknown']) {
    test(`${cs}: the head went out, so the body is cut (no last chunk), logged as a broken stream, the connection not reused`, async () => {
      const mark = sl.logMark();
      const r = await get(sl.proxyPort, `/p/${cs}`);
      assert.equal(r.end, 'close');
      assert.equal(r.status, 200);
      const { body, complete } = dechunk(r.body);
      assert.equal(complete, false, `the client must see the cut: ${JSON.stringify(r.body.toString('latin1'))}`);
      assert.equal(body.length, 0);
      const f = await logOf(`/p/${cs}`, mark);
      assert.match(f.error, /^upstream stream broke: /);
      assert.ok(await waitFor(() => up.connOf(cs)?.closed, 2000), 'the upstream connection was closed');
      await nextAreOwn(cs);
    });
  }

  test('chunk extensions and a trailer: the body arrives whole, extensions and trailer fields are not relayed', async () => {
    const r = await get(sl.proxyPort, '/p/chunk-ext-trailer');
    assert.equal(r.status, 200);
    const { body, complete } = dechunk(r.body);
    assert.ok(complete);
    assert.equal(body.toString(), 'ok!!!');
    assert.doesNotMatch(r.raw.toString('latin1'), /name=value|X-T: tv|;last/);
    assert.deepEqual(all(r.fields, 'trailer'), [], 'Trailer is hop-by-hop');
    await nextAreOwn('chunk-ext-trailer');
  });

  // --- bytes after the end of a reply (smuggling) ---------------------------

  for (const cs of ['cl-then-more', 'cl-then-lots', 'chunked-then-more', 'chunked-then-lots']) {
    test(`${cs}: the reply ends where its framing says; what follows it never answers a later request`, async () => {
      const r = await get(sl.proxyPort, `/p/${cs}`);
      assert.equal(r.status, 200);
      const text = all(r.fields, 'transfer-encoding').length ? dechunk(r.body).body.toString() : r.body.toString();
      assert.equal(text, 'ok');
      assert.doesNotMatch(r.raw.toString('latin1'), /SMUGGLED/);
      await nextAreOwn(cs);
      if (cs.startsWith('cl-')) assert.ok(await waitFor(() => up.connOf(cs)?.closed, 2000), 'excess after a Content-Length body: the connection was closed');
    });
  }

  // --- connection-delimited and early replies -------------------------------

  test('an HTTP/1.0 reply without a length: read to the close, sent chunked to a 1.1 client, Via 1.0', async () => {
    const r = await get(sl.proxyPort, '/p/http10-close');
    assert.equal(r.status, 200);
    assert.deepEqual(all(r.fields, 'transfer-encoding'), ['chunked']);
    assert.deepEqual(all(r.fields, 'via'), ['1.0 sluice']);
    const { body, complete } = dechunk(r.body);
    assert.ok(complete, 'a complete body: the close was the end of it');
    assert.equal(body.toString(), 'close-delimited body');
    await nextAreOwn('http10-close');
  });

  test('an answer (413, then close) before the request body was sent: the client gets the 413, the next request is served', async () => {
    const mark = sl.logMark();
    const r = await request({ port: sl.proxyPort, method: 'POST', path: '/p/early-413', body: Buffer.alloc(4 * 1024 * 1024, 0x61), timeoutMs: 5000 });
    assert.equal(r.status, 413);
    assert.equal(r.text, 'too big');
    const f = await logOf('/p/early-413', mark);
    assert.equal(f.status, '413');
    assert.equal(f.upstream_status, '413');
    await nextAreOwn('early-413');
  });

  // --- compression on the plain route -------------------------------------

  test('Content-Encoding: br passes untouched (Content-Length and chunked alike), the client\'s Accept-Encoding goes upstream as sent', async () => {
    for (const cs of ['br', 'br-chunked']) {
      const r = await exchange(sl.proxyPort, `GET /p/${cs} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br;q=1.0, gzip;q=0.5\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 200);
      assert.deepEqual(all(r.fields, 'content-encoding'), ['br']);
      const body = cs === 'br' ? r.body : dechunk(r.body).body;
      assert.ok(body.equals(BR), `${cs}: the brotli bytes as sent`);
      assert.equal(zlib.brotliDecompressSync(body).toString(), 'hello, brotli');
      assert.equal(up.reqOf(cs).fields['accept-encoding'], 'br;q=1.0, gzip;q=0.5');
    }
  });

  // --- ai-proxy --------------------------------------------------------------

  test('ai-proxy: the client\'s Accept-Encoding is not sent to the provider, nor any other (a compressed reply is decoded all the same)', async () => {
    const r = await exchange(sl.proxyPort, rawPost('/oai', 'json', chatBody(), 'Accept-Encoding: gzip, br\r\n'));
    assert.equal(r.status, 200);
    const req = up.conns.flatMap((c) => c.reqs).filter((q) => q.name === 'json').at(-1);
    assert.ok(req, 'the provider got the request');
    assert.equal(req.fields['accept-encoding'], undefined);
  });

  for (const route of ['/oai', '/ant']) {
    test(`BUG: ${route}: a provider that compresses when the request has no Accept-Encoding (RFC 9110 12.5.3) still gives a translated reply`, {
      // fixed: decoded by libcurl on translated routes
    }, async () => {
      const r = await postJson(sl.proxyPort, route, chatBody(), { headers: { 'x-case': 'json-gzip', 'accept-encoding': 'gzip' }, timeoutMs: 4000 });
      assert.equal(r.headers['content-encoding'], undefined);
      const c = assertChatCompletion(r.json());
      assert.equal(c.message.content, 'hi there');
    });
  }

  test('today: a gzip reply on a translated route is a 502 in OpenAI\'s error shape, never the compressed bytes relabelled', async () => {
    const mark = sl.logMark();
    const r = await postJson(sl.proxyPort, '/oai', chatBody(), { headers: { 'x-case': 'json-gzip' }, timeoutMs: 4000 });
    if (r.status === 200) return; // fixed: the test above passes
    assertOpenaiError(r, 502, { type: 'api_error', message: /could not translate the openai reply/ });
    assert.equal(r.headers['content-encoding'], undefined, 'the Content-Encoding of a body that is not sent is not sent either');
    const f = logFields(await sl.waitForLog(/uri="\/oai".*status=502/, { from: mark }));
    assert.equal(f.upstream_status, '200');
    assert.match(f.error, /not a JSON object/);
  });

  for (const route of ['/oai', '/ant']) {
    test(`BUG: ${route}: a gzip-compressed event stream is translated (decoded), not turned into "stream ended before it was complete"`, {
      // fixed: decoded by libcurl
    }, async () => {
      const res = await postStream(sl.proxyPort, route, chatBody({ stream: true }), { headers: { 'x-case': 'sse-gzip' }, timeoutMs: 4000 });
      assert.equal(res.status, 200);
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assert.deepEqual(json.filter((c) => c.error), [], 'no error chunk');
      assert.equal(json.map((c) => c.choices?.[0]?.delta?.content ?? '').join(''), 'hi there');
    });
  }

  for (const route of ['/oai', '/ant']) {
    test(`BUG: ${route}: a translated stream answered with an error event ("ended before it was complete") is logged with error=, not as a clean 200`, {
      // fixed: logged with error=
    }, async () => {
      const mark = sl.logMark();
      const res = await postStream(sl.proxyPort, route, chatBody({ stream: true }), { headers: { 'x-case': 'sse-no-end' }, timeoutMs: 4000 });
      const { json, lastIsDone } = streamChunks(res.events);
      assert.match(json.at(-1).error?.message ?? '', /ended before it was complete/, 'precondition: the client got the error event');
      assert.ok(lastIsDone);
      const f = logFields(await sl.waitForLog(new RegExp(`uri="${route}"`), { from: mark }));
      assert.match(f.error ?? '', /ended before it was complete/, 'the log line says the stream was incomplete');
    });
  }

  test('ai-proxy: an invalid chunk size mid-stream: the events so far, an error event, [DONE], a cut; logged as a broken stream', async () => {
    const mark = sl.logMark();
    const res = await postStream(sl.proxyPort, '/oai', chatBody({ stream: true }), { headers: { 'x-case': 'sse-bad-chunk' }, timeoutMs: 4000 });
    assert.equal(res.status, 200);
    const { json, lastIsDone } = streamChunks(res.events);
    assert.equal(json[0].choices[0].delta.content, 'hi there');
    assert.match(json.at(-1).error.message, /^upstream stream broke: /);
    assert.ok(lastIsDone);
    assert.notEqual(res.end, 'end', 'the response is cut, not ended cleanly');
    const f = logFields(await sl.waitForLog(/uri="\/oai"/, { from: mark }));
    assert.match(f.error, /^upstream stream broke: /);
    assert.ok(await waitFor(() => up.connOf('sse-bad-chunk')?.closed, 2000), 'the provider connection was closed');
  });

  test('BUG: ai-proxy: an unasked 101 from the provider is a 502 at once, not a hang until read_timeout', {
    // fixed: 502 at once
  }, async () => {
    const t0 = Date.now();
    const r = await exchange(sl.proxyPort, rawPost('/ant', 'unasked-101', chatBody()), 4000);
    assert.equal(r.status, 502, r.raw.toString('latin1').slice(0, 300));
    assert.ok(Date.now() - t0 < 1000, `answered after ${Date.now() - t0} ms`);
  });

  for (const [route, cs, why] of [['/oai', 'one-mb-field', /response head too large$/], ['/ant', 's000', /invalid response/], ['/ant', 'no-colon', /Weird server reply$/], ['/oai', 'json-short', /Transferred a partial file$/]]) {
    test(`ai-proxy ${route} ${cs}: 502 in OpenAI's error shape, the provider connection not reused`, async () => {
      const r = await postJson(sl.proxyPort, route, chatBody(), { headers: { 'x-case': cs }, timeoutMs: 4000 });
      assertOpenaiError(r, 502, { type: 'api_error', message: why });
      assert.match(String(r.headers['x-request-id']), /^[0-9a-f]{32}$/);
      assert.ok(await waitFor(() => up.connOf(cs)?.closed, 2000), 'the provider connection was closed');
    });
  }

  test('ai-proxy: Set-Cookie lines from the provider survive, each on its own line; a 103 Early Hints (Link) does not leak', async () => {
    let r = await exchange(sl.proxyPort, rawPost('/oai', 'json-cookies', chatBody()));
    assert.equal(r.status, 200);
    assert.deepEqual(all(r.fields, 'set-cookie'), ['a=1; Path=/', 'b=2; HttpOnly']);
    assert.equal(JSON.parse(r.body.toString()).choices[0].message.content, 'hi there');
    r = await exchange(sl.proxyPort, rawPost('/ant', 'json-early-hints', chatBody()));
    assert.equal((r.raw.toString('latin1').match(/HTTP\/1\.1 \d{3}/g) || []).length, 1);
    assert.equal(r.status, 200);
    assert.deepEqual(all(r.fields, 'link'), []);
    assertChatCompletion(JSON.parse(r.body.toString()));
  });

  test('ai-proxy: an HTTP/1.0 close-delimited JSON reply is translated whole', async () => {
    const r = await postJson(sl.proxyPort, '/ant', chatBody(), { headers: { 'x-case': 'json-http10' }, timeoutMs: 4000 });
    const c = assertChatCompletion(r.json());
    assert.equal(c.message.content, 'hi there');
    assert.equal(r.headers.via, '1.0 sluice');
  });
});
