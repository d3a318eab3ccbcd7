// Adversarial review: the gateway's security as a whole, as an attacker with
// HTTP access to the proxy port only. The provider is a small recorder
// written here (every request kept, replies chosen by path), so a test can
// see what sluice sent with the operator's key and where. Three tests found
// bugs, each failing before its fix: on preserve routes a body padded with
// whitespace (or a BOM, or a Content-Type in capitals) escaped the strict
// parse, so a repeated "model" or "stream" reached the provider past the
// pinned model and response_streaming: deny; and an SSE frame over the 8 MiB
// parser limit was cut short and ended as if complete.
//
//   cd tests && SLUICE_BIN=/work/main/build-asan/sluice node --test integration/security-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, listenLocal, rawRequest, request, startSluice } from './lib/harness.mjs';
import { aiRoute, postJson, postStream } from './lib/ai-helpers.mjs';

const SECRET = 'sk-conf-SECRET-security-5f5f';
const PINNED = 'gpt-4o-mini';

const OPENAI_CHAT = {
  id: 'chatcmpl-sec', object: 'chat.completion', created: 1700000000, model: PINNED,
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 },
};

function startRecorder(trapPort) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      requests.push({ method: req.method, url: req.url, headers: req.headers, text: body.toString('utf8') });
      if (req.url.startsWith('/redirect')) {
        res.writeHead(307, { location: `http://127.0.0.1:${trapPort()}/steal`, 'content-type': 'application/json' });
        return res.end('{}');
      }
      if (req.url.startsWith('/hugesse')) return hugeSse(res);
      if (req.url.startsWith('/gzipbomb')) {
        // 80 MiB of zeros, about 80 KiB on the wire: past the bound once inflated.
        const z = zlib.gzipSync(Buffer.alloc(80 * 1024 * 1024));
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': z.length });
        return res.end(z);
      }
      const text = JSON.stringify(OPENAI_CHAT);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  return listenLocal(server).then((l) => ({ ...l, requests }));
}

// An OpenAI stream whose second frame carries HUGE characters of content,
// written in 64 KiB pieces, its last 64 bytes 100 ms later with a finish
// chunk and [DONE].
const HUGE = 10 * 1024 * 1024;
async function hugeSse(res) {
  const chunk = (delta, finish = null) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1,
    model: PINNED, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(chunk({ role: 'assistant', content: '' }));
  const frame = chunk({ content: 'a'.repeat(HUGE) });
  const body = frame.slice(0, -64);
  for (let i = 0; i < body.length; i += 65536) {
    if (!res.write(body.slice(i, i + 65536))) await new Promise((r) => res.once('drain', r));
  }
  // The frame's end (and what follows) in a read of its own.
  await new Promise((r) => setTimeout(r, 100));
  res.end(frame.slice(-64) + chunk({}, 'stop') + 'data: [DONE]\n\n');
}

// A TCP listener that only counts connections: the attacker's host.
function startTrap() {
  const conns = [];
  const server = net.createServer((s) => {
    conns.push(Date.now());
    s.on('error', () => {});
    s.destroy();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port, conns, close: () => new Promise((r) => server.close(() => r())),
  })));
}

const auth = { header_name: 'Authorization', header_value: `Bearer ${SECRET}` };
const userMsg = (t) => [{ role: 'user', content: t }];

describe('security review', { skip: binaryMissing() }, () => {
  let R, trap, sl, port;
  const newSince = (n) => R.requests.slice(n);

  before(async () => {
    trap = await startTrap();
    R = await startRecorder(() => trap.port);
    const U = R.url;
    const chat = (upstream, extra = {}) => ({ route_type: 'llm/v1/chat', auth,
      model: { provider: 'openai', name: PINNED, options: { upstream_url: `${U}${upstream}` } }, ...extra });
    const routes = [
      aiRoute('pinned-preserve', '/pinned-preserve', { route_type: 'preserve', auth,
        model: { provider: 'openai', name: PINNED, options: { upstream_url: `${U}/v1/chat/completions` } } }),
      aiRoute('chat', '/chat', chat('/v1/chat/completions')),
      aiRoute('redirect', '/redirect', chat('/redirect')),
      aiRoute('hugesse', '/hugesse', chat('/hugesse')),
      aiRoute('nostream-preserve', '/nostream-preserve', { route_type: 'preserve', auth, response_streaming: 'deny',
        model: { provider: 'openai', options: { upstream_url: `${U}/v1/chat/completions` } } }),
      aiRoute('gzipbomb', '/gzipbomb', chat('/gzipbomb')),
      { name: 'rl-ip', paths: ['/rl-ip'], plugins: [{ name: 'rate-limiting', config: { hour: 2, limit_by: 'ip', policy: 'local' } }] },
    ];
    sl = await startSluice({ workers: 2, config: { _format_version: '3.0', services: [{ name: 'sec', url: U, routes }] } });
    port = sl.proxyPort;
  });

  after(async () => {
    await sl?.stop();
    await R?.close();
    await trap?.close();
  });

  const alive = async () => {
    const r = await postJson(port, '/chat', { messages: userMsg('still there?') });
    assert.equal(r.status, 200, `daemon still serves: ${r.text}`);
  };

  // --- spending the key outside what the route allows --------------------

  // ai_proxy_access() only checks a body cJSON (strict: no duplicate keys)
  // parsed as an object, or one json_like() says is JSON. json_like() looks
  // for "json" in Content-Type case-sensitively (media types are
  // case-insensitive, RFC 9110 §8.3.1) and for '{' in the first 64 bytes
  // only (JSON allows any amount of leading whitespace, RFC 8259 §2). A body
  // that fails the strict parse and passes neither test is replaced by {} for
  // the checks, then forwarded byte for byte with the operator's key.
  test('preserve with a pinned model: a body that fails the strict parse cannot reach the provider unchecked', {
  }, async () => {
    const dup = `{"model":"${PINNED}","messages":[{"role":"user","content":"x"}],"model":"gpt-4o"}`;
    const variants = [
      { ct: 'application/JSON', body: ' '.repeat(64) + dup },
      { ct: 'text/plain', body: ' '.repeat(64) + dup },
      { ct: 'application/JSON', body: '\ufeff' + dup },
    ];
    const got = [];
    for (const v of variants) {
      const n = R.requests.length;
      const r = await postJson(port, '/pinned-preserve', v.body, { headers: { 'content-type': v.ct } });
      const sent = newSince(n);
      got.push({ ct: v.ct, lead: v.body.slice(0, 1) === ' ' ? '64 blanks' : 'BOM', status: r.status,
        forwarded: sent.length, model: sent[0] ? JSON.parse(sent[0].text.replace(/^\ufeff/, '')).model : null,
        key: sent[0]?.headers.authorization === `Bearer ${SECRET}` });
    }
    for (const g of got) {
      assert.equal(g.forwarded, 0, `nothing sent with the operator key: ${JSON.stringify(got)}`);
      assert.equal(g.status, 400, JSON.stringify(got));
    }
  });

  // The same hole for response_streaming: deny (a duplicate "stream" key).
  test('preserve with response_streaming deny: a padded body repeating "stream" cannot ask for a stream unchecked', {
  }, async () => {
    const n = R.requests.length;
    const body = ' '.repeat(64) + '{"model":"gpt-4o","stream":false,"messages":[{"role":"user","content":"x"}],"stream":true}';
    const r = await postJson(port, '/nostream-preserve', body, { headers: { 'content-type': 'text/plain' } });
    assert.deepEqual(newSince(n).map((q) => q.text.trim()), [], `status ${r.status}`);
    assert.equal(r.status, 400, r.text);
  });

  test('control: the same duplicate-"model" body with application/json and no padding is refused', async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/pinned-preserve', `{"model":"${PINNED}","messages":[],"model":"gpt-4o"}`);
    assert.equal(r.status, 400, r.text);
    assert.equal(newSince(n).length, 0);
  });

  test('translated chat route: a non-string "model" cannot replace the pinned one upstream', async () => {
    for (const model of [['gpt-4o'], { name: 'gpt-4o' }, 7, null]) {
      const n = R.requests.length;
      const r = await postJson(port, '/chat', { model, messages: userMsg('m') });
      const sent = newSince(n);
      if (sent.length) assert.equal(JSON.parse(sent[0].text).model, PINNED, `model ${JSON.stringify(model)}: ${sent[0].text}`);
      else assert.equal(r.status, 400, r.text);
    }
  });

  // --- getting the key to another host -----------------------------------

  test('a provider 3xx is not followed: the Location host never gets a connection (nor the key)', async () => {
    const before = trap.conns.length;
    const r = await postJson(port, '/redirect', { messages: userMsg('go') });
    assert.notEqual(r.status, 200, r.text);
    assert.ok(!r.text.includes(SECRET), `no key in the reply: ${r.text}`);
    assert.ok(!JSON.stringify(r.headers).includes(SECRET), 'no key in the reply headers');
    // Give a (wrong) follow time to connect before asserting none did.
    await alive();
    assert.equal(trap.conns.length, before);
  });

  // --- exhaustion from one client ----------------------------------------

  test('upstream gzip bomb on an AI route: inflated no further than the 64 MiB bound of a read reply, an error, the client\'s Accept-Encoding not passed on', async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/gzipbomb', { messages: userMsg('b') }, { headers: { 'accept-encoding': 'gzip, deflate' } });
    assert.equal(newSince(n).length, 1);
    assert.equal(newSince(n)[0].headers['accept-encoding'], undefined);
    assert.equal(r.status, 502, r.text.slice(0, 300));
    assert.ok(r.body.length < 1024 * 1024, `reply ${r.body.length} bytes`);
    await alive();
  });

  test('a deeply nested JSON body (4000 levels, within max_request_body_size) on an AI route: a 400, no stack overflow', async () => {
    const deep = '{"messages":' + '['.repeat(4000) + ']'.repeat(4000) + '}';
    const n = R.requests.length;
    const r = await postJson(port, '/chat', deep);
    assert.equal(r.status, 400, r.text.slice(0, 300));
    assert.equal(newSince(n).length, 0);
    await alive();
  });

  test('a head of 100k tiny header fields: a 431, the daemon keeps serving', async () => {
    const head = 'GET /chat HTTP/1.1\r\nHost: x\r\n' + 'a: b\r\n'.repeat(100000) + '\r\n';
    const t0 = Date.now();
    const out = (await rawRequest({ port, data: head, timeoutMs: 8000 })).toString('latin1');
    assert.match(out, /^HTTP\/1\.[01] 431 /, out.slice(0, 200));
    assert.ok(Date.now() - t0 < 5000);
    await alive();
  });

  // gw_sse_feed() (src/llm/sse.c) returns -1 for a line past 8 MiB without
  // consuming it, and keeps the part it had; ai-proxy's body filter ignores
  // the -1 and feeds the next read, so the line it finally parses is the
  // first 8 MiB spliced to the frame's end: valid JSON with the middle gone.
  test('an SSE frame over the 8 MiB parser limit: an error, never a silently shortened reply with finish stop', {
  }, async () => {
    // Where the parser gives up depends on how the reads fall: sometimes it
    // does end in an error. Any one silently shortened reply is the bug.
    const outcomes = [];
    for (let i = 0; i < 4; i++) {
      const r = await postStream(port, '/hugesse', { messages: userMsg('big'), stream: true }, { timeoutMs: 20000 });
      let content = 0;
      let errored = r.end !== 'end';
      let finish = null;
      for (const e of r.events) {
        if (e.data === '[DONE]') continue;
        let j;
        try { j = JSON.parse(e.data); } catch { errored = true; continue; }
        if (j.error) errored = true;
        content += j.choices?.[0]?.delta?.content?.length ?? 0;
        finish = j.choices?.[0]?.finish_reason ?? finish;
      }
      outcomes.push({ content, finish, errored });
    }
    const silent = outcomes.filter((o) => o.content !== HUGE && !o.errored);
    assert.deepEqual(silent, [], `each reply either the whole ${HUGE} characters or an error: ${JSON.stringify(outcomes)}`);
    await alive();
  });

  // --- rate-limiting evasion ---------------------------------------------

  test('rate-limiting limit_by ip counts the peer address: X-Forwarded-For / X-Real-IP / Forwarded do not open new counters', async () => {
    const spoof = [{}, { 'x-forwarded-for': '203.0.113.7' }, { 'x-real-ip': '198.51.100.9' },
      { forwarded: 'for=192.0.2.60' }, { 'X-FORWARDED-FOR': '203.0.113.8, 10.0.0.1' }];
    const statuses = [];
    for (const h of spoof) statuses.push((await request({ port, path: '/rl-ip', headers: h })).status);
    assert.deepEqual(statuses.slice(0, 2), [200, 200], JSON.stringify(statuses));
    assert.deepEqual(statuses.slice(2), [429, 429, 429], JSON.stringify(statuses));
  });
});
