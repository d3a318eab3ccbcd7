// Adversarial review of ai-proxy's translation against the providers' real
// wire formats. A scripted provider (node:http, in this file) writes exact
// bytes: Anthropic event streams with ping/thinking/server-tool blocks,
// several tool_use blocks, cache usage, CRLF or CR line endings, frames cut
// at every byte; OpenAI-format streams with `data:` lines without a space,
// comments, `event:` lines, multi-line data; Azure and Mistral stand-ins that
// refuse request fields the real services refuse. Each test checks what the
// client got (as the OpenAI SDK reads it) and, for requests, what the
// provider received.
//
//   SLUICE_BIN=build-asan/sluice node --test tests/integration/ai-proxy-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, listenLocal, startSluice } from './lib/harness.mjs';
import { aiRoute, assertChatCompletion, assertOpenaiError, postJson, postStream, streamChunks } from './lib/ai-helpers.mjs';

// ---- Anthropic event builders (key order as Anthropic sends them) ----
const A = (type, obj = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...obj })}\n\n`;
const aStart = (usage = { input_tokens: 10, output_tokens: 1 }) => A('message_start', {
  message: { id: 'msg_rev01', type: 'message', role: 'assistant', model: 'claude-rev', content: [], stop_reason: null, stop_sequence: null, usage },
});
const aBlock = (index, content_block) => A('content_block_start', { index, content_block });
const aText = (index, text) => A('content_block_delta', { index, delta: { type: 'text_delta', text } });
const aJson = (index, partial_json) => A('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } });
const aBlockStop = (index) => A('content_block_stop', { index });
const aDelta = (stop_reason, usage = { output_tokens: 5 }) => A('message_delta', { delta: { stop_reason, stop_sequence: null }, usage });
const aPing = A('ping');
const aStop = A('message_stop');
const textBlock = (i, ...pieces) => [aBlock(i, { type: 'text', text: '' }), ...pieces.map((p) => aText(i, p)), aBlockStop(i)];
const simpleStream = (text, stop = 'end_turn') => [aStart(), ...textBlock(0, text), aDelta(stop), aStop];

// ---- OpenAI chunk builders ----
const oChunk = (delta, finish = null, extra = {}) => JSON.stringify({
  id: 'chatcmpl-rev', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-rev',
  choices: [{ index: 0, delta, finish_reason: finish }], ...extra,
});
const oUsage = JSON.stringify({ id: 'chatcmpl-rev', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-rev', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });

// Scripted replies, chosen by the text of the request's last message
// ("script:<name>"). parts: SSE pieces; eol: 'crlf' | 'cr' rewrites the line
// ends; split: write in pieces of that many bytes (a UTF-8 sequence or a
// "\r\n" may be cut); json/raw: a whole reply.
const SCRIPTS = {
  // Anthropic streams
  'a-thinking': { parts: [
    ': comment line the parser must skip\n\n', aStart(), aPing,
    aBlock(0, { type: 'thinking', thinking: '' }),
    A('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'SECRET-REASONING step one' } }),
    A('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA' } }),
    aBlockStop(0),
    aBlock(1, { type: 'redacted_thinking', data: 'REDACTED-BLOB' }), aBlockStop(1),
    aPing,
    ...textBlock(2, 'The answer', ' is 4.'),
    aDelta('end_turn'), aStop,
  ] },
  'a-server-tool': { parts: [
    aStart(),
    ...textBlock(0, 'Let me search. '),
    aBlock(1, { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: {} }),
    aJson(1, '{"query": "weather'), aJson(1, ' paris"}'), aBlockStop(1),
    aBlock(2, { type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [{ type: 'web_search_result', url: 'https://x.example', title: 'X', encrypted_content: 'ENC' }] }), aBlockStop(2),
    aBlock(3, { type: 'text', text: '' }),
    A('content_block_delta', { index: 3, delta: { type: 'citations_delta', citation: { type: 'web_search_result_location', url: 'https://x.example', cited_text: 'c' } } }),
    aText(3, 'It is sunny.'), aBlockStop(3),
    aDelta('end_turn'), aStop,
  ] },
  'a-two-tools': { parts: [
    aStart(),
    ...textBlock(0, 'Checking both.'),
    aBlock(1, { type: 'tool_use', id: 'toolu_A', name: 'get_weather', input: {} }),
    aJson(1, ''), aJson(1, '{"ci'), aJson(1, 'ty": "Pa'), aJson(1, 'ris"'), aJson(1, ', "days": 2}'), aBlockStop(1),
    aPing,
    aBlock(2, { type: 'tool_use', id: 'toolu_B', name: 'get_time', input: {} }),
    aJson(2, '{"tz":'), aJson(2, ' "Europe/Oslo"}'), aBlockStop(2),
    aDelta('tool_use', { output_tokens: 40 }), aStop,
  ] },
  'a-empty-tool': { parts: [
    aStart(),
    aBlock(0, { type: 'tool_use', id: 'toolu_E', name: 'get_time', input: {} }),
    aJson(0, ''), aBlockStop(0),
    aDelta('tool_use'), aStop,
  ] },
  'a-cache-usage': { parts: [
    aStart({ input_tokens: 10, cache_creation_input_tokens: 5, cache_read_input_tokens: 20, output_tokens: 1 }),
    ...textBlock(0, 'cached'),
    aDelta('end_turn', { output_tokens: 7 }), aStop,
  ] },
  'a-stop-max_tokens': { parts: simpleStream('cut', 'max_tokens') },
  'a-stop-stop_sequence': { parts: simpleStream('stopped', 'stop_sequence') },
  'a-stop-refusal': { parts: simpleStream('no', 'refusal') },
  'a-stop-pause_turn': { parts: simpleStream('paused', 'pause_turn') },
  'a-stop-tool_use': { parts: [aStart(), aBlock(0, { type: 'tool_use', id: 'toolu_S', name: 'f', input: {} }), aJson(0, '{"a":1}'), aBlockStop(0), aDelta('tool_use'), aStop] },
  'a-unicode-crlf-bytes': { eol: 'crlf', split: 1, parts: [aStart(), aPing, ...textBlock(0, 'ünï', 'cödé 日本', '語 😀 "q" \\ end'), aDelta('end_turn'), aStop] },
  'a-unicode-cr-3': { eol: 'cr', split: 3, parts: [aStart(), ...textBlock(0, 'ünï', 'cödé 日本', '語 😀 end'), aDelta('end_turn'), aStop] },
  'a-spaced-json': { parts: [
    aStart(),
    'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}\n\n',
    'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "spaced "}}\n\n',
    'event: content_block_delta\ndata: {"index":0,"type":"content_block_delta","delta":{"text":"reordered","type":"text_delta"}}\n\n',
    aBlockStop(0), aDelta('end_turn'), aStop,
  ] },
  'a-overloaded-after-delta': { parts: [
    aStart(), ...textBlock(0, 'almost'),
    'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
  ] },
  // Anthropic whole replies
  'a-blocks': { json: {
    id: 'msg_blocks', type: 'message', role: 'assistant', model: 'claude-rev', stop_reason: 'tool_use', stop_sequence: null,
    content: [
      { type: 'thinking', thinking: 'SECRET-REASONING', signature: 'sig' },
      { type: 'redacted_thinking', data: 'REDACTED-BLOB' },
      { type: 'text', text: 'Part one. ' },
      { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: { query: 'q' } },
      { type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [] },
      { type: 'text', text: 'Part two.', citations: [{ type: 'web_search_result_location', url: 'https://x.example', cited_text: 'c' }] },
      { type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {} },
      { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Paris' } },
    ],
    usage: { input_tokens: 12, output_tokens: 30, cache_read_input_tokens: 100, cache_creation_input_tokens: 0, server_tool_use: { web_search_requests: 1 } },
    some_future_field: { x: 1 },
  } },
  'a-null-stop-no-usage': { json: { id: 'msg_nu', type: 'message', role: 'assistant', model: 'claude-rev', content: [{ type: 'text', text: 'hi' }], stop_reason: null } },
  'a-200-error': { json: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } },
  'a-200-notjson': { raw: 'upstream connect error or disconnect/reset before headers', type: 'text/plain' },
  'a-cut-mid-frame': { parts: [aStart(), aBlock(0, { type: 'text', text: '' }), aText(0, 'partial'), 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_del'] },
  // Error bodies whose message is not a string: Mistral's 422 (message.detail[])
  // and FastAPI's default 422 ({"detail": [...]}, OpenAI-compatible servers).
  'm-422': { status: 422, json: { object: 'error', message: { detail: [{ type: 'extra_forbidden', loc: ['body', 'foo'], msg: 'Extra inputs are not permitted', input: 1 }] }, type: 'invalid_request_error', param: null, code: null } },
  'o-422-fastapi': { status: 422, json: { detail: [{ type: 'missing', loc: ['body', 'messages', 0, 'content'], msg: 'Field required', input: null }] } },
  // OpenAI-format streams
  'o-nospace-comments-events': { parts: [
    ': OPENROUTER PROCESSING\n\n',
    `data:${oChunk({ role: 'assistant', content: '' })}\n\n`,
    `event: message\ndata:${oChunk({ content: 'Hel' })}\n\n`,
    `id: 7\nretry: 1000\ndata: ${oChunk({ content: 'lo' })}\n\n`,
    `data: ${oChunk({}, 'stop')}\n\n`,
    `data: ${oUsage}\n\n`,
    'data: [DONE]\n\n',
  ] },
  'o-multiline-data': { parts: [
    `data: ${oChunk({ role: 'assistant', content: '' })}\n\n`,
    'data: {"id":"chatcmpl-rev","object":"chat.completion.chunk","created":1700000000,\ndata: "model":"gpt-rev","choices":[{"index":0,"delta":{"content":"two lines"},"finish_reason":null}]}\n\n',
    `data: ${oChunk({}, 'stop')}\n\n`,
    'data: [DONE]\n\n',
  ] },
  'o-empty-data': { parts: [
    `data: ${oChunk({ role: 'assistant', content: '' })}\n\n`,
    'data:\n\n',
    `data: ${oChunk({ content: 'after heartbeat' })}\n\n`,
    `data: ${oChunk({}, 'stop')}\n\n`,
    'data: [DONE]\n\n',
  ] },
  'o-crlf-bytes': { eol: 'crlf', split: 1, parts: [
    `data: ${oChunk({ role: 'assistant', content: '' })}\n\n`,
    `data: ${oChunk({ content: 'ünï 日本 😀' })}\n\n`,
    `data: ${oChunk({}, 'stop')}\n\n`,
    `data: ${oUsage}\n\n`,
    'data: [DONE]\n\n',
  ] },
};

// The stream an OpenAI-format stand-in (Azure, Mistral) sends when it accepts the request.
const OPENAI_OK = [
  `data: ${oChunk({ role: 'assistant', content: '' })}\n\n`,
  `data: ${oChunk({ content: 'fine' })}\n\n`,
  `data: ${oChunk({}, 'stop', { usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })}\n\n`,
  'data: [DONE]\n\n',
];

const ANTHROPIC_OK = { id: 'msg_ok', type: 'message', role: 'assistant', model: 'claude-rev', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } };

function lastText(body) {
  const msgs = body?.messages;
  const last = Array.isArray(msgs) ? msgs[msgs.length - 1] : null;
  const c = last?.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => p?.text ?? '').join('');
  return '';
}

function rewriteEol(s, eol) {
  if (eol === 'crlf') return s.replace(/\n/g, '\r\n');
  if (eol === 'cr') return s.replace(/\n/g, '\r');
  return s;
}

async function writeScript(res, script) {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  const buf = Buffer.from(rewriteEol(script.parts.join(''), script.eol), 'utf8');
  if (!script.split) {
    for (const p of script.parts) res.write(rewriteEol(p, script.eol));
  } else {
    for (let i = 0; i < buf.length; i += script.split) {
      res.write(buf.subarray(i, i + script.split));
      if ((i / script.split) % 16 === 15) await new Promise((ok) => setImmediate(ok));
    }
  }
  res.end();
}

function sendJson(res, status, obj) {
  const s = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

// The scripted provider. Paths: /anthropic/v1/messages, /openai/v1/chat/completions,
// /azure/openai/deployments/<d>/chat/completions?api-version=V, /mistral/v1/chat/completions.
function startScripted() {
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
      const url = new URL(req.url, 'http://x');
      received.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body });
      const name = /^script:(\S+)/.exec(lastText(body))?.[1];
      const script = name && SCRIPTS[name];
      if (url.pathname.startsWith('/azure/')) {
        // Azure OpenAI: stream_options exists from api-version 2024-09-01-preview
        // (GA 2024-10-21); older versions answer 400 "Unrecognized request
        // argument supplied: stream_options" (openai/openai-python#1469).
        const v = url.searchParams.get('api-version') || '';
        if (!v) return sendJson(res, 404, { error: { code: '404', message: 'Resource not found' } });
        if (body && 'stream_options' in body && v < '2024-09-01') {
          return sendJson(res, 400, { error: { code: null, message: 'Unrecognized request argument supplied: stream_options', param: null, type: 'invalid_request_error' } });
        }
        if (body?.stream) return writeScript(res, { parts: OPENAI_OK });
        return sendJson(res, 200, { id: 'chatcmpl-az', object: 'chat.completion', created: 1700000000, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
      }
      if (script?.status) return sendJson(res, script.status, script.json);
      if (url.pathname.startsWith('/mistral/')) {
        // Mistral's API validates strictly: stream_options is not one of its
        // fields (422 extra_forbidden, as reported in avante.nvim#2347).
        if (body && 'stream_options' in body) {
          return sendJson(res, 422, { object: 'error', message: { detail: [{ type: 'extra_forbidden', loc: ['body', 'stream_options'], msg: 'Extra inputs are not permitted', input: body.stream_options }] }, type: 'invalid_request_error', param: null, code: null });
        }
        if (body?.stream) return writeScript(res, { parts: OPENAI_OK });
        return sendJson(res, 200, { id: 'cmpl-m', object: 'chat.completion', created: 1700000000, model: 'mistral-large-latest', choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
      }
      if (script?.parts) return writeScript(res, script);
      if (script?.json) return sendJson(res, script.status ?? 200, script.json);
      if (script?.raw) {
        res.writeHead(200, { 'content-type': script.type, 'content-length': Buffer.byteLength(script.raw) });
        return res.end(script.raw);
      }
      if (url.pathname.startsWith('/anthropic/')) {
        if (body?.stream) return writeScript(res, { parts: simpleStream('ok') });
        return sendJson(res, 200, ANTHROPIC_OK);
      }
      if (body?.stream) return writeScript(res, { parts: OPENAI_OK });
      return sendJson(res, 200, { id: 'chatcmpl-o', object: 'chat.completion', created: 1700000000, model: 'gpt-rev', choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }] });
    });
  });
  return listenLocal(server).then((s) => ({ ...s, received }));
}

// An OpenAI chat stream as the SDK assembles it; asserts the framing every
// SDK relies on (one [DONE], last; no error chunk; one finish_reason).
function assemble(res, { allowError = false } = {}) {
  assert.equal(res.status, 200, `status; body: ${res.text.slice(0, 400)}`);
  assert.match(String(res.headers['content-type']), /text\/event-stream/);
  const { json, done, lastIsDone } = streamChunks(res.events);
  assert.equal(done, 1, `exactly one [DONE]: ${res.text.slice(-300)}`);
  assert.ok(lastIsDone, '[DONE] is the last event');
  const errors = json.filter((c) => c.error);
  if (!allowError) assert.deepEqual(errors, [], 'no error chunk');
  let content = '';
  let finish = null;
  let usage = null;
  const calls = [];
  for (const c of json) {
    if (c.error) continue;
    if (c.usage) usage = c.usage;
    for (const ch of c.choices ?? []) {
      const d = ch.delta ?? {};
      if (typeof d.content === 'string') content += d.content;
      for (const tc of d.tool_calls ?? []) {
        if (!calls[tc.index]) calls[tc.index] = { id: tc.id, name: tc.function?.name, arguments: '' };
        calls[tc.index].arguments += tc.function?.arguments ?? '';
      }
      if (ch.finish_reason) {
        assert.equal(finish, null, 'one finish_reason');
        finish = ch.finish_reason;
      }
    }
  }
  return { content, finish, usage, calls, chunks: json, errors };
}

const ask = (name, extra = {}) => ({ messages: [{ role: 'user', content: `script:${name}` }], ...extra });

describe('ai-proxy review: providers\' real wire formats', { skip: binaryMissing() }, () => {
  let scripted;
  let sl;
  let port;
  const lastReceived = (path) => scripted.received.filter((r) => r.path.startsWith(path)).at(-1);
  before(async () => {
    scripted = await startScripted();
    const S = scripted.url;
    const chat = (provider, name, options, extra = {}) => ({ route_type: 'llm/v1/chat', model: { provider, name, options }, ...extra });
    sl = await startSluice({
      config: {
        services: [{
          name: 'review', url: S, routes: [
            aiRoute('anthropic', '/anthropic', chat('anthropic', 'claude-rev', { upstream_url: `${S}/anthropic/v1/messages` }, { auth: { header_name: 'x-api-key', header_value: 'sk-ant-review' } })),
            aiRoute('openai', '/openai', chat('openai', 'gpt-rev', { upstream_url: `${S}/openai/v1/chat/completions` })),
            aiRoute('azure-default', '/azure-default', chat('azure', 'gpt-4o', { upstream_url: `${S}/azure/openai/deployments/dep/chat/completions` }, { auth: { header_name: 'api-key', header_value: 'az-review' } })),
            aiRoute('azure-new', '/azure-new', chat('azure', 'gpt-4o', { upstream_url: `${S}/azure/openai/deployments/dep/chat/completions`, azure_api_version: '2024-10-21' }, { auth: { header_name: 'api-key', header_value: 'az-review' } })),
            aiRoute('azure-url-version', '/azure-url-version', chat('azure', 'gpt-4o', { upstream_url: `${S}/azure/openai/deployments/dep/chat/completions?api-version=2024-10-21` }, { auth: { header_name: 'api-key', header_value: 'az-review' } })),
            aiRoute('mistral', '/mistral', chat('mistral', 'mistral-large-latest', { upstream_url: `${S}/mistral/v1/chat/completions` }, { auth: { header_name: 'Authorization', header_value: 'Bearer mistral-review' } })),
          ],
        }],
      },
    });
    port = sl.proxyPort;
  });
  after(async () => {
    await sl?.stop();
    await scripted?.close();
  });

  describe('Anthropic streams → OpenAI chunks', () => {
    test('comment, ping, thinking/signature and redacted_thinking blocks: only the text block reaches content', async () => {
      const res = await postStream(port, '/anthropic', ask('a-thinking', { stream: true }));
      const s = assemble(res);
      assert.equal(s.content, 'The answer is 4.');
      assert.equal(s.finish, 'stop');
      assert.ok(!res.text.includes('SECRET-REASONING') && !res.text.includes('REDACTED-BLOB') && !res.text.includes('EqQBCg'), 'no reasoning leaked');
      assert.deepEqual(s.chunks[0].choices[0].delta, { role: 'assistant', content: '' });
      assert.equal(s.chunks[0].id, 'msg_rev01');
      assert.equal(s.calls.length, 0);
    });

    test('server_tool_use / web_search_tool_result / citations_delta: no tool_calls, text kept', async () => {
      const res = await postStream(port, '/anthropic', ask('a-server-tool', { stream: true }));
      const s = assemble(res);
      assert.equal(s.content, 'Let me search. It is sunny.');
      assert.deepEqual(s.calls, [], 'server tools are run by Anthropic, not the client');
      assert.equal(s.finish, 'stop');
    });

    test('text then two tool_use blocks with fragmented input_json_delta → tool_calls[0], [1]', async () => {
      const res = await postStream(port, '/anthropic', ask('a-two-tools', { stream: true, stream_options: { include_usage: true } }));
      const s = assemble(res);
      assert.equal(s.content, 'Checking both.');
      assert.equal(s.finish, 'tool_calls');
      assert.equal(s.calls.length, 2);
      assert.deepEqual(s.calls.map((c) => [c.id, c.name]), [['toolu_A', 'get_weather'], ['toolu_B', 'get_time']]);
      assert.deepEqual(JSON.parse(s.calls[0].arguments), { city: 'Paris', days: 2 });
      assert.deepEqual(JSON.parse(s.calls[1].arguments), { tz: 'Europe/Oslo' });
      // Every tool_calls delta names exactly one call, with an index in range.
      for (const c of s.chunks) {
        for (const tc of c.choices[0]?.delta?.tool_calls ?? []) assert.ok(tc.index === 0 || tc.index === 1, `index ${tc.index}`);
      }
      assert.deepEqual(s.usage, { prompt_tokens: 10, completion_tokens: 40, total_tokens: 50 });
    });

    test('a tool_use with empty input streams arguments that parse as JSON ({}), as the non-streamed reply does',
      async () => {
        const res = await postStream(port, '/anthropic', ask('a-empty-tool', { stream: true }));
        const s = assemble(res);
        assert.equal(s.finish, 'tool_calls');
        assert.equal(s.calls.length, 1);
        assert.equal(s.calls[0].name, 'get_time');
        assert.deepEqual(JSON.parse(s.calls[0].arguments), {});
      });

    test('cache_creation / cache_read tokens: prompt_tokens includes them, cached_tokens = cache reads', async () => {
      const res = await postStream(port, '/anthropic', ask('a-cache-usage', { stream: true, stream_options: { include_usage: true } }));
      const s = assemble(res);
      assert.equal(s.content, 'cached');
      assert.deepEqual(s.usage, { prompt_tokens: 35, completion_tokens: 7, total_tokens: 42, prompt_tokens_details: { cached_tokens: 20 } });
      assert.equal(s.chunks.at(-1).usage !== undefined, true, 'usage chunk last');
      assert.deepEqual(s.chunks.at(-1).choices, []);
    });

    for (const [sr, fr] of [['max_tokens', 'length'], ['stop_sequence', 'stop'], ['refusal', 'content_filter'], ['pause_turn', 'stop'], ['tool_use', 'tool_calls']]) {
      test(`message_delta stop_reason ${sr} → finish_reason ${fr}`, async () => {
        const res = await postStream(port, '/anthropic', ask(`a-stop-${sr}`, { stream: true }));
        const s = assemble(res);
        assert.equal(s.finish, fr);
      });
    }

    test('CRLF line ends, every byte its own write (UTF-8 sequences and \\r|\\n cut): same text', async () => {
      const res = await postStream(port, '/anthropic', ask('a-unicode-crlf-bytes', { stream: true, stream_options: { include_usage: true } }));
      const s = assemble(res);
      assert.equal(s.content, 'ünïcödé 日本語 😀 "q" \\ end');
      assert.equal(s.finish, 'stop');
      assert.ok(s.usage, 'usage chunk');
    });

    test('bare CR line ends, 3-byte writes: same text', async () => {
      const res = await postStream(port, '/anthropic', ask('a-unicode-cr-3', { stream: true }));
      const s = assemble(res);
      assert.equal(s.content, 'ünïcödé 日本語 😀 end');
    });

    test('events with spaces or other key orders (the parsed path) give the same deltas', async () => {
      const res = await postStream(port, '/anthropic', ask('a-spaced-json', { stream: true }));
      const s = assemble(res);
      assert.equal(s.content, 'spaced reordered');
    });

    test('overloaded_error event after content: content kept, one error chunk, [DONE], no invented finish', async () => {
      const res = await postStream(port, '/anthropic', ask('a-overloaded-after-delta', { stream: true }));
      const s = assemble(res, { allowError: true });
      assert.equal(s.content, 'almost');
      assert.equal(s.errors.length, 1);
      assert.equal(s.errors[0].error.message, 'Overloaded');
      assert.equal(s.finish, null);
    });

    test('upstream closes cleanly in the middle of a frame: content so far, an error that says the stream ended early',
      async () => {
        const res = await postStream(port, '/anthropic', ask('a-cut-mid-frame', { stream: true }));
        const s = assemble(res, { allowError: true });
        assert.equal(s.content, 'partial');
        assert.equal(s.errors.length, 1);
        assert.doesNotMatch(s.errors[0].error.message, /not JSON/);
        assert.match(s.errors[0].error.message, /ended before it was complete/);
      });
  });

  describe('Anthropic whole replies', () => {
    test('thinking/redacted/server-tool blocks dropped, text blocks joined, tool_use with {} input → "{}", unknown fields ignored', async () => {
      const r = await postJson(port, '/anthropic', ask('a-blocks'));
      assert.equal(r.status, 200, r.text);
      assert.ok(!r.text.includes('SECRET-REASONING') && !r.text.includes('REDACTED-BLOB'), 'no reasoning leaked');
      const c = assertChatCompletion(r.json(), { finish: 'tool_calls' });
      assert.equal(c.message.content, 'Part one. Part two.');
      assert.deepEqual(c.message.tool_calls, [
        { id: 'toolu_1', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        { id: 'toolu_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      ]);
      assert.deepEqual(r.json().usage, { prompt_tokens: 112, completion_tokens: 30, total_tokens: 142, prompt_tokens_details: { cached_tokens: 100 } });
    });

    test('stop_reason null and no usage: finish stop, no invented usage', async () => {
      const r = await postJson(port, '/anthropic', ask('a-null-stop-no-usage'));
      const j = r.json();
      const c = assertChatCompletion(j, { finish: 'stop', usage: false });
      assert.equal(c.message.content, 'hi');
      assert.equal(j.usage, undefined);
    });

    test('a 200 whose body is an Anthropic error object → 502 OpenAI error naming it', async () => {
      const r = await postJson(port, '/anthropic', ask('a-200-error'));
      assertOpenaiError(r, 502, { message: /Overloaded/ });
    });

    test('a non-JSON 200 → 502 OpenAI error', async () => {
      const r = await postJson(port, '/anthropic', ask('a-200-notjson'));
      assertOpenaiError(r, 502, { message: /not a JSON object/ });
    });

    test('a non-JSON, non-SSE 200 on a stream request still ends in an error the SDK raises (never a clean empty stream)', async () => {
      const r = await postStream(port, '/anthropic', ask('a-200-notjson', { stream: true }));
      if (r.status === 502) {
        assert.equal(typeof JSON.parse(r.text).error.message, 'string');
        return;
      }
      const s = assemble(r, { allowError: true });
      assert.equal(s.errors.length, 1, r.text);
      assert.equal(s.content, '');
    });
  });

  describe('OpenAI-format upstream streams', () => {
    test('`data:` without a space, comments, event/id/retry lines: valid chunks, usage chunk dropped when not asked', async () => {
      const res = await postStream(port, '/openai', ask('o-nospace-comments-events', { stream: true }));
      const s = assemble(res);
      assert.equal(s.content, 'Hello');
      assert.equal(s.finish, 'stop');
      assert.equal(s.usage, null, 'no usage chunk without include_usage');
      assert.ok(!res.text.includes('OPENROUTER'), 'comments not forwarded as data');
    });

    test('same stream with include_usage: the usage-only chunk is kept, last before [DONE]', async () => {
      const res = await postStream(port, '/openai', ask('o-nospace-comments-events', { stream: true, stream_options: { include_usage: true } }));
      const s = assemble(res);
      assert.deepEqual(s.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
      assert.deepEqual(s.chunks.at(-1).choices, []);
    });

    test('CRLF, one byte per write, multi-byte UTF-8: passed through intact', async () => {
      const res = await postStream(port, '/openai', ask('o-crlf-bytes', { stream: true, stream_options: { include_usage: true } }));
      const s = assemble(res);
      assert.equal(s.content, 'ünï 日本 😀');
      assert.ok(s.usage);
    });

    test('the client\'s other stream_options (include_obfuscation) survive the forced include_usage', async () => {
        const before = scripted.received.length;
        const res = await postStream(port, '/openai', ask('x', { stream: true, stream_options: { include_obfuscation: false } }));
        assemble(res);
        const got = scripted.received.slice(before).find((x) => x.path.startsWith('/openai/'));
        assert.equal(got.body.stream_options.include_usage, true, 'usage still asked for');
        assert.equal(got.body.stream_options.include_obfuscation, false);
      });

    test('an event whose data spans two `data:` lines reaches the client as one valid event',
      async () => {
        const res = await postStream(port, '/openai', ask('o-multiline-data', { stream: true }));
        const s = assemble(res);
        assert.equal(s.content, 'two lines');
      });

    test('an event with an empty `data:` line is not dispatched (SSE spec) and does not kill the stream',
      async () => {
        const res = await postStream(port, '/openai', ask('o-empty-data', { stream: true }));
        const s = assemble(res);
        assert.equal(s.content, 'after heartbeat');
      });
  });

  describe('request fields the providers refuse', () => {
    test('Azure with a newer api-version: streams (control for the next test)', async () => {
      const res = await postStream(port, '/azure-new', ask('x', { stream: true }));
      const s = assemble(res);
      assert.equal(s.content, 'fine');
      assert.equal(lastReceived('/azure/').query['api-version'], '2024-10-21');
    });

    test('Azure with the default api-version (2023-05-15): a stream request is not refused for stream_options',
      async () => {
        const res = await postStream(port, '/azure-default', ask('x', { stream: true }));
        const s = assemble(res);
        assert.equal(s.content, 'fine');
      });

    test('Mistral (mistral_format openai, the default): a stream request is not refused for stream_options',
      async () => {
        const res = await postStream(port, '/mistral', ask('x', { stream: true }));
        const s = assemble(res);
        assert.equal(s.content, 'fine');
      });

    test('Mistral stream with include_usage: the usage of its last chunk comes again as the usage-only chunk OpenAI ends with', async () => {
      const res = await postStream(port, '/mistral', ask('x', { stream: true, stream_options: { include_usage: true } }));
      const s = assemble(res);
      assert.equal(s.content, 'fine');
      assert.equal('stream_options' in lastReceived('/mistral/').body, false, 'not sent to Mistral');
      const last = s.chunks.at(-1);
      assert.deepEqual(last.choices, []);
      assert.deepEqual(last.usage, { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 });
      assert.equal(s.chunks.filter((c) => c.choices?.length === 0).length, 1, 'one usage-only chunk');
    });

    test('Mistral stream without include_usage: no usage-only chunk is added', async () => {
      const res = await postStream(port, '/mistral', ask('x', { stream: true }));
      const s = assemble(res);
      assert.equal(s.chunks.filter((c) => c.choices?.length === 0).length, 0);
    });

    test('Azure, old api-version, client asks include_usage itself: passed on, Azure\'s own 400 comes back', async () => {
      const r = await postJson(port, '/azure-default', ask('x', { stream: true, stream_options: { include_usage: true } }));
      assertOpenaiError(r, 400, { message: /Unrecognized request argument supplied: stream_options/ });
    });

    test('Azure api-version given in upstream_url: that one decides (2024-10-21: include_usage asked for)', async () => {
      const res = await postStream(port, '/azure-url-version', ask('x', { stream: true }));
      assert.equal(assemble(res).content, 'fine');
      const got = lastReceived('/azure/');
      assert.equal(got.query['api-version'], '2024-10-21');
      assert.deepEqual(got.body.stream_options, { include_usage: true });
    });

    test('Mistral non-stream request carries no stream_options (control)', async () => {
      const r = await postJson(port, '/mistral', ask('x'));
      assert.equal(r.status, 200, r.text);
      assert.equal('stream_options' in lastReceived('/mistral/').body, false);
    });

    test('Mistral 422 whose message is {detail:[...]}: the OpenAI error keeps the reason',
      async () => {
        const r = await postJson(port, '/mistral', ask('m-422'));
        assertOpenaiError(r, 422, { type: 'invalid_request_error', message: /Extra inputs are not permitted/ });
      });

    test('FastAPI-style 422 {detail:[...]} from an OpenAI-compatible server: the OpenAI error keeps the reason',
      async () => {
        const r = await postJson(port, '/openai', ask('o-422-fastapi'));
        assertOpenaiError(r, 422, { message: /Field required/ });
      });
  });

  describe('OpenAI requests → Anthropic Messages', () => {
    test('system in the middle and developer role → top-level system; max_completion_tokens, stop string, user', async () => {
      const r = await postJson(port, '/anthropic', {
        messages: [
          { role: 'developer', content: 'Dev rules.' },
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
          { role: 'system', content: [{ type: 'text', text: 'Mid system.' }] },
          { role: 'user', content: 'again' },
        ],
        max_completion_tokens: 77, stop: 'END', user: 'user-42', temperature: 0.5,
      });
      assert.equal(r.status, 200, r.text);
      const got = lastReceived('/anthropic/').body;
      assert.equal(got.system, 'Dev rules.\nMid system.');
      assert.deepEqual(got.messages, [
        { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'again' },
      ]);
      assert.equal(got.max_tokens, 77);
      assert.deepEqual(got.stop_sequences, ['END']);
      assert.deepEqual(got.metadata, { user_id: 'user-42' });
      assert.equal(got.temperature, 0.5);
      assert.equal(got.model, 'claude-rev');
      assert.equal(lastReceived('/anthropic/').headers['x-api-key'], 'sk-ant-review');
    });

    test('assistant with text parts + tool_calls, three tool messages → one user turn of three tool_results, then user text', async () => {
      const r = await postJson(port, '/anthropic', {
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'text', text: 'Calling.' }], tool_calls: [
            { id: 't1', type: 'function', function: { name: 'a', arguments: '{"x":1}' } },
            { id: 't2', type: 'function', function: { name: 'b', arguments: '' } },
            { id: 't3', type: 'function', function: { name: 'c', arguments: '{}' } },
          ] },
          { role: 'tool', tool_call_id: 't1', content: 'r1' },
          { role: 'tool', tool_call_id: 't2', content: [{ type: 'text', text: 'r2' }] },
          { role: 'tool', tool_call_id: 't3', content: 'r3' },
          { role: 'user', content: 'thanks' },
        ],
        tools: [{ type: 'function', function: { name: 'a' } }, { type: 'function', function: { name: 'b' } }, { type: 'function', function: { name: 'c' } }],
        tool_choice: 'none',
      });
      assert.equal(r.status, 200, r.text);
      const got = lastReceived('/anthropic/').body;
      assert.deepEqual(got.messages[1], { role: 'assistant', content: [
        { type: 'text', text: 'Calling.' },
        { type: 'tool_use', id: 't1', name: 'a', input: { x: 1 } },
        { type: 'tool_use', id: 't2', name: 'b', input: {} },
        { type: 'tool_use', id: 't3', name: 'c', input: {} },
      ] });
      assert.deepEqual(got.messages[2], { role: 'user', content: [
        { type: 'tool_result', tool_use_id: 't1', content: 'r1' },
        { type: 'tool_result', tool_use_id: 't2', content: 'r2' },
        { type: 'tool_result', tool_use_id: 't3', content: 'r3' },
      ] });
      assert.deepEqual(got.messages.slice(3), [{ role: 'user', content: 'thanks' }]);
      assert.deepEqual(got.tool_choice, { type: 'none' });
    });

    test('a content part Anthropic cannot be given (a PDF file part) is refused, not silently dropped',
      async () => {
        const pdf = Buffer.from('%PDF-1.4\n%âãÏÓ\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF').toString('base64');
        const before = scripted.received.length;
        const r = await postJson(port, '/anthropic', {
          messages: [{ role: 'user', content: [
            { type: 'text', text: 'Summarise the attached contract.' },
            { type: 'file', file: { filename: 'contract.pdf', file_data: `data:application/pdf;base64,${pdf}` } },
          ] }],
        });
        if (r.status === 400) {
          assertOpenaiError(r, 400, { type: 'invalid_request_error' });
          return;
        }
        // Else it must have reached Anthropic as a document block.
        assert.equal(r.status, 200, r.text);
        const got = scripted.received.slice(before).find((x) => x.path.startsWith('/anthropic/'));
        const blocks = got.body.messages[0].content;
        assert.ok(blocks.some((b) => b.type === 'document' && b.source?.data === pdf), `blocks sent: ${JSON.stringify(blocks)}`);
      });
  });
});
