// Adversarial review of the changes of 1f1db04..HEAD: the no-resend rule for
// non-idempotent requests, inert Kong fields, references by id and entity
// metadata, rate-limiting's legacy redis_* folding, uri_captures templates,
// preserve passthrough, Azure's client api-version, the core errors' response
// hooks and the HTTP/1.1 server's new checks (Host, 414, chunked, TRACE,
// origin-form). Through the real binary, over real sockets.
//
//   cd tests && SLUICE_BIN=/work/main/build-asan/sluice node --test integration/today-review.test.mjs
//
// Seven tests found six bugs in those changes, each failing before its fix:
// preserve dropped the client's query; Azure's client api-version lost to one
// written in upstream_url; duplicate entity ids loaded; uri_captures missed a
// (?J) name shared by alternatives; 431 instead of 414 after a leading empty
// line. The others guard a change that behaves as it should.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import {
  assertErrorBody, binaryMissing, configText, rawRequest, request, runSluice, startSluice, tempDir,
} from './lib/harness.mjs';
import { assertOpenaiError, postJson } from './lib/ai-helpers.mjs';

const skip = binaryMissing();
const MSG = { messages: [{ role: 'user', content: 'hi' }] };
const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';

// `sluice -t` on a config object or YAML text: {code, out}.
const dir = tempDir('sluice-today-review-');
let nfile = 0;
async function check(config) {
  const file = path.join(dir, `k${nfile++}.yml`);
  writeFileSync(file, configText(config));
  const r = await runSluice(['-t', '-c', file]);
  return { code: r.code, out: r.stdout + r.stderr };
}

// The status line and headers (lowercased names) of a raw HTTP answer.
function parseRaw(buf) {
  const text = buf.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  const responses = (text.match(/^HTTP\/1\.1 \d{3}/gm) || []).length;
  return { status: Number(lines[0].split(' ')[1]), headers, body: end < 0 ? '' : text.slice(end + 4), responses, text };
}

// ------------------------------------------------------------------ HTTP server, proxy, plugins, ai-proxy

describe('today\'s changes through one daemon (fake upstream)', { skip }, () => {
  let fake;
  let sl;
  let port;
  const cid = { name: 'correlation-id', config: { header_name: 'X-Corr', echo_downstream: true } };
  const rl = { name: 'rate-limiting', config: { minute: 1000, policy: 'local' } };
  const chat = (name, paths, model, extra = {}) => ({ name, paths, plugins: [{ name: 'ai-proxy', config: { route_type: 'llm/v1/chat', model, ...extra } }] });

  before(async () => {
    fake = await startFake({ port: 0 });
    const F = fake.url;
    const U = (p) => `${F}/noauth${p}`;
    sl = await startSluice({
      args: ['--max-body-size', '1000000'],
      config: {
        services: [
          { name: 'plain', url: `${F}/echo`, read_timeout: 300,
            routes: [{ name: 'p', paths: ['/p'], preserve_host: true, plugins: [cid, rl] }] },
          { name: 'ai', url: F, routes: [
            { name: 'pres', paths: ['/pres'], plugins: [cid, { name: 'ai-proxy', config: { route_type: 'preserve', max_request_body_size: 2000000, model: { provider: 'openai', options: { upstream_url: U('/v1/x') } } } }] },
            { name: 'pres-q', paths: ['/presq'], plugins: [{ name: 'ai-proxy', config: { route_type: 'preserve', auth: { param_name: 'key', param_value: 'conf-key', param_location: 'query' }, model: { provider: 'openai', options: { upstream_url: U('/v1/x') } } } }] },
            chat('cap', ['~/cap/(?<dep>[^/]+)/(x|y)?/?(?<m>m1|m2)?$'], { provider: 'openai', name: 'gpt-$(uri_captures.m)', options: { upstream_url: U('/v1/chat/completions') } }),
            chat('capnum', ['~/num/([a-z]+)/(\\d+)$'], { provider: 'openai', name: '$(uri_captures.1)-$(uri_captures.2)', options: { upstream_url: U('/v1/chat/completions') } }),
            chat('captwo', ['~/two/(?<m>a1)$', '~/two/(?<m>b2)/x$'], { provider: 'openai', name: 'gpt-$(uri_captures.m)', options: { upstream_url: U('/v1/chat/completions') } }),
            chat('capdup', ['~/alt/(?J)(?:(?<m>a1)|(?<m>b2))$'], { provider: 'openai', name: 'gpt-$(uri_captures.m)', options: { upstream_url: U('/v1/chat/completions') } }),
            chat('azq', ['/azq'], { provider: 'azure', name: 'dep', options: { upstream_url: `${F}/openai/deployments/dep/chat/completions` } }, { auth: { header_name: 'api-key', header_value: 'k' } }),
            chat('azv', ['/azv'], { provider: 'azure', name: 'dep', options: { upstream_url: `${F}/openai/deployments/dep/chat/completions?api-version=2024-02-01` } }, { auth: { header_name: 'api-key', header_value: 'k' } }),
            chat('ai502', ['/ai502'], { provider: 'openai', name: 'gpt', options: { upstream_url: 'http://127.0.0.1:1/v1/chat/completions' } }),
            { name: 'emb', paths: ['/emb'], plugins: [{ name: 'ai-proxy', config: { route_type: 'llm/v1/embeddings', model: { provider: 'llama2', name: 'nomic', options: { llama2_format: 'ollama', upstream_url: `${F}/api/embed` } } } }] },
            chat('mis', ['/mis'], { provider: 'mistral', name: 'mistral-small', options: { mistral_format: 'openai', upstream_url: U('/v1/chat/completions') } }),
          ] },
        ],
      },
    });
    port = sl.proxyPort;
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  const last = () => fake.requests.at(-1);
  const raw = (data) => rawRequest({ port, data, timeoutMs: 5000 }).then(parseRaw);

  // --- HTTP/1.1 server: Host validation keeps legitimate clients working

  test('Host values legitimate clients send are accepted and forwarded as written (preserve_host)', async () => {
    for (const h of ['[::1]:8000', '[::ffff:1.2.3.4]', 'example.com.', 'ex%41mple.com', 'a_b.test', 'xn--bcher-kva.example', 'EXAMPLE.COM:08000', 'localhost:']) {
      const r = await raw(`GET /p HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 200, `Host ${h}: ${r.text.slice(0, 300)}`);
      assert.equal(JSON.parse(r.body).headers.host, h, `Host ${h} forwarded as written`);
    }
  });

  test('an empty Host (a target without authority, RFC 9112 3.2) is accepted', async () => {
    const r = await raw('GET /p HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200, r.text.slice(0, 300));
  });

  test('invalid Host values are 400 and the pipelined request behind is not served', async () => {
    for (const h of ['ho st', 'a@b', 'host:80:90', '[::1]x', ':80', 'a/b']) {
      const r = await raw(`GET /p HTTP/1.1\r\nHost: ${h}\r\n\r\nGET /p/second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 400, `Host ${JSON.stringify(h)}: ${r.text.slice(0, 200)}`);
      assert.equal(r.responses, 1, `one answer only for Host ${JSON.stringify(h)}`);
    }
    assert.equal(fake.requests.filter((x) => x.url.startsWith('/echo/second')).length, 0);
  });

  test('absolute-form with an IPv6 literal authority routes, its authority becomes the Host', async () => {
    const r = await raw('GET http://[::1]:8000/p HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(JSON.parse(r.body).headers.host, '[::1]:8000');
  });

  test('absolute-form with userinfo or an empty authority is 400', async () => {
    for (const t of ['http://u@h.test/p', 'http:///p']) {
      const r = await raw(`GET ${t} HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 400, `${t}: ${r.text.slice(0, 200)}`);
    }
  });

  test('TRACE with a body: 405, and the body is not read as a second request (no smuggling)', async () => {
    const tag = `smug${Date.now()}`;
    const inner = `GET /p/${tag} HTTP/1.1\r\nHost: a\r\n\r\n`;
    const r = await raw(`TRACE /p HTTP/1.1\r\nHost: a\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`);
    assert.equal(r.status, 405);
    assert.equal(r.responses, 1, r.text);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(fake.requests.filter((x) => x.url.includes(tag)).length, 0, 'the TRACE body reached the upstream as a request');
  });

  test('TRACE over HTTP/1.0 and in absolute-form is 405 too', async () => {
    assert.equal((await raw('TRACE /p HTTP/1.0\r\n\r\n')).status, 405);
    assert.equal((await raw('TRACE http://a/p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).status, 405);
  });

  test('an overlong request-line is 414, an overlong header section 431', async () => {
    const r414 = await raw(`GET /p?${'a'.repeat(70000)} HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(r414.status, 414);
    const r431 = await raw(`GET /p HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(70000)}\r\n\r\n`);
    assert.equal(r431.status, 431);
  });

  test('an overlong request-line after the empty line RFC 9112 2.2 lets a client send first is still 414',
    async () => {
      const r = await raw(`\r\nGET /p?${'a'.repeat(70000)} HTTP/1.1\r\nHost: a\r\n\r\n`);
      assert.equal(r.status, 414);
    });

  test('a request with a leading empty line is served (RFC 9112 2.2)', async () => {
    const r = await raw('\r\nGET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200);
  });

  test('chunked framing: a bare LF anywhere is 400; CRLF with extensions and trailers is delivered', async () => {
    const head = 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    for (const body of ['3\nabc\r\n0\r\n\r\n', '3\r\nabc\n0\r\n\r\n', '3\r\nabc\r\n0\n\r\n', '3\r\nabc\r\n0\r\n\n', '3;e=1\nabc\r\n0\r\n\r\n', '3\r\nabc\r\n0\r\nX-T: 1\n\r\n']) {
      const r = await raw(head + body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text.slice(0, 200)}`);
    }
    const ok = await raw(`${head}3;a=b\r\nabc\r\n2\r\nde\r\n0;x\r\nX-T: 1\r\n\r\n`);
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body).body, 'abcde');
  });

  test('origin-form: "?x", "#f" and OPTIONS * are 400 (not routed)', async () => {
    for (const t of ['?x', '#f']) assert.equal((await raw(`GET ${t} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)).status, 400, t);
    assert.equal((await raw('OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).status, 400);
  });

  // --- core errors run the response_headers hooks

  test('504 (upstream timeout): correlation id echoed and rate-limit headers shown', async () => {
    const r = await request({ port, path: '/p', headers: { 'x-fake-delay-ms': '1500', 'x-corr': 'corr-504' } });
    assertErrorBody(r, 504, /timing out/);
    assert.equal(r.headers['x-corr'], 'corr-504');
    assert.match(String(r.headers['x-ratelimit-remaining-minute']), /^\d+$/);
    assert.match(String(r.headers['ratelimit-limit']), /^1000$/);
  });

  test('ai-proxy route: 502 (unreachable) and 413 (body too large) carry X-Request-Id and the OpenAI error shape', async () => {
    const r = await postJson(port, '/ai502', MSG);
    assertOpenaiError(r, 502, { type: 'api_error' });
    assert.equal(r.headers['x-request-id'], r.headers['x-sluice-request-id']);
    const big = await request({ port, method: 'POST', path: '/ai502', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(1100000) });
    assert.equal(big.status, 413);
    assert.equal(big.headers['x-request-id'], big.headers['x-sluice-request-id']);
  });

  test('ai-proxy route: a provider x-request-id is kept, not doubled', async () => {
    const r = await postJson(port, '/cap/d/x/m1', MSG);
    assert.equal(r.status, 200);
    const n = r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-request-id').length;
    assert.equal(n, 1);
  });

  // --- uri_captures

  test('uri_captures: a named group, an unnamed (numbered) group, and one regex of several', async () => {
    let r = await postJson(port, '/cap/dd/x/m2', MSG);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().model, 'gpt-m2');
    r = await postJson(port, '/num/abc/42', MSG);
    assert.equal(r.json().model, 'abc-42');
    r = await postJson(port, '/two/b2/x', MSG);
    assert.equal(r.json().model, 'gpt-b2');
  });

  test('uri_captures: a group that took no part is a 400 naming it, nothing sent upstream', async () => {
    const before = fake.requests.length;
    const r = await postJson(port, '/cap/dd/', MSG);
    assertOpenaiError(r, 400, { message: /uri_captures\.m is required/ });
    assert.equal(fake.requests.length, before);
  });

  test('uri_captures: a name shared by alternatives ((?J)) gives the group that matched',
    async () => {
      for (const [p, m] of [['/alt/a1', 'gpt-a1'], ['/alt/b2', 'gpt-b2']]) {
        const r = await postJson(port, p, MSG);
        assert.equal(r.status, 200, `${p}: ${r.text}`);
        assert.equal(r.json().model, m);
      }
    });

  // --- preserve passthrough

  test('preserve: the client\'s path, method and bytes; GET, DELETE and HEAD go through', async () => {
    let r = await request({ port, path: '/pres/v1/models' });
    assert.equal(r.status, 200);
    assert.equal(last().method, 'GET');
    assert.equal(last().path, '/pres/v1/models');
    r = await request({ port, method: 'DELETE', path: '/pres/v1/files/abc' });
    assert.equal(r.status, 200);
    assert.equal(last().method, 'DELETE');
    r = await request({ port, method: 'HEAD', path: '/pres/v1/models' });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
  });

  test('preserve: a big non-JSON body (900 kB) and a chunked multipart body arrive byte for byte', async () => {
    const body = 'x'.repeat(900000);
    let r = await request({ port, method: 'POST', path: '/pres/v1/files', headers: { 'content-type': 'application/octet-stream' }, body });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(last().bodyLength, body.length);
    const mp = '--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nabc\r\n--b--\r\n';
    r = await request({ port, method: 'POST', path: '/pres/v1/up', headers: { 'transfer-encoding': 'chunked', 'content-type': 'multipart/form-data; boundary=b' }, body: mp });
    assert.equal(r.status, 200);
    assert.equal(last().body, mp);
  });

  test('preserve: a body that claims JSON is held to it (an array is 400); an empty JSON body passes', async () => {
    let r = await request({ port, method: 'POST', path: '/pres/v1/e', headers: { 'content-type': 'application/json' }, body: '[1,2]' });
    assertOpenaiError(r, 400);
    r = await request({ port, method: 'POST', path: '/pres/v1/e', headers: { 'content-type': 'application/json' }, body: '' });
    assert.equal(r.status, 200);
  });

  test('preserve: the client\'s query string reaches the provider (Kong sets the path only)',
    async () => {
      const r = await request({ port, path: '/pres/v1/models?limit=5&after=x' });
      assert.equal(r.status, 200);
      assert.equal(last().path, '/pres/v1/models');
      assert.deepEqual(last().query, { limit: '5', after: 'x' });
    });

  test('preserve with auth in the query: the client\'s own parameters are kept beside the key',
    async () => {
      const r = await request({ port, path: '/presq/v1/files?purpose=batch' });
      assert.equal(r.status, 200);
      assert.equal(last().query.key, 'conf-key');
      assert.equal(last().query.purpose, 'batch');
    });

  // --- Azure, Mistral, Ollama embeddings

  test('Azure: the client\'s ?api-version= is used (upstream_url without one)', async () => {
    const r = await postJson(port, '/azq?api-version=2024-10-21', MSG);
    assert.equal(r.status, 200, r.text);
    assert.equal(last().query['api-version'], '2024-10-21');
  });

  test('Azure: the client\'s ?api-version= wins over one in upstream_url (docs/providers.md, Kong azure.lua)',
    async () => {
      const r = await postJson(port, '/azv?api-version=2024-10-21', MSG);
      assert.equal(r.status, 200, r.text);
      assert.equal(last().query['api-version'], '2024-10-21');
    });

  test('Mistral: max_completion_tokens and seed go by Mistral\'s names', async () => {
    const r = await postJson(port, '/mis', { ...MSG, max_completion_tokens: 5, seed: 3 });
    assert.equal(r.status, 200, r.text);
    const j = last().json;
    assert.equal(j.max_tokens, 5);
    assert.equal(j.random_seed, 3);
    assert.equal(j.max_completion_tokens, undefined);
    assert.equal(j.seed, undefined);
  });

  test('Ollama embeddings asked as base64: float32 little-endian base64, dimensions passed on', async () => {
    const r = await postJson(port, '/emb', { input: ['a b', 'c'], encoding_format: 'base64', dimensions: 4 });
    assert.equal(r.status, 200, r.text);
    assert.equal(last().json.dimensions, 4);
    const data = r.json().data;
    assert.equal(data.length, 2);
    for (const d of data) {
      assert.equal(typeof d.embedding, 'string');
      assert.equal(Buffer.from(d.embedding, 'base64').length, 16);
    }
  });
});

// ------------------------------------------------------------------ no resend over HTTPS HTTP/1.1 and h2

describe('no automatic resend of a POST on TLS upstreams', { skip }, () => {
  let sl;
  let h2;
  let t1;
  const h2seen = [];
  const t1seen = [];

  before(async () => {
    const d = tempDir('sluice-today-tls-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${d}/k.pem`, '-out', `${d}/c.pem`,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const creds = { key: readFileSync(`${d}/k.pem`), cert: readFileSync(`${d}/c.pem`) };
    // h2: the first request of a session is answered; the second is read
    // whole, then the TCP connection is cut (no GOAWAY, no RST_STREAM).
    let lastRaw;
    const rawOf = new Map();
    let sessions = 0;
    h2 = http2.createSecureServer(creds, (req, res) => {
      const s = req.stream.session;
      if (!s.no) { s.no = ++sessions; s.served = 0; }
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        h2seen.push([s.no, req.method, req.url, body]);
        if (s.served++ === 1) { rawOf.get(s)?.destroy(); return; }
        res.end(`${req.method} ${req.url} on ${s.no}`);
      });
    });
    h2.prependListener('secureConnection', (t) => { lastRaw = t; });
    h2.on('session', (s) => rawOf.set(s, lastRaw));
    // TLS HTTP/1.1: same script on a keep-alive connection.
    let conns = 0;
    t1 = tls.createServer({ ...creds, ALPNProtocols: ['http/1.1'] }, (sock) => {
      const no = ++conns;
      let served = 0;
      let buf = Buffer.alloc(0);
      sock.on('error', () => {});
      sock.on('data', (c) => {
        buf = Buffer.concat([buf, c]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          const body = buf.subarray(end + 4, end + 4 + len).toString();
          buf = buf.subarray(end + 4 + len);
          const [m, p] = head.split(' ');
          t1seen.push([no, m, p, body]);
          if (served++ === 1) { sock.destroy(); return; }
          const t = `${m} ${p} on ${no}`;
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${t.length}\r\n\r\n${t}`);
        }
      });
    });
    await new Promise((r) => h2.listen(0, '127.0.0.1', r));
    await new Promise((r) => t1.listen(0, '127.0.0.1', r));
    sl = await startSluice({ workers: 1, config: { services: [
      { name: 'h2', url: `https://127.0.0.1:${h2.address().port}`, tls_verify: false, routes: [{ name: 'h2', paths: ['/h2'] }] },
      { name: 't1', url: `https://127.0.0.1:${t1.address().port}`, tls_verify: false, routes: [{ name: 't1', paths: ['/t1'] }] },
    ] } });
  });
  after(async () => {
    await sl?.stop();
    h2?.close();
    t1?.close();
  });

  test('HTTPS HTTP/1.1: a POST the upstream read and dropped on a reused connection is sent once, 502', async () => {
    const warm = await request({ port: sl.proxyPort, path: '/t1/warm' });
    assert.equal(warm.text, 'GET /warm on 1');
    const r = await request({ port: sl.proxyPort, method: 'POST', path: '/t1/act', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    assertErrorBody(r, 502, /not sent twice/);
    assert.deepEqual(t1seen.filter((s) => s[2] === '/act').map((s) => s[0]), [1]);
  });

  test('h2: a POST whose connection is cut after it was read is sent once, 502', async () => {
    const warm = await request({ port: sl.proxyPort, path: '/h2/warm' });
    assert.equal(warm.text, 'GET /warm on 1');
    const r = await request({ port: sl.proxyPort, method: 'POST', path: '/h2/act', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    assertErrorBody(r, 502);
    assert.equal(h2seen.filter((s) => s[2] === '/act').length, 1);
  });
});

// ------------------------------------------------------------------ configuration: ids, metadata, inert fields, rate-limiting

describe('configuration changes (sluice -t)', { skip }, () => {
  const svc = (extra = {}) => ({ name: 'a', url: 'http://127.0.0.1:1', ...extra });

  test('references by id: {id: ...} and a bare id resolve; created_at/updated_at, _comment and _ignore load', async () => {
    const r = await check({ services: [svc({ id: U1, created_at: 1700000000, updated_at: 1700000001, _comment: 'from db_export', _ignore: [1, { a: 2 }] })],
      routes: [{ name: 'r1', paths: ['/r1'], service: { id: U1 }, id: U2 }, { name: 'r2', paths: ['/r2'], service: U1 }],
      plugins: [{ name: 'correlation-id', route: { id: U2 } }] });
    assert.equal(r.code, 0, r.out);
  });

  test('metadata of the wrong type is refused at its position', async () => {
    const r = await check('_format_version: "3.0"\nservices:\n- name: a\n  url: http://127.0.0.1:1\n  created_at: 1700000000.5\n  updated_at: "x"\n  _comment: [x]\n  _ignore: {a: 1}\n');
    assert.equal(r.code, 1);
    assert.match(r.out, /:5:\d+: services\[0\]\.created_at: expected a timestamp/);
    assert.match(r.out, /:6:\d+: services\[0\]\.updated_at: expected a timestamp/);
    assert.match(r.out, /:7:\d+: services\[0\]\._comment: expected a string/);
    assert.match(r.out, /:8:\d+: services\[0\]\._ignore: expected a list/);
  });

  test('two services with the same id are refused (Kong: "uniqueness violation ... primary key")',
    async () => {
      const r = await check({ services: [svc({ id: U1 }), { name: 'b', url: 'http://127.0.0.1:2', id: U1 }],
        routes: [{ name: 'r', paths: ['/r'], service: { id: U1 } }] });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(U1), 'the error names the duplicate id');
    });

  test('two routes, or two consumers, with the same id are refused',
    async () => {
      let r = await check({ services: [svc({ routes: [{ name: 'r1', paths: ['/a'], id: U2 }, { name: 'r2', paths: ['/b'], id: U2 }] })] });
      assert.equal(r.code, 1, `routes: ${r.out}`);
      r = await check({ consumers: [{ username: 'c1', id: U2 }, { username: 'c2', id: U2 }] });
      assert.equal(r.code, 1, `consumers: ${r.out}`);
    });

  test('inert Kong fields load at their defaults: null, [], {}, false, the default string', async () => {
    const r = await check({ services: [svc({ tls_verify_depth: null, ca_certificates: [], client_certificate: null,
      routes: [{ name: 'r', paths: ['/r'], snis: [], sources: null, destinations: [],
        plugins: [{ name: 'ai-proxy', ordering: null, config: { route_type: 'llm/v1/chat', llm_format: 'openai', genai_category: 'text/generation',
          auth: { header_name: 'Authorization', header_value: 'Bearer x', azure_use_managed_identity: false, gcp_use_service_account: false, aws_access_key_id: null },
          model: { provider: 'openai', name: 'gpt', options: { bedrock: { aws_region: null, embeddings_normalize: false }, gemini: {}, cohere: { embedding_input_type: 'classification' }, huggingface: null } } } }] }] })] });
    assert.equal(r.code, 0, r.out);
  });

  test('inert fields asking for their feature are refused with a reason and a position', async () => {
    const r = await check({ services: [svc({ tls_verify_depth: 1,
      routes: [{ name: 'r', paths: ['/r'], sources: [{ ip: '1.2.3.4' }],
        plugins: [{ name: 'ai-proxy', ordering: { before: { access: ['x'] } }, config: { route_type: 'llm/v1/chat', llm_format: 'gemini',
          auth: { header_name: 'Authorization', header_value: 'Bearer x', azure_use_managed_identity: true },
          model: { provider: 'openai', name: 'gpt', options: { gemini: { project_id: 'p' } } } } }] }] })] });
    assert.equal(r.code, 1);
    for (const f of ['services\\[0\\]\\.tls_verify_depth', 'routes\\[0\\]\\.sources', 'plugins\\[0\\]\\.ordering', 'config\\.llm_format',
      'auth\\.azure_use_managed_identity', 'options\\.gemini\\.project_id']) {
      assert.match(r.out, new RegExp(`:\\d+:\\d+: \\S*${f}: not supported: `), f);
    }
  });

  test('rate-limiting: a flat redis_* field and its redis.* twin must agree; header_name and path are checked', async () => {
    const base = { minute: 5, policy: 'redis' };
    let r = await check({ plugins: [{ name: 'rate-limiting', config: { ...base, redis_host: 'h1', redis: { host: 'h2' } } }] });
    assert.equal(r.code, 1);
    assert.match(r.out, /redis_host: and redis\.host are both given and differ/);
    r = await check({ plugins: [{ name: 'rate-limiting', config: { ...base, redis_host: '127.0.0.1', redis_port: 6380, redis: { host: '127.0.0.1', port: 6380 }, redis_password: null } }] });
    assert.equal(r.code, 0, r.out);
    r = await check({ plugins: [{ name: 'rate-limiting', config: { minute: 5, limit_by: 'header', header_name: 'X Bad' } }] });
    assert.equal(r.code, 1);
    assert.match(r.out, /header_name: must be a header name/);
    r = await check({ plugins: [{ name: 'rate-limiting', config: { minute: 5, limit_by: 'path', path: '/a//b' } }] });
    assert.equal(r.code, 1);
    assert.match(r.out, /path: must not have empty segments/);
  });

  test('correlation-id: a header_name that is not a token is refused', async () => {
    const r = await check({ plugins: [{ name: 'correlation-id', config: { header_name: 'X:Y' } }] });
    assert.equal(r.code, 1);
    assert.match(r.out, /header_name: must be a header name/);
  });
});

// ------------------------------------------------------------------ plugin protocols, reload with uri_captures

describe('plugin protocols and reloads', { skip }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake({ port: 0 });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  test('a plugin whose protocols list only https runs for plain http requests (Kong: a subsystem); tcp-only does not', async () => {
    sl = await startSluice({ config: { services: [{ name: 's', url: `${fake.url}/echo`, routes: [
      { name: 'h', paths: ['/h'], plugins: [{ name: 'correlation-id', protocols: ['https'], config: { header_name: 'X-C', echo_downstream: true } }] },
      { name: 't', paths: ['/t'], plugins: [{ name: 'correlation-id', protocols: ['tcp'], config: { header_name: 'X-C', echo_downstream: true } }] },
    ] }] } });
    const h = await request({ port: sl.proxyPort, path: '/h' });
    assert.match(String(h.headers['x-c']), /.+/);
    const t = await request({ port: sl.proxyPort, path: '/t' });
    assert.equal(t.headers['x-c'], undefined);
  });

  test('a reload that changes a route\'s regex changes what uri_captures gives', async () => {
    const cfg = (re) => ({ services: [{ name: 'ai', url: fake.url, routes: [{ name: 'c', paths: [re], plugins: [{ name: 'ai-proxy', config: {
      route_type: 'llm/v1/chat', model: { provider: 'openai', name: 'm-$(uri_captures.v)', options: { upstream_url: `${fake.url}/noauth/v1/chat/completions` } } } }] }] }] });
    await sl.reload(cfg('~/c/(?<v>[a-z]+)/(?<w>\\d+)$'));
    let r = await postJson(sl.proxyPort, '/c/abc/12', MSG);
    assert.equal(r.json().model, 'm-abc');
    await sl.reload(cfg('~/c/(?<w>[a-z]+)/(?<v>\\d+)$'));
    r = await postJson(sl.proxyPort, '/c/abc/12', MSG);
    assert.equal(r.json().model, 'm-12');
  });
});
