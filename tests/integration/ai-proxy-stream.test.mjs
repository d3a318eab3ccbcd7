// ai-proxy streaming through the real daemon against the fake providers:
// OpenAI SSE passed through (usage chunk only when the client asked),
// Anthropic events and Ollama NDJSON translated to OpenAI chunks (role
// chunk, content and tool-call deltas, finish chunk, usage chunk, [DONE]),
// frames split at odd byte boundaries, frames forwarded while the provider
// is still sending, and broken or stalled streams ending with an error event
// instead of a hang. Every request is bounded.
//
//   SLUICE_BIN=build-h8/sluice node --test tests/integration/ai-proxy-stream.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, listenLocal, startSluice } from './lib/harness.mjs';
import {
  accessLog, aiRoute, assertOpenaiError, marker, parseSse, postJson, postStream, receivedWith, requestIdOf, streamChunks,
} from './lib/ai-helpers.mjs';

const CLAUDE = 'claude-3-5-sonnet-20241022';
const KEY = { authorization: 'Bearer sk-client-stream' };
const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } } },
};
const userMsg = (text) => [{ role: 'user', content: text }];

// Checks an OpenAI chat stream and returns what it carried:
// {content, toolCalls: [{id, name, arguments}], finish, usage, chunks}.
function assembleChat(res, { model, usage: wantUsage } = {}) {
  assert.equal(res.status, 200, `status; body: ${res.text.slice(0, 400)}`);
  assert.match(String(res.headers['content-type']), /text\/event-stream/);
  const { json, done, lastIsDone } = streamChunks(res.events);
  assert.equal(done, 1, `exactly one [DONE]: ${res.text.slice(-300)}`);
  assert.ok(lastIsDone, '[DONE] is the last event');
  assert.ok(json.length >= 2, 'chunks');
  const errors = json.filter((c) => c.error);
  assert.deepEqual(errors, [], 'no error chunk');
  const id = json[0].id;
  let content = '';
  let finish = null;
  let finishAt = -1;
  let usage = null;
  let usageAt = -1;
  const calls = [];
  json.forEach((c, i) => {
    assert.equal(c.object, 'chat.completion.chunk', `object of chunk ${i}`);
    assert.equal(c.id, id, 'same id in every chunk');
    assert.ok(Number.isInteger(c.created), 'created');
    if (model) assert.equal(c.model, model);
    assert.ok(Array.isArray(c.choices), `choices in chunk ${i}`);
    if (c.usage) {
      assert.equal(c.choices.length, 0, 'the usage chunk has no choices');
      usage = c.usage;
      usageAt = i;
    }
    for (const ch of c.choices) {
      assert.equal(ch.index, 0);
      const d = ch.delta;
      assert.equal(typeof d, 'object');
      if (i === 0) assert.equal(d.role, 'assistant', 'first chunk carries the role');
      else assert.equal(d.role, undefined, `role only in the first chunk (chunk ${i})`);
      if (typeof d.content === 'string') content += d.content;
      for (const tc of d.tool_calls || []) {
        assert.ok(Number.isInteger(tc.index), 'tool_calls[].index');
        if (!calls[tc.index]) {
          assert.equal(typeof tc.id, 'string', 'first delta of a call has its id');
          assert.equal(tc.type, 'function');
          assert.equal(typeof tc.function.name, 'string');
          calls[tc.index] = { id: tc.id, name: tc.function.name, arguments: '' };
        } else assert.equal(tc.id, undefined, 'id only in the first delta of a call');
        calls[tc.index].arguments += tc.function?.arguments ?? '';
      }
      if (ch.finish_reason !== null && ch.finish_reason !== undefined) {
        assert.equal(finish, null, 'one finish_reason');
        finish = ch.finish_reason;
        finishAt = i;
      }
    }
  });
  assert.ok(['stop', 'length', 'tool_calls', 'content_filter'].includes(finish), `finish_reason ${finish}`);
  if (wantUsage === true) {
    assert.ok(usage, 'usage chunk present');
    assert.ok(usageAt > finishAt, 'usage chunk after the finish chunk');
    assert.equal(usageAt, json.length - 1, 'usage chunk is the last before [DONE]');
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  } else if (wantUsage === false) {
    assert.equal(usage, null, `no usage chunk: ${JSON.stringify(json.at(-1))}`);
  }
  return { content, toolCalls: calls, finish, usage, chunks: json };
}

// The error event a broken stream must end with.
function assertStreamError(res, re) {
  const { json } = streamChunks(res.events);
  const err = json.find((c) => c.error);
  assert.ok(err, `an error event; got ${res.end}: ${res.text.slice(-500)}`);
  assert.equal(typeof err.error.message, 'string');
  if (re) assert.match(err.error.message, re);
  return err.error;
}

// Canned provider replies the shared fakes cannot produce (error events
// mid-stream, a stream cut before its end marker, a server that ignores
// `stream`): path → SSE frames (array) or a JSON reply (object).
const CANNED = {
  '/anthropic-error-event': [
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_c1","model":"claude-x","usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"partial"}}\n\n',
    'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
  ],
  '/anthropic-no-stop': [
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_c2","model":"claude-x","usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
  ],
  // Anthropic answering a forced json_response tool (response_format).
  '/anthropic-json': [
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_j1","model":"claude-x","usage":{"input_tokens":20,"output_tokens":1}}}\n\n',
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_j","name":"json_response","input":{}}}\n\n',
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}\n\n',
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\": \\"Pa"}}\n\n',
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"ris\\"}"}}\n\n',
    'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":8}}\n\n',
    'event: message_stop\ndata: {"type":"message_stop"}\n\n',
  ],
  '/openai-error-frame': [
    'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
    'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error"}}\n\n',
  ],
  // Hugging Face TGI (llama2_format raw): one event per token, `data:`
  // without a space, a frame split mid-JSON across writes, a special </s>
  // token, details on the last event.
  '/tgi-stream': [
    'data:{"index":1,"token":{"id":22557,"text":" Hel',
    'lo","logprob":-0.1,"special":false},"generated_text":null,"details":null}\n\ndata:{"index":2,"token":{"id":736,"text":" there","logprob":-0.2,"special":false},"generated_text":null,"details":null}\r\n',
    '\r\ndata:{"index":3,"token":{"id":2,"text":"</s>","logprob":-0.01,"special":true},"generated_text":"Hello there","details":{"finish_reason":"eos_token","generated_tokens":3,"seed":null,"input_length":7}}\n\n',
  ],
  '/tgi-length': [
    'data:{"index":1,"token":{"id":1,"text":"Once","special":false},"generated_text":null,"details":null}\n\n',
    'data:{"index":2,"token":{"id":2,"text":" upon","special":false},"generated_text":"Once upon","details":{"finish_reason":"length","generated_tokens":2,"input_length":5}}\n\n',
  ],
  '/tgi-error': [
    'data:{"index":1,"token":{"id":1,"text":"Par","special":false},"generated_text":null,"details":null}\n\n',
    'data:{"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}\n\n',
  ],
  '/openai-json': { id: 'cmpl-json1', object: 'chat.completion', created: 1700000000, model: 'local-model',
    choices: [{ index: 0, message: { role: 'assistant', content: 'whole reply', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] }, finish_reason: 'tool_calls' }],
    usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } },
};

// Pause between the writes of a canned stream, per path (default none).
const CANNED_GAP_MS = { '/tgi-stream': 150 };

// The canned server; `received` keeps every request body (parsed) by path.
function startCannedSse() {
  const received = [];
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', async () => {
      const raw = Buffer.concat(parts).toString('utf8');
      let body = null;
      try {
        body = JSON.parse(raw);
      } catch { /* recorded as null */ }
      received.push({ url: req.url, body, headers: req.headers });
      const r = CANNED[req.url];
      if (Array.isArray(r)) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const [i, f] of r.entries()) {
          if (i > 0 && CANNED_GAP_MS[req.url]) await new Promise((ok) => setTimeout(ok, CANNED_GAP_MS[req.url]));
          res.write(f);
        }
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(r));
      }
    });
  });
  return listenLocal(server).then((s) => ({ ...s, received }));
}

describe('ai-proxy streaming through the daemon', { skip: binaryMissing() }, () => {
  let fake;
  let canned;
  let sl;
  let port;
  before(async () => {
    fake = await startFake();
    canned = await startCannedSse();
    const C = canned.url;
    const F = fake.url;
    const chat = (provider, name, options, extra = {}) => ({ route_type: 'llm/v1/chat', model: { provider, name, options }, ...extra });
    const stats = { logging: { log_statistics: true } };
    const routes = [
      aiRoute('openai', '/openai', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions` }, stats)),
      aiRoute('openai-completions', '/openai-completions', { route_type: 'llm/v1/completions', model: { provider: 'openai', name: 'gpt-3.5-turbo-instruct', options: { upstream_url: `${F}/v1/completions` } } }),
      aiRoute('azure', '/azure', chat('azure', 'gpt-4o', { upstream_url: `${F}/openai/deployments/dep-s/chat/completions` }, { auth: { header_name: 'api-key', header_value: 'azure-stream-key' } })),
      aiRoute('anthropic', '/anthropic', chat('anthropic', CLAUDE, { upstream_url: `${F}/v1/messages`, input_cost: 3, output_cost: 15 },
        { auth: { header_name: 'x-api-key', header_value: 'sk-ant-stream' }, ...stats })),
      aiRoute('anthropic-always', '/anthropic-always', chat('anthropic', CLAUDE, { upstream_url: `${F}/v1/messages` }, { response_streaming: 'always' })),
      aiRoute('mistral-ollama', '/mistral-ollama', chat('mistral', 'mistral:7b', { upstream_url: `${F}/api/chat`, mistral_format: 'ollama' }, stats)),
      aiRoute('llama-ollama', '/llama-ollama', chat('llama2', 'llama2:7b', { upstream_url: `${F}/api/chat`, llama2_format: 'ollama' })),
      aiRoute('llama-ollama-gen', '/llama-ollama-gen', { route_type: 'llm/v1/completions', model: { provider: 'llama2', name: 'llama2:7b', options: { upstream_url: `${F}/api/generate`, llama2_format: 'ollama' } } }),
      aiRoute('preserve', '/preserve', { route_type: 'preserve', model: { provider: 'anthropic', options: { upstream_url: `${F}/v1/messages`, upstream_path: '/v1/messages' } }, logging: { log_statistics: true, log_payloads: true } }),
      aiRoute('logged', '/logged', chat('anthropic', CLAUDE, { upstream_url: `${F}/v1/messages` }, { logging: { log_statistics: true, log_payloads: true } })),
    ];
    for (const [prov, p] of [['anthropic', '/anthropic-error-event'], ['anthropic', '/anthropic-no-stop'], ['anthropic', '/anthropic-json'], ['openai', '/openai-error-frame'], ['openai', '/openai-json']]) {
      routes.push(aiRoute(`canned${p.replaceAll("/", "-")}`, `/canned${p}`, chat(prov, 'canned-model', { upstream_url: `${C}${p}` })));
    }
    const raw = (name, route_type, p, extra = {}) => aiRoute(name, `/canned${p}${route_type.endsWith('completions') ? '-gen' : ''}`,
      { route_type, model: { provider: 'llama2', name: 'llama-2-7b-chat', options: { upstream_url: `${C}${p}`, llama2_format: 'raw' } }, ...extra });
    routes.push(
      raw('tgi', 'llm/v1/chat', '/tgi-stream', { ...stats, auth: { header_name: 'Authorization', header_value: 'Bearer hf-tgi-key' } }),
      raw('tgi-gen', 'llm/v1/completions', '/tgi-length'),
      raw('tgi-length', 'llm/v1/chat', '/tgi-length'),
      raw('tgi-error', 'llm/v1/chat', '/tgi-error'),
    );
    const slow = [
      aiRoute('slow-openai', '/slow-openai', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions` })),
      aiRoute('slow-anthropic', '/slow-anthropic', chat('anthropic', CLAUDE, { upstream_url: `${F}/v1/messages` })),
      aiRoute('slow-ollama', '/slow-ollama', chat('mistral', 'mistral:7b', { upstream_url: `${F}/api/chat`, mistral_format: 'ollama' })),
    ];
    sl = await startSluice({
      config: { services: [{ name: 'ai', url: F, routes }, { name: 'ai-slow', url: F, read_timeout: 1000, routes: slow }] },
    });
    port = sl.proxyPort;
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
    await canned?.close();
  });

  describe('OpenAI-format upstreams: SSE passed through', () => {
    test('without include_usage: usage asked of the provider, its usage chunk dropped', async () => {
      const m = marker('s');
      const res = await postStream(port, '/openai', { model: 'gpt-4o', stream: true, messages: userMsg(`hello ${m} there`) }, { headers: KEY });
      const s = assembleChat(res, { model: 'gpt-4o', usage: false });
      assert.equal(s.content, `echo: hello ${m} there`);
      assert.equal(s.finish, 'stop');
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.stream, true);
      assert.deepEqual(rec.json.stream_options, { include_usage: true });
    });

    test('with include_usage: the usage chunk arrives, last before [DONE]', async () => {
      const res = await postStream(port, '/openai', { model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: userMsg('a b c') }, { headers: KEY });
      const s = assembleChat(res, { usage: true });
      assert.deepEqual([s.usage.prompt_tokens, s.usage.completion_tokens], [3, 4]);
    });

    test('streamed tool-call deltas pass through', async () => {
      const res = await postStream(port, '/openai', { model: 'gpt-4o', stream: true, messages: userMsg('call get_weather'), tools: [WEATHER_TOOL] }, { headers: KEY });
      const s = assembleChat(res, { usage: false });
      assert.equal(s.finish, 'tool_calls');
      assert.equal(s.toolCalls.length, 1);
      assert.equal(s.toolCalls[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(s.toolCalls[0].arguments), { city: 'city_value', days: 42 });
    });

    test('Azure stream', async () => {
      const res = await postStream(port, '/azure', { stream: true, messages: userMsg('via azure') });
      // Azure opens with a prompt-annotation chunk (choices [], id/model/object ""), which clients skip.
      const annotation = (e) => e.data !== '[DONE]' && JSON.parse(e.data).prompt_filter_results !== undefined;
      const s = assembleChat({ ...res, events: res.events.filter((e) => !annotation(e)) }, { model: 'dep-s', usage: false });
      assert.equal(s.content, 'echo: via azure');
    });

    test('completions stream (text_completion chunks)', async () => {
      const res = await postStream(port, '/openai-completions', { stream: true, prompt: 'p q' }, { headers: KEY });
      assert.equal(res.status, 200, res.text);
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assert.ok(json.every((c) => c.object === 'text_completion'));
      assert.equal(json.filter((c) => c.usage).length, 0, 'no usage chunk');
      assert.equal(json.map((c) => c.choices[0]?.text ?? '').join(''), 'echo: p q');
    });

    test('frames split at odd byte boundaries are reassembled', async () => {
      const res = await postStream(port, '/openai', { model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: userMsg('split me into many odd pieces') },
        { headers: { ...KEY, 'x-fake-split': 'odd' } });
      const s = assembleChat(res, { usage: true });
      assert.equal(s.content, 'echo: split me into many odd pieces');
    });
  });

  describe('Anthropic events → OpenAI chunks', () => {
    test('role chunk, content deltas, finish chunk, no usage chunk, [DONE]', async () => {
      const m = marker('a');
      const res = await postStream(port, '/anthropic', { stream: true, messages: [{ role: 'system', content: 'sys' }, ...userMsg(`hi ${m} you`)] }, { headers: KEY });
      const s = assembleChat(res, { model: CLAUDE, usage: false });
      assert.equal(s.content, `echo: hi ${m} you`);
      assert.equal(s.finish, 'stop');
      assert.match(s.chunks[0].id, /^msg_/);
      assert.deepEqual(s.chunks[0].choices[0].delta, { role: 'assistant', content: '' });
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.stream, true);
      assert.equal(rec.json.system, 'sys');
      assert.equal(rec.headers['x-api-key'], 'sk-ant-stream');
    });

    test('include_usage: usage chunk with the stream\'s token counts', async () => {
      const res = await postStream(port, '/anthropic', { stream: true, stream_options: { include_usage: true }, messages: userMsg('one two three') });
      const s = assembleChat(res, { usage: true });
      assert.deepEqual(s.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, prompt_tokens_details: { cached_tokens: 0 } });
    });

    test('tool_use → tool-call deltas with index, id, name, then arguments', async () => {
      const res = await postStream(port, '/anthropic', { stream: true, messages: userMsg('call get_weather'), tools: [WEATHER_TOOL] });
      const s = assembleChat(res, { usage: false });
      assert.equal(s.finish, 'tool_calls');
      assert.equal(s.content, 'I will call get_weather.');
      assert.equal(s.toolCalls.length, 1);
      assert.match(s.toolCalls[0].id, /^toolu_/);
      assert.equal(s.toolCalls[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(s.toolCalls[0].arguments), { city: 'city_value', days: 42 });
      const first = s.chunks.find((c) => c.choices[0]?.delta?.tool_calls);
      assert.deepEqual(first.choices[0].delta.tool_calls, [{ index: 0, id: s.toolCalls[0].id, type: 'function', function: { name: 'get_weather', arguments: '' } }]);
      const argDeltas = s.chunks.filter((c) => c.choices[0]?.delta?.tool_calls && !c.choices[0].delta.tool_calls[0].id);
      assert.ok(argDeltas.length > 3, 'arguments arrive in several deltas');
    });

    test('max_tokens → finish_reason length', async () => {
      const res = await postStream(port, '/anthropic', { stream: true, max_tokens: 2, messages: userMsg('a b c d') });
      const s = assembleChat(res);
      assert.equal(s.finish, 'length');
      assert.equal(s.content, 'echo: a');
    });

    test('split at odd byte boundaries', async () => {
      const res = await postStream(port, '/anthropic', { stream: true, stream_options: { include_usage: true }, messages: userMsg('ünïcödé split 日本語 words') }, { headers: { 'x-fake-split': 'odd' } });
      const s = assembleChat(res, { usage: true });
      assert.equal(s.content, 'echo: ünïcödé split 日本語 words');
    });

    test('the whole event stream in one read: the same chunks as frame by frame', async () => {
      // sluice filters and sends the events of a first read one by one until
      // the first bytes have left (src/proxy.c write_cb): nothing may change.
      const body = { stream: true, stream_options: { include_usage: true }, messages: userMsg('one read w1 w2 w3 w4') };
      const whole = await postStream(port, '/anthropic', body, { headers: { 'x-fake-split': '1000000' } });
      const framed = await postStream(port, '/anthropic', body);
      const a = assembleChat(whole, { usage: true });
      const b = assembleChat(framed, { usage: true });
      assert.equal(a.content, 'echo: one read w1 w2 w3 w4');
      const shape = (s) => s.chunks.map((c) => JSON.stringify([c.choices[0]?.delta, c.choices[0]?.finish_reason, c.usage]));
      assert.deepEqual(shape(a), shape(b));
      assert.ok(a.chunks.length >= 6, `${a.chunks.length} chunks`);
    });

    test('the first chunk reaches the client before the provider finished', async () => {
      const m = marker('fd');
      const res = await postStream(port, '/anthropic', { stream: true, messages: userMsg(`${m} w1 w2 w3`) }, { headers: { 'x-fake-frame-delay-ms': '150' }, timeoutMs: 15000 });
      const s = assembleChat(res);
      assert.equal(s.content, `echo: ${m} w1 w2 w3`);
      const rec = await receivedWith(fake, m);
      const firstContent = res.chunks.find((c) => c.text.includes('"content":"echo: "'));
      assert.ok(firstContent, 'content chunk seen');
      const firstContentAt = res.t0 + firstContent.t;
      assert.ok(rec.closedAt - firstContentAt > 500, `first content at ${firstContentAt}, provider finished at ${rec.closedAt}`);
      // Chunks arrived spread out, not in one burst at the end.
      const spread = res.chunks.at(-1).t - res.chunks[0].t;
      assert.ok(spread > 800, `chunks spread over ${spread} ms`);
    });

    test('response_streaming always: a non-stream request gets a stream', async () => {
      const m = marker('al');
      const res = await postStream(port, '/anthropic-always', { messages: userMsg(m) }, { headers: KEY });
      const s = assembleChat(res);
      assert.equal(s.content, `echo: ${m}`);
      assert.equal((await receivedWith(fake, m)).json.stream, true);
    });

    test('provider error on a stream request → one JSON error with the provider\'s status', async () => {
      for (const status of [400, 429, 529]) {
        const r = await postJson(port, '/anthropic', { stream: true, messages: userMsg('x') }, { headers: { 'x-fake-status': String(status) } });
        assertOpenaiError(r, status, { message: `fake anthropic error ${status}` });
      }
    });
  });

  describe('Anthropic response_format (forced json_response tool)', () => {
    test('the tool input streams as content deltas, finish stop; what Anthropic received', async () => {
      const from = canned.received.length;
      const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
      const res = await postStream(port, '/canned/anthropic-json', {
        stream: true, stream_options: { include_usage: true }, messages: userMsg('where?'),
        response_format: { type: 'json_schema', json_schema: { name: 'place', schema } },
      });
      const s = assembleChat(res, { usage: true });
      assert.deepEqual(JSON.parse(s.content), { city: 'Paris' });
      assert.deepEqual(s.toolCalls, []);
      assert.equal(s.finish, 'stop');
      assert.deepEqual(s.usage, { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 });
      const got = canned.received.slice(from).find((x) => x.url === '/anthropic-json');
      assert.equal(got.body.stream, true);
      assert.deepEqual(got.body.tools.map((t) => [t.name, t.input_schema]), [['json_response', schema]]);
      assert.deepEqual(got.body.tool_choice, { type: 'tool', name: 'json_response' });
    });
  });

  describe('Ollama NDJSON → OpenAI chunks', () => {
    test('mistral ollama format: chunks, finish, usage chunk from eval counts', async () => {
      const m = marker('o');
      const res = await postStream(port, '/mistral-ollama', { stream: true, stream_options: { include_usage: true }, messages: userMsg(`hey ${m}`) });
      const s = assembleChat(res, { model: 'mistral:7b', usage: true });
      assert.equal(s.content, `echo: hey ${m}`);
      assert.equal(s.finish, 'stop');
      assert.deepEqual([s.usage.prompt_tokens, s.usage.completion_tokens], [2, 3]);
      assert.equal((await receivedWith(fake, m)).json.stream, true);
    });

    test('llama2 ollama format, without include_usage, split at odd boundaries', async () => {
      const res = await postStream(port, '/llama-ollama', { stream: true, messages: userMsg('x y z') }, { headers: { 'x-fake-split': '3,1,11' } });
      const s = assembleChat(res, { usage: false });
      assert.equal(s.content, 'echo: x y z');
    });

    test('tool calls', async () => {
      const res = await postStream(port, '/llama-ollama', { stream: true, messages: userMsg('call get_weather'), tools: [WEATHER_TOOL] });
      const s = assembleChat(res);
      assert.equal(s.finish, 'tool_calls');
      assert.equal(s.toolCalls[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(s.toolCalls[0].arguments), { city: 'city_value', days: 42 });
    });

    test('completions (/api/generate)', async () => {
      const res = await postStream(port, '/llama-ollama-gen', { stream: true, prompt: 'g h' });
      assert.equal(res.status, 200, res.text);
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assert.ok(json.every((c) => c.object === 'text_completion'), res.text);
      assert.equal(json.map((c) => c.choices[0]?.text ?? '').join(''), 'echo: g h');
      assert.equal(json.filter((c) => c.choices[0]?.finish_reason).length, 1);
    });
  });

  describe('llama2 raw (TGI token events) → OpenAI chunks', () => {
    test('chat: what TGI received, role chunk, deltas as they come, finish, usage chunk, [DONE]', async () => {
      const mark = sl.logMark();
      const from = canned.received.length;
      const res = await postStream(port, '/canned/tgi-stream', { stream: true, stream_options: { include_usage: true }, messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Say hello' }] });
      const s = assembleChat(res, { model: 'llama-2-7b-chat', usage: true });
      assert.equal(s.content, 'Hello there', 'leading blank dropped, special token not text');
      assert.equal(s.finish, 'stop', 'eos_token → stop');
      assert.deepEqual(s.usage, { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
      // role, "Hello", " there", finish, usage
      assert.equal(s.chunks.length, 5);
      // What the provider got: Llama 2's template, a stream with details, the key.
      const got = canned.received.slice(from).find((x) => x.url === '/tgi-stream');
      assert.ok(got, 'the TGI server was called');
      assert.equal(got.body.inputs, '<s>[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nSay hello [/INST]');
      assert.equal(got.body.stream, true);
      assert.equal(got.body.parameters.stream, true);
      assert.equal(got.body.parameters.details, true);
      assert.equal(got.headers.authorization, 'Bearer hf-tgi-key');
      // Forwarded as they came: "Hello" left before the provider's last write.
      const helloAt = res.chunks.find((c) => c.text.includes('"Hello"'))?.t;
      const doneAt = res.chunks.find((c) => c.text.includes('[DONE]'))?.t;
      assert.ok(helloAt !== undefined && doneAt !== undefined);
      assert.ok(doneAt - helloAt >= 100, `first delta at ${helloAt} ms, [DONE] at ${doneAt} ms`);
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(f['ai.provider'], 'llama2');
      assert.equal(Number(f['ai.prompt_tokens']), 7);
      assert.equal(Number(f['ai.completion_tokens']), 3);
    });

    test('without include_usage: no usage chunk; details finish_reason length → length', async () => {
      const res = await postStream(port, '/canned/tgi-length', { stream: true, messages: userMsg('tell a story') });
      const s = assembleChat(res, { usage: false });
      assert.equal(s.content, 'Once upon');
      assert.equal(s.finish, 'length');
    });

    test('completions: text_completion chunks', async () => {
      const res = await postStream(port, '/canned/tgi-length-gen', { stream: true, prompt: 'tell a story' });
      assert.equal(res.status, 200, res.text);
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assert.ok(json.every((c) => c.object === 'text_completion'), JSON.stringify(json));
      assert.equal(json.map((c) => c.choices[0]?.text ?? '').join(''), 'Once upon');
      assert.equal(json.at(-1).choices[0].finish_reason, 'length');
      const got = canned.received.findLast((x) => x.url === '/tgi-length' && x.body?.inputs?.includes('tell a story'));
      assert.equal(got.body.inputs, '<s>[INST] tell a story [/INST]');
    });

    test('an error event mid-stream → the text so far, an error chunk, [DONE]', async () => {
      const res = await postStream(port, '/canned/tgi-error', { stream: true, messages: userMsg('x') });
      assert.equal(res.status, 200);
      assert.equal(res.end, 'end');
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assert.equal(json[1].choices[0].delta.content, 'Par');
      assertStreamError(res, /CUDA out of memory/);
    });
  });

  describe('broken and stalled streams end, never hang', () => {
    for (const [path, body, after] of [
      ['/openai', { model: 'gpt-4o', stream: true, messages: userMsg('one two three four five six seven') }, 600],
      ['/anthropic', { stream: true, messages: userMsg('one two three four five six seven') }, 700],
      ['/mistral-ollama', { stream: true, messages: userMsg('one two three four five six seven') }, 300],
    ]) {
      test(`${path}: reset mid-stream → error event and a closed response`, async () => {
        const t0 = Date.now();
        const res = await postStream(port, path, body, { headers: { ...KEY, 'x-fake-reset-after-bytes': String(after) }, timeoutMs: 5000 });
        assert.equal(res.status, 200);
        assert.ok(Date.now() - t0 < 3000, 'ended promptly');
        const e = assertStreamError(res);
        assert.doesNotMatch(e.message, /not JSON/, `the error says the stream broke, not that a cut frame was bad: ${e.message}`);
        assert.match(e.message, /stream/);
        const { json } = streamChunks(res.events);
        assert.ok(json.length >= 2, 'chunks before the break reached the client');
      });
    }

    test('an Anthropic error event mid-stream → the content so far, an error chunk, [DONE]', async () => {
      const res = await postStream(port, '/canned/anthropic-error-event', { stream: true, messages: userMsg('x') });
      assert.equal(res.status, 200);
      assert.equal(res.end, 'end');
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assert.equal(json[0].choices[0].delta.role, 'assistant');
      assert.equal(json[1].choices[0].delta.content, 'partial');
      assert.equal(json.at(-1).error.message, 'Overloaded');
    });

    test('an error frame from an OpenAI-format upstream is forwarded, then [DONE]', async () => {
      const res = await postStream(port, '/canned/openai-error-frame', { stream: true, messages: userMsg('x') });
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assert.equal(json.at(-1).error.type, 'server_error');
    });

    test('a stream that ends without its end marker gets an error chunk and [DONE]', async () => {
      const res = await postStream(port, '/canned/anthropic-no-stop', { stream: true, messages: userMsg('x') });
      const { json, lastIsDone } = streamChunks(res.events);
      assert.ok(lastIsDone);
      assertStreamError(res, /ended before it was complete/);
      assert.equal(json.filter((c) => c.error).length, 1);
    });

    test('a server that ignores stream (one JSON reply) → the same reply as a stream', async () => {
      const res = await postStream(port, '/canned/openai-json', { stream: true, stream_options: { include_usage: true }, messages: userMsg('x') });
      const s = assembleChat(res, { model: 'local-model', usage: true });
      assert.equal(s.content, 'whole reply');
      assert.equal(s.finish, 'tool_calls');
      assert.deepEqual(s.toolCalls, [{ id: 'call_1', name: 'f', arguments: '{"a":1}' }]);
      assert.equal(s.chunks[0].id, 'cmpl-json1');
      assert.deepEqual(s.usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
      const plain = await postStream(port, '/canned/openai-json', { stream: true, messages: userMsg('x') });
      assembleChat(plain, { usage: false });
    });

    for (const path of ['/slow-openai', '/slow-anthropic', '/slow-ollama']) {
      test(`${path}: a stall past read_timeout → error event and a closed response`, async () => {
        const t0 = Date.now();
        const res = await postStream(port, path, { stream: true, messages: userMsg('s t u') }, { headers: { ...KEY, 'x-fake-frame-delay-ms': '4000' }, timeoutMs: 8000 });
        const took = Date.now() - t0;
        assert.equal(res.status, 200);
        assert.ok(took >= 900 && took < 3500, `ended after ${took} ms (read_timeout 1000)`);
        assertStreamError(res, /stream/);
      });
    }
  });

  describe('statistics of streams', () => {
    test('Anthropic stream: tokens, cost, ttft in the log line', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/anthropic', { stream: true, stream_options: { include_usage: true }, messages: userMsg('count me in') });
      const s = assembleChat(res, { usage: true });
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(f['ai.provider'], 'anthropic');
      assert.equal(f['ai.model'], CLAUDE);
      assert.equal(Number(f['ai.prompt_tokens']), s.usage.prompt_tokens);
      assert.equal(Number(f['ai.completion_tokens']), s.usage.completion_tokens);
      assert.ok(Math.abs(Number(f['ai.cost']) - (s.usage.prompt_tokens * 3 + s.usage.completion_tokens * 15) / 1e6) < 1e-6);
      assert.ok(Number(f['ai.ttft_ms']) >= 0, `ttft ${f['ai.ttft_ms']}`);
      assert.ok(Number(f['ai.llm_latency_ms']) >= Number(f['ai.ttft_ms']));
    });

    test('OpenAI stream without include_usage still records usage', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/openai', { model: 'gpt-4o', stream: true, messages: userMsg('four words right here') }, { headers: KEY });
      assembleChat(res, { usage: false });
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), 4);
      assert.equal(Number(f['ai.completion_tokens']), 5);
      assert.equal(Number(f['ai.total_tokens']), 9);
    });

    test('Ollama stream records usage', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/mistral-ollama', { stream: true, messages: userMsg('two words') });
      assembleChat(res, { usage: false });
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), 2);
      assert.equal(Number(f['ai.completion_tokens']), 3);
    });

    test('preserve: Anthropic\'s own event stream passed through untouched, usage recorded', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/preserve', { model: CLAUDE, max_tokens: 50, stream: true, messages: userMsg('native stream words') }, { headers: { ...KEY, 'x-fake-split': 'odd' } });
      assert.equal(res.status, 200, res.text);
      const names = res.events.map((e) => e.event);
      assert.equal(names[0], 'message_start');
      assert.equal(names.at(-1), 'message_stop');
      assert.ok(!res.text.includes('chat.completion.chunk'), 'not translated');
      const text = res.events.filter((e) => e.event === 'content_block_delta').map((e) => JSON.parse(e.data).delta.text).join('');
      assert.equal(text, 'echo: native stream words');
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), 3);
      assert.equal(Number(f['ai.completion_tokens']), 4);
      assert.ok(Number(f['ai.ttft_ms']) >= 0);
      assert.ok(f['ai.payload.response'].includes('message_stop'), 'streamed payload logged');
    });

    test('log_payloads on a stream logs the request and the streamed reply', async () => {
      const mark = sl.logMark();
      const m = marker('pl');
      const res = await postStream(port, '/logged', { stream: true, messages: userMsg(`payload ${m}`) }, { headers: KEY });
      const s = assembleChat(res);
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.ok(f['ai.payload.request']?.includes(m), `request payload: ${f['ai.payload.request']}`);
      const resp = f['ai.payload.response'];
      assert.equal(typeof resp, 'string', 'response payload logged');
      assert.deepEqual(streamChunks(parseSse(resp.trim().replace(/(\}|\])\s+data: /g, '$1\n\ndata: '))).json.map((c) => c.choices[0]?.delta?.content ?? '').join(''), s.content,
        `response payload: ${resp}`);
    });
  });
});
