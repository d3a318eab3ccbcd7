// Helpers for the prompt-plugin integration tests: JSON requests through the
// daemon, the OpenAI-style error body the plugins answer with, and checks on
// what the fake provider recorded. Built on harness.mjs and tests/fake; no
// changes to either.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { HEX32, request } from './harness.mjs';

// A marker unique to one test, to find (or not find) its request in the
// fake provider's log.
export function marker(label = 'm') {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

// POSTs body (an object is sent as JSON; a string or Buffer as given).
export function post(port, path, body, { headers = {}, timeoutMs = 10000 } = {}) {
  const raw = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return request({
    port, method: 'POST', path, body: raw, timeoutMs,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

// The 400 the prompt plugins answer with: {"error": {"message", "type"}}
// as OpenAI sends it. Returns the parsed error object.
export function assertOpenaiError(r, status, message) {
  assert.equal(r.status, status, `status (body: ${r.text.slice(0, 400)})`);
  assert.match(String(r.headers['content-type']), /application\/json/, 'error content-type');
  let j;
  try {
    j = r.json();
  } catch (e) {
    assert.fail(`error body is not JSON: ${r.text.slice(0, 400)}`);
  }
  assert.equal(typeof j.error, 'object', `"error" object in ${r.text}`);
  assert.notEqual(j.error, null, `"error" object in ${r.text}`);
  assert.equal(j.error.type, 'invalid_request_error', `error.type in ${r.text}`);
  assert.equal(typeof j.error.message, 'string', `error.message in ${r.text}`);
  if (message instanceof RegExp) assert.match(j.error.message, message);
  else if (message !== undefined) assert.equal(j.error.message, message);
  return j.error;
}

// The request id the daemon gave this response.
export function requestId(r) {
  const id = r.headers['x-sluice-request-id'];
  assert.match(String(id), HEX32, `X-Sluice-Request-Id: ${id}`);
  return id;
}

// Records of the fake whose body contains text.
export function recordsWith(fake, text) {
  return fake.requests.filter((rec) => rec.body !== null && rec.body.includes(text));
}

// The one record carrying text, waiting for it to arrive.
export async function receivedWith(fake, text, timeoutMs = 5000) {
  const rec = await fake.waitFor((x) => x.body !== null && x.body.includes(text), timeoutMs);
  assert.equal(recordsWith(fake, text).length, 1, `exactly one upstream request carries ${text}`);
  return rec;
}

// Asserts that no request carrying text reached the fake. A sentinel sent
// afterwards through a plugin-free route must arrive first, so a request
// the daemon started late would have had its chance to show up.
export async function assertNeverReached(fake, port, sentinelPath, text) {
  const sentinel = marker('sentinel');
  const r = await post(port, sentinelPath, { model: 'gpt-4o', messages: [{ role: 'user', content: sentinel }] });
  assert.equal(r.status, 200, `sentinel through ${sentinelPath}: ${r.text.slice(0, 300)}`);
  await fake.waitFor((x) => x.body !== null && x.body.includes(sentinel));
  const got = recordsWith(fake, text);
  assert.equal(got.length, 0, `a request carrying ${text} reached the provider: ${got.map((x) => x.body).join('\n')}`);
}
