// Review: do the fake providers (tests/fake/) speak each provider's real
// wire format? Each test talks to the fake directly over a real socket and
// asserts what the provider's own API reference documents. Where the fake
// differs today the test is marked `todo: 'FAKE: ...'` (the fake is wrong,
// not sluice); those matter because a lenient fake lets a sluice bug that
// the real provider would refuse pass unseen. Tests without todo guard the
// parts of the fakes that are right.
//
// One test at the end goes through sluice: Azure's documented stream shape
// (a first prompt-annotation chunk with empty choices and model "") which
// the fake cannot send, so a small canned upstream stands in.
//
//   SLUICE_BIN=/work/main/build-asan/sluice node --test integration/fake-wire-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, listenLocal, request, startSluice } from './lib/harness.mjs';
import { accessLog, aiRoute, parseSse, postStream, requestIdOf } from './lib/ai-helpers.mjs';

let fake;
before(async () => {
  fake = await startFake({ port: 0 });
});
after(() => fake?.close());

const post = (path, body, headers = {}) => request({
  port: fake.port, method: 'POST', path, timeoutMs: 5000,
  body: typeof body === 'string' ? body : JSON.stringify(body),
  headers: { 'content-type': 'application/json', ...headers },
});
const OPENAI = { authorization: 'Bearer sk-wire' };
const AZURE = { 'api-key': 'azure-wire' };
const ANTHROPIC = { 'x-api-key': 'sk-ant-wire', 'anthropic-version': '2023-06-01' };
const user = (text) => [{ role: 'user', content: text }];

// https://platform.openai.com/docs/api-reference/chat/create
describe('fake OpenAI against the OpenAI API reference', () => {
  test('SSE framing: data-only events ending in a blank line, usage null on every chunk, usage chunk, [DONE]', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: user('frame me') }, OPENAI);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    assert.ok(!r.text.includes('\r'), 'LF line ends, as api.openai.com');
    assert.ok(!/^event:/m.test(r.text), 'OpenAI chat streams carry no event: lines');
    const blocks = r.text.split('\n\n');
    assert.equal(blocks.pop(), '', 'ends with a blank line');
    assert.ok(blocks.every((b) => /^data: [^\n]+$/.test(b)), 'one data: line per event');
    assert.equal(blocks.at(-1), 'data: [DONE]');
    const chunks = blocks.slice(0, -1).map((b) => JSON.parse(b.slice(6)));
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1 && c.object === 'chat.completion.chunk'));
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
  });

  test('429 carries OpenAI\'s error object', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-4o', messages: user('x') }, { ...OPENAI, 'x-fake-status': '429' });
    assert.equal(r.status, 429);
    assert.match(r.headers['content-type'], /^application\/json/);
    const e = r.json().error;
    assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(e.code, 'rate_limit_exceeded');
  });

  // "stream_options: Options for streaming response. Only set this when you set stream: true."
  // api.openai.com answers 400 "The 'stream_options' parameter is only allowed when 'stream' is enabled."
  test('stream_options without stream: true is refused with 400', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-4o', stream_options: { include_usage: true }, messages: user('x') }, OPENAI);
    assert.equal(r.status, 400);
    assert.equal(r.json().error.type, 'invalid_request_error');
    assert.match(r.json().error.message, /stream_options/);
  });

  // api.openai.com refuses parameters it does not know:
  // 400 {"error":{"message":"Unrecognized request argument supplied: top_k","type":"invalid_request_error",...}}
  test('an unknown top-level parameter (top_k) is refused with 400', async () => {
    const r = await post('/v1/chat/completions', { model: 'gpt-4o', top_k: 5, messages: user('x') }, OPENAI);
    assert.equal(r.status, 400);
    assert.equal(r.json().error.type, 'invalid_request_error');
    assert.match(r.json().error.message, /Unrecognized request argument supplied: top_k/);
  });
});

// https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference (chat completions) and
// https://learn.microsoft.com/en-us/azure/ai-foundry/openai/concepts/content-filter,
// .../concepts/content-streaming: content filtering is on by default for every deployment.
describe('fake Azure OpenAI against the Azure OpenAI reference', () => {
  const path = (v) => `/openai/deployments/dep-wire/chat/completions?api-version=${v}`;

  test('deployment path, api-key, model from the deployment', async () => {
    const r = await post(path('2024-10-21'), { messages: user('hi') }, AZURE);
    assert.equal(r.status, 200);
    assert.equal(r.json().model, 'dep-wire');
    const denied = await post(path('2024-10-21'), { messages: user('hi') });
    assert.equal(denied.status, 401);
    assert.deepEqual(Object.keys(denied.json().error).sort(), ['code', 'message']);
  });

  // api-versions before 2024-09-01 (2023-05-15 is Kong's default) answer
  // 400 "Unrecognized request argument supplied: stream_options" (docs/providers.md relies on it).
  test('stream_options on api-version 2023-05-15 is refused with 400', async () => {
    const r = await post(path('2023-05-15'), { stream: true, stream_options: { include_usage: true }, messages: user('x') }, AZURE);
    assert.equal(r.status, 400);
    assert.match(r.json().error.message, /stream_options/);
  });

  // Non-streamed replies carry prompt_filter_results and choices[].content_filter_results.
  test('replies carry prompt_filter_results and content_filter_results', async () => {
    const r = await post(path('2024-10-21'), { messages: user('filtered') }, AZURE);
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.json().prompt_filter_results), 'prompt_filter_results');
    assert.equal(typeof r.json().choices[0].content_filter_results, 'object');
  });

  // Streams open with a prompt-annotation chunk: {"choices":[],"created":0,"id":"","model":"",
  // "object":"","prompt_filter_results":[...]} (seen in Microsoft's own SDK test data; the reason
  // the Azure docs tell clients to skip chunks with empty choices).
  test('a stream opens with the prompt-annotation chunk (choices [], model "")', async () => {
    const r = await post(path('2024-10-21'), { stream: true, messages: user('stream filtered') }, AZURE);
    assert.equal(r.status, 200);
    const first = JSON.parse(parseSse(r.text)[0].data);
    assert.deepEqual(first.choices, []);
    assert.equal(first.model, '');
    assert.ok(Array.isArray(first.prompt_filter_results));
  });
});

// https://docs.anthropic.com/en/api/messages, /en/api/messages-streaming, /en/api/errors
describe('fake Anthropic against the Messages API reference', () => {
  test('stream: event:/data: pairs whose type matches the event name, documented order', async () => {
    const r = await post('/v1/messages', { model: 'claude-x', max_tokens: 50, stream: true, messages: user('one two') }, ANTHROPIC);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    const blocks = r.text.split('\n\n');
    assert.equal(blocks.pop(), '');
    const events = blocks.map((b) => {
      const m = /^event: ([a-z_]+)\ndata: (.+)$/.exec(b);
      assert.ok(m, `event block: ${JSON.stringify(b)}`);
      const data = JSON.parse(m[2]);
      assert.equal(data.type, m[1], 'data.type is the event name');
      return data;
    });
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(0, 3), ['message_start', 'content_block_start', 'ping']);
    assert.deepEqual(types.slice(-4), ['content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    const start = events[0].message;
    assert.deepEqual([start.type, start.role, start.content, start.stop_reason], ['message', 'assistant', [], null]);
    assert.equal(typeof start.usage.input_tokens, 'number');
    const delta = events.at(-2);
    assert.equal(delta.delta.stop_reason, 'end_turn');
    assert.equal(typeof delta.usage.output_tokens, 'number');
    const text = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('');
    assert.equal(text, 'echo: one two');
  });

  test('max_tokens and anthropic-version are required (400 invalid_request_error)', async () => {
    const noMax = await post('/v1/messages', { model: 'c', messages: user('x') }, ANTHROPIC);
    assert.equal(noMax.status, 400);
    assert.deepEqual([noMax.json().type, noMax.json().error.type], ['error', 'invalid_request_error']);
    const noVer = await post('/v1/messages', { model: 'c', max_tokens: 5, messages: user('x') }, { 'x-api-key': 'k' });
    assert.equal(noVer.status, 400);
    assert.equal(noVer.json().error.type, 'invalid_request_error');
  });

  test('529 is overloaded_error in Anthropic\'s error body', async () => {
    const r = await post('/v1/messages', { model: 'c', max_tokens: 5, messages: user('x') }, { ...ANTHROPIC, 'x-fake-status': '529' });
    assert.equal(r.status, 529);
    assert.deepEqual([r.json().type, r.json().error.type], ['error', 'overloaded_error']);
  });

  // /en/api/errors: {"type":"error","error":{"type":...,"message":...},"request_id":"req_..."}
  test('error bodies carry request_id', async () => {
    const r = await post('/v1/messages', { model: 'c', max_tokens: 5, messages: user('x') }, { ...ANTHROPIC, 'x-fake-status': '400' });
    assert.equal(r.status, 400);
    assert.match(String(r.json().request_id), /^req_/);
  });

  // The API validates strictly: 400 "<field>: Extra inputs are not permitted".
  test('an unknown top-level field (OpenAI\'s n) is refused with 400', async () => {
    const r = await post('/v1/messages', { model: 'c', max_tokens: 5, n: 1, messages: user('x') }, ANTHROPIC);
    assert.equal(r.status, 400);
    assert.equal(r.json().error.type, 'invalid_request_error');
    assert.match(r.json().error.message, /Extra inputs are not permitted/);
  });

  // messages[].role: "user" | "assistant"; a system prompt is the top-level system field.
  test('a message with role system after the first one is refused with 400', async () => {
    const r = await post('/v1/messages', {
      model: 'c', max_tokens: 5,
      messages: [{ role: 'user', content: 'a' }, { role: 'system', content: 'be brief' }, { role: 'user', content: 'b' }],
    }, ANTHROPIC);
    assert.equal(r.status, 400);
    assert.equal(r.json().error.type, 'invalid_request_error');
  });

  // temperature: "Ranges from 0.0 to 1.0" (OpenAI allows up to 2).
  test('temperature above 1 is refused with 400', async () => {
    const r = await post('/v1/messages', { model: 'c', max_tokens: 5, temperature: 1.5, messages: user('x') }, ANTHROPIC);
    assert.equal(r.status, 400);
    assert.equal(r.json().error.type, 'invalid_request_error');
  });
});

// https://docs.anthropic.com/en/api/complete and /en/api/streaming (legacy Text Completions).
describe('fake Anthropic legacy /v1/complete', () => {
  test('JSON reply: type completion, leading space, stop_reason stop_sequence', async () => {
    const r = await post('/v1/complete', { model: 'claude-2.1', max_tokens_to_sample: 50, prompt: '\n\nHuman: hi there\n\nAssistant:' }, ANTHROPIC);
    assert.equal(r.status, 200);
    const b = r.json();
    assert.deepEqual([b.type, b.completion, b.stop_reason], ['completion', ' echo: hi there', 'stop_sequence']);
  });

  // "stream": true gives SSE: event: completion / data: {"type":"completion","completion":" Hello",
  // "stop_reason":null,"model":...}, ping events, a last completion event with its stop_reason.
  test('stream: true answers SSE completion events', async () => {
    const r = await post('/v1/complete', { model: 'claude-2.1', max_tokens_to_sample: 50, stream: true, prompt: '\n\nHuman: hi there\n\nAssistant:' }, ANTHROPIC);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    const events = parseSse(r.text).filter((e) => e.event !== 'ping');
    assert.ok(events.length >= 2);
    assert.ok(events.every((e) => e.event === 'completion' && JSON.parse(e.data).type === 'completion'));
    assert.equal(JSON.parse(events.at(-1).data).stop_reason, 'stop_sequence');
    assert.equal(events.map((e) => JSON.parse(e.data).completion).join(''), ' echo: hi there');
  });

  // The prompt must start with "\n\nHuman:" (after an optional system text) and end with "\n\nAssistant:".
  test('a prompt without the \\n\\nHuman: / \\n\\nAssistant: turns is refused with 400', async () => {
    const r = await post('/v1/complete', { model: 'claude-2.1', max_tokens_to_sample: 50, prompt: 'Human: hi there' }, ANTHROPIC);
    assert.equal(r.status, 400);
    assert.equal(r.json().error.type, 'invalid_request_error');
  });
});

// https://github.com/ollama/ollama/blob/main/docs/api.md
describe('fake Ollama against docs/api.md', () => {
  test('/api/chat streams NDJSON: one object per LF-ended line, last done with done_reason and counts', async () => {
    const r = await post('/api/chat', { model: 'llama3', messages: user('ndjson please') });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/x-ndjson');
    assert.ok(r.text.endsWith('\n') && !r.text.includes('\r'));
    const lines = r.text.slice(0, -1).split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.slice(0, -1).every((l) => l.done === false && l.message.role === 'assistant' && typeof l.created_at === 'string'));
    const last = lines.at(-1);
    assert.deepEqual([last.done, last.done_reason, last.message.content], [true, 'stop', '']);
    for (const k of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration']) {
      assert.equal(typeof last[k], 'number', k);
    }
  });

  test('/api/generate with stream false and /api/embed answer one JSON object', async () => {
    const g = await post('/api/generate', { model: 'llama3', prompt: 'why', stream: false });
    assert.deepEqual([g.json().response, g.json().done, g.json().done_reason], ['echo: why', true, 'stop']);
    const e = await post('/api/embed', { model: 'all-minilm', input: ['a', 'b'] });
    assert.equal(e.json().embeddings.length, 2);
    assert.ok(e.json().embeddings.every((v) => Array.isArray(v) && v.every((x) => typeof x === 'number')));
  });
});

// Through sluice: the Azure stream shape the fake cannot send (see the todo above).
describe('sluice against Azure\'s documented stream shape', { skip: binaryMissing() }, () => {
  const FRAMES = [
    { choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }] },
    { choices: [{ delta: { content: '', role: 'assistant' }, finish_reason: null, index: 0, logprobs: null }], created: 1730000000, id: 'chatcmpl-az1', model: 'gpt-4o-2024-11-20', object: 'chat.completion.chunk', system_fingerprint: 'fp_az' },
    { choices: [{ delta: { content: 'hello azure' }, finish_reason: null, index: 0, logprobs: null }], created: 1730000000, id: 'chatcmpl-az1', model: 'gpt-4o-2024-11-20', object: 'chat.completion.chunk', system_fingerprint: 'fp_az' },
    { choices: [{ delta: {}, finish_reason: 'stop', index: 0, logprobs: null }], created: 1730000000, id: 'chatcmpl-az1', model: 'gpt-4o-2024-11-20', object: 'chat.completion.chunk', system_fingerprint: 'fp_az', usage: null },
    { choices: [], created: 1730000000, id: 'chatcmpl-az1', model: 'gpt-4o-2024-11-20', object: 'chat.completion.chunk', system_fingerprint: 'fp_az', usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
  ];
  let azure;
  let sl;
  before(async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
        for (const f of FRAMES) res.write(`data: ${JSON.stringify(f)}\n\n`);
        res.end('data: [DONE]\n\n');
      });
    });
    azure = await listenLocal(server);
    sl = await startSluice({
      config: {
        services: [{ name: 'ai', url: azure.url, routes: [
          aiRoute('azure', '/azure', {
            route_type: 'llm/v1/chat',
            auth: { header_name: 'api-key', header_value: 'azure-key' },
            model: { provider: 'azure', name: 'gpt-4o', options: { upstream_url: `${azure.url}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21` } },
            logging: { log_statistics: true },
          }),
        ] }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await azure?.close();
  });

  test('the stream\'s text and usage come through', async () => {
    const mark = sl.logMark();
    const res = await postStream(sl.proxyPort, '/azure', { stream: true, messages: user('hi') });
    assert.equal(res.status, 200);
    const data = res.events.map((e) => e.data);
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks.flatMap((c) => c.choices).map((ch) => ch.delta?.content ?? '').join(''), 'hello azure');
    const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
    assert.deepEqual([f['ai.provider'], Number(f['ai.prompt_tokens']), Number(f['ai.completion_tokens'])], ['azure', 3, 2]);
  });

  test('ai.model names the model of the content chunks, not the annotation chunk\'s ""', async () => {
    const mark = sl.logMark();
    const res = await postStream(sl.proxyPort, '/azure', { stream: true, messages: user('hi') });
    assert.equal(res.status, 200);
    const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
    assert.equal(f['ai.model'], 'gpt-4o-2024-11-20');
  });
});
