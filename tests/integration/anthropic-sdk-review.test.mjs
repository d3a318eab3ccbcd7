// Review: the official Anthropic SDK (@anthropic-ai/sdk) as a client of
// ai-proxy `preserve` routes in front of Anthropic (Kong supports this: the
// client speaks the provider's native API, the gateway injects the key and
// reads usage), and the OpenAI SDK on llm/v1/chat routes in front of
// Anthropic for what sdk-review.test.mjs did not drive (parallel tool calls
// in one stream, tool results as content parts, image parts, json_object,
// max_completion_tokens, stop, logprobs).
//
// Upstreams: tests/fake (its Anthropic Messages API) and a small scripted
// upstream (below) that writes exact Anthropic bytes the fake cannot (cache
// token usage, two tool_use blocks in one stream, x-should-retry) and keeps
// every request. The SDK picks the script with a request header (`x-script`)
// that sluice forwards.
//
//   cd tests && SLUICE_BIN=/work/main/build-asan/sluice node --test integration/anthropic-sdk-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, closedPort, listenLocal, startSluice } from './lib/harness.mjs';
import { accessLog, aiRoute, logFields, marker, receivedWith, thrown, waitClosed } from './lib/ai-helpers.mjs';

const CLAUDE = 'claude-3-5-sonnet-20241022';
const CONF_KEY = 'sk-ant-conf-REVIEW-1a2b';
const CLIENT_KEY = 'sk-ant-client-OWN-3c4d';
const WEATHER_TOOL = { name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const userMsg = (t) => [{ role: 'user', content: t }];

// --- scripted upstream -------------------------------------------------------
// script(req, json, rec) -> { status, headers, body } | { status, headers, frames: [...] }
// Without a script: a native Anthropic Message (or its stream) echoing the prompt.
const sse = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const message = (over = {}) => ({
  id: 'msg_scripted', type: 'message', role: 'assistant', model: CLAUDE, content: [{ type: 'text', text: 'hi' }],
  stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 }, ...over,
});
const messageStream = (usageStart, usageDelta, blocks = [['text', 'Hello'], ['text', ' there']]) => [
  sse('message_start', { message: message({ content: [], stop_reason: null, usage: usageStart }) }),
  sse('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  ...blocks.map(([, t]) => sse('content_block_delta', { index: 0, delta: { type: 'text_delta', text: t } })),
  sse('content_block_stop', { index: 0 }),
  sse('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: usageDelta }),
  sse('message_stop', {}),
];

function scriptedUpstream() {
  const scripts = new Map();
  const records = [];
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', async () => {
      const body = Buffer.concat(parts).toString('utf8');
      let json = null;
      try {
        json = JSON.parse(body);
      } catch { /* not JSON */ }
      const rec = { path: req.url, headers: req.headers, body, json, at: Date.now(), state: 'open' };
      records.push(rec);
      res.on('close', () => {
        rec.state = res.writableFinished ? 'finished' : 'aborted';
      });
      const h = scripts.get(req.headers['x-script']);
      const plan = h ? h(req, json, rec) : (json?.stream
        ? { frames: messageStream({ input_tokens: 3, output_tokens: 1 }, { output_tokens: 2 }) }
        : { headers: { 'request-id': 'req_scripted_ok' }, body: message() });
      if (plan.destroy) {
        req.socket.destroy();
        return;
      }
      if (plan.frames) {
        res.writeHead(plan.status ?? 200, { 'content-type': 'text/event-stream; charset=utf-8', ...plan.headers });
        res.flushHeaders();
        for (const f of plan.frames) {
          if (res.destroyed) return;
          res.write(f);
          if (plan.frameDelayMs) await new Promise((r) => setTimeout(r, plan.frameDelayMs));
        }
        res.end();
        return;
      }
      const b = typeof plan.body === 'string' ? plan.body : JSON.stringify(plan.body);
      res.writeHead(plan.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b), ...plan.headers });
      res.end(b);
    });
  });
  return { server, scripts, records };
}

describe('Anthropic SDK and OpenAI SDK against Anthropic through ai-proxy (review)', { skip: binaryMissing() }, () => {
  let fake;
  let up;
  let scripted;
  let sl;
  before(async () => {
    fake = await startFake();
    scripted = scriptedUpstream();
    up = await listenLocal(scripted.server);
    const F = fake.url;
    const S = up.url;
    const stats = { logging: { log_statistics: true } };
    const preserve = (name, path, url, extra = {}, options = {}) => ({
      ...aiRoute(name, path, { route_type: 'preserve', model: { provider: 'anthropic', options: { upstream_url: url, ...options } }, ...stats, ...extra }),
      strip_path: false,
    });
    const dead = await closedPort();
    const routes = [
      // The Anthropic SDK at sluice's root: POST /v1/messages reaches the fake's /v1/messages.
      preserve('p-fake', '/v1/messages', `${F}/v1/messages`, { auth: { header_name: 'x-api-key', header_value: CONF_KEY } },
        { input_cost: 1000000, output_cost: 2000000 }),
      // Scripted upstream under /s/<name> (the SDK's baseURL): preserve keeps the client's path.
      preserve('p-s', '/s/conf', S, { auth: { header_name: 'x-api-key', header_value: CONF_KEY } }),
      preserve('p-s-ovr', '/s/ovr', S, { auth: { header_name: 'x-api-key', header_value: CONF_KEY, allow_override: true } }),
      preserve('p-s-ver', '/s/ver', S, { auth: { header_name: 'x-api-key', header_value: CONF_KEY } }, { anthropic_version: '2023-01-01' }),
      preserve('p-dead', '/s/dead', `http://127.0.0.1:${dead}/v1/messages`, { auth: { header_name: 'x-api-key', header_value: CONF_KEY } }),
      // OpenAI SDK, llm/v1/chat in front of Anthropic.
      aiRoute('c-fake', '/c-fake', { route_type: 'llm/v1/chat', auth: { header_name: 'x-api-key', header_value: CONF_KEY },
        model: { provider: 'anthropic', name: CLAUDE, options: { upstream_url: `${F}/v1/messages` } }, ...stats }),
      aiRoute('c-s', '/c-s', { route_type: 'llm/v1/chat', auth: { header_name: 'x-api-key', header_value: CONF_KEY },
        model: { provider: 'anthropic', name: CLAUDE, options: { upstream_url: `${S}/v1/messages` } }, ...stats }),
    ];
    sl = await startSluice({ workers: 1, config: { _format_version: '3.0', services: [{ name: 'ai', url: F, routes }] } });
  });
  after(async () => {
    await sl?.stop();
    await up?.close();
    await fake?.close();
  });

  const anthropic = (base = '', opts = {}) => new Anthropic({ baseURL: `${sl.proxyUrl}${base}`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 8000, ...opts });
  const scriptedAnthropic = (base, script, opts = {}) => anthropic(base, { defaultHeaders: { 'x-script': script }, ...opts });
  const openai = (route, opts = {}) => new OpenAI({ baseURL: `${sl.proxyUrl}/${route}`, apiKey: 'sk-unused', maxRetries: 0, timeout: 8000, ...opts });
  const scriptedOpenai = (script, opts = {}) => openai('c-s', { defaultHeaders: { 'x-script': script }, ...opts });
  const recordsOf = (script) => scripted.records.filter((x) => x.headers['x-script'] === script);
  // Every access-log line (after mark) of the route.
  const routeLines = (mark, route) => sl.lines.slice(mark).filter((l) => new RegExp(`\\broute=${route}\\b`).test(l) && /\bstatus=/.test(l));

  // --- preserve: messages.create / messages.stream -----------------------------

  test('preserve: messages.create through the fake; _request_id is Anthropic\'s request-id; model header; usage logged', async () => {
    const mark = sl.logMark();
    const m = marker('create');
    const { data: msg, response } = await anthropic().messages.create({ model: CLAUDE, max_tokens: 100, messages: userMsg(`${m} hello`) }).withResponse();
    assert.equal(msg.type, 'message');
    assert.equal(msg.content[0].text, `echo: ${m} hello`);
    const rec = await receivedWith(fake, m);
    assert.equal(rec.headers['x-api-key'], CONF_KEY, 'the configured key replaces the SDK\'s');
    assert.match(msg._request_id, /^req_/, `_request_id ${msg._request_id}`);
    assert.equal(response.headers.get('x-request-id'), msg._request_id, 'X-Request-Id is the provider\'s request-id');
    assert.equal(response.headers.get('x-sluice-llm-model'), `anthropic/${CLAUDE}`);
    const f = await accessLog(sl, response.headers.get('x-sluice-request-id'), { from: mark });
    assert.equal(Number(f.fields['ai.prompt_tokens']), msg.usage.input_tokens);
    assert.equal(Number(f.fields['ai.completion_tokens']), msg.usage.output_tokens);
    assert.equal(Number(f.fields['ai.cost']), msg.usage.input_tokens + 2 * msg.usage.output_tokens);
  });

  test('preserve: messages.stream with a tool: text events, inputJson deltas, finalMessage tool_use input; usage logged', async () => {
    const mark = sl.logMark();
    const m = marker('tools');
    const stream = anthropic().messages.stream({ model: CLAUDE, max_tokens: 200, tools: [WEATHER_TOOL], messages: userMsg(`${m} call get_weather`) });
    const texts = [];
    const partials = [];
    stream.on('text', (t) => texts.push(t));
    stream.on('inputJson', (partial) => partials.push(partial));
    const msg = await stream.finalMessage();
    assert.equal(texts.join(''), 'I will call get_weather.');
    assert.ok(partials.length >= 2, `input_json deltas: ${partials.length}`);
    const tu = msg.content.find((b) => b.type === 'tool_use');
    assert.ok(tu, JSON.stringify(msg.content));
    assert.equal(tu.name, 'get_weather');
    assert.deepEqual(tu.input, { city: 'city_value' });
    assert.equal(msg.stop_reason, 'tool_use');
    const rec = await receivedWith(fake, m);
    assert.equal(rec.headers['x-api-key'], CONF_KEY);
    const line = await sl.waitForLog(/route=p-fake\b.*ai\.completion_tokens=/, { from: mark });
    const f = logFields(line);
    assert.equal(Number(f['ai.prompt_tokens']), msg.usage.input_tokens);
    assert.equal(Number(f['ai.completion_tokens']), msg.usage.output_tokens);
    assert.ok(Number(f['ai.completion_tokens']) > 1, 'the message_delta count, not message_start\'s 1');
  });

  test('preserve: cache_creation / cache_read tokens: the SDK gets them untouched; the log counts them in the prompt (buffered and streamed)', async () => {
    const usage = { input_tokens: 10, cache_creation_input_tokens: 20, cache_read_input_tokens: 30, output_tokens: 5 };
    scripted.scripts.set('cache', (req, body) => (body.stream
      ? { frames: messageStream({ ...usage, output_tokens: 1 }, { output_tokens: 7 }) }
      : { body: message({ usage }) }));
    let mark = sl.logMark();
    const { data: msg, response } = await scriptedAnthropic('/s/conf', 'cache').messages.create({ model: CLAUDE, max_tokens: 10, messages: userMsg('c') }).withResponse();
    assert.deepEqual(msg.usage, usage);
    let f = (await accessLog(sl, response.headers.get('x-sluice-request-id'), { from: mark })).fields;
    assert.equal(Number(f['ai.prompt_tokens']), 60);
    assert.equal(Number(f['ai.completion_tokens']), 5);
    assert.equal(Number(f['ai.total_tokens']), 65);
    mark = sl.logMark();
    const final = await scriptedAnthropic('/s/conf', 'cache').messages.stream({ model: CLAUDE, max_tokens: 10, messages: userMsg('c') }).finalMessage();
    assert.equal(final.usage.cache_read_input_tokens, 30);
    assert.equal(final.usage.output_tokens, 7);
    f = logFields(await sl.waitForLog(/route=p-s\b.*ai\.completion_tokens=7\b/, { from: mark }));
    assert.equal(Number(f['ai.prompt_tokens']), 60);
    assert.equal(Number(f['ai.total_tokens']), 67);
  });

  // --- preserve: errors, retries ---------------------------------------------

  test('preserve: 400/401/429/529 from Anthropic reach the SDK as its typed errors, with type, message and request id', async () => {
    const CLASSES = { 400: Anthropic.BadRequestError, 401: Anthropic.AuthenticationError, 429: Anthropic.RateLimitError, 529: Anthropic.InternalServerError };
    for (const [status, cls] of Object.entries(CLASSES)) {
      const e = await thrown(() => anthropic().messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') }, { headers: { 'x-fake-status': status } }));
      assert.ok(e instanceof cls, `${status}: ${e.constructor.name} ${e}`);
      assert.equal(e.status, Number(status));
      assert.equal(e.error?.type, 'error', `${status}: Anthropic's own body ${JSON.stringify(e.error)}`);
      assert.match(e.message, new RegExp(`fake anthropic error ${status}`));
      assert.match(String(e.requestID), /^req_/, `${status}: requestID`);
    }
    const e = await thrown(() => anthropic().messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') }, { headers: { 'x-fake-status': '529' } }));
    assert.equal(e.type, 'overloaded_error');
  });

  test('preserve: 429 with retry-after: 1: the SDK waits what Anthropic asked and retries; one log line per attempt, tokens only on the success', async () => {
    let n = 0;
    scripted.scripts.set('r429', () => (++n === 1
      ? { status: 429, headers: { 'retry-after': '1', 'request-id': 'req_429' }, body: { type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } } }
      : { headers: { 'request-id': 'req_ok' }, body: message({ usage: { input_tokens: 11, output_tokens: 4 } }) }));
    const mark = sl.logMark();
    const msg = await scriptedAnthropic('/s/conf', 'r429', { maxRetries: 2 }).messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') });
    assert.equal(msg._request_id, 'req_ok');
    const recs = recordsOf('r429');
    assert.equal(recs.length, 2, 'one retry');
    assert.ok(recs[1].at - recs[0].at >= 950, `retried after ${recs[1].at - recs[0].at} ms (retry-after: 1)`);
    assert.equal(recs[1].headers['x-stainless-retry-count'], '1');
    await sl.waitForLog(/status=200\b.*route=p-s\b/, { from: mark });
    const lines = routeLines(mark, 'p-s').map(logFields);
    assert.deepEqual(lines.map((f) => f.status), ['429', '200']);
    assert.deepEqual(lines.map((f) => Number(f['ai.prompt_tokens'])), [0, 11], 'the refused attempt bills nothing');
  });

  test('preserve: x-should-retry from Anthropic reaches the SDK (false: a 529 not retried; true: a 400 retried)', async () => {
    scripted.scripts.set('nr529', () => ({ status: 529, headers: { 'x-should-retry': 'false' }, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }));
    const e = await thrown(() => scriptedAnthropic('/s/conf', 'nr529', { maxRetries: 2 }).messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') }));
    assert.ok(e instanceof Anthropic.InternalServerError, String(e));
    assert.equal(recordsOf('nr529').length, 1);
    let n = 0;
    scripted.scripts.set('r400', () => (++n === 1
      ? { status: 400, headers: { 'x-should-retry': 'true', 'retry-after-ms': '10' }, body: { type: 'error', error: { type: 'invalid_request_error', message: 'try again' } } }
      : { body: message() }));
    const msg = await scriptedAnthropic('/s/conf', 'r400', { maxRetries: 1 }).messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') });
    assert.equal(msg.content[0].text, 'hi');
    assert.equal(recordsOf('r400').length, 2);
  });

  // The gateway's own errors (upstream unreachable) on a preserve route: the
  // SDK raises APIError with the status and a readable message. Anthropic's
  // SDK reads its request id from `request-id` (not x-request-id).
  test('preserve: upstream unreachable: the SDK gets a 502 APIError with a message, after its own retries', async () => {
    const mark = sl.logMark();
    const e = await thrown(() => anthropic('/s/dead', { maxRetries: 1 }).messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') }, { headers: { 'retry-after-ms': '1' } }));
    assert.ok(e instanceof Anthropic.InternalServerError, `${e.constructor.name} ${e}`);
    assert.equal(e.status, 502);
    assert.equal(typeof e.apiMessage, 'string', `apiMessage from ${JSON.stringify(e.error)}`);
    assert.ok(e.apiMessage.length > 0);
    assert.equal(typeof e.headers.get('x-request-id'), 'string');
    // the SDK retried the 502 once: two attempts, two lines
    const deadline = Date.now() + 3000;
    while (routeLines(mark, 'p-dead').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(routeLines(mark, 'p-dead').map((l) => logFields(l).status), ['502', '502']);
  });

  // providers.md: X-Request-Id is on every answer of an ai-proxy route "so the
  // OpenAI SDKs' request_id, _request_id and APIError.requestID are never
  // empty". The Anthropic SDK reads `request-id` (as Anthropic sends it,
  // https://docs.anthropic.com/en/api/errors#request-id): on a preserve route
  // for Anthropic the gateway's own errors leave APIError.requestID null.
  test('preserve (anthropic): the gateway\'s own 502 carries a request-id, so the Anthropic SDK\'s APIError.requestID is not null', {
    // fixed: request-id on the gateway's own answers
  }, async () => {
    const e = await thrown(() => anthropic('/s/dead').messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') }));
    assert.equal(e.status, 502);
    assert.equal(e.requestID, e.headers.get('x-request-id'));
    assert.match(String(e.requestID), /\S/);
  });

  test('preserve: the upstream drops the connection after reading the POST: sluice does not re-send it; the SDK\'s own retry is a second delivery', async () => {
    let n = 0;
    scripted.scripts.set('drop', () => (++n === 1 ? { destroy: true } : { body: message() }));
    const msg = await scriptedAnthropic('/s/conf', 'drop', { maxRetries: 1 }).messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') });
    assert.equal(msg.content[0].text, 'hi');
    const recs = recordsOf('drop');
    assert.equal(recs.length, 2, 'one delivery by sluice per SDK attempt, never more');
    assert.equal(recs[0].headers['x-stainless-retry-count'], '0');
    assert.equal(recs[1].headers['x-stainless-retry-count'], '1');
  });

  // --- preserve: auth and headers -----------------------------------------------

  // The Anthropic SDK (1.14) sends its apiKey as `Authorization: Bearer`
  // (and `anthropic-version: 2026-10-21`), not as x-api-key.
  test('preserve: a client x-api-key wins with allow_override; without allow_override the SDK\'s key never passes', async () => {
    scripted.scripts.set('key', () => ({ body: message() }));
    const withXKey = (base) => new Anthropic({ baseURL: `${sl.proxyUrl}${base}`, apiKey: null, maxRetries: 0, defaultHeaders: { 'x-script': 'key', 'x-api-key': CLIENT_KEY } });
    await withXKey('/s/ovr').messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') });
    let rec = recordsOf('key').at(-1);
    assert.equal(rec.headers['x-api-key'], CLIENT_KEY);
    assert.ok(!JSON.stringify(rec.headers).includes(CONF_KEY), 'the configured key is not sent beside it');
    for (const c of [withXKey('/s/conf'), scriptedAnthropic('/s/conf', 'key')]) {
      await c.messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') });
      rec = recordsOf('key').at(-1);
      assert.equal(rec.headers['x-api-key'], CONF_KEY);
      assert.equal(rec.headers.authorization, undefined);
      assert.ok(!JSON.stringify(rec.headers).includes(CLIENT_KEY));
    }
  });

  // Kong's allow_override: "If enabled, will allow the client to override the
  // auth header with its own value". sluice already reads a client's
  // `Authorization: Bearer K` as its key in the provider's form (no auth
  // configured: K goes as x-api-key). With allow_override the SDK's key
  // must win the same way; today it is dropped and the gateway's key used.
  test('preserve: allow_override: the Anthropic SDK\'s own key (sent as Authorization: Bearer) is used, not the configured one', {
    // fixed: allow_override takes the SDK's Bearer key
  }, async () => {
    scripted.scripts.set('key', () => ({ body: message() }));
    await scriptedAnthropic('/s/ovr', 'key').messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') });
    const rec = recordsOf('key').at(-1);
    assert.ok(!JSON.stringify(rec.headers).includes(CONF_KEY), `configured key sent: ${JSON.stringify(rec.headers)}`);
    assert.ok(rec.headers['x-api-key'] === CLIENT_KEY || rec.headers.authorization === `Bearer ${CLIENT_KEY}`, JSON.stringify(rec.headers));
  });

  test('preserve: anthropic-beta passes; a configured anthropic_version is sent (once)', async () => {
    scripted.scripts.set('hdr', () => ({ body: message() }));
    await scriptedAnthropic('/s/conf', 'hdr').beta.messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x'), betas: ['prompt-caching-2024-07-31', 'token-efficient-tools-2025-02-19'] });
    let rec = recordsOf('hdr').at(-1);
    assert.equal(rec.headers['anthropic-beta'], 'prompt-caching-2024-07-31,token-efficient-tools-2025-02-19');
    assert.equal(rec.path, '/s/conf/v1/messages');
    // anthropic_version configured: Kong's driver sets the header from it.
    await scriptedAnthropic('/s/ver', 'hdr').messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') });
    rec = recordsOf('hdr').at(-1);
    assert.equal(rec.headers['anthropic-version'], '2023-01-01');
  });

  // The default 2023-06-01 exists so translated routes (whose OpenAI clients
  // send no anthropic-version) work without anthropic_version. On preserve
  // the native client chose its API version (https://docs.anthropic.com/en/api/versioning);
  // the operator configured none, so nobody chose 2023-06-01 over it.
  test('preserve without anthropic_version: the client\'s own anthropic-version reaches Anthropic (the default only when it sent none)', {
    // fixed: the default only fills in when the client sent none
  }, async () => {
    scripted.scripts.set('ver', () => ({ body: message() }));
    await scriptedAnthropic('/s/conf', 'ver').messages.create({ model: CLAUDE, max_tokens: 5, messages: userMsg('x') }, { headers: { 'anthropic-version': '2026-10-21' } });
    assert.equal(recordsOf('ver').at(-1).headers['anthropic-version'], '2026-10-21');
  });

  // --- preserve: abort -------------------------------------------------------------

  test('preserve: AbortController mid-stream ends the SDK stream, drops the upstream call, and the request is still logged', async () => {
    const mark = sl.logMark();
    const m = marker('abort');
    const ac = new AbortController();
    const stream = anthropic().messages.stream({ model: CLAUDE, max_tokens: 200, messages: userMsg(`${m} a b c d e f g h i j k l m n o p q r s t`) },
      { signal: ac.signal, headers: { 'x-fake-frame-delay-ms': '150' } });
    let texts = 0;
    let abortedAt = 0;
    stream.on('text', () => {
      if (++texts === 2) {
        abortedAt = Date.now();
        ac.abort();
      }
    });
    const e = await thrown(() => stream.finalMessage());
    assert.ok(e instanceof Anthropic.APIUserAbortError, `${e.constructor.name} ${e}`);
    assert.ok(stream.aborted);
    const rec = await receivedWith(fake, m);
    assert.equal(await waitClosed(fake, rec, 3000), 'aborted', 'upstream connection closed before the stream ended');
    assert.ok(rec.closedAt - abortedAt < 1500, `upstream dropped ${rec.closedAt - abortedAt} ms after the abort`);
    const f = logFields(await sl.waitForLog(/status=.*route=p-fake\b/, { from: mark }));
    assert.equal(f.client_aborted, 'true');
    assert.equal(f['ai.provider'], 'anthropic');
    assert.ok(Number(f['ai.prompt_tokens']) > 0, `prompt tokens from message_start: ${f['ai.prompt_tokens']}`);
  });

  // --- OpenAI SDK, llm/v1/chat in front of Anthropic ---------------------------

  test('openai SDK stream: two tool_use blocks after text (parallel calls) become tool_calls 0 and 1, arguments whole', async () => {
    const A = '{"city": "Paris"}';
    const B = '{"tz": "Europe/Paris", "fmt": "iso"}';
    scripted.scripts.set('par', () => {
      const frames = [
        sse('message_start', { message: message({ content: [], stop_reason: null, usage: { input_tokens: 40, output_tokens: 1 } }) }),
        sse('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
        sse('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Checking both.' } }),
        sse('content_block_stop', { index: 0 }),
      ];
      [['toolu_A', 'get_weather', A], ['toolu_B', 'get_time', B]].forEach(([id, name, args], k) => {
        const index = k + 1;
        frames.push(sse('content_block_start', { index, content_block: { type: 'tool_use', id, name, input: {} } }),
          sse('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } }));
        for (let i = 0; i < args.length; i += 4) frames.push(sse('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: args.slice(i, i + 4) } }));
        frames.push(sse('content_block_stop', { index }));
      });
      frames.push(sse('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 30 } }), sse('message_stop', {}));
      return { frames };
    });
    const tools = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' }, fmt: { type: 'string' } } } } },
    ];
    const f = await scriptedOpenai('par').chat.completions.stream({ model: CLAUDE, messages: userMsg('weather and time'), tools, stream_options: { include_usage: true } }).finalChatCompletion();
    const c = f.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.content, 'Checking both.');
    assert.deepEqual(c.message.tool_calls.map((t) => [t.id, t.function.name, JSON.parse(t.function.arguments)]),
      [['toolu_A', 'get_weather', JSON.parse(A)], ['toolu_B', 'get_time', JSON.parse(B)]]);
    assert.equal(f.usage.completion_tokens, 30);
    assert.equal(recordsOf('par').at(-1).json.tool_choice, undefined, 'parallel calls not disabled');
  });

  test('openai SDK: cache tokens on Anthropic: prompt_tokens includes them, prompt_tokens_details.cached_tokens = cache reads (reply and stream usage)', async () => {
    const usage = { input_tokens: 10, cache_creation_input_tokens: 20, cache_read_input_tokens: 30, output_tokens: 5 };
    scripted.scripts.set('ocache', (req, body) => (body.stream
      ? { frames: messageStream({ ...usage, output_tokens: 1 }, { output_tokens: 5 }) }
      : { body: message({ usage }) }));
    const c = await scriptedOpenai('ocache').chat.completions.create({ model: CLAUDE, messages: userMsg('x') });
    assert.equal(c.usage.prompt_tokens, 60);
    assert.equal(c.usage.total_tokens, 65);
    assert.equal(c.usage.prompt_tokens_details?.cached_tokens, 30);
    const s = await scriptedOpenai('ocache').chat.completions.stream({ model: CLAUDE, messages: userMsg('x'), stream_options: { include_usage: true } }).finalChatCompletion();
    assert.equal(s.usage.prompt_tokens, 60);
    assert.equal(s.usage.prompt_tokens_details?.cached_tokens, 30);
  });

  test('openai SDK: a tool result given as an array of text parts reaches Anthropic whole, and the answer comes back', async () => {
    const m = marker('tr');
    const messages = [
      { role: 'user', content: `${m} call get_weather` },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'toolu_1', content: [{ type: 'text', text: 'sunny' }, { type: 'text', text: '21C' }] },
    ];
    const c = await openai('c-fake').chat.completions.create({ model: CLAUDE, messages,
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }] });
    const rec = await receivedWith(fake, m);
    const tr = rec.json.messages[2].content[0];
    assert.equal(tr.type, 'tool_result');
    assert.equal(tr.tool_use_id, 'toolu_1');
    const text = typeof tr.content === 'string' ? tr.content : tr.content.map((b) => b.text).join('|');
    assert.match(text, /sunny/);
    assert.match(text, /21C/);
    assert.match(c.choices[0].message.content, /^echo: tool result sunny/);
    assert.deepEqual(rec.json.messages[1].content, [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } }]);
  });

  test('openai SDK: image parts by URL and by data URI become Anthropic image blocks (url / base64 source)', async () => {
    const m = marker('img');
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
    await openai('c-fake').chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: [
      { type: 'text', text: `${m} what is this` },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
    ] }] });
    const rec = await receivedWith(fake, m);
    assert.deepEqual(rec.json.messages[0].content, [
      { type: 'text', text: `${m} what is this` },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
    ]);
  });

  test('openai SDK: response_format json_object is not dropped: a forced json_response tool, the reply is the JSON', async () => {
    const m = marker('jo');
    const c = await openai('c-fake').chat.completions.create({ model: CLAUDE, messages: userMsg(`${m} call json_response`), response_format: { type: 'json_object' } });
    const rec = await receivedWith(fake, m);
    assert.deepEqual(rec.json.tool_choice, { type: 'tool', name: 'json_response' });
    assert.deepEqual(rec.json.tools.map((t) => t.name), ['json_response']);
    assert.equal(typeof JSON.parse(c.choices[0].message.content), 'object');
    assert.equal(c.choices[0].finish_reason, 'stop');
    assert.equal(c.choices[0].message.tool_calls, undefined);
  });

  test('openai SDK: max_completion_tokens becomes max_tokens (and wins over max_tokens); finish_reason length', async () => {
    const m = marker('mct');
    const c = await openai('c-fake').chat.completions.create({ model: CLAUDE, max_completion_tokens: 3, messages: userMsg(`${m} one two three four five six`) });
    const rec = await receivedWith(fake, m);
    assert.equal(rec.json.max_tokens, 3);
    assert.equal(rec.json.max_completion_tokens, undefined);
    assert.equal(c.choices[0].finish_reason, 'length');
    const m2 = marker('mct');
    await openai('c-fake').chat.completions.create({ model: CLAUDE, max_completion_tokens: 7, max_tokens: 50, messages: userMsg(m2) });
    assert.equal((await receivedWith(fake, m2)).json.max_tokens, 7);
  });

  test('openai SDK: stop as a string and as an array become stop_sequences; the stop ends the answer with finish_reason stop', async () => {
    const m = marker('stop');
    const c = await openai('c-fake').chat.completions.create({ model: CLAUDE, stop: 'HALT', messages: userMsg(`${m} go on HALT more words`) });
    assert.deepEqual((await receivedWith(fake, m)).json.stop_sequences, ['HALT']);
    assert.equal(c.choices[0].message.content, `echo: ${m} go on `);
    assert.equal(c.choices[0].finish_reason, 'stop');
    const m2 = marker('stop');
    await openai('c-fake').chat.completions.create({ model: CLAUDE, stop: ['A1', 'B2'], messages: userMsg(m2) });
    assert.deepEqual((await receivedWith(fake, m2)).json.stop_sequences, ['A1', 'B2']);
  });

  test('openai SDK: n: 3 is a BadRequestError before any upstream call', async () => {
    const n = scripted.records.length;
    const e = await thrown(() => scriptedOpenai('none').chat.completions.create({ model: CLAUDE, n: 3, messages: userMsg('x') }));
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.match(e.message, /n > 1|several choices/);
    assert.equal(scripted.records.length, n);
  });

  // Anthropic's Messages API has no token log probabilities. OpenAI's
  // logprobs: true promises choices[].logprobs.content; a client that asked
  // for it and gets null reads it as an empty answer. providers.md's rule for
  // what Anthropic has no form for ("400 naming the part, never dropped", as
  // for n > 1 and input_audio) says: refuse it.
  test('openai SDK: logprobs: true on Anthropic is refused with a 400 naming logprobs, not silently dropped', {
    // fixed: logprobs refused with a 400
  }, async () => {
    const n = scripted.records.length;
    const e = await thrown(() => scriptedOpenai('lp').chat.completions.create({ model: CLAUDE, logprobs: true, top_logprobs: 2, messages: userMsg('x') }));
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.match(e.message, /logprobs/);
    assert.equal(scripted.records.length, n);
  });
});
