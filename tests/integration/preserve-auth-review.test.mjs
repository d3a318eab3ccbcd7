// Adversarial review of ai-proxy's `preserve` route_type, credential
// injection (auth.c) and request templates (template.c), through the real
// daemon and real SDK clients. The upstream is a small recorder written here
// that keeps every request byte for byte and answers in the provider's own
// (native) format, so a test can see exactly what sluice sent and what it
// did with the reply.
//
//   cd tests && SLUICE_BIN=/work/main/build-asan/sluice node --test integration/preserve-auth-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { binaryMissing, listenLocal, rawRequest, startSluice } from './lib/harness.mjs';
import { accessLog, aiRoute, logFields, postJson } from './lib/ai-helpers.mjs';

const CLAUDE = 'claude-3-5-sonnet-20241022';
const SECRET = {
  openai: 'sk-conf-SECRET-openai-1a2b',
  anthropic: 'sk-ant-conf-SECRET-3c4d',
  azure: 'azure-conf-SECRET-5e6f',
  query: 'k+y/&=?#\u00e9 %z', // every character a query value must have escaped
  body: 'b-conf-SECRET-7a8b',
  client: 'sk-client-OWN-9c0d',
};

// --- the recording provider ------------------------------------------------

const ANTHROPIC_MESSAGE = {
  id: 'msg_01preserve', type: 'message', role: 'assistant', model: CLAUDE,
  content: [{ type: 'text', text: 'Hello from claude' }],
  stop_reason: 'end_turn', stop_sequence: null,
  usage: { input_tokens: 12, output_tokens: 4 },
};
const sse = (event, data) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
const ANTHROPIC_STREAM = [
  sse('message_start', { type: 'message_start', message: { ...ANTHROPIC_MESSAGE, content: [], stop_reason: null, usage: { input_tokens: 21, output_tokens: 1 } } }),
  sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  sse('ping', { type: 'ping' }),
  sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
  sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' stream' } }),
  sse('content_block_stop', { type: 'content_block_stop', index: 0 }),
  sse('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 6 } }),
  sse('message_stop', { type: 'message_stop' }),
].join('');
const OPENAI_CHAT = {
  id: 'chatcmpl-rec', object: 'chat.completion', created: 1700000000, model: 'gpt-4o-mini-2024-07-18',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop', logprobs: null }],
  usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 },
};
// A reply whose bytes a re-encoder would change: spacing, key order,
// \u escapes, 1.0, a 64-bit integer.
const ODD_REPLY = '{ "object" : "list",\n  "data": [ {"object":"embedding","index":0,"embedding":[1.0, -0.50, 2e-3]} ],\n' +
  '  "model": "text-embedding-3-small", "note": "caf\\u00e9 \\ud83d\\ude00 \\/",\n  "big": 12345678901234567890,\n' +
  '  "usage": {"prompt_tokens": 3, "total_tokens": 3} }\n';

function startRecorder() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      const url = new URL(req.url, 'http://x');
      const rec = { method: req.method, url: req.url, path: url.pathname, search: url.search, query: url.searchParams,
        headers: req.headers, rawHeaders: req.rawHeaders, body, text: body.toString('utf8') };
      try { rec.json = JSON.parse(rec.text); } catch { rec.json = undefined; }
      requests.push(rec);
      const send = (status, type, text, extra = {}) => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...extra });
        res.end(text);
      };
      const status = Number(req.headers['x-test-status'] || 0);
      if (status) {
        return send(status, 'application/json', JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: `recorder says ${status}` } }),
          { 'request-id': 'req_rec_err', 'x-should-retry': 'false' });
      }
      if (req.headers['x-test-reply'] === 'odd') return send(200, 'application/json', ODD_REPLY);
      if (url.pathname.endsWith('/v1/messages/count_tokens')) return send(200, 'application/json', JSON.stringify({ input_tokens: 77 }));
      if (url.pathname.endsWith('/v1/messages')) {
        if (rec.json?.stream) return send(200, 'text/event-stream; charset=utf-8', ANTHROPIC_STREAM);
        return send(200, 'application/json', JSON.stringify(ANTHROPIC_MESSAGE), { 'request-id': 'req_rec_ok' });
      }
      if (url.pathname.endsWith('/models')) return send(200, 'application/json', JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o', object: 'model', created: 1, owned_by: 'x' }] }));
      if (url.pathname.includes('/embeddings')) {
        return send(200, 'application/json', JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.5, 0.25] }], model: 'text-embedding-3-small', usage: { prompt_tokens: 3, total_tokens: 3 } }));
      }
      return send(200, 'application/json', JSON.stringify(OPENAI_CHAT));
    });
  });
  return listenLocal(server).then((l) => ({ ...l, requests }));
}

// A plain TCP listener that only counts connections (an attacker's host).
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

const userMsg = (t) => [{ role: 'user', content: t }];

describe('ai-proxy preserve, auth and templates (review)', { skip: binaryMissing() }, () => {
  let R, trap, sl, port;
  const last = () => R.requests.at(-1);
  const newSince = (n) => R.requests.slice(n);

  before(async () => {
    R = await startRecorder();
    trap = await startTrap();
    const U = R.url;
    const chat = (provider, name, options, extra = {}) => ({ route_type: 'llm/v1/chat', model: { provider, ...(name ? { name } : {}), options }, ...extra });
    const stats = { logging: { log_statistics: true } };
    const routes = [
      // Kong's own spec (02-openai_integration_spec.lua, "openai preserve mode"):
      // upstream_url's path "doesnt matter", the client's path is used.
      aiRoute('kong-spec', '/llm/v1/embeddings/good', { route_type: 'preserve', auth: { header_name: 'Authorization', header_value: `Bearer ${SECRET.openai}` },
        model: { provider: 'openai', options: { upstream_url: `${U}/whatever/doesnt/matter` } } }),
      // The Anthropic SDK at sluice's root: /v1/messages and below.
      { ...aiRoute('p-anth', '/v1/messages', { route_type: 'preserve', auth: { header_name: 'x-api-key', header_value: SECRET.anthropic },
        model: { provider: 'anthropic', options: { upstream_url: `${U}/v1/messages`, input_cost: 1000000, output_cost: 2000000 } }, ...stats }), strip_path: false },
      // Anthropic preserve without auth: the client's key passes.
      aiRoute('p-anth-noauth', '/p-anth-noauth', { route_type: 'preserve', model: { provider: 'anthropic', options: { upstream_url: `${U}/v1/messages` } } }),
      // OpenAI preserve with a configured model and options.
      aiRoute('p-openai', '/p-openai', { route_type: 'preserve', model: { provider: 'openai', name: 'gpt-4o-mini', options: { upstream_url: `${U}/v1/chat/completions`, max_tokens: 5, temperature: 0.1 } }, ...stats }),
      aiRoute('p-openai-any', '/p-openai-any', { route_type: 'preserve', model: { provider: 'openai', options: { upstream_url: `${U}/v1/embeddings` } }, ...stats }),
      // Credentials.
      aiRoute('auth-hdr', '/auth-hdr', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions` }, { auth: { header_name: 'Authorization', header_value: `Bearer ${SECRET.openai}` } })),
      aiRoute('auth-xkey-ovr', '/auth-xkey-ovr', chat('anthropic', CLAUDE, { upstream_url: `${U}/v1/messages` }, { auth: { header_name: 'x-api-key', header_value: SECRET.anthropic, allow_override: true } })),
      aiRoute('auth-query', '/auth-query', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions?a=1&b=x%2By` }, { auth: { param_name: 'key', param_value: SECRET.query, param_location: 'query' } })),
      aiRoute('auth-query-ovr', '/auth-query-ovr', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions` }, { auth: { param_name: 'key', param_value: SECRET.query, param_location: 'query', allow_override: true } })),
      aiRoute('auth-body', '/auth-body', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions` }, { auth: { param_name: 'api_key', param_value: SECRET.body, param_location: 'body' } })),
      aiRoute('azure-default', '/azure-default', chat('azure', 'gpt-4o', { upstream_url: `${U}/openai/deployments/dep/chat/completions` })),
      // Templates.
      aiRoute('t-dep', '/t-dep', chat('openai', 'gpt-4o', { upstream_url: `${U}/openai/deployments/$(query_params.dep)/chat/completions` }, { auth: { header_name: 'Authorization', header_value: `Bearer ${SECRET.openai}` } })),
      aiRoute('t-case', '/t-case', chat('openai', '$(headers.X-Model)', { upstream_url: `${U}/v1/chat/completions` })),
      aiRoute('t-instance', '/t-instance', chat('azure', 'gpt-4o', { azure_instance: '$(headers.x-instance)', azure_deployment_id: 'dep' }, { auth: { header_name: 'api-key', header_value: SECRET.azure } })),
      aiRoute('t-version', '/t-version', chat('anthropic', CLAUDE, { upstream_url: `${U}/v1/messages`, anthropic_version: '$(query_params.v)' })),
      // Kong: $(uri_captures.NAME) from a regex route's named capture.
      { name: 'cap', paths: ['~/cap/(?<dep>[a-z0-9-]+)/chat$'], plugins: [{ name: 'ai-proxy', config: chat('openai', 'gpt-4o', { upstream_url: `${U}/openai/deployments/$(uri_captures.dep)/chat/completions` }) }] },
    ];
    sl = await startSluice({ workers: 1, config: { _format_version: '3.0', services: [{ name: 'ai', url: U, routes }] } });
    port = sl.proxyPort;
  });

  after(async () => {
    await sl?.stop();
    await R?.close();
    await trap?.close();
  });

  const anthropic = (opts = {}) => new Anthropic({ baseURL: sl.proxyUrl, apiKey: SECRET.client, maxRetries: 0, ...opts });
  const openai = (base, opts = {}) => new OpenAI({ baseURL: `${sl.proxyUrl}${base}`, apiKey: SECRET.client, maxRetries: 0, ...opts });
  const thrown = async (fn) => {
    try {
      await fn();
    } catch (e) {
      return e;
    }
    assert.fail('expected an error');
  };
  // The access-log fields of the next line after mark that matches re.
  const logAfter = async (mark, re) => logFields(await sl.waitForLog(re, { from: mark }));

  // --- preserve: where the request goes ---------------------------------------

  // Kong: override_upstream_url() (kong/llm/drivers/shared.lua) sets the path
  // to kong.request.get_path() on preserve routes unless upstream_path is set;
  // its spec (02-openai_integration_spec.lua, "openai preserve mode") routes
  // /llm/v1/embeddings/good with upstream_url ".../whatever/doesnt/matter"
  // and expects the mock's /llm/v1/embeddings/good to answer.
  test('preserve: the client\'s path is called on upstream_url\'s host (Kong\'s own preserve spec)', {
  }, async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/llm/v1/embeddings/good', { model: 'text-embedding-ada-002', input: 'The food was delicious', encoding_format: 'float' });
    assert.equal(r.status, 200, r.text);
    assert.equal(newSince(n).length, 1);
    assert.equal(last().path, '/llm/v1/embeddings/good');
    assert.equal(last().headers.authorization, `Bearer ${SECRET.openai}`);
    assert.ok(Array.isArray(r.json().data), `an embeddings reply: ${r.text}`);
  });

  test('preserve: the Anthropic SDK\'s messages.countTokens reaches /v1/messages/count_tokens', {
  }, async () => {
    const n = R.requests.length;
    const c = await anthropic().messages.countTokens({ model: CLAUDE, messages: userMsg('count me') });
    assert.equal(newSince(n)[0]?.path, '/v1/messages/count_tokens');
    assert.equal(c.input_tokens, 77);
  });

  // Kong's parse-request filter falls through when the body is not JSON
  // (kong/llm/plugin/shared-filters/parse-request.lua: "not a valid llm
  // request, fall through"), and normalize-request only checks prompts when
  // route_type is not preserve: a GET without body is proxied as it came.
  test('preserve: GET /v1/models from the OpenAI SDK (no body) is passed through', {
  }, async () => {
    const n = R.requests.length;
    const page = await openai('/p-openai-any').models.list();
    assert.equal(newSince(n).length, 1, 'the request reached the provider');
    assert.equal(last().method, 'GET');
    assert.deepEqual(page.data.map((m) => m.id), ['gpt-4o']);
  });

  // --- preserve: the Anthropic SDK against a native route ------------------------

  test('preserve: Anthropic SDK messages.create gets the native Message; configured key replaces the SDK\'s; usage and cost logged', async () => {
    const mark = sl.logMark();
    const n = R.requests.length;
    const { data: msg, response } = await anthropic().messages.create({ model: CLAUDE, max_tokens: 50, messages: userMsg('hello') }).withResponse();
    assert.equal(msg.type, 'message');
    assert.equal(msg.id, ANTHROPIC_MESSAGE.id);
    assert.equal(msg.content[0].text, 'Hello from claude');
    assert.deepEqual(msg.usage, ANTHROPIC_MESSAGE.usage);
    const rec = newSince(n)[0];
    assert.equal(rec.path, '/v1/messages');
    assert.equal(rec.headers['x-api-key'], SECRET.anthropic);
    assert.ok(!JSON.stringify(rec.rawHeaders).includes(SECRET.client), 'the SDK\'s own key is not forwarded');
    // No anthropic_version configured: the SDK's own version is kept (the
    // default only fills in for a client that sent none).
    assert.match(rec.headers['anthropic-version'], /^\d{4}-\d{2}-\d{2}$/);
    assert.notEqual(rec.headers['anthropic-version'], '2023-06-01');
    const f = await accessLog(sl, response.headers.get('x-sluice-request-id'), { from: mark });
    assert.equal(Number(f.fields['ai.prompt_tokens']), 12);
    assert.equal(Number(f.fields['ai.completion_tokens']), 4);
    assert.equal(Number(f.fields['ai.cost']), 12 + 4 * 2);
    assert.equal(f.fields['ai.model'], CLAUDE);
  });

  test('preserve: Anthropic SDK messages.stream helper assembles the native stream; usage of the stream logged', async () => {
    const mark = sl.logMark();
    const stream = anthropic().messages.stream({ model: CLAUDE, max_tokens: 50, messages: userMsg('stream please') });
    const deltas = [];
    stream.on('text', (t) => deltas.push(t));
    const msg = await stream.finalMessage();
    assert.deepEqual(deltas, ['Hello', ' stream']);
    assert.equal(msg.content[0].text, 'Hello stream');
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.usage.output_tokens, 6);
    const line = await sl.waitForLog(/ai\.provider=anthropic.*ai\.prompt_tokens=21/, { from: mark });
    const f = logFields(line);
    assert.equal(Number(f['ai.completion_tokens']), 6);
    assert.equal(f.status, '200');
  });

  test('preserve: a provider error reaches the Anthropic SDK as its own APIError subclass, untouched', async () => {
    const e = await thrown(() => anthropic().messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') }, { headers: { 'x-test-status': '429' } }));
    assert.ok(e instanceof Anthropic.RateLimitError, `${e.constructor.name}: ${e}`);
    assert.equal(e.status, 429);
    assert.equal(e.error?.error?.type, 'rate_limit_error');
    assert.match(e.message, /recorder says 429/);
    assert.equal(e.requestID, 'req_rec_err');
  });

  test('preserve without auth: the client\'s Bearer key goes as x-api-key, an x-api-key as it is', async () => {
    let n = R.requests.length;
    let r = await postJson(port, '/p-anth-noauth', { model: CLAUDE, max_tokens: 5, messages: userMsg('b') }, { headers: { authorization: `Bearer ${SECRET.client}` } });
    assert.equal(r.status, 200, r.text);
    assert.equal(newSince(n)[0].headers['x-api-key'], SECRET.client);
    assert.equal(newSince(n)[0].headers.authorization, undefined);
    n = R.requests.length;
    r = await postJson(port, '/p-anth-noauth', { model: CLAUDE, max_tokens: 5, messages: userMsg('x') }, { headers: { 'x-api-key': SECRET.client } });
    assert.equal(r.status, 200, r.text);
    assert.equal(newSince(n)[0].headers['x-api-key'], SECRET.client);
  });

  // --- preserve: the body both ways -------------------------------------------

  // Kong's normalize-request never calls set_body on preserve routes: the
  // provider gets the client's bytes. Re-encoding is not harmless here: an
  // int64 such as OpenAI's `seed` above 1e15 leaves as 1.2345678901234567e+19.
  test('preserve: the request body reaches the provider byte for byte', {
  }, async () => {
    const raw = '{"model": "gpt-4o-mini",\n "messages": [{"role": "user", "content": "caf\\u00e9 \\ud83d\\ude00 \\/"}],\n' +
      ' "temperature": 1.0, "seed": 12345678901234567890 }';
    const n = R.requests.length;
    const r = await postJson(port, '/p-openai', raw);
    assert.equal(r.status, 200, r.text);
    const got = newSince(n)[0].text;
    assert.ok(/"seed":\s*12345678901234567890\b/.test(got), `seed as an integer: ${got}`);
    assert.equal(got, raw);
  });

  test('preserve: the provider\'s reply reaches the client byte for byte (spacing, \\u escapes, 1.0, a 64-bit integer)', async () => {
    const r = await postJson(port, '/p-openai-any', { input: 'x' }, { headers: { 'x-test-reply': 'odd' } });
    assert.equal(r.status, 200);
    assert.equal(r.text, ODD_REPLY);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(ODD_REPLY));
  });

  test('preserve: model.name and options are not applied to the body (Kong), a contradicting model is a 400', async () => {
    let n = R.requests.length;
    const body = { model: 'gpt-4o-mini', messages: userMsg('opts'), temperature: 0.9 };
    let r = await postJson(port, '/p-openai', body);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(newSince(n)[0].json, body, 'no max_tokens, temperature kept');
    n = R.requests.length;
    r = await postJson(port, '/p-openai', { model: 'gpt-4o', messages: userMsg('other') });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json().error.message, /cannot use own model - must be: gpt-4o-mini/);
    assert.equal(newSince(n).length, 0);
  });

  // cJSON keeps both members of {"model":"a","model":"b"}; the check reads
  // the first, OpenAI's parser keeps the last. Refusing is the safe answer.
  test('preserve: a body that repeats "model" is refused (the check and the provider would read different ones)', async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/p-openai', '{"model":"gpt-4o-mini","messages":[],"model":"gpt-4o"}');
    assert.equal(r.status, 400, r.text);
    assert.equal(newSince(n).length, 0);
  });

  // --- credentials ---------------------------------------------------------

  test('configured header: no spelling of the client\'s key reaches the provider (any case, repeated)', async () => {
    const n = R.requests.length;
    const r = await rawRequest({
      port,
      data: 'POST /auth-hdr?key=qk-client&api-key=qk2 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `authorization: Bearer ${SECRET.client}\r\nAUTHORIZATION: Bearer ${SECRET.client}-2\r\nX-API-KEY: ${SECRET.client}-x\r\n` +
        `Api-Key: ${SECRET.client}-a\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{"messages":[]}`,
    });
    assert.match(r.toString('latin1'), /^HTTP\/1\.1 200 /);
    const rec = newSince(n)[0];
    assert.ok(!JSON.stringify(rec.rawHeaders).includes(SECRET.client), `client key upstream: ${JSON.stringify(rec.rawHeaders)}`);
    assert.ok(!rec.url.includes('qk'), `client query upstream: ${rec.url}`);
    assert.deepEqual(rec.rawHeaders.filter((h, i) => i % 2 === 0 && /^(authorization|x-api-key|api-key)$/i.test(h)), ['Authorization']);
    assert.equal(rec.headers.authorization, `Bearer ${SECRET.openai}`);
  });

  test('query auth: the upstream_url\'s own query kept, the value percent-encoded, the client\'s key and query dropped', async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/auth-query?key=client-key&x=1', { messages: [] }, { headers: { authorization: `Bearer ${SECRET.client}` } });
    assert.equal(r.status, 200, r.text);
    const rec = newSince(n)[0];
    assert.deepEqual([...rec.query.entries()], [['a', '1'], ['b', 'x+y'], ['key', SECRET.query]]);
    assert.equal(rec.headers.authorization, undefined);
  });

  test('query auth with allow_override: the client\'s own key is used, once, and the configured one not sent', async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/auth-query-ovr?key=own%2Bkey%26x%3D1', { messages: [] });
    assert.equal(r.status, 200, r.text);
    const rec = newSince(n)[0];
    assert.deepEqual([...rec.query.entries()], [['key', 'own+key&x=1']]);
    const r2 = await postJson(port, '/auth-query-ovr', { messages: [] });
    assert.equal(r2.status, 200);
    assert.deepEqual([...last().query.entries()], [['key', SECRET.query]]);
  });

  test('body auth: a body that repeats the parameter is refused, not half-replaced', async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/auth-body', `{"model":"gpt-4o","messages":[],"api_key":"${SECRET.client}","api_key":"${SECRET.client}-2"}`);
    assert.equal(r.status, 400, r.text);
    assert.equal(newSince(n).length, 0);
    const r2 = await postJson(port, '/auth-body', { messages: [], api_key: SECRET.client });
    assert.equal(r2.status, 200);
    assert.equal(last().json.api_key, SECRET.body);
    assert.ok(!last().text.includes(SECRET.client));
  });

  // --- templates ------------------------------------------------------------

  test('$(headers.X-Model) matches the header in any case; a repeated header uses its first value (kong.request.get_header)', async () => {
    let n = R.requests.length;
    let r = await postJson(port, '/t-case', { messages: [] }, { headers: { 'x-model': 'gpt-x' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(newSince(n)[0].json.model, 'gpt-x');
    n = R.requests.length;
    const raw = await rawRequest({
      port,
      data: 'POST /t-case HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-MODEL: first\r\nx-model: second\r\n' +
        'Content-Length: 15\r\nConnection: close\r\n\r\n{"messages":[]}',
    });
    assert.match(raw.toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.equal(newSince(n)[0].json.model, 'first');
  });

  test('a query template with CR/LF in a header option (anthropic_version) splits no header upstream', async () => {
    const n = R.requests.length;
    await postJson(port, '/t-version?v=2023-06-01%0D%0AX-Evil:%201', { messages: userMsg('x') });
    const rec = newSince(n)[0];
    if (rec) assert.ok(!rec.rawHeaders.some((h) => /x-evil/i.test(h)), JSON.stringify(rec.rawHeaders));
  });

  // template.c: "within what the operator wrote around it". The value is
  // put into the URL as it is: "/" and ".." walk out of the deployment
  // segment, "?" and "#" end the path, and the configured key goes along.
  test('$(query_params.dep) in upstream_url cannot leave its path segment (no /, .., ?, # injection)', {
  }, async () => {
    for (const dep of ['..%2F..%2Fadmin%3Fx%3D1%23', '..', 'a%2F..%2F..%2Fb', 'd%3Fapi-version%3Devil']) {
      const n = R.requests.length;
      const r = await postJson(port, `/t-dep?dep=${dep}`, { messages: [] });
      const rec = newSince(n)[0];
      if (!rec) {
        assert.equal(r.status, 400, `${dep}: refused or confined (${r.status} ${r.text})`);
        continue;
      }
      assert.match(rec.path, /^\/openai\/deployments\/[^/]+\/chat\/completions$/, `${dep}: upstream called ${rec.url}`);
      assert.notEqual(decodeURIComponent(rec.path.split('/')[3]).replace(/^\.+$/, ''), '', `${dep}: a dot segment`);
      assert.equal(rec.search, '', `${dep}: query injected: ${rec.url}`);
    }
  });

  // azure_instance is a host name label; a header value with "/", "#" or ":"
  // turns https://{v}.openai.azure.com/... into another host, and the
  // configured api-key is sent there (after TLS, to a host with a valid
  // certificate). Here the other host is a TCP listener that counts.
  test('$(headers.x-instance) in azure_instance cannot name another host (the api-key would go there)', {
  }, async () => {
    const before = trap.conns.length;
    const r = await postJson(port, '/t-instance', { messages: [] }, { headers: { 'x-instance': `127.0.0.1:${trap.port}/#` } });
    assert.equal(trap.conns.length - before, 0, `sluice connected to the client-named host (answer ${r.status} ${r.text})`);
    assert.equal(r.status, 400, r.text);
  });

  // Kong's conf_from_request() (shared.lua) reads uri_captures, headers and
  // query_params; its Azure preserve spec uses $(uri_captures.azure_deployment).
  // sluice loads such a file (README: a Kong file "loads unchanged") and
  // then answers every request 400.
  test('$(uri_captures.dep) from a regex route\'s named capture fills the template (or the file is refused at load)', {
  }, async () => {
    const n = R.requests.length;
    const r = await postJson(port, '/cap/dep-1/chat', { messages: [] });
    assert.equal(r.status, 200, r.text);
    assert.equal(newSince(n)[0].path, '/openai/deployments/dep-1/chat/completions');
  });

  // --- azure ------------------------------------------------------------------

  // Kong's azure driver: query_table["api-version"] =
  // kong.request.get_query_arg("api-version") or model.options.azure_api_version.
  // The AzureOpenAI SDK always sends ?api-version=.
  test('azure: the client\'s ?api-version= is used when it gives one (Kong), the default otherwise', {
  }, async () => {
    let n = R.requests.length;
    let r = await postJson(port, '/azure-default', { messages: [] }, { headers: { authorization: `Bearer ${SECRET.client}` } });
    assert.equal(r.status, 200, r.text);
    assert.equal(newSince(n)[0].query.get('api-version'), '2023-05-15');
    n = R.requests.length;
    r = await postJson(port, '/azure-default?api-version=2024-10-21', { messages: [] }, { headers: { authorization: `Bearer ${SECRET.client}` } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(newSince(n)[0].query.getAll('api-version'), ['2024-10-21']);
  });
});
