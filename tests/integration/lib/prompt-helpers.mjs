// Helpers for the prompt-plugin integration tests, on top of ai-helpers.mjs
// (JSON requests, OpenAI error bodies, the fake provider's records): the
// 400 shape the prompt plugins answer with, and a check that a request never
// reached the provider.
import assert from 'node:assert/strict';

import { assertOpenaiError as assertAiError, marker, postJson, recordsWith } from './ai-helpers.mjs';

export { marker, receivedWith, recordsWith, requestIdOf as requestId } from './ai-helpers.mjs';
export const post = postJson;

// The 400 the prompt plugins answer with: {"error": {"message", "type":
// "invalid_request_error"}} as OpenAI sends it. Returns the error object.
export function assertOpenaiError(r, status, message) {
  return assertAiError(r, status, { type: 'invalid_request_error', message });
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
