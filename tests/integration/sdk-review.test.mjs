// Adversarial review: the official `openai` Node SDK (v6) pointed at ai-proxy
// routes for every provider. What ai-proxy-sdk.test.mjs already covers (chat,
// streams with/without include_usage, tool calls, basic embeddings, 400/401/
// 429/500 mapping) is not redone here. This file drives the SDK features a
// user reaches for next: its retry loop and the headers it reads (retry-after,
// x-should-retry, x-request-id), AbortController and timeouts (the upstream
// call must be dropped too), runTools, n: 2 streams, legacy completions,
// structured output (parse / json_schema), embeddings on every provider that
// has them, the full error-status matrix, and streams that fail half-way.
//
// Beside tests/fake, a small scripted upstream (below) writes exact provider
// bytes where the fake cannot: real Anthropic streams with a forced tool, its
// `event: error`, its legacy /v1/complete stream, a strict Mistral embeddings
// endpoint, Ollama logprobs. The SDK picks the script with a request header
// (`x-script`) that sluice forwards.
//
// Four tests found bugs, each failing before its fix: no x-request-id through
// Claude, Mistral refusing `dimensions` and `max_completion_tokens` (sent now
// as output_dimension / max_tokens), Ollama logprobs dropped both ways.
//
//   cd tests && SLUICE_BIN=../build-asan/sluice node --test integration/sdk-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, listenLocal, startSluice } from './lib/harness.mjs';
import { aiRoute, marker, receivedWith, thrown, waitClosed } from './lib/ai-helpers.mjs';

const CLAUDE = 'claude-3-5-sonnet-20241022';
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    function: async (args) => `sunny in ${JSON.parse(args).city}`,
  },
};
const PERSON_SCHEMA = {
  name: 'person', strict: true,
  schema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false },
};

// --- scripted upstream -------------------------------------------------------
// handler(req, body, rec) -> { status, headers, body } | { status, headers, frames: [...] }
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
      const plan = h ? h(req, json, rec) : { status: 500, headers: {}, body: 'no script' };
      if (plan.frames) {
        res.writeHead(plan.status ?? 200, { 'content-type': 'text/event-stream', ...plan.headers });
        res.flushHeaders();
        for (const f of plan.frames) {
          if (res.destroyed) return;
          res.write(f);
          if (plan.frameDelayMs) await new Promise((r) => setTimeout(r, plan.frameDelayMs));
        }
        if (plan.destroy) res.socket.destroy();
        else res.end();
        return;
      }
      const b = typeof plan.body === 'string' ? plan.body : JSON.stringify(plan.body);
      res.writeHead(plan.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b), ...plan.headers });
      res.end(b);
    });
  });
  return { server, scripts, records };
}

const sse = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const anthropicMessage = (over = {}) => ({
  id: 'msg_01', type: 'message', role: 'assistant', model: CLAUDE, content: [{ type: 'text', text: 'hi' }],
  stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 }, ...over,
});

describe('openai SDK v6 against ai-proxy: review', { skip: binaryMissing() }, () => {
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
    const r = (name, provider, model, url, o = {}, routeType = 'llm/v1/chat') => aiRoute(name, `/${name}`,
      { route_type: routeType, model: { provider, name: model, options: { upstream_url: url, ...o } } });
    sl = await startSluice({
      config: {
        services: [{
          name: 'ai', url: F, routes: [
            r('claude', 'anthropic', CLAUDE, `${F}/v1/messages`),
            r('gpt', 'openai', 'gpt-4o', `${F}/v1/chat/completions`),
            r('azure', 'azure', 'gpt4', `${F}/openai/deployments/gpt4/chat/completions`, { azure_api_version: '2024-10-21' }),
            r('mistral', 'mistral', 'mistral-large-latest', `${F}/v1/chat/completions`),
            r('mistral-ollama', 'mistral', 'mistral:7b', `${F}/api/chat`, { mistral_format: 'ollama' }),
            r('llama-ollama', 'llama2', 'llama2', `${F}/api/chat`, { llama2_format: 'ollama' }),
            r('llama-openai', 'llama2', 'llama2', `${F}/noauth/v1/chat/completions`, { llama2_format: 'openai' }),
            r('llama-raw', 'llama2', 'llama2', `${F}/llama2/raw`, { llama2_format: 'raw' }),
            // legacy completions
            r('c-gpt', 'openai', 'gpt-3.5-turbo-instruct', `${F}/v1/completions`, {}, 'llm/v1/completions'),
            r('c-claude', 'anthropic', 'claude-2.1', `${F}/v1/complete`, {}, 'llm/v1/completions'),
            r('c-raw', 'llama2', 'llama2', `${F}/llama2/raw`, { llama2_format: 'raw' }, 'llm/v1/completions'),
            r('c-ollama', 'llama2', 'llama2', `${F}/api/generate`, { llama2_format: 'ollama' }, 'llm/v1/completions'),
            // embeddings
            r('e-azure', 'azure', 'emb', `${F}/openai/deployments/emb/embeddings`, { azure_api_version: '2024-10-21' }, 'llm/v1/embeddings'),
            r('e-mistral', 'mistral', 'mistral-embed', `${F}/v1/embeddings`, {}, 'llm/v1/embeddings'),
            r('e-mistral-ollama', 'mistral', 'mistral-embed', `${F}/api/embed`, { mistral_format: 'ollama' }, 'llm/v1/embeddings'),
            r('e-llama-openai', 'llama2', 'llama2', `${F}/noauth/v1/embeddings`, { llama2_format: 'openai' }, 'llm/v1/embeddings'),
            // scripted upstream
            r('s-claude', 'anthropic', CLAUDE, `${S}/v1/messages`),
            r('s-claude-complete', 'anthropic', 'claude-2.1', `${S}/v1/complete`, {}, 'llm/v1/completions'),
            r('s-ollama', 'mistral', 'mistral:7b', `${S}/api/chat`, { mistral_format: 'ollama' }),
            r('s-gpt', 'openai', 'gpt-4o', `${S}/v1/chat/completions`),
            r('s-mistral', 'mistral', 'mistral-large-latest', `${S}/v1/chat/completions`),
            r('s-mistral-emb', 'mistral', 'codestral-embed', `${S}/v1/embeddings`, {}, 'llm/v1/embeddings'),
          ],
        }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await up?.close();
    await fake?.close();
  });

  const client = (route, opts = {}) => new OpenAI({ apiKey: 'sk-sdk-review', baseURL: `${sl.proxyUrl}/${route}`, timeout: 8000, maxRetries: 0, ...opts });
  const scriptedClient = (route, script, opts = {}) => client(route, { defaultHeaders: { 'x-script': script }, ...opts });
  const recordsOf = (script) => scripted.records.filter((x) => x.headers['x-script'] === script);

  // --- retries and the headers the SDK reads --------------------------------

  test('Anthropic 429 with retry-after: the SDK waits what Anthropic asked, retries, and succeeds', async () => {
    let n = 0;
    scripted.scripts.set('retry429', () => (++n === 1
      ? { status: 429, headers: { 'retry-after': '1', 'anthropic-ratelimit-requests-remaining': '0' }, body: { type: 'error', error: { type: 'rate_limit_error', message: 'Number of requests has exceeded your rate limit' } } }
      : { body: anthropicMessage() }));
    const c = await scriptedClient('s-claude', 'retry429', { maxRetries: 1 }).chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(c.choices[0].message.content, 'hi');
    const recs = recordsOf('retry429');
    assert.equal(recs.length, 2, 'one retry');
    // The SDK's own backoff for a first retry is at most 500 ms: a gap of a
    // second means it read Anthropic's retry-after through sluice.
    assert.ok(recs[1].at - recs[0].at >= 950, `retry after ${recs[1].at - recs[0].at} ms`);
    assert.equal(recs[1].headers['x-stainless-retry-count'], '1');
  });

  test('Anthropic 529 overloaded with x-should-retry: false: InternalServerError, the SDK obeys and does not retry', async () => {
    scripted.scripts.set('o529', () => ({ status: 529, headers: { 'x-should-retry': 'false', 'retry-after': '0' }, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }));
    const e = await thrown(() => scriptedClient('s-claude', 'o529', { maxRetries: 2 }).chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'x' }] }));
    assert.ok(e instanceof OpenAI.InternalServerError, String(e));
    assert.equal(e.status, 529);
    assert.match(e.message, /Overloaded/);
    assert.equal(e.error?.type, 'overloaded_error');
    assert.equal(e.headers.get('x-should-retry'), 'false');
    assert.equal(recordsOf('o529').length, 1);
  });

  // OpenAI documents `x-request-id` on every response
  // (https://platform.openai.com/docs/api-reference/debugging-requests); the
  // SDK exposes it as withResponse().request_id, `_request_id` and
  // APIError.requestID. Anthropic sends the same thing as `request-id`
  // (https://docs.anthropic.com/en/api/errors#request-id).
  test('Anthropic reply: the SDK finds a request id (x-request-id) on success and on errors', async () => {
    scripted.scripts.set('rid', (req, body) => (body.messages[0].content === 'fail'
      ? { status: 400, headers: { 'request-id': 'req_011CTfail' }, body: { type: 'error', error: { type: 'invalid_request_error', message: 'bad' } } }
      : { headers: { 'request-id': 'req_011CTok' }, body: anthropicMessage() }));
    const r = await scriptedClient('s-claude', 'rid').chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'x' }] }).withResponse();
    assert.equal(typeof r.request_id, 'string', `request_id ${r.request_id}`);
    assert.ok(r.request_id.length > 0);
    assert.equal(r.data._request_id, r.request_id);
    const e = await thrown(() => scriptedClient('s-claude', 'rid').chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'fail' }] }));
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(typeof e.requestID, 'string', `requestID ${e.requestID}`);
  });

  // --- errors: the whole status matrix on every provider --------------------

  const ERR_ROUTES = [
    ['claude', CLAUDE, /fake anthropic error/],
    ['gpt', 'gpt-4o', /fake upstream error/],
    ['azure', 'gpt4', /fake (azure|upstream) error/],
    ['mistral', 'mistral-large-latest', /fake upstream error/],
    ['mistral-ollama', 'mistral:7b', /fake ollama error/],
    ['llama-raw', 'llama2', /fake llama2 error/],
  ];
  const CLASSES = { 403: OpenAI.PermissionDeniedError, 404: OpenAI.NotFoundError, 409: OpenAI.ConflictError, 413: OpenAI.APIError, 422: OpenAI.UnprocessableEntityError, 503: OpenAI.InternalServerError, 529: OpenAI.InternalServerError };
  for (const [route, model, msg] of ERR_ROUTES) {
    test(`${route}: 403/404/409/413/422/503/529 reach the SDK as the right APIError subclass with the provider's message`, async () => {
      for (const [status, cls] of Object.entries(CLASSES)) {
        const e = await thrown(() => client(route).chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-status': status } }));
        assert.ok(e instanceof cls, `${status}: ${e.constructor.name} ${e}`);
        assert.equal(e.status, Number(status));
        assert.match(e.message, msg, `${status}`);
        assert.equal(typeof e.error?.type, 'string', `${status}: error.type`);
      }
    });
  }

  // --- aborts and timeouts reach the upstream --------------------------------

  for (const [route, model] of [['claude', CLAUDE], ['gpt', 'gpt-4o'], ['mistral-ollama', 'mistral:7b']]) {
    test(`${route}: AbortController mid-stream ends the SDK iteration and drops the upstream call`, async () => {
      const ac = new AbortController();
      const m = marker('abort');
      const s = await client(route).chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: `${m} a b c d e f g h i j k l m n o p q r s t` }] },
        { signal: ac.signal, headers: { 'x-fake-frame-delay-ms': '150' } });
      let n = 0;
      let abortedAt = 0;
      for await (const _ of s) {
        if (++n === 2) {
          abortedAt = Date.now();
          ac.abort();
        }
      }
      assert.equal(n, 2);
      const rec = await receivedWith(fake, m);
      assert.equal(await waitClosed(fake, rec, 3000), 'aborted', 'upstream connection closed before the stream ended');
      assert.ok(rec.closedAt - abortedAt < 1500, `upstream dropped ${rec.closedAt - abortedAt} ms after the abort`);
    });
  }

  test('SDK timeout before the headers: APIConnectionTimeoutError, and the upstream call is dropped', async () => {
    const m = marker('tmo');
    const t0 = Date.now();
    const e = await thrown(() => client('claude', { timeout: 400 }).chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: m }] }, { headers: { 'x-fake-delay-ms': '4000' } }));
    assert.ok(e instanceof OpenAI.APIConnectionTimeoutError, String(e));
    const rec = await receivedWith(fake, m);
    assert.equal(await waitClosed(fake, rec, 3000), 'aborted');
    assert.ok(rec.closedAt - t0 < 2500, `upstream dropped after ${rec.closedAt - t0} ms`);
  });

  // --- streams that fail half-way make the SDK throw -------------------------

  for (const [route, model] of [['gpt', 'gpt-4o'], ['mistral', 'mistral-large-latest'], ['mistral-ollama', 'mistral:7b'], ['azure', 'gpt4']]) {
    test(`${route}: a stream reset half-way makes the SDK iterator throw after the text it got`, async () => {
      const m = marker('cut');
      let text = '';
      // Azure's chunks are bigger: an opening prompt-annotation chunk, content_filter_results on each.
      const cutAt = route === 'azure' ? '2000' : '600';
      const e = await thrown(async () => {
        const s = await client(route).chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: `${m} a b c d e f g h i j k l m n o p` }] },
          { headers: { 'x-fake-reset-after-bytes': cutAt } });
        for await (const ch of s) text += ch.choices[0]?.delta?.content ?? '';
      });
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.ok(text.startsWith('echo:'), `text before the cut: ${JSON.stringify(text)}`);
      assert.ok(!text.endsWith(' p'), 'not the whole answer');
    });
  }

  test('Anthropic `event: error` (overloaded) mid-stream: the SDK iterator throws with Anthropic\'s message', async () => {
    scripted.scripts.set('midErr', () => ({ frames: [
      sse('message_start', { message: anthropicMessage({ content: [], stop_reason: null, usage: { input_tokens: 3, output_tokens: 1 } }) }),
      sse('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      sse('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
      sse('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }),
    ] }));
    let text = '';
    const e = await thrown(async () => {
      const s = await scriptedClient('s-claude', 'midErr').chat.completions.create({ model: CLAUDE, stream: true, messages: [{ role: 'user', content: 'x' }] });
      for await (const ch of s) text += ch.choices[0]?.delta?.content ?? '';
    });
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.match(e.message, /Overloaded/);
    assert.equal(text, 'Hello');
  });

  test('Anthropic stream that closes cleanly (chunked end) before message_delta / message_stop: the SDK still throws', async () => {
    scripted.scripts.set('noStop', () => ({ frames: [
      sse('message_start', { message: anthropicMessage({ content: [], stop_reason: null }) }),
      sse('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      sse('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hel' } }),
    ] }));
    const e = await thrown(async () => {
      const s = await scriptedClient('s-claude', 'noStop').chat.completions.create({ model: CLAUDE, stream: true, messages: [{ role: 'user', content: 'x' }] });
      for await (const _ of s);
    });
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.match(e.message, /ended before it was complete/);
  });

  test('Ollama `{"error": ...}` line mid-stream: the SDK iterator throws with Ollama\'s message', async () => {
    scripted.scripts.set('olMidErr', (req, body) => {
      const line = (content) => `${JSON.stringify({ model: body.model, created_at: new Date().toISOString(), message: { role: 'assistant', content }, done: false })}\n`;
      return { headers: { 'content-type': 'application/x-ndjson' }, frames: [line('Hel'), line('lo'), '{"error":"model runner has unexpectedly stopped"}\n'] };
    });
    let text = '';
    const e = await thrown(async () => {
      const s = await scriptedClient('s-ollama', 'olMidErr').chat.completions.create({ model: 'mistral:7b', stream: true, messages: [{ role: 'user', content: 'x' }] });
      for await (const ch of s) text += ch.choices[0]?.delta?.content ?? '';
    });
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.match(e.message, /model runner has unexpectedly stopped/);
    assert.equal(text, 'Hello');
  });

  // --- SDK helpers: runTools, n: 2 streams ------------------------------------

  for (const [route, model] of [['claude', CLAUDE], ['gpt', 'gpt-4o'], ['mistral-ollama', 'mistral:7b'], ['llama-ollama', 'llama2'], ['llama-openai', 'llama2']]) {
    for (const stream of [false, true]) {
      test(`${route}: runTools${stream ? ' (stream)' : ''} runs the loop tool call -> tool result -> answer`, async () => {
        const m = marker('rt');
        const runner = client(route).chat.completions.runTools({ model, stream, messages: [{ role: 'user', content: `${m} call get_weather` }], tools: [WEATHER] });
        const calls = [];
        runner.on('functionToolCall', (fc) => calls.push(fc));
        assert.equal(await runner.finalContent(), 'echo: tool result sunny in city_value');
        assert.equal(calls.length, 1);
        assert.equal(calls[0].name, 'get_weather');
        const all = await runner.allChatCompletions();
        assert.equal(all.length, 2);
        assert.equal(all[0].choices[0].finish_reason, 'tool_calls');
        assert.equal(all[1].choices[0].finish_reason, 'stop');
      });
    }
  }

  test('openai: stream with n: 2, assembled by the SDK\'s stream helper, keeps both choices', async () => {
    const runner = client('gpt').chat.completions.stream({ model: 'gpt-4o', n: 2, messages: [{ role: 'user', content: 'two ways' }] });
    const f = await runner.finalChatCompletion();
    assert.deepEqual(f.choices.map((c) => [c.index, c.message.content, c.finish_reason]),
      [[0, 'echo: two ways', 'stop'], [1, 'echo: two ways', 'stop']]);
  });

  for (const route of ['claude', 'mistral-ollama']) {
    test(`${route}: n: 2 is refused with a BadRequestError (one choice only), not answered with one`, async () => {
      const e = await thrown(() => client(route).chat.completions.create({ model: route === 'claude' ? CLAUDE : 'mistral:7b', n: 2, messages: [{ role: 'user', content: 'x' }] }));
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    });
  }

  // --- legacy completions ------------------------------------------------------

  for (const [route, model, lead] of [['c-gpt', 'gpt-3.5-turbo-instruct', ''], ['c-claude', 'claude-2.1', ' '], ['c-raw', 'llama2', ''], ['c-ollama', 'llama2', '']]) {
    test(`${route}: completions.create, plain and streamed, give the same text`, async () => {
      const c = await client(route).completions.create({ model, prompt: 'hello there', max_tokens: 50 });
      assert.equal(c.object, 'text_completion');
      assert.equal(c.choices[0].text, `${lead}echo: hello there`);
      assert.equal(c.choices[0].finish_reason, 'stop');
      const s = await client(route).completions.create({ model, prompt: 'hello there', max_tokens: 50, stream: true });
      let text = '';
      let finish = null;
      for await (const ch of s) {
        assert.equal(ch.object, 'text_completion');
        text += ch.choices[0]?.text ?? '';
        finish = ch.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(text, `${lead}echo: hello there`);
      assert.equal(finish, 'stop');
    });
  }

  test('anthropic /v1/complete real SSE stream (event: completion, ping): SDK completions stream gets the text', async () => {
    const ev = (completion, stop) => `event: completion\ndata: ${JSON.stringify({ type: 'completion', completion, stop_reason: stop, model: 'claude-2.1', log_id: 'l1' })}\n\n`;
    scripted.scripts.set('complStream', (req, body) => {
      assert.ok(body.stream);
      return { frames: [ev(' Hello', null), 'event: ping\ndata: {"type": "ping"}\n\n', ev(' world', null), ev('', 'max_tokens')] };
    });
    const s = await scriptedClient('s-claude-complete', 'complStream').completions.create({ model: 'claude-2.1', prompt: 'hi', stream: true });
    let text = '';
    let finish = null;
    for await (const ch of s) {
      text += ch.choices[0]?.text ?? '';
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, ' Hello world');
    assert.equal(finish, 'length');
    assert.equal(recordsOf('complStream')[0].json.prompt, '\n\nHuman: hi\n\nAssistant:');
  });

  // --- structured output -------------------------------------------------------

  test('anthropic: chat.completions.parse with json_schema gives message.parsed', async () => {
    const c = await client('claude').chat.completions.parse({ model: CLAUDE, messages: [{ role: 'user', content: 'call json_response' }], response_format: { type: 'json_schema', json_schema: PERSON_SCHEMA } });
    assert.deepEqual(c.choices[0].message.parsed, { name: 'name_value', age: 42 });
    assert.equal(c.choices[0].finish_reason, 'stop');
    assert.equal(c.choices[0].message.tool_calls, undefined);
  });

  test('anthropic stream with the forced json_response tool (as the API streams it): content deltas are the JSON', async () => {
    const args = '{"name": "Ada", "age": 36}';
    scripted.scripts.set('jsonStream', (req, body) => {
      assert.deepEqual(body.tool_choice, { type: 'tool', name: 'json_response' });
      const frames = [
        sse('message_start', { message: anthropicMessage({ content: [], stop_reason: null, usage: { input_tokens: 30, output_tokens: 1 } }) }),
        sse('content_block_start', { index: 0, content_block: { type: 'tool_use', id: 'toolu_01', name: 'json_response', input: {} } }),
        sse('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: '' } }),
      ];
      for (let i = 0; i < args.length; i += 5) frames.push(sse('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: args.slice(i, i + 5) } }));
      frames.push(sse('content_block_stop', { index: 0 }), sse('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 12 } }), sse('message_stop', {}));
      return { frames };
    });
    const runner = scriptedClient('s-claude', 'jsonStream').chat.completions.stream({ model: CLAUDE, messages: [{ role: 'user', content: 'who' }], response_format: { type: 'json_schema', json_schema: PERSON_SCHEMA } });
    const f = await runner.finalChatCompletion();
    assert.deepEqual(JSON.parse(f.choices[0].message.content), { name: 'Ada', age: 36 });
    assert.equal(f.choices[0].finish_reason, 'stop');
    assert.deepEqual(f.choices[0].message.tool_calls ?? [], []);
  });

  test('ollama format: parse with json_schema sends the schema as `format` and the SDK parses the reply', async () => {
    scripted.scripts.set('olParse', (req, body) => ({ body: {
      model: body.model, created_at: new Date().toISOString(), message: { role: 'assistant', content: JSON.stringify({ name: 'Lin', age: 7 }) },
      done: true, done_reason: 'stop', prompt_eval_count: 5, eval_count: 9,
    } }));
    const c = await scriptedClient('s-ollama', 'olParse').chat.completions.parse({ model: 'mistral:7b', messages: [{ role: 'user', content: 'who' }], response_format: { type: 'json_schema', json_schema: PERSON_SCHEMA } });
    assert.deepEqual(c.choices[0].message.parsed, { name: 'Lin', age: 7 });
    const rec = recordsOf('olParse').at(-1);
    assert.deepEqual(rec.json.format, PERSON_SCHEMA.schema);
    assert.equal(rec.json.stream, false);
  });

  // --- embeddings on every provider that has them ------------------------------

  const f32 = (v) => v.map(Math.fround);
  for (const [route, model] of [['e-azure', 'emb'], ['e-mistral', 'mistral-embed'], ['e-mistral-ollama', 'mistral-embed'], ['e-llama-openai', 'llama2']]) {
    test(`${route}: embeddings, base64 (the SDK default) and float give the same vectors`, async () => {
      const inputs = ['alpha beta', 'gamma'];
      const b = await client(route).embeddings.create({ model, input: inputs });
      assert.equal(b.data.length, 2);
      assert.deepEqual(b.data.map((d) => d.index), [0, 1]);
      assert.ok(b.data.every((d) => d.embedding instanceof Float32Array || Array.isArray(d.embedding)));
      const f = await client(route).embeddings.create({ model, input: inputs, encoding_format: 'float' });
      assert.deepEqual(b.data.map((d) => Array.from(d.embedding)), f.data.map((d) => f32(d.embedding)));
      assert.ok(f.data[0].embedding.length >= 4);
      assert.equal(typeof f.usage.prompt_tokens, 'number');
    });
  }

  test('openai-format embeddings: an array of token ids is passed as is', async () => {
    const e = await client('e-llama-openai').embeddings.create({ model: 'llama2', input: [101, 2023, 102], encoding_format: 'float' });
    assert.equal(e.data.length, 1);
    assert.equal(e.usage.prompt_tokens, 3);
  });

  // Mistral's embeddings API takes `output_dimension`, not OpenAI's
  // `dimensions` (https://docs.mistral.ai/api/endpoint/embeddings), and
  // refuses unknown fields with extra_forbidden (the same strictness
  // providers.md describes for stream_options). The endpoint below is that
  // contract; an SDK user asking `dimensions: 4` must get 4-wide vectors.
  test('mistral: embeddings with `dimensions` reach Mistral as output_dimension', async () => {
    const ALLOWED = new Set(['model', 'input', 'output_dimension', 'output_dtype', 'encoding_format', 'metadata']);
    scripted.scripts.set('misEmb', (req, body) => {
      const extra = Object.keys(body).filter((k) => !ALLOWED.has(k));
      if (extra.length) {
        const detail = extra.map((k) => ({ type: 'extra_forbidden', loc: ['body', k], msg: 'Extra inputs are not permitted', input: body[k] }));
        return { status: 422, body: { object: 'error', message: { detail }, type: 'invalid_request_error', param: null, code: null } };
      }
      const dims = body.output_dimension ?? 1024;
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      const data = inputs.map((_, i) => {
        const v = Array.from({ length: dims }, (_, k) => (k + 1) / 100);
        const buf = Buffer.alloc(dims * 4);
        v.forEach((x, k) => buf.writeFloatLE(x, k * 4));
        return { object: 'embedding', index: i, embedding: body.encoding_format === 'base64' ? buf.toString('base64') : v };
      });
      return { body: { id: 'emb-1', object: 'list', data, model: body.model, usage: { prompt_tokens: 2, total_tokens: 2, completion_tokens: 0 } } };
    });
    const e = await scriptedClient('s-mistral-emb', 'misEmb').embeddings.create({ model: 'codestral-embed', input: ['a', 'b'], dimensions: 4 });
    assert.deepEqual(e.data.map((d) => d.embedding.length), [4, 4]);
    const rec = recordsOf('misEmb').at(-1);
    assert.equal(rec.json.output_dimension, 4);
    assert.equal(rec.json.dimensions, undefined);
  });

  // api.mistral.ai takes `max_tokens` and refuses OpenAI's newer
  // `max_completion_tokens` (422 extra_forbidden, e.g.
  // https://github.com/editor-code-assistant/eca/issues/231); OpenAI's API
  // reference marks max_tokens deprecated in favour of max_completion_tokens,
  // so SDK users send the latter. The endpoint below keeps Mistral's
  // documented request fields (https://docs.mistral.ai/api/endpoint/chat).
  test('mistral: max_completion_tokens from the SDK reaches Mistral as max_tokens', async () => {
    const ALLOWED = new Set(['model', 'messages', 'temperature', 'top_p', 'max_tokens', 'stream', 'stop', 'random_seed', 'response_format', 'tools', 'tool_choice',
      'presence_penalty', 'frequency_penalty', 'n', 'prediction', 'parallel_tool_calls', 'prompt_mode', 'safe_prompt', 'metadata']);
    scripted.scripts.set('misChat', (req, body) => {
      const extra = Object.keys(body).filter((k) => !ALLOWED.has(k));
      if (extra.length) {
        const detail = extra.map((k) => ({ type: 'extra_forbidden', loc: ['body', k], msg: 'Extra inputs are not permitted', input: body[k] }));
        return { status: 422, body: { object: 'error', message: { detail }, type: 'invalid_request_error', param: null, code: null } };
      }
      return { body: { id: 'cmpl-m1', object: 'chat.completion', created: 1700000000, model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok', tool_calls: null }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 } } };
    });
    const c = await scriptedClient('s-mistral', 'misChat').chat.completions.create({ model: 'mistral-large-latest', max_completion_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(c.choices[0].message.content, 'ok');
    const rec = recordsOf('misChat').at(-1);
    assert.equal(rec.json.max_tokens, 5);
    assert.equal(rec.json.max_completion_tokens, undefined);
  });

  // Ollama's /api/chat returns token log probabilities when asked with
  // `logprobs: true` / `top_logprobs: N` (Ollama >= 0.12.11; ollama-python
  // #601 examples/chat-logprobs.py): OpenAI's logprobs / top_logprobs have
  // their exact counterpart there.
  test('ollama format: logprobs: true reaches Ollama and comes back as choices[0].logprobs.content', async () => {
    scripted.scripts.set('olLogprobs', (req, body) => {
      const reply = { model: body.model, created_at: new Date().toISOString(), message: { role: 'assistant', content: 'Hi' }, done: true, done_reason: 'stop', prompt_eval_count: 2, eval_count: 1 };
      if (body.logprobs) {
        reply.logprobs = [{ token: 'Hi', logprob: -0.25, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.25, bytes: [72, 105] }, { token: 'Hey', logprob: -1.5, bytes: [72, 101, 121] }].slice(0, body.top_logprobs ?? 0) }];
      }
      return { body: reply };
    });
    const c = await scriptedClient('s-ollama', 'olLogprobs').chat.completions.create({ model: 'mistral:7b', logprobs: true, top_logprobs: 2, messages: [{ role: 'user', content: 'x' }] });
    const rec = recordsOf('olLogprobs').at(-1);
    assert.equal(rec.json.logprobs, true);
    assert.equal(rec.json.top_logprobs, 2);
    const lp = c.choices[0].logprobs;
    assert.ok(lp && Array.isArray(lp.content), `logprobs ${JSON.stringify(lp)}`);
    assert.equal(lp.content[0].token, 'Hi');
    assert.equal(lp.content[0].logprob, -0.25);
    assert.deepEqual(lp.content[0].top_logprobs.map((t) => t.token), ['Hi', 'Hey']);
  });
});
