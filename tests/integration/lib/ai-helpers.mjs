// Helpers for the ai-proxy integration tests: kong.yml routes with the
// ai-proxy plugin pointed at the fake providers, bounded JSON and SSE
// requests through the daemon, checks of OpenAI's reply and error shapes,
// and the access-log line of one request. Built on harness.mjs and
// tests/fake without changing either.
import assert from 'node:assert/strict';
import http from 'node:http';

import { HEX32, request } from './harness.mjs';

export const FINISH_REASONS = ['stop', 'length', 'tool_calls', 'content_filter'];

// A route carrying one ai-proxy plugin. `config` is the plugin's config.
export function aiRoute(name, path, config, extraPlugins = []) {
  return { name, paths: [path], plugins: [{ name: 'ai-proxy', config }, ...extraPlugins] };
}

// A kong.yml services list: one service per group of routes. The service URL
// is never used by ai-proxy (upstream_url wins) but must be valid.
export function aiServices(fakeUrl, routes, serviceExtra = {}) {
  return [{ name: 'ai', url: fakeUrl, ...serviceExtra, routes }];
}

// POSTs a JSON body (object → JSON; string/Buffer as given) with a timeout.
export function postJson(port, path, body, { headers = {}, timeoutMs = 10000 } = {}) {
  const raw = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return request({ port, method: 'POST', path, body: raw, timeoutMs,
    headers: { 'content-type': 'application/json', ...headers } });
}

// Splits an SSE text into events: [{event, data}] (data lines joined by \n).
export function parseSse(text) {
  const events = [];
  for (const block of text.split(/\r\n\r\n|\n\n|\r\r/)) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
    }
    if (data.length) events.push({ event, data: data.join('\n') });
  }
  return events;
}

// A streaming POST: resolves when the response ends, is aborted or errors,
// with {status, headers, text, events, chunks: [{t, text}], t0, end}, where
// `end` is 'end' | 'aborted' | 'error' and each chunk records when it
// arrived (ms since the request was sent). Rejects only on timeout.
export function postStream(port, path, body, { headers = {}, timeoutMs = 10000, onChunk } = {}) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks = [];
    let res;
    let settled = false;
    const finish = (end, err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const text = chunks.map((c) => c.text).join('');
      resolve({ status: res?.statusCode, headers: res?.headers ?? {}, text, events: parseSse(text), chunks, t0, end, error: err });
    };
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(raw), ...headers },
    }, (r) => {
      res = r;
      r.setEncoding('utf8');
      r.on('data', (d) => {
        chunks.push({ t: Date.now() - t0, text: d });
        if (onChunk) onChunk(d, chunks.length);
      });
      r.on('end', () => finish('end'));
      r.on('aborted', () => finish('aborted'));
      r.on('error', (e) => finish('error', e));
    });
    const timer = setTimeout(() => {
      settled = true;
      req.destroy();
      reject(new Error(`stream POST ${path} did not finish within ${timeoutMs} ms; got so far: ${chunks.map((c) => c.text).join('').slice(0, 800)}`));
    }, timeoutMs);
    req.on('error', (e) => (res ? finish('error', e) : (clearTimeout(timer), settled || reject(e))));
    req.end(raw);
  });
}

// The JSON payloads of a stream's data events, and whether it ended in [DONE].
export function streamChunks(events) {
  const done = events.filter((e) => e.data === '[DONE]').length;
  const json = events.filter((e) => e.data !== '[DONE]').map((e) => {
    try {
      return JSON.parse(e.data);
    } catch {
      assert.fail(`stream event is not JSON: ${e.data.slice(0, 300)}`);
    }
  });
  return { json, done, lastIsDone: events.length > 0 && events[events.length - 1].data === '[DONE]' };
}

// Asserts OpenAI's exact chat.completion shape; returns choices[0].
export function assertChatCompletion(j, { model, finish, usage = true } = {}) {
  assert.equal(typeof j.id, 'string', `id in ${JSON.stringify(j)}`);
  assert.ok(j.id.length > 0, 'id not empty');
  assert.equal(j.object, 'chat.completion');
  assert.ok(Number.isInteger(j.created) && j.created > 1.6e9 && j.created <= Date.now() / 1000 + 5, `created ${j.created}`);
  assert.equal(typeof j.model, 'string');
  if (model !== undefined) assert.equal(j.model, model);
  assert.ok(Array.isArray(j.choices) && j.choices.length >= 1, 'choices');
  const c = j.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.ok(typeof c.message.content === 'string' || c.message.content === null, `content ${c.message.content}`);
  assert.ok(FINISH_REASONS.includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
  if (finish !== undefined) assert.equal(c.finish_reason, finish);
  if (usage) assertUsage(j.usage);
  return c;
}

export function assertUsage(u) {
  assert.equal(typeof u, 'object', 'usage object');
  assert.notEqual(u, null, 'usage object');
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(u[k]) && u[k] >= 0, `usage.${k} = ${u[k]}`);
  }
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens, 'total = prompt + completion');
}

// The {"error":{"message","type"}} body every ai-proxy error has.
export function assertOpenaiError(r, status, { type, message } = {}) {
  assert.equal(r.status, status, `status (body: ${r.text.slice(0, 500)})`);
  assert.match(String(r.headers['content-type']), /application\/json/, `content-type of ${r.text.slice(0, 200)}`);
  const j = r.json();
  assert.equal(typeof j.error, 'object', `error object in ${r.text}`);
  assert.notEqual(j.error, null);
  assert.equal(typeof j.error.message, 'string', `error.message in ${r.text}`);
  assert.ok(j.error.message.length > 0, 'error.message not empty');
  assert.equal(typeof j.error.type, 'string', `error.type in ${r.text}`);
  if (type !== undefined) assert.equal(j.error.type, type, `error.type in ${r.text}`);
  if (message instanceof RegExp) assert.match(j.error.message, message);
  else if (message !== undefined) assert.equal(j.error.message, message);
  return j.error;
}

// The request id of a response, for finding its log line.
export function requestIdOf(r) {
  const id = r.headers['x-sluice-request-id'];
  assert.match(String(id), HEX32, `X-Sluice-Request-Id: ${id}`);
  return id;
}

// Parses the key=value / key="quoted \" value" fields of a log line.
export function logFields(line) {
  const out = {};
  const re = /([A-Za-z0-9_.-]+)=("((?:[^"\\]|\\.)*)"|\S*)/g;
  let m;
  // Quoted values: \" \\ and \xHH (control bytes) undone (gw_log_escape).
  const unescape = (v) => v.replace(/\\x([0-9a-f]{2})|\\(.)/g, (_, hex, ch) => (hex ? String.fromCharCode(parseInt(hex, 16)) : ch));
  while ((m = re.exec(line))) out[m[1]] = m[3] !== undefined ? unescape(m[3]) : m[2];
  return out;
}

// The access-log line of the request with this id (waits for it).
export async function accessLog(sl, id, { from = 0, timeoutMs = 5000 } = {}) {
  const line = await sl.waitForLog(new RegExp(`request_id=${id}\\b.*status=`), { from, timeoutMs });
  return { line, fields: logFields(line) };
}

// Records of the fake whose body contains text.
export function recordsWith(fake, text) {
  return fake.requests.filter((rec) => rec.body !== null && rec.body.includes(text));
}

// The one record whose body carries text (waits for it).
export async function receivedWith(fake, text, timeoutMs = 5000) {
  const rec = await fake.waitFor((x) => x.body !== null && x.body.includes(text), timeoutMs);
  assert.equal(recordsWith(fake, text).length, 1, `exactly one upstream request carries ${text}`);
  return rec;
}

let seq = 0;
// A word unique to one test, to find its request at the fake.
export function marker(label = 'm') {
  seq++;
  return `${label}${seq}x${process.pid.toString(36)}${Date.now().toString(36)}`;
}

// Waits for a fake record to leave the 'open' state (the connection closed).
export async function waitClosed(fake, rec, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (rec.state === 'open' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return rec.state;
}

// Runs fn and returns the error it threw (fails if none).
export async function thrown(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}
