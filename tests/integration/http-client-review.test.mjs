// Adversarial review of sluice's HTTP/1.1 server side as a hostile or
// sloppy client sees it (src/http1.c, src/client_conn.c parse_head, and
// the target/Host handling at the top of src/proxy.c gw_proxy_on_request):
// framing (Content-Length and Transfer-Encoding variants, chunk syntax,
// trailers), the request line, Host, pipelining, Expect and what happens to
// the connection after an error. Compared with nginx 1.22 on the same bytes
// and with RFC 9110/9112. Not repeated here: what client-http, framing,
// header-injection, conn-review, forwarding-review and the path tests cover.
//
// Every request is raw bytes on a socket; the upstream is a raw TCP server
// that records each request it gets (request line, fields, decoded body),
// so "nothing reached the upstream" and "the body ended exactly here" are
// asserted on what really crossed the wire.
//
// Seven tests found bugs, each failing before its fix: Host values that are
// not uri-host[:port] (routed on and forwarded), absolute-form authorities
// with userinfo or no host, two Hosts in HTTP/1.0, 431 for a long target
// (414), "?x" / "#f" targets taken as "/", OPTIONS * sent upstream as a
// path, and chunk lines ended by a bare LF.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, rawRequest, startSluice } from './lib/harness.mjs';

const MAX_BODY = 4096;

// Records every request: {method, target, version, fields, body}; answers
// 200 with the request line as JSON (Content-Length framing). A HEAD gets
// the head only; a target containing /slow is answered after 300 ms.
function startRawUpstream() {
  const records = [];
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [line, ...rest] = buf.subarray(0, end).toString('latin1').split('\r\n');
        const fields = rest.map((l) => {
          const i = l.indexOf(':');
          return [l.slice(0, i), l.slice(i + 1).trim()];
        });
        const get = (n) => fields.find(([k]) => k.toLowerCase() === n)?.[1];
        let body, used;
        if (/chunked/i.test(get('transfer-encoding') ?? '')) {
          const parts = [];
          let p = end + 4;
          for (;;) {
            const nl = buf.indexOf('\r\n', p);
            if (nl < 0) return;
            const size = parseInt(buf.subarray(p, nl).toString('latin1'), 16);
            if (size === 0) {
              const fin = buf.indexOf('\r\n\r\n', nl);
              if (fin < 0) return;
              used = fin + 4;
              break;
            }
            if (buf.length < nl + 2 + size + 2) return;
            parts.push(buf.subarray(nl + 2, nl + 2 + size));
            p = nl + 2 + size + 2;
          }
          body = Buffer.concat(parts);
        } else {
          const len = Number(get('content-length') ?? 0);
          if (buf.length < end + 4 + len) return;
          body = Buffer.from(buf.subarray(end + 4, end + 4 + len));
          used = end + 4 + len;
        }
        buf = buf.subarray(used);
        const [method, target, version] = line.split(' ');
        const rec = { method, target, version, fields, get, body: body.toString('latin1') };
        records.push(rec);
        const json = JSON.stringify({ method, target, body: rec.body });
        const head = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n`;
        const out = method === 'HEAD' ? head : head + json;
        if (target.includes('/slow')) setTimeout(() => s.write(out), 300);
        else s.write(out);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    records,
    close: () => new Promise((r) => server.close(() => r())),
  })));
}

// The responses on one connection (Content-Length bodies; a response to a
// HEAD, named in `heads` by its index, has none).
function parseResponses(buf, heads = []) {
  const out = [];
  let s = buf.toString('latin1');
  while (s.length) {
    const end = s.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...lines] = s.slice(0, end).split('\r\n');
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = heads.includes(out.length) ? 0 : Number(headers['content-length'] ?? 0);
    const text = s.slice(end + 4, end + 4 + len);
    out.push({ status: Number(statusLine.split(' ')[1]), statusLine, headers, text, json: () => JSON.parse(text) });
    s = s.slice(end + 4 + len);
  }
  return out;
}

const CLOSE = 'Connection: close\r\n';

describe('the HTTP/1.1 server side under review', { skip: binaryMissing() }, () => {
  let up, sl;
  before(async () => {
    up = await startRawUpstream();
    const url = `http://127.0.0.1:${up.port}`;
    sl = await startSluice({
      workers: 1,
      args: ['--max-body-size', String(MAX_BODY), '--client-timeout', '5'],
      config: {
        services: [
          {
            name: 'raw',
            url,
            routes: [
              { name: 'up', paths: ['/up'], strip_path: false },
              { name: 'ph', paths: ['/ph'], strip_path: false, preserve_host: true },
              { name: 'root', hosts: ['root.test'], strip_path: false, preserve_host: true },
            ],
          },
          { name: 'based', url: `${url}/base`, routes: [{ name: 'v1', hosts: ['v1.test'], path_handling: 'v1' }] },
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await up?.close();
  });

  // Raw bytes in (latin1); the responses, the requests the upstream got for
  // them, and the raw answer. The connection must end (last request with
  // Connection: close, or sluice closing it) within timeoutMs.
  async function exchange(text, { heads, timeoutMs = 5000 } = {}) {
    const from = up.records.length;
    const raw = await rawRequest({ port: sl.proxyPort, data: Buffer.from(text, 'latin1'), timeoutMs });
    return { res: parseResponses(raw, heads), got: up.records.slice(from), raw: raw.toString('latin1') };
  }

  // A request refused before it reached anything: the status, a JSON error,
  // the connection closed, nothing upstream.
  async function refused(text, status, what) {
    const { res, got, raw } = await exchange(text);
    assert.equal(res.length, 1, `${what}: exactly one answer, got ${JSON.stringify(raw.slice(0, 300))}`);
    assert.equal(res[0].status, status, `${what}: ${res[0].text}`);
    assert.match(res[0].headers['content-type'] ?? '', /application\/json/, what);
    assert.match(res[0].headers.connection ?? '', /close/i, `${what}: the connection closes`);
    assert.deepEqual(got.map((r) => r.target), [], `${what}: nothing reached the upstream`);
  }

  // --- Content-Length ------------------------------------------------------

  test('Content-Length with leading zeros (005) frames 5 bytes; the pipelined request after it is its own', async () => {
    const { res, got } = await exchange('POST /up/cl HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\n\r\nhello'
      + `GET /up/after HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(res.map((r) => r.status), [200, 200]);
    assert.deepEqual(got.map((r) => [r.target, r.body]), [['/up/cl', 'hello'], ['/up/after', '']]);
    assert.equal(got[0].get('content-length'), '5', 'the upstream gets the length in canonical form');
  });

  test('Content-Length repeated with the same value (5 and 05): one body of 5, then the next request', async () => {
    const { res, got } = await exchange('POST /up/cl2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello'
      + `GET /up/after2 HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(res.map((r) => r.status), [200, 200]);
    assert.deepEqual(got.map((r) => [r.target, r.body]), [['/up/cl2', 'hello'], ['/up/after2', '']]);
    assert.equal(got[0].fields.filter(([k]) => /^content-length$/i.test(k)).length, 1, 'one Content-Length upstream');
  });

  for (const cl of ['+5', '-5', '0x5', '5, 5', '5 5', '5.0', '99999999999999999999', '']) {
    test(`Content-Length "${cl}": 400, nothing forwarded, connection closed (a pipelined request is not served)`, async () => {
      await refused(`POST /up/badcl HTTP/1.1\r\nHost: h\r\nContent-Length: ${cl}\r\n\r\nhello`
        + `GET /up/smuggled HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`, 400, `CL ${cl}`);
    });
  }

  // --- Transfer-Encoding ---------------------------------------------------

  for (const te of ['Chunked', 'CHUNKED', '\tchunked\t']) {
    test(`Transfer-Encoding "${te.replace(/\t/g, '\\t')}" is chunked (coding names are case-insensitive, OWS trimmed)`, async () => {
      const { res, got } = await exchange(`POST /up/te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`
        + `GET /up/te-after HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
      assert.deepEqual(res.map((r) => r.status), [200, 200]);
      assert.deepEqual(got.map((r) => [r.target, r.body]), [['/up/te', 'hello'], ['/up/te-after', '']]);
    });
  }

  const codings = [
    ['chunked, chunked', 'chunked applied twice (RFC 9112 §6.1)'],
    ['gzip, chunked', 'a coding before chunked'],
    ['chunked\r\nTransfer-Encoding: chunked', 'two Transfer-Encoding lines'],
    ['identity', 'identity (not a registered coding any more)'],
    ['chunked;q=1', 'a parameter on chunked'],
    [',chunked', 'an empty list member'],
  ];
  for (const [te, what] of codings) {
    test(`Transfer-Encoding with ${what}: 501, nothing forwarded, connection closed`, async () => {
      await refused(`POST /up/badte HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`
        + `GET /up/smuggled HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`, 501, te);
    });
  }

  test('Transfer-Encoding: chunked in an HTTP/1.0 request: 400 (RFC 9112 §6.1: faulty framing), connection closed', async () => {
    await refused('POST /up/te10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400, 'TE in 1.0');
  });

  // --- chunk syntax --------------------------------------------------------

  const goodChunks = [
    ['leading zeros in the size', '005\r\nhello\r\n0\r\n\r\n', 'hello'],
    ['uppercase hex', 'A\r\n0123456789\r\n0\r\n\r\n', '0123456789'],
    ['extensions, with BWS before ";"', '5;name=value\r\nhello\r\n6 ;x="q s"\r\n world\r\n0;last\r\n\r\n', 'hello world'],
    ['a last chunk written 000', '5\r\nhello\r\n000\r\n\r\n', 'hello'],
    ['a zero-length body', '0\r\n\r\n', ''],
  ];
  for (const [what, chunks, body] of goodChunks) {
    test(`chunked with ${what}: the body is decoded exactly, and the pipelined request after it is served`, async () => {
      const { res, got } = await exchange(`POST /up/chunks HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`
        + `GET /up/chunks-after HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
      assert.deepEqual(res.map((r) => r.status), [200, 200]);
      assert.deepEqual(got.map((r) => [r.target, r.body]), [['/up/chunks', body], ['/up/chunks-after', '']]);
    });
  }

  test('trailer fields (Content-Length, Host, Transfer-Encoding among them) are dropped, not forwarded, and do not reframe anything', async () => {
    const { res, got } = await exchange('POST /up/trailer HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n'
      + '5\r\nhello\r\n0\r\nContent-Length: 99\r\nHost: evil.test\r\nTransfer-Encoding: gzip\r\nX-Trailer: t\r\n\r\n'
      + `GET /up/trailer-after HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(res.map((r) => r.status), [200, 200]);
    assert.deepEqual(got.map((r) => [r.target, r.body]), [['/up/trailer', 'hello'], ['/up/trailer-after', '']]);
    const names = got[0].fields.map(([k]) => k.toLowerCase());
    assert.equal(names.includes('x-trailer'), false, 'no trailer field became a header upstream');
    assert.equal(got[0].get('host'), `127.0.0.1:${up.port}`);
  });

  const badChunks = [
    ['a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['a size that overflows 64 bits', 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'],
    ['data shorter than its size', '5\r\nhel\r\n0\r\n\r\n'],
    ['data longer than its size', '5\r\nhelloXX\r\n0\r\n\r\n'],
    ['whitespace before the size', ' 5\r\nhello\r\n0\r\n\r\n'],
    ['a negative size', '-5\r\nhello\r\n0\r\n\r\n'],
    ['a bare CR after the size', '5\rhello\r\n0\r\n\r\n'],
    ['no size at all', '\r\nhello\r\n0\r\n\r\n'],
  ];
  for (const [what, chunks] of badChunks) {
    test(`chunked with ${what}: 400, the connection closes, the pipelined request is never served`, async () => {
      const { res, got } = await exchange(`POST /up/badchunk HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`
        + `GET /up/smuggled HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
      assert.equal(res.length, 1, 'one answer');
      assert.equal(res[0].status, 400, res[0].text);
      assert.match(res[0].json().message, /chunked/);
      assert.equal(got.some((r) => r.target === '/up/smuggled'), false, 'nothing after a broken body is trusted');
      assert.equal(got.some((r) => r.target === '/up/badchunk' && r.body === 'hello'), false, 'the broken body never completes upstream');
    });
  }

  // --- the request line and the head ---------------------------------------

  const badHeads = [
    ['obs-fold', `GET /up/x HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n${CLOSE}\r\n`, /folding/],
    ['whitespace between the request line and the first field', `GET /up/x HTTP/1.1\r\n Host: h\r\n${CLOSE}\r\n`, /folding|header/],
    ['a NUL in a field value', `GET /up/x HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n${CLOSE}\r\n`, /invalid character/],
    ['a bare CR in a field value', `GET /up/x HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n${CLOSE}\r\n`, /CR/],
    ['a NUL in the target', `GET /up/\0 HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`, /target/],
    ['a raw non-ASCII byte in the target', `GET /up/\xe9 HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`, /target/],
    ['a tab between method and target', `GET\t/up/x HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`, /request line/],
    ['a lowercase protocol name', `GET /up/x http/1.1\r\nHost: h\r\n${CLOSE}\r\n`, /version/],
    ['HTTP/0.9 (no version)', 'GET /up/x\r\n\r\n', /request line/],
    ['a field name with a non-token byte', `GET /up/x HTTP/1.1\r\nHost: h\r\nX(A): b\r\n${CLOSE}\r\n`, /header/],
  ];
  for (const [what, data, re] of badHeads) {
    test(`${what}: 400 with a JSON reason, connection closed, nothing forwarded`, async () => {
      const { res, got } = await exchange(data);
      assert.equal(res.length, 1);
      assert.equal(res[0].status, 400, res[0].text);
      assert.match(res[0].json().message, re);
      assert.match(res[0].headers.connection ?? '', /close/i);
      assert.deepEqual(got, []);
    });
  }

  test('the HTTP/2 prior-knowledge preface gets 505 (RFC 9110 15.6.6), not a 400', async () => {
    await refused('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 505, 'h2 preface');
  });

  test('HTTP/1.2 is read as HTTP/1.1 (RFC 9112 2.3): served, kept alive, forwarded as 1.1', async () => {
    const { res, got } = await exchange(`GET /up/v12 HTTP/1.2\r\nHost: h\r\n\r\nGET /up/v12b HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(res.map((r) => r.status), [200, 200], 'the connection stayed open for the second request');
    assert.deepEqual(got.map((r) => [r.target, r.version]), [['/up/v12', 'HTTP/1.1'], ['/up/v12b', 'HTTP/1.1']]);
    assert.match(res[0].statusLine, /^HTTP\/1\.1 200/);
  });

  test('100 header fields are served; 101 get 431 with a JSON body and nothing forwarded', async () => {
    const fields = (n) => Array.from({ length: n }, (_, i) => `X-F${i}: v\r\n`).join('');
    let x = await exchange(`GET /up/f100 HTTP/1.1\r\nHost: h\r\n${fields(98)}${CLOSE}\r\n`);
    assert.equal(x.res[0].status, 200, x.res[0].text);
    x = await exchange(`GET /up/f101 HTTP/1.1\r\nHost: h\r\n${fields(99)}${CLOSE}\r\n`);
    assert.equal(x.res[0].status, 431, x.res[0].text);
    assert.match(x.res[0].json().message, /too many header fields/);
    assert.deepEqual(x.got, []);
  });

  test('empty lines before the request line are skipped (RFC 9112 §2.2), bare-LF heads are read as CRLF ones', async () => {
    const { res, got } = await exchange(`\r\n\r\nGET /up/lead HTTP/1.1\r\nHost: h\r\n\r\nGET /up/lf HTTP/1.1\nHost: h\n${CLOSE.replace('\r', '')}\n`);
    assert.deepEqual(res.map((r) => r.status), [200, 200]);
    assert.deepEqual(got.map((r) => r.target), ['/up/lead', '/up/lf']);
  });

  // --- Host and the target --------------------------------------------------

  test('Host is matched case-insensitively and without its port; preserve_host sends it as written', async () => {
    const { res, got } = await exchange(`GET /case HTTP/1.1\r\nHost: ROOT.Test:8000\r\n${CLOSE}\r\n`);
    assert.equal(res[0].status, 200, res[0].text);
    assert.equal(got[0].get('host'), 'ROOT.Test:8000');
    assert.equal(got[0].get('x-forwarded-host'), 'root.test');
  });

  test('absolute-form: scheme case-insensitive, empty path becomes "/", query kept, fragment dropped', async () => {
    const { res, got } = await exchange('GET HTTP://Root.Test HTTP/1.1\r\nHost: other\r\n\r\n'
      + 'GET http://root.test?x=1 HTTP/1.1\r\nHost: other\r\n\r\n'
      + `GET http://root.test/p#frag HTTP/1.1\r\nHost: other\r\n${CLOSE}\r\n`);
    assert.deepEqual(res.map((r) => r.status), [200, 200, 200]);
    assert.deepEqual(got.map((r) => [r.target, r.get('host')]), [['/', 'Root.Test'], ['/?x=1', 'root.test'], ['/p', 'root.test']]);
  });

  test('authority-form and asterisk-form for a method other than OPTIONS: 400', async () => {
    for (const t of ['root.test:80', '*']) {
      const { res, got } = await exchange(`GET ${t} HTTP/1.1\r\nHost: root.test\r\n${CLOSE}\r\n`);
      assert.equal(res[0].status, 400, `${t}: ${res[0].text}`);
      assert.deepEqual(got, []);
    }
  });

  test('two Host lines in HTTP/1.1: 400, connection closed, the pipelined request not served', async () => {
    await refused(`GET /up/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /up/y HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`, 400, 'two Hosts');
  });

  // --- pipelining and keep-alive ---------------------------------------------

  test('pipelined behind a slow answer, to two routes: answers in request order, each with its own body', async () => {
    const { res } = await exchange('GET /up/slow-1 HTTP/1.1\r\nHost: h\r\n\r\n'
      + 'POST /ph/fast-2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc'
      + 'GET /up/slow-3 HTTP/1.1\r\nHost: h\r\n\r\n'
      + `GET /ph/fast-4 HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(res.map((r) => [r.status, r.json().target, r.json().body]),
      [[200, '/up/slow-1', ''], [200, '/ph/fast-2', 'abc'], [200, '/up/slow-3', ''], [200, '/ph/fast-4', '']]);
  });

  test('HEAD then GET pipelined: the HEAD answer has no body and the GET answer is read where it starts', async () => {
    const { res } = await exchange(`HEAD /up/h HTTP/1.1\r\nHost: h\r\n\r\nGET /up/g HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`, { heads: [0] });
    assert.equal(res.length, 2);
    assert.equal(res[0].status, 200);
    assert.ok(Number(res[0].headers['content-length']) > 0, 'the HEAD answer keeps the length it would have');
    assert.equal(res[1].status, 200);
    assert.equal(res[1].json().target, '/up/g');
  });

  test('after a 404 (and its small body read and dropped) the connection stays and the next request is served', async () => {
    const { res, got } = await exchange('POST /nowhere HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nGET /up/bad'
      + `GET /up/next HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(res.map((r) => r.status), [404, 200]);
    assert.notEqual(res[0].headers.connection, 'close');
    assert.deepEqual(got.map((r) => r.target), ['/up/next'], 'the dropped body was not read as a request');
  });

  test('a 413 for a declared length over the limit: the body is dropped, not parsed as the next request', async () => {
    const body = `GET /up/smuggled HTTP/1.1\r\nHost: h\r\n\r\n`.padEnd(MAX_BODY + 10, 'x');
    const { res, got } = await exchange(`POST /up/big HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n${body}`
      + `GET /up/next413 HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.equal(res[0].status, 413);
    assert.equal(got.some((r) => r.target === '/up/smuggled'), false);
    assert.ok(res.length === 1 || (res.length === 2 && res[1].json().target === '/up/next413'), JSON.stringify(res.map((r) => r.statusLine)));
  });

  test('HTTP/1.0 is closed after its answer unless it asks for keep-alive; with it, the next request is served', async () => {
    let x = await exchange('GET /up/a10 HTTP/1.0\r\n\r\nGET /up/b10 HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.deepEqual(x.got.map((r) => r.target), ['/up/a10']);
    assert.match(x.res[0].headers.connection ?? '', /close/i);
    x = await exchange(`GET /up/c10 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /up/d10 HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(x.got.map((r) => r.target), ['/up/c10', '/up/d10']);
    assert.match(x.res[0].headers.connection ?? '', /keep-alive/i);
  });

  // --- Expect ------------------------------------------------------------------

  test('Expect: 100-continue on a request answered 404 or 413: no 100, the final answer, the connection closes', async () => {
    for (const [data, status] of [
      ['POST /nowhere HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', 404],
      [`POST /up/x HTTP/1.1\r\nHost: h\r\nContent-Length: ${MAX_BODY + 1}\r\nExpect: 100-continue\r\n\r\n`, 413],
    ]) {
      const { raw, got } = await exchange(data);
      assert.doesNotMatch(raw, /100 Continue/);
      assert.match(raw, new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.match(raw, /\r\nConnection: close\r\n/i);
      assert.deepEqual(got, []);
    }
  });

  test('Expect: 100-continue in HTTP/1.0 is ignored (RFC 9110 §10.1.1), and a body sent at once needs no 100', async () => {
    let x = await exchange('POST /up/e10 HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello');
    assert.doesNotMatch(x.raw, /100 Continue/);
    assert.deepEqual(x.got.map((r) => r.body), ['hello']);
    x = await exchange(`POST /up/e11 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello`
      + `GET /up/e11-after HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.deepEqual(x.res.map((r) => r.status), [200, 200]);
    assert.deepEqual(x.got.map((r) => [r.target, r.body]), [['/up/e11', 'hello'], ['/up/e11-after', '']]);
  });

  // --- bugs ------------------------------------------------------------------

  test('a Host field value that is not uri-host[:port] is a 400 (RFC 9110 §7.2), never forwarded', {
  }, async () => {
    for (const host of ['a b', 'evil.test/x?y', 'user@root.test', 'user:pw@root.test', 'root.test:80:80', 'root.test:port']) {
      const { res, got } = await exchange(`GET /ph/host HTTP/1.1\r\nHost: ${host}\r\n${CLOSE}\r\n`);
      assert.equal(res[0].status, 400, `Host: ${host} -> ${res[0].status} ${res[0].text}`);
      assert.deepEqual(got.map((r) => r.get('host')), [], `Host: ${host} reached the upstream`);
    }
  });

  test('an absolute-form target with userinfo or an empty host is a 400 (RFC 9110 §4.2.1, §4.2.4), never forwarded', {
  }, async () => {
    for (const target of ['http://user@root.test/p', 'http://root.test:80@evil.test/p', 'http:///ph/p', 'http://root.test#frag']) {
      const { res, got } = await exchange(`GET ${target} HTTP/1.1\r\nHost: root.test\r\n${CLOSE}\r\n`);
      assert.equal(res[0].status, 400, `${target} -> ${res[0].status} ${res[0].text}`);
      assert.deepEqual(got.map((r) => r.get('host')), [], `${target} reached the upstream`);
    }
  });

  test('an HTTP/1.0 request with two Host lines is a 400 too (RFC 9110 §7.2: "any request message")', {
  }, async () => {
    await refused('GET /ph/h10 HTTP/1.0\r\nHost: root.test\r\nHost: evil.test\r\n\r\n', 400, 'two Hosts in 1.0');
  });

  test('a request line over the head limit is a 414 URI Too Long (RFC 9112 §3), not a 431', {
  }, async () => {
    const { res, got } = await exchange(`GET /up/${'a'.repeat(70 * 1024)} HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
    assert.equal(res[0].status, 414, res[0].text);
    assert.deepEqual(got, []);
  });

  test('an origin-form target must start with "/": "?x=1" and "#f" are 400 like "x" is (RFC 9112 §3.2.1)', {
  }, async () => {
    for (const t of ['?x=1', '#f']) {
      const { res, got } = await exchange(`GET ${t} HTTP/1.1\r\nHost: root.test\r\n${CLOSE}\r\n`);
      assert.equal(res[0].status, 400, `${t} -> ${res[0].status}`);
      assert.deepEqual(got, [], `${t} reached the upstream as ${got[0]?.target}`);
    }
  });

  test('OPTIONS * never reaches the upstream as a resource path: either refused or forwarded as "*"', {
  }, async () => {
    const { res, got } = await exchange(`OPTIONS * HTTP/1.1\r\nHost: v1.test\r\n${CLOSE}\r\n`);
    if (got.length === 0) assert.equal(res[0].status, 400, res[0].text);
    else assert.deepEqual(got.map((r) => r.target), ['*']);
  });

  test('a chunk line ended by a bare LF is refused (RFC 9112 §7.1 chunk lines end in CRLF; §2.2 allows a bare LF only in the head)', {
  }, async () => {
    for (const chunks of ['5\nhello\r\n0\r\n\r\n', '5;ext\nhello\r\n0\r\n\r\n', '5\r\nhello\n0\n\n']) {
      const { res, got } = await exchange(`POST /up/lf HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`
        + `GET /up/lf-after HTTP/1.1\r\nHost: h\r\n${CLOSE}\r\n`);
      assert.equal(res[0].status, 400, `${JSON.stringify(chunks)} -> ${res[0].status}`);
      assert.equal(got.some((r) => r.target === '/up/lf-after'), false);
    }
  });
});
