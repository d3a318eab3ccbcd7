// Adversarial review of ai-proxy's statistics, cost and log lines (what
// operators and billing read): tokens per provider and mode, cost arithmetic
// and formatting, time to first token and latency, what a failed, aborted or
// broken request logs, payload logging, and the answering model. A scripted
// upstream in this file writes exact provider bytes, chosen per request by
// the `x-script` header (ai-proxy forwards client headers).
//
//   cd tests && SLUICE_BIN=../build-asan/sluice node --test integration/ai-stats-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, listenLocal, startSluice } from './lib/harness.mjs';
import { accessLog, aiRoute, postJson, postStream, requestIdOf, streamChunks } from './lib/ai-helpers.mjs';

const CLAUDE = 'claude-3-5-sonnet-20241022';
const userMsg = (text) => [{ role: 'user', content: text }];
const sse = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const ev = (name, obj) => `event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`;
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

// OpenAI chat.completion with the usage the client names in x-usage "p,c".
function openaiReply(model, p, c) {
  return {
    id: 'chatcmpl-stats1', object: 'chat.completion', created: 1700000000, model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c },
  };
}

function chunk(model, delta, finish = null) {
  return { id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1700000000, model, choices: [{ index: 0, delta, finish_reason: finish }] };
}

const anStart = (usage) => ev('message_start', { type: 'message_start', message: { id: 'msg_s1', type: 'message', role: 'assistant', model: CLAUDE, content: [], stop_reason: null, usage } });
const anBlock = ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
const anDelta = (t) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } });
const anStop = ev('content_block_stop', { type: 'content_block_stop', index: 0 });
const anMsgDelta = (usage) => ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage });
const anMsgStop = ev('message_stop', { type: 'message_stop' });

// The scripted provider. Every script is what a real provider sends, byte
// for byte; the ones that hold a stream open end by themselves within 8 s.
function startScripted() {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', async () => {
      const script = req.headers['x-script'] || 'json';
      const [p, c] = String(req.headers['x-usage'] || '3,1').split(',').map(Number);
      const model = req.headers['x-model'] || 'gpt-4o';
      const json = (status, obj) => {
        const b = JSON.stringify(obj);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
        res.end(b);
      };
      const stream = () => res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      switch (script) {
        case 'json':
          return json(200, openaiReply(model, p, c));
        case 'err500':
          return json(500, { error: { message: 'The server had an error', type: 'server_error', param: null, code: null } });
        case 'comment-stream':
          // An SSE comment (keep-alive) at once, as OpenRouter and proxies
          // send while the model is still thinking; the first token 400 ms later.
          stream();
          res.write(': keep-alive\n\n');
          await wait(400);
          res.write(sse(chunk(model, { role: 'assistant', content: '' })));
          res.write(sse(chunk(model, { content: 'Hello' })));
          res.write(sse(chunk(model, {}, 'stop')));
          res.write(sse({ id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1700000000, model, choices: [], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } }));
          res.end('data: [DONE]\n\n');
          return;
        case 'delayed-stream':
          // Headers at once, the first frame 400 ms later.
          stream();
          await wait(400);
          res.write(sse(chunk(model, { role: 'assistant', content: '' })));
          res.write(sse(chunk(model, { content: 'Hello' })));
          res.write(sse(chunk(model, {}, 'stop')));
          res.write(sse({ id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1700000000, model, choices: [], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } }));
          res.end('data: [DONE]\n\n');
          return;
        case 'an-hold':
          // Anthropic: input tokens reported, some text, then the model keeps
          // going (the client is expected to leave).
          stream();
          res.write(anStart({ input_tokens: 25, output_tokens: 1 }) + anBlock + anDelta('Hello'));
          await new Promise((r) => { const t = setTimeout(r, 8000); res.on('close', () => { clearTimeout(t); r(); }); });
          if (!res.writableEnded) res.end();
          return;
        case 'an-break':
          // Anthropic: input tokens reported, some text, then the connection dies.
          stream();
          res.write(anStart({ input_tokens: 25, output_tokens: 1 }) + anBlock + anDelta('Hello'));
          await wait(150);
          res.socket.destroy();
          return;
        case 'an-cache-stream': {
          // Prompt caching, with message_delta's usage cumulative as the
          // current API sends it (input and cache counts repeated) or output only.
          stream();
          const full = req.headers['x-delta'] === 'full';
          res.write(anStart({ input_tokens: 10, cache_creation_input_tokens: 50, cache_read_input_tokens: 1000, output_tokens: 1 }));
          res.write(anBlock + anDelta('Hi') + anStop);
          res.write(anMsgDelta(full ? { input_tokens: 10, cache_creation_input_tokens: 50, cache_read_input_tokens: 1000, output_tokens: 20 } : { output_tokens: 20 }));
          res.end(anMsgStop);
          return;
        }
        case 'an-cache-json':
          return json(200, {
            id: 'msg_c', type: 'message', role: 'assistant', model: CLAUDE, content: [{ type: 'text', text: 'Hi' }],
            stop_reason: 'end_turn', stop_sequence: null,
            usage: { input_tokens: 10, cache_creation_input_tokens: 50, cache_read_input_tokens: 1000, output_tokens: 20 },
          });
        case 'big-embed': {
          // 140 embeddings of 3072 dimensions (text-embedding-3-large): ~5 MB of JSON.
          const vec = Array.from({ length: 3072 }, (_, i) => Number((Math.sin(i) / 7).toFixed(9)));
          const data = Array.from({ length: 140 }, (_, i) => ({ object: 'embedding', index: i, embedding: vec }));
          return json(200, { object: 'list', data, model: 'text-embedding-3-large', usage: { prompt_tokens: 640, total_tokens: 640 } });
        }
        case 'mistral-stream':
          // api.mistral.ai: no stream_options, usage on the last chunk (the
          // one with finish_reason).
          stream();
          res.write(sse(chunk('mistral-large-2411', { role: 'assistant', content: '' })));
          res.write(sse(chunk('mistral-large-2411', { content: 'Bonjour' })));
          res.write(sse({ ...chunk('mistral-large-2411', { content: '' }, 'stop'), usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } }));
          res.end('data: [DONE]\n\n');
          return;
        case 'tgi-json': {
          // Hugging Face TGI, details asked: generated_tokens, no input length.
          const inputs = JSON.parse(Buffer.concat(parts).toString()).inputs;
          return json(200, [{ generated_text: `${inputs}\n\nHi there friend`, details: { finish_reason: 'eos_token', generated_tokens: 4, seed: null } }]);
        }
        case 'hang':
          await new Promise((r) => { const t = setTimeout(r, 8000); res.on('close', () => { clearTimeout(t); r(); }); });
          if (!res.writableEnded) res.end();
          return;
        default:
          return json(404, { error: { message: `no script ${script}` } });
      }
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return listenLocal(server);
}

// A stream POST that the client abandons as soon as the first bytes of the
// answer arrive. Resolves with the response headers once it has gone.
function abandonStream(port, path, body, headers) {
  const raw = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(raw), ...headers } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve(res.headers);
      });
    });
    req.on('error', () => {});
    req.setTimeout(8000, () => { req.destroy(); reject(new Error('no answer')); });
    req.end(raw);
  });
}

// Two requests on one kept-alive client connection.
function twoOnOneConnection(port, path, bodies, headerSets) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const one = (body, headers) => new Promise((resolve, reject) => {
    const raw = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(raw), ...headers } }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString(), socket: req.socket }));
    });
    req.on('error', reject);
    req.setTimeout(8000, () => req.destroy(new Error('timeout')));
    req.end(raw);
  });
  return (async () => {
    const a = await one(bodies[0], headerSets[0]);
    const b = await one(bodies[1], headerSets[1]);
    agent.destroy();
    return [a, b];
  })();
}

describe('ai-proxy statistics and log lines (review)', { skip: binaryMissing() }, () => {
  let up;
  let sl;
  let port;
  before(async () => {
    up = await startScripted();
    const U = up.url;
    const stats = { log_statistics: true };
    const chat = (provider, name, options, logging = stats, extra = {}) =>
      ({ route_type: 'llm/v1/chat', model: { provider, name, options }, logging, ...extra });
    const routes = [
      aiRoute('openai', '/openai', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions` })),
      aiRoute('mini', '/mini', chat('openai', 'gpt-4o-mini', { upstream_url: `${U}/v1/chat/completions`, input_cost: 0.15, output_cost: 0.6 })),
      aiRoute('priced', '/priced', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions`, input_cost: 2.5, output_cost: 10 })),
      aiRoute('input-only', '/input-only', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions`, input_cost: 2.5 })),
      aiRoute('anthropic', '/anthropic', chat('anthropic', CLAUDE, { upstream_url: `${U}/v1/messages`, input_cost: 3, output_cost: 15 })),
      aiRoute('logged', '/logged', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions` }, { log_statistics: true, log_payloads: true })),
      aiRoute('embed-logged', '/embed-logged', { route_type: 'llm/v1/embeddings', model: { provider: 'openai', name: 'text-embedding-3-large', options: { upstream_url: `${U}/v1/embeddings` } }, logging: { log_statistics: true, log_payloads: true } }),
    ];
    routes.push(
      aiRoute('mistral', '/mistral', chat('mistral', 'mistral-large-latest', { upstream_url: `${U}/v1/chat/completions`, input_cost: 2, output_cost: 6 })),
      aiRoute('preserve', '/preserve', { route_type: 'preserve', model: { provider: 'openai', options: { upstream_url: `${U}/v1/chat/completions` } }, logging: { log_statistics: true, log_payloads: true } }),
      aiRoute('tgi', '/tgi', chat('llama2', 'llama-2-7b-chat', { upstream_url: `${U}/generate`, llama2_format: 'raw' })),
    );
    const slow = [aiRoute('slow', '/slow', chat('openai', 'gpt-4o', { upstream_url: `${U}/v1/chat/completions` }))];
    sl = await startSluice({
      config: { services: [{ name: 'ai', url: U, routes }, { name: 'ai-slow', url: U, read_timeout: 800, routes: slow }] },
    });
    port = sl.proxyPort;
  });
  after(async () => {
    await sl?.stop();
    await up?.close();
  });

  describe('cost', () => {
    test('input and output priced: tokens * cost / 1e6 each, summed', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/priced', { messages: userMsg('x') }, { headers: { 'x-usage': '1234567,89012' } });
      assert.equal(r.status, 200, r.text);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.prompt_tokens'], '1234567');
      assert.equal(f['ai.completion_tokens'], '89012');
      assert.equal(f['ai.total_tokens'], '1323579');
      const exact = (1234567 * 2.5 + 89012 * 10) / 1e6;
      assert.ok(Math.abs(Number(f['ai.cost']) - exact) < 1e-6, `cost ${f['ai.cost']} vs ${exact}`);
    });

    test('only input_cost set: the prompt side is priced, the completion side is free', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/input-only', { messages: userMsg('x') }, { headers: { 'x-usage': '400000,300000' } });
      assert.equal(r.status, 200, r.text);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(Number(f['ai.cost']), 1, `cost ${f['ai.cost']}`);
    });

    test('a small request on a cheap model logs its cost, not 0 (no rounding to 6 decimals)', async () => {
      // gpt-4o-mini prices ($0.15 / $0.60 per million): 3 prompt tokens and
      // 1 completion token cost $0.00000105; 2 + 0 cost $0.0000003.
      for (const [usage, exact] of [['3,1', (3 * 0.15 + 1 * 0.6) / 1e6], ['2,0', (2 * 0.15) / 1e6]]) {
        const mark = sl.logMark();
        const r = await postJson(port, '/mini', { messages: userMsg('x') }, { headers: { 'x-usage': usage } });
        assert.equal(r.status, 200, r.text);
        const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
        const logged = Number(f['ai.cost']);
        assert.ok(Math.abs(logged - exact) <= exact * 1e-6, `usage ${usage}: ai.cost=${f['ai.cost']}, exact ${exact}`);
      }
    });
  });

  describe('models', () => {
    test('requested and answering model both in the line (a dated snapshot answered)', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/openai', { messages: userMsg('x') }, { headers: { 'x-model': 'gpt-4o-2024-08-06' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-sluice-llm-model'], 'openai/gpt-4o-2024-08-06');
      const { line, fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      const aiValues = Object.entries(f).filter(([k]) => k.startsWith('ai.')).map(([, v]) => v);
      assert.ok(aiValues.includes('gpt-4o-2024-08-06'), `answering model in ${line}`);
      assert.ok(aiValues.includes('gpt-4o'), `requested model in ${line}`);
    });

    test('buffered reply: header and log name the same answering model', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/openai', { messages: userMsg('x') }, { headers: { 'x-model': 'gpt-4o-2024-11-20' } });
      assert.equal(r.status, 200, r.text);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(r.headers['x-sluice-llm-model'], `openai/${f['ai.model']}`);
      assert.equal(f['ai.model'], 'gpt-4o-2024-11-20');
    });
  });

  describe('time to first token and latency', () => {
    test('first frame delayed 400 ms: ttft >= 400, latency >= ttft', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/openai', { stream: true, messages: userMsg('x') }, { headers: { 'x-script': 'delayed-stream' } });
      assert.equal(res.status, 200, res.text);
      assert.equal(streamChunks(res.events).done, 1);
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.ok(Number(f['ai.ttft_ms']) >= 400, `ttft ${f['ai.ttft_ms']}`);
      assert.ok(Number(f['ai.llm_latency_ms']) >= Number(f['ai.ttft_ms']), `latency ${f['ai.llm_latency_ms']}`);
      assert.equal(f['ai.prompt_tokens'], '5');
    });

    test('an SSE keep-alive comment before the first token does not count as the first token', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/openai', { stream: true, messages: userMsg('x') }, { headers: { 'x-script': 'comment-stream' } });
      assert.equal(res.status, 200, res.text);
      const first = res.chunks.find((c) => c.text.includes('Hello'));
      assert.ok(first && first.t >= 380, 'the token reached the client 400 ms in');
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.ok(Number(f['ai.ttft_ms']) >= 400, `ai.ttft_ms=${f['ai.ttft_ms']} but the first token came after 400 ms`);
    });

    test('non-stream reply: no ttft field, a latency', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/openai', { messages: userMsg('x') });
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.ttft_ms'], undefined);
      assert.ok(Number(f['ai.llm_latency_ms']) > 0, `latency ${f['ai.llm_latency_ms']}`);
    });

    test('504 after read_timeout: llm latency is the wait, or absent, never 0', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/slow', { messages: userMsg('x') }, { headers: { 'x-script': 'hang' } });
      assert.equal(r.status, 504, r.text);
      const { line, fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.provider'], 'openai');
      const lat = f['ai.llm_latency_ms'];
      assert.ok(lat === undefined || Number(lat) >= 700, `ai.llm_latency_ms=${lat} in ${line}`);
    });
  });

  describe('usage per provider', () => {
    for (const delta of ['output-only', 'full']) {
      test(`Anthropic stream with prompt caching (message_delta usage ${delta}): prompt = input + cache read + cache creation`, async () => {
        const mark = sl.logMark();
        const res = await postStream(port, '/anthropic', { stream: true, stream_options: { include_usage: true }, messages: userMsg('x') },
          { headers: { 'x-script': 'an-cache-stream', 'x-delta': delta } });
        assert.equal(res.status, 200, res.text);
        const { json } = streamChunks(res.events);
        const usage = json.find((c) => c.usage)?.usage;
        assert.deepEqual(usage, { prompt_tokens: 1060, completion_tokens: 20, total_tokens: 1080, prompt_tokens_details: { cached_tokens: 1000 } });
        const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
        assert.equal(f['ai.prompt_tokens'], '1060');
        assert.equal(f['ai.completion_tokens'], '20');
        assert.equal(f['ai.total_tokens'], '1080');
        assert.ok(Math.abs(Number(f['ai.cost']) - (1060 * 3 + 20 * 15) / 1e6) < 1e-6, `cost ${f['ai.cost']}`);
      });
    }

    test('Mistral stream: usage from the last chunk, answering model, cost', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/mistral', { stream: true, messages: userMsg('x') }, { headers: { 'x-script': 'mistral-stream' } });
      assert.equal(res.status, 200, res.text);
      assert.equal(streamChunks(res.events).done, 1);
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(f['ai.provider'], 'mistral');
      assert.equal(f['ai.model'], 'mistral-large-2411');
      assert.equal(f['ai.prompt_tokens'], '7');
      assert.equal(f['ai.completion_tokens'], '2');
      assert.equal(f['ai.total_tokens'], '9');
      assert.ok(Math.abs(Number(f['ai.cost']) - (7 * 2 + 2 * 6) / 1e6) < 1e-7, `cost ${f['ai.cost']}`);
    });

    test('llama2 raw (TGI) JSON: completion tokens from details.generated_tokens', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/tgi', { messages: userMsg('x') }, { headers: { 'x-script': 'tgi-json' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().choices[0].message.content, 'Hi there friend');
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.completion_tokens'], '4');
      assert.equal(f['ai.total_tokens'], '4');
    });

    test('Anthropic JSON with prompt caching: prompt = input + cache read + cache creation', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/anthropic', { messages: userMsg('x') }, { headers: { 'x-script': 'an-cache-json' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().usage.prompt_tokens, 1060);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.prompt_tokens'], '1060');
      assert.equal(f['ai.total_tokens'], '1080');
    });
  });

  describe('failed, broken and abandoned requests', () => {
    test('upstream stream broken mid-way: tokens seen so far, the error, no crash', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/anthropic', { stream: true, messages: userMsg('x') }, { headers: { 'x-script': 'an-break' } });
      assert.equal(res.status, 200);
      const { line, fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(f['ai.prompt_tokens'], '25', line);
      assert.match(f.error ?? '', /stream broke/, line);
      assert.ok(Number(f['ai.llm_latency_ms']) >= 100, line);
    });

    test('client leaves mid-stream: the input tokens the provider already reported are logged', async () => {
      const mark = sl.logMark();
      const h = await abandonStream(port, '/anthropic', { stream: true, messages: userMsg('x') }, { 'x-script': 'an-hold' });
      const { line, fields: f } = await accessLog(sl, h['x-sluice-request-id'], { from: mark });
      assert.equal(f.client_aborted, 'true', line);
      assert.equal(f['ai.prompt_tokens'], '25', line);
      assert.ok(Number(f['ai.llm_latency_ms']) > 0, line);
    });

    test('preserve route, provider 500: the call\'s latency and the error body are logged', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/preserve', { model: 'gpt-4o', messages: userMsg('x') }, { headers: { 'x-script': 'err500' } });
      assert.equal(r.status, 500, r.text);
      const { line, fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.provider'], 'openai', line);
      assert.ok(Number(f['ai.llm_latency_ms']) > 0, `latency in ${line}`);
      assert.equal(f['ai.payload.response'], r.text, `payload in ${line}`);
    });

    test('preserve route, provider 200: usage, latency and payload logged (the same reply as above, succeeding)', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/preserve', { model: 'gpt-4o', messages: userMsg('x') }, { headers: { 'x-usage': '11,4' } });
      assert.equal(r.status, 200, r.text);
      const { line, fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.prompt_tokens'], '11', line);
      assert.ok(Number(f['ai.llm_latency_ms']) > 0, `latency in ${line}`);
      assert.equal(f['ai.payload.response'], r.text);
    });

    test('keep-alive: a failed request after a good one on the same connection logs no stale numbers', async () => {
      const mark = sl.logMark();
      const [a, b] = await twoOnOneConnection(port, '/logged',
        [{ messages: userMsg('a') }, { messages: userMsg('b') }],
        [{ 'x-usage': '1000,2000', 'x-model': 'gpt-4o-2024-08-06' }, { 'x-script': 'err500' }]);
      assert.equal(a.status, 200, a.text);
      assert.equal(b.status, 500, b.text);
      const la = await accessLog(sl, requestIdOf(a), { from: mark });
      const lb = await accessLog(sl, requestIdOf(b), { from: mark });
      assert.equal(la.fields['ai.prompt_tokens'], '1000');
      assert.equal(lb.fields.status, '500');
      assert.equal(lb.fields['ai.prompt_tokens'], '0', lb.line);
      assert.equal(lb.fields['ai.completion_tokens'], '0', lb.line);
      assert.equal(lb.fields['ai.cost'], undefined, `no price configured, no cost logged: ${lb.line}`);
      assert.equal(lb.fields['ai.model'], 'gpt-4o', lb.line);
      assert.ok(Number(lb.fields['ai.llm_latency_ms']) > 0, `the failed call's own latency: ${lb.line}`);
      assert.match(lb.fields['ai.payload.response'] ?? '', /server had an error/, 'a failed call logs its (translated) error body');
    });
  });

  describe('payloads', () => {
    test('request payload with quotes, backslashes, newlines, tabs and unicode: one line, the exact body', async () => {
      const body = { model: 'gpt-4o', messages: userMsg('say "hi"\\n\nline2\ttab é 中文 🙂 \u0001 end') };
      const raw = JSON.stringify(body);
      const mark = sl.logMark();
      const r = await postJson(port, '/logged', raw);
      assert.equal(r.status, 200, r.text);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.payload.request'], raw);
      assert.deepEqual(JSON.parse(f['ai.payload.response']), r.json());
    });

    test('a 5 MB embeddings reply with log_payloads: the access line is still written', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/embed-logged', { input: 'x', model: 'text-embedding-3-large', encoding_format: 'float' }, { headers: { 'x-script': 'big-embed' } });
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.ok(r.body.length > 4.5 * 1024 * 1024, `reply of ${r.body.length} bytes`);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark, timeoutMs: 3000 });
      assert.equal(f['ai.prompt_tokens'], '640');
    });
  });
});
