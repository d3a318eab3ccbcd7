// Adversarial review of the stream paths the earlier reviews left alone:
// Ollama NDJSON (/api/chat, /api/generate; llama2 and mistral ollama format),
// llama2 raw against TGI's /generate_stream SSE, and llm/v1/completions
// streams on every provider that has them. A scripted upstream (node:http,
// in this file) writes exact bytes: lines split at every byte and inside
// UTF-8 sequences, CRLF line ends, blank lines, a last line without its
// newline, streams that stop before their end marker, error lines, tool
// calls, `thinking`, TGI special tokens and final events, delays (time to
// the first chunk) and many tiny frames in one write (log_payloads).
// Four tests found two bugs, each failing before its fix: a burst of small
// frames lost frames from the logged payload (only 8 chains were copied),
// and a reply of several JSON values was read as its first one.
//
//   SLUICE_BIN=build-asan/sluice node --test tests/integration/streams2-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, listenLocal, startSluice } from './lib/harness.mjs';
import { accessLog, aiRoute, assertOpenaiError, parseSse, postJson, postStream, requestIdOf, streamChunks } from './lib/ai-helpers.mjs';

// ---- Ollama NDJSON builders (field order as Ollama writes them) ----
const T0 = '2024-07-01T10:00:00.000000Z';
const oLine = (message, extra = {}) => `${JSON.stringify({ model: 'llama3.1:8b', created_at: T0, message: { role: 'assistant', content: '', ...message }, done: false, ...extra })}\n`;
const oDone = (done_reason = 'stop', extra = {}) => `${JSON.stringify({
  model: 'llama3.1:8b', created_at: T0, message: { role: 'assistant', content: '' }, done_reason, done: true,
  total_duration: 1000, load_duration: 10, prompt_eval_count: 11, prompt_eval_duration: 5, eval_count: 6, eval_duration: 7, ...extra,
})}\n`;
const gLine = (response, extra = {}) => `${JSON.stringify({ model: 'llama3.1:8b', created_at: T0, response, done: false, ...extra })}\n`;
const gDone = (done_reason = 'stop') => `${JSON.stringify({
  model: 'llama3.1:8b', created_at: T0, response: '', done: true, done_reason, context: [1, 2, 3],
  total_duration: 1000, prompt_eval_count: 9, eval_count: 4,
})}\n`;

// ---- TGI /generate_stream builders (TGI writes `data:` without a space) ----
const tTok = (id, text, special = false) => `data:${JSON.stringify({ index: id, token: { id, text, logprob: -0.25, special }, generated_text: null, details: null })}\n\n`;
const tFinal = (id, text, special, generated_text, finish_reason, generated_tokens, input_length = 21) => `data:${JSON.stringify({
  index: id, token: { id, text, logprob: -0.01, special }, generated_text,
  details: { finish_reason, generated_tokens, seed: null, input_length },
})}\n\n`;

// ---- OpenAI legacy completions chunks ----
const cChunk = (text, finish = null) => `data: ${JSON.stringify({ id: 'cmpl-rev', object: 'text_completion', created: 1700000000, model: 'gpt-3.5-turbo-instruct', choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] })}\n\n`;
const cUsage = `data: ${JSON.stringify({ id: 'cmpl-rev', object: 'text_completion', created: 1700000000, model: 'gpt-3.5-turbo-instruct', choices: [], usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 } })}\n\n`;
const COMPLETIONS_OK = [cChunk('Once'), cChunk(' upon'), cChunk(' a'), cChunk('', 'length'), cUsage, 'data: [DONE]\n\n'];

const NDJSON = 'application/x-ndjson';
const SSE = 'text/event-stream';

// Many tiny lines (the content of each is one letter), for one write.
const tinyOllama = (n) => Array.from({ length: n }, (_, i) => `{"message":{"content":"${String.fromCharCode(97 + (i % 26))}"},"done":false}\n`).join('');
const tinyAlphabet = (n) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

// Scripts, chosen by "script:<name>" anywhere in the request body.
//   parts: strings written in order; a number is a pause of that many ms
//   type: Content-Type; eol 'crlf' rewrites \n; split: N-byte writes
//   cut: end by destroying the socket instead of a clean end
const SCRIPTS = {
  // Ollama /api/chat
  'o-crlf-bytes': { type: NDJSON, eol: 'crlf', split: 1, parts: [
    oLine({ content: 'ünï' }), '\n', oLine({ content: 'cödé 日本' }), '\n\n', oLine({ content: '語 😀 "q" \\ end' }), oDone().trimEnd(),
  ] },
  'o-no-done': { type: NDJSON, parts: [oLine({ content: 'partial ' }), oLine({ content: 'answer' })] },
  'o-cut-mid-line': { type: NDJSON, parts: [oLine({ content: 'partial' }), '{"model":"llama3.1:8b","created_at":"2024', 50], cut: true },
  'o-error-mid': { type: NDJSON, parts: [oLine({ content: 'so far' }), '{"error":"an error was encountered while running the model: CUDA error"}\n'] },
  'o-tools': { type: NDJSON, parts: [
    oLine({ tool_calls: [{ function: { index: 0, name: 'get_weather', arguments: { city: 'Zürich', days: 2, opts: { unit: 'C', tags: ['a', 'b'] } } } }] }),
    oLine({ tool_calls: [{ function: { index: 1, name: 'get_time', arguments: {} } }, { function: { index: 2, name: 'get_news', arguments: { q: 'x "y"' } } }] }),
    oDone('stop'),
  ] },
  'o-thinking': { type: NDJSON, parts: [
    oLine({ thinking: 'SECRET-THOUGHT one ' }), oLine({ thinking: 'two' }), oLine({ content: 'The answer' }), oLine({ content: ' is 4.' }), oDone('stop'),
  ] },
  'o-length': { type: NDJSON, parts: [oLine({ content: 'cut off' }), oDone('length')] },
  'o-slow': { type: NDJSON, parts: [oLine({ content: 'first' }), 800, oLine({ content: ' second' }), oDone('stop')] },
  'o-done-then-more': { type: NDJSON, parts: [oLine({ content: 'only this' }), oDone('stop'), oLine({ content: ' NOT-THIS' }), oDone('stop')] },
  'o-logprobs': { type: NDJSON, parts: [
    oLine({ content: 'Hi' }, { logprobs: [{ token: 'Hi', logprob: -0.1, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.1, bytes: [72, 105] }] }] }),
    oLine({ content: '!' }, { logprobs: [{ token: '!', logprob: -0.5, bytes: [33], top_logprobs: [] }] }),
    oDone('stop'),
  ] },
  'o-json-type': { type: 'application/json; charset=utf-8', parts: [oLine({ content: 'typed ' }), oLine({ content: 'wrong' }), oDone('stop')] },
  'o-ndjson-ignores-stream': { type: NDJSON, parts: [oLine({ content: 'typed ' }), oLine({ content: 'wrong' }), oDone('stop')] },
  'o-tiny-lines': { type: NDJSON, parts: [tinyOllama(1000) + oDone('stop')] },
  // Ollama /api/generate
  'g-basic': { type: NDJSON, eol: 'crlf', split: 5, parts: [gLine('Once'), gLine(' upön'), gLine(' a 時'), gDone('length')] },
  'g-thinking': { type: NDJSON, parts: [gLine('', { thinking: 'SECRET-THOUGHT' }), gLine('Answer'), gDone('stop')] },
  // TGI /generate_stream
  't-crlf-bytes': { type: SSE, eol: 'crlf', split: 1, parts: [
    ':\n\n', tTok(1, ' Hé'), tTok(2, 'llo'), tTok(3, ' 日本'), ':\n\n', tTok(4, ' 😀'),
    tFinal(5, '</s>', true, 'Héllo 日本 😀', 'eos_token', 5),
  ] },
  't-special-mid': { type: SSE, parts: [tTok(1, '<|im_start|>', true), tTok(2, ' Yes'), tTok(3, '<pad>', true), tTok(4, ', sure'), tFinal(5, '.', false, 'Yes, sure.', 'stop_sequence', 5)] },
  't-final-no-newline': { type: SSE, parts: [tTok(1, ' ok'), tFinal(2, '</s>', true, 'ok', 'eos_token', 2).trimEnd()] },
  't-no-final': { type: SSE, parts: [tTok(1, ' half'), tTok(2, ' way')] },
  't-only-final': { type: SSE, parts: [`data:${JSON.stringify({ generated_text: '<s>[INST] script:t-only-final [/INST]  Whole answer.', details: { finish_reason: 'length', generated_tokens: 3, input_length: 12 } })}\n\n`] },
  't-slow': { type: SSE, parts: [tTok(1, ' first'), 800, tTok(2, ' second'), tFinal(3, '</s>', true, 'first second', 'eos_token', 3)] },
  't-tiny-events': { type: SSE, parts: [Array.from({ length: 1000 }, (_, i) => `data:{"token":{"text":"${String.fromCharCode(97 + (i % 26))}","special":false},"generated_text":null}\n\n`).join('') + tFinal(1001, '</s>', true, 'x', 'eos_token', 1001)] },
  // OpenAI-format completions
  'c-ok': { type: SSE, parts: COMPLETIONS_OK },
  // Anthropic legacy /v1/complete
  'a-complete': { type: SSE, parts: [
    `event: completion\ndata: ${JSON.stringify({ type: 'completion', id: 'compl_1', completion: ' Hello', stop_reason: null, model: 'claude-2.1' })}\n\n`,
    'event: ping\ndata: {"type": "ping"}\n\n',
    `event: completion\ndata: ${JSON.stringify({ type: 'completion', id: 'compl_1', completion: ' world', stop_reason: null, model: 'claude-2.1' })}\n\n`,
    `event: completion\ndata: ${JSON.stringify({ type: 'completion', id: 'compl_1', completion: '', stop_reason: 'max_tokens', model: 'claude-2.1' })}\n\n`,
  ] },
};

async function writeScript(res, script) {
  res.writeHead(200, { 'content-type': script.type });
  const eol = (s) => (script.eol === 'crlf' ? s.replace(/\n/g, '\r\n') : s);
  if (script.split) {
    const buf = Buffer.from(eol(script.parts.filter((p) => typeof p === 'string').join('')), 'utf8');
    for (let i = 0; i < buf.length; i += script.split) {
      res.write(buf.subarray(i, i + script.split));
      if ((i / script.split) % 16 === 15) await new Promise((ok) => setImmediate(ok));
    }
  } else {
    for (const p of script.parts) {
      if (typeof p === 'number') await new Promise((ok) => setTimeout(ok, p));
      else res.write(eol(p));
    }
  }
  if (script.cut) res.socket.destroy();
  else res.end();
}

function startScripted() {
  const received = [];
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      let body = null;
      try {
        body = JSON.parse(raw);
      } catch { /* recorded as null */ }
      received.push({ url: req.url, headers: req.headers, body, raw });
      const name = /script:([\w-]+)/.exec(raw)?.[1];
      const script = name && SCRIPTS[name];
      if (script) return writeScript(res, script);
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `no script in ${raw.slice(0, 200)}` }));
    });
  });
  return listenLocal(server).then((s) => ({ ...s, received }));
}

// An OpenAI chat stream as the SDKs assemble it, with the framing checks
// they rely on (one [DONE], last; chunk shape; at most one finish_reason).
function chat(res, { allowError = false } = {}) {
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
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.id, json[0].id, 'one id');
    if (c.usage) {
      assert.deepEqual(c.choices, [], 'usage chunk has no choices');
      usage = c.usage;
    }
    for (const ch of c.choices) {
      const d = ch.delta ?? {};
      if (typeof d.content === 'string') content += d.content;
      for (const tc of d.tool_calls ?? []) {
        assert.ok(Number.isInteger(tc.index), `tool call index ${JSON.stringify(tc)}`);
        if (!calls[tc.index]) calls[tc.index] = { id: tc.id, type: tc.type, name: tc.function?.name, arguments: '' };
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

// A completions (text_completion) stream as the SDK reads it.
function completion(res) {
  assert.equal(res.status, 200, `status; body: ${res.text.slice(0, 400)}`);
  assert.match(String(res.headers['content-type']), /text\/event-stream/);
  const { json, done, lastIsDone } = streamChunks(res.events);
  assert.equal(done, 1, `exactly one [DONE]: ${res.text.slice(-300)}`);
  assert.ok(lastIsDone, '[DONE] is the last event');
  assert.deepEqual(json.filter((c) => c.error), [], 'no error chunk');
  let text = '';
  let finish = null;
  let usage = null;
  for (const c of json) {
    assert.equal(c.object, 'text_completion', JSON.stringify(c));
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      assert.equal(ch.index, 0);
      assert.equal(typeof ch.text, 'string', `choices[].text in ${JSON.stringify(c)}`);
      text += ch.text;
      if (ch.finish_reason) {
        assert.equal(finish, null, 'one finish_reason');
        finish = ch.finish_reason;
      }
    }
  }
  return { text, finish, usage, chunks: json };
}

const streamError = (res) => streamChunks(res.events).json.find((c) => c.error)?.error;
const ask = (name, extra = {}) => ({ stream: true, messages: [{ role: 'user', content: `script:${name}` }], ...extra });
const prompt = (name, extra = {}) => ({ stream: true, prompt: `script:${name}`, ...extra });
const USAGE = { stream_options: { include_usage: true } };

describe('streams review: Ollama NDJSON, TGI, completions', { skip: binaryMissing() }, () => {
  let scripted;
  let sl;
  let port;
  const lastTo = (path) => scripted.received.filter((r) => r.url.startsWith(path)).at(-1);
  before(async () => {
    scripted = await startScripted();
    const S = scripted.url;
    const llama = (format, url, extra = {}, route_type = 'llm/v1/chat') => ({
      route_type, model: { provider: 'llama2', name: 'llama3.1:8b', options: { llama2_format: format, upstream_url: url } }, ...extra,
    });
    const logging = { logging: { log_statistics: true, log_payloads: true } };
    sl = await startSluice({
      config: {
        services: [{
          name: 'streams2', url: S, routes: [
            aiRoute('o-chat', '/o-chat', llama('ollama', `${S}/api/chat`)),
            aiRoute('o-chat-log', '/o-chat-log', llama('ollama', `${S}/api/chat`, logging)),
            aiRoute('m-chat', '/m-chat', { route_type: 'llm/v1/chat', model: { provider: 'mistral', name: 'mistral:7b', options: { mistral_format: 'ollama', upstream_url: `${S}/api/chat` } } }),
            aiRoute('o-gen', '/o-gen', llama('ollama', `${S}/api/generate`, logging, 'llm/v1/completions')),
            aiRoute('o-gen-always', '/o-gen-always', llama('ollama', `${S}/api/generate`, { response_streaming: 'always' }, 'llm/v1/completions')),
            aiRoute('t-chat', '/t-chat', llama('raw', `${S}/generate_stream`)),
            aiRoute('t-chat-log', '/t-chat-log', llama('raw', `${S}/generate_stream`, logging)),
            aiRoute('t-chat-always', '/t-chat-always', llama('raw', `${S}/generate_stream`, { response_streaming: 'always' })),
            aiRoute('t-gen', '/t-gen', llama('raw', `${S}/generate_stream`, logging, 'llm/v1/completions')),
            aiRoute('l-openai-gen', '/l-openai-gen', llama('openai', `${S}/v1/completions`, {}, 'llm/v1/completions')),
            aiRoute('openai-gen', '/openai-gen', { route_type: 'llm/v1/completions', model: { provider: 'openai', name: 'gpt-3.5-turbo-instruct', options: { upstream_url: `${S}/v1/completions` } }, auth: { header_name: 'Authorization', header_value: 'Bearer sk-rev' }, ...logging }),
            aiRoute('azure-gen', '/azure-gen', { route_type: 'llm/v1/completions', model: { provider: 'azure', name: 'gpt-35-instruct', options: { upstream_url: `${S}/openai/deployments/inst/completions`, azure_api_version: '2024-10-21' } }, auth: { header_name: 'api-key', header_value: 'az-rev' } }),
            aiRoute('anthropic-gen', '/anthropic-gen', { route_type: 'llm/v1/completions', model: { provider: 'anthropic', name: 'claude-2.1', options: { upstream_url: `${S}/v1/complete` } }, auth: { header_name: 'x-api-key', header_value: 'sk-ant-rev' } }),
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

  describe('Ollama /api/chat NDJSON', () => {
    test('CRLF line ends, blank lines, every byte its own write (UTF-8 cut), last line without newline: same text, usage', async () => {
      const s = chat(await postStream(port, '/o-chat', ask('o-crlf-bytes', USAGE)));
      assert.equal(s.content, 'ünïcödé 日本語 😀 "q" \\ end');
      assert.equal(s.finish, 'stop');
      assert.deepEqual(s.usage, { prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 });
      assert.equal(s.chunks[0].choices[0].delta.role, 'assistant', 'first chunk carries the role');
      assert.equal(s.chunks[0].model, 'llama3.1:8b');
    });

    test('the same through mistral_format ollama', async () => {
      const s = chat(await postStream(port, '/m-chat', ask('o-crlf-bytes')));
      assert.equal(s.content, 'ünïcödé 日本語 😀 "q" \\ end');
      assert.equal(s.usage, null, 'no usage chunk unless asked');
      assert.equal(lastTo('/api/chat').body.stream, true);
    });

    test('a stream that ends without done:true: the text so far, then an error chunk, [DONE]', async () => {
      const res = await postStream(port, '/o-chat', ask('o-no-done'));
      const s = chat(res, { allowError: true });
      assert.equal(s.content, 'partial answer');
      assert.equal(s.finish, null, 'no invented finish_reason');
      assert.match(streamError(res)?.message ?? '', /ended before it was complete/);
    });

    test('a connection cut in the middle of a line: an error that says the stream broke, not "not JSON"', async () => {
      const res = await postStream(port, '/o-chat', ask('o-cut-mid-line'));
      const s = chat(res, { allowError: true });
      assert.equal(s.content, 'partial');
      const e = streamError(res);
      assert.ok(e, res.text);
      assert.doesNotMatch(e.message, /not JSON/);
    });

    test('an {"error"} line mid-stream: the text so far, one error chunk with Ollama\'s message, [DONE], no finish', async () => {
      const res = await postStream(port, '/o-chat', ask('o-error-mid'));
      const s = chat(res, { allowError: true });
      assert.equal(s.content, 'so far');
      assert.equal(s.errors.length, 1);
      assert.match(s.errors[0].error.message, /CUDA error/);
      assert.equal(s.finish, null);
    });

    test('tool calls (arguments objects, on two lines, two in one line): indices 0..2, ids, JSON-string arguments, finish tool_calls', async () => {
      const s = chat(await postStream(port, '/o-chat', ask('o-tools', { tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }] })));
      assert.equal(s.calls.length, 3);
      assert.deepEqual(s.calls.map((c) => c.name), ['get_weather', 'get_time', 'get_news']);
      assert.deepEqual(s.calls.map((c) => JSON.parse(c.arguments)), [{ city: 'Zürich', days: 2, opts: { unit: 'C', tags: ['a', 'b'] } }, {}, { q: 'x "y"' }]);
      for (const c of s.calls) {
        assert.equal(c.type, 'function');
        assert.match(String(c.id), /\S/);
      }
      assert.equal(new Set(s.calls.map((c) => c.id)).size, 3, 'distinct ids');
      assert.equal(s.finish, 'tool_calls', 'done_reason stop with tool calls → tool_calls');
    });

    test('thinking lines: the reasoning never leaks into content; the answer and finish are right', async () => {
      const res = await postStream(port, '/o-chat', ask('o-thinking'));
      const s = chat(res);
      assert.equal(s.content, 'The answer is 4.');
      assert.ok(!res.text.includes('SECRET-THOUGHT'), 'thinking text is not sent as content');
      assert.equal(s.finish, 'stop');
    });

    test('logprobs asked: each chunk carries its tokens\' logprobs as choices[0].logprobs.content', async () => {
      const res = await postStream(port, '/o-chat', ask('o-logprobs', { logprobs: true, top_logprobs: 1 }));
      const s = chat(res);
      assert.equal(s.content, 'Hi!');
      const lp = s.chunks.flatMap((c) => c.choices.flatMap((ch) => ch.logprobs?.content ?? []));
      assert.deepEqual(lp.map((t) => [t.token, t.logprob]), [['Hi', -0.1], ['!', -0.5]]);
      assert.equal(lastTo('/api/chat').body.logprobs, true);
    });
    test('stream asked, NDJSON sent as application/json: the whole answer, or an error, never a clean truncated stream', async () => {
      const res = await postStream(port, '/o-chat', ask('o-json-type'));
      const errored = res.status !== 200 || streamChunks(res.events).json.some((c) => c.error);
      if (!errored) assert.equal(chat(res).content, 'typed wrong', `a clean stream must carry the whole answer: ${res.text}`);
    });

    test('no stream asked, the server streams NDJSON anyway: the whole answer, or a 502, never the first line as the reply', async () => {
      const r = await postJson(port, '/o-chat', { messages: [{ role: 'user', content: 'script:o-ndjson-ignores-stream' }] });
      if (r.status === 200) assert.equal(r.json().choices[0].message.content, 'typed wrong', r.text);
      else assertOpenaiError(r, 502);
    });

    test('done_reason length → finish_reason length', async () => {
      const s = chat(await postStream(port, '/o-chat', ask('o-length')));
      assert.equal(s.content, 'cut off');
      assert.equal(s.finish, 'length');
    });

    test('lines after done:true are ignored (one finish, one [DONE])', async () => {
      const s = chat(await postStream(port, '/o-chat', ask('o-done-then-more')));
      assert.equal(s.content, 'only this');
    });

    test('the first delta reaches the client while Ollama is still generating', async () => {
      const res = await postStream(port, '/o-chat', ask('o-slow'));
      const s = chat(res);
      assert.equal(s.content, 'first second');
      const firstAt = res.chunks.find((c) => c.text.includes('"first"'))?.t;
      const doneAt = res.chunks.find((c) => c.text.includes('[DONE]'))?.t;
      assert.ok(firstAt !== undefined && doneAt !== undefined, res.text);
      assert.ok(doneAt - firstAt >= 400, `first delta at ${firstAt} ms, [DONE] at ${doneAt} ms (provider paused 800 ms)`);
    });

    test('n > 1 on a stream: a 400 JSON error before anything is sent upstream', async () => {
      const before = scripted.received.length;
      const r = await postJson(port, '/o-chat', ask('o-length', { n: 2 }));
      assertOpenaiError(r, 400, { message: /n > 1/ });
      assert.equal(scripted.received.length, before);
    });

    test('log_statistics + log_payloads: tokens and the streamed reply as the client got it', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/o-chat-log', ask('o-crlf-bytes'));
      const s = chat(res);
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), 11);
      assert.equal(Number(f['ai.completion_tokens']), 6);
      assert.equal(Number(f['ai.total_tokens']), 17);
      assert.ok(Number(f['ai.ttft_ms']) >= 0);
      assert.equal(f['ai.payload.response'], res.text, 'payload = the bytes the client got');
      assert.ok(f['ai.payload.request'].includes('script:o-crlf-bytes'));
      assert.equal(s.content.length > 0, true);
    });

    test('log_payloads: many small lines arriving in one read are all in the logged reply', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/o-chat-log', ask('o-tiny-lines'));
      const s = chat(res);
      assert.equal(s.content, tinyAlphabet(1000));
      assert.ok(res.text.length < 256 * 1024, 'under the 256 KiB payload cap');
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      const logged = streamChunks(parseSse(f['ai.payload.response'] ?? '')).json;
      assert.equal(logged.map((c) => c.choices[0]?.delta?.content ?? '').join(''), s.content, 'every delta the client got is in the logged payload');
      assert.equal(f['ai.payload.response'], res.text);
    });
  });

  describe('Ollama /api/generate (llm/v1/completions) NDJSON', () => {
    test('CRLF, 5-byte writes: text_completion chunks, finish length, usage chunk when asked', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/o-gen', prompt('g-basic', USAGE));
      const s = completion(res);
      assert.equal(s.text, 'Once upön a 時');
      assert.equal(s.finish, 'length');
      assert.deepEqual(s.usage, { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
      assert.equal(lastTo('/api/generate').body.prompt, 'script:g-basic');
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(f['ai.route_type'] ?? 'llm/v1/completions', 'llm/v1/completions');
      assert.equal(Number(f['ai.completion_tokens']), 4);
      assert.equal(f['ai.payload.response'], res.text);
    });

    test('without include_usage: no usage chunk', async () => {
      const s = completion(await postStream(port, '/o-gen', prompt('g-basic')));
      assert.equal(s.usage, null);
      assert.equal(s.text, 'Once upön a 時');
    });

    test('a top-level thinking field is not text', async () => {
      const res = await postStream(port, '/o-gen', prompt('g-thinking'));
      const s = completion(res);
      assert.equal(s.text, 'Answer');
      assert.ok(!res.text.includes('SECRET-THOUGHT'));
    });

    test('response_streaming always: a request without stream gets a completions stream', async () => {
      const res = await postStream(port, '/o-gen-always', { prompt: 'script:g-basic' });
      const s = completion(res);
      assert.equal(s.text, 'Once upön a 時');
      assert.equal(lastTo('/api/generate').body.stream, true);
    });
  });

  describe('llama2 raw / TGI /generate_stream', () => {
    test('CRLF, every byte its own write, keep-alive comments, UTF-8: text, </s> not text, usage from details', async () => {
      const s = chat(await postStream(port, '/t-chat', ask('t-crlf-bytes', USAGE)));
      assert.equal(s.content, 'Héllo 日本 😀');
      assert.equal(s.finish, 'stop', 'eos_token → stop');
      assert.deepEqual(s.usage, { prompt_tokens: 21, completion_tokens: 5, total_tokens: 26 });
      const got = lastTo('/generate_stream').body;
      assert.equal(got.parameters.details, true);
      assert.equal(got.stream, true);
    });

    test('special tokens mid-stream are not text; stop_sequence → stop', async () => {
      const s = chat(await postStream(port, '/t-chat', ask('t-special-mid')));
      assert.equal(s.content, 'Yes, sure.');
      assert.equal(s.finish, 'stop');
    });

    test('a final event without its blank line (connection closed right after) still ends the stream cleanly', async () => {
      const s = chat(await postStream(port, '/t-chat', ask('t-final-no-newline')));
      assert.equal(s.content, 'ok');
      assert.equal(s.finish, 'stop');
    });

    test('a stream that stops before the generated_text event: text so far, an error chunk, [DONE]', async () => {
      const res = await postStream(port, '/t-chat', ask('t-no-final'));
      const s = chat(res, { allowError: true });
      assert.equal(s.content, 'half way');
      assert.equal(s.finish, null);
      assert.match(streamError(res)?.message ?? '', /ended before it was complete/);
    });

    test('a server that sends only the final generated_text: the echoed prompt is stripped; finish and usage from details', async () => {
      const s = chat(await postStream(port, '/t-chat', ask('t-only-final', USAGE)));
      assert.equal(s.content, 'Whole answer.');
      assert.equal(s.finish, 'length');
      assert.deepEqual(s.usage, { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 });
    });

    test('the first delta reaches the client while TGI is still generating', async () => {
      const res = await postStream(port, '/t-chat', ask('t-slow'));
      const s = chat(res);
      assert.equal(s.content, 'first second');
      const firstAt = res.chunks.find((c) => c.text.includes('"first"'))?.t;
      const doneAt = res.chunks.find((c) => c.text.includes('[DONE]'))?.t;
      assert.ok(firstAt !== undefined && doneAt !== undefined, res.text);
      assert.ok(doneAt - firstAt >= 400, `first delta at ${firstAt} ms, [DONE] at ${doneAt} ms`);
    });

    test('completions: text_completion chunks, usage chunk, tokens and payload in the log', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/t-gen', prompt('t-crlf-bytes', USAGE));
      const s = completion(res);
      assert.equal(s.text, 'Héllo 日本 😀');
      assert.equal(s.finish, 'stop');
      assert.deepEqual(s.usage, { prompt_tokens: 21, completion_tokens: 5, total_tokens: 26 });
      assert.equal(lastTo('/generate_stream').body.inputs, '<s>[INST] script:t-crlf-bytes [/INST]');
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), 21);
      assert.equal(Number(f['ai.completion_tokens']), 5);
      assert.equal(f['ai.payload.response'], res.text);
    });

    test('response_streaming always: a chat request without stream gets a stream; TGI was asked for one with details', async () => {
      const res = await postStream(port, '/t-chat-always', { messages: [{ role: 'user', content: 'script:t-special-mid' }] });
      const s = chat(res);
      assert.equal(s.content, 'Yes, sure.');
      const got = lastTo('/generate_stream').body;
      assert.equal(got.stream, true);
      assert.equal(got.parameters.details, true);
    });

    test('n > 1 on a stream: 400 before anything is sent', async () => {
      const before = scripted.received.length;
      assertOpenaiError(await postJson(port, '/t-chat', ask('t-special-mid', { n: 3 })), 400, { message: /n > 1/ });
      assert.equal(scripted.received.length, before);
    });

    test('log_payloads: many token events arriving in one read are all in the logged reply', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/t-chat-log', ask('t-tiny-events'));
      const s = chat(res);
      assert.equal(s.content, tinyAlphabet(1000));
      assert.ok(res.text.length < 256 * 1024, 'under the 256 KiB payload cap');
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(f['ai.payload.response'], res.text);
    });
  });

  describe('llm/v1/completions streams on OpenAI-format and Anthropic upstreams', () => {
    for (const [path, label] of [['/openai-gen', 'openai'], ['/l-openai-gen', 'llama2 openai format'], ['/azure-gen', 'azure']]) {
      test(`${label}: chunks passed through, usage-only chunk dropped when not asked`, async () => {
        const s = completion(await postStream(port, path, prompt('c-ok')));
        assert.equal(s.text, 'Once upon a');
        assert.equal(s.finish, 'length');
        assert.equal(s.usage, null);
        const got = scripted.received.at(-1).body;
        assert.equal(got.stream, true);
        if (label !== 'azure') assert.equal(got.stream_options?.include_usage, true, 'usage asked of the upstream');
      });

      test(`${label}: with include_usage the usage-only chunk is kept, last before [DONE]`, async () => {
        const s = completion(await postStream(port, path, prompt('c-ok', USAGE)));
        assert.deepEqual(s.usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
        assert.ok(s.chunks.at(-1).usage, 'usage chunk last');
      });
    }

    test('openai completions stream with log_statistics/log_payloads: usage recorded though not asked, payload as sent', async () => {
      const mark = sl.logMark();
      const res = await postStream(port, '/openai-gen', prompt('c-ok'));
      completion(res);
      const { fields: f } = await accessLog(sl, requestIdOf(res), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), 5);
      assert.equal(Number(f['ai.completion_tokens']), 3);
      assert.equal(f['ai.payload.response'], res.text);
    });

    test('anthropic /v1/complete stream: completion events → text chunks, stop_reason max_tokens → length', async () => {
      const s = completion(await postStream(port, '/anthropic-gen', prompt('a-complete')));
      assert.equal(s.text, ' Hello world');
      assert.equal(s.finish, 'length');
      const got = lastTo('/v1/complete').body;
      assert.equal(got.stream, true);
      assert.equal(got.prompt, '\n\nHuman: script:a-complete\n\nAssistant:');
    });
  });
});
