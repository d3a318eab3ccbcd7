// The fake providers checked against the official SDKs (no daemon): if the
// real clients accept the fakes, tests through sluice can trust them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { startFake } from '../fake/server.mjs';
import { rawRequest, request } from './lib/harness.mjs';

const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } },
};

let fake;
before(async () => {
  fake = await startFake({ port: 0 });
});
after(() => fake.close());

describe('fake OpenAI with the openai SDK', () => {
  const client = () => new OpenAI({ apiKey: 'sk-test', baseURL: `${fake.url}/v1`, maxRetries: 0, timeout: 5000 });

  test('chat completion echoes the last user message with usage', async () => {
    const r = await client().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'gpt-4o');
    assert.equal(r.choices[0].message.content, 'echo: hello there');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens], [4, 3, 7]);
    const rec = fake.requests.at(-1);
    assert.equal(rec.headers.authorization, 'Bearer sk-test');
    assert.equal(rec.json.messages[1].content, 'hello there');
  });

  test('max_tokens truncates with finish_reason length', async () => {
    const r = await client().chat.completions.create({ model: 'm', max_tokens: 2, messages: [{ role: 'user', content: 'one two three' }] });
    assert.equal(r.choices[0].message.content, 'echo: one');
    assert.equal(r.choices[0].finish_reason, 'length');
  });

  test('streaming with include_usage gives deltas, a finish chunk and a usage chunk', async () => {
    const stream = await client().chat.completions.create({ model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream me please' }] });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const c of stream) {
      if (c.choices.length) {
        text += c.choices[0].delta.content ?? '';
        finish = c.choices[0].finish_reason ?? finish;
      } else usage = c.usage;
    }
    assert.equal(text, 'echo: stream me please');
    assert.equal(finish, 'stop');
    assert.equal(usage.completion_tokens, 4);
  });

  test('streaming without include_usage sends no usage chunk', async () => {
    const stream = await client().chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'x' }] });
    for await (const c of stream) {
      assert.equal(c.usage, undefined);
      assert.equal(c.choices.length, 1);
    }
  });

  test('tool call, JSON and streamed deltas, with the SDK stream helper', async () => {
    const body = { model: 'gpt-4o', tools: [WEATHER_TOOL], messages: [{ role: 'user', content: 'please call get_weather' }] };
    const r = await client().chat.completions.create(body);
    const tc = r.choices[0].message.tool_calls[0];
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(tc.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'city_value', days: 42 });
    const runner = client().chat.completions.stream(body);
    const final = await runner.finalChatCompletion();
    const stc = final.choices[0].message.tool_calls[0];
    assert.equal(stc.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(stc.function.arguments), { city: 'city_value', days: 42 });
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
  });

  test('tool result turns into an answer', async () => {
    const r = await client().chat.completions.create({
      model: 'gpt-4o', tools: [WEATHER_TOOL],
      messages: [{ role: 'user', content: 'call get_weather' }, { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'call_1', content: 'sunny' }],
    });
    assert.equal(r.choices[0].message.content, 'echo: tool result sunny');
  });

  test('embeddings (the SDK asks for base64 and decodes it)', async () => {
    const r = await client().embeddings.create({ model: 'text-embedding-3-small', input: ['a b', 'c'] });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0].embedding.length, 8);
    assert.ok(r.data[0].embedding.every((x) => typeof x === 'number' && x >= -1 && x <= 1));
    assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
    assert.equal(r.usage.prompt_tokens, 3);
  });

  test('legacy completions', async () => {
    const r = await client().completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'say this' });
    assert.equal(r.choices[0].text, 'echo: say this');
  });

  test('x-fake-status surfaces as APIError with the status and OpenAI error body', async () => {
    for (const status of [400, 401, 429, 500, 503]) {
      await assert.rejects(
        client().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-status': String(status) } }),
        (e) => e instanceof OpenAI.APIError && e.status === status && typeof e.error?.message === 'string',
      );
    }
  });

  test('missing and invalid keys give 401 like OpenAI', async () => {
    const noKey = await request({ port: fake.port, method: 'POST', path: '/v1/chat/completions', body: '{}' });
    assert.equal(noKey.status, 401);
    assert.equal(noKey.json().error.type, 'invalid_request_error');
    await assert.rejects(new OpenAI({ apiKey: 'invalid-key', baseURL: `${fake.url}/v1`, maxRetries: 0 }).chat.completions.create({ model: 'm', messages: [] }),
      (e) => e.status === 401 && e.code === 'invalid_api_key');
    const ok = await request({ port: fake.port, method: 'POST', path: '/noauth/v1/chat/completions', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(ok.status, 200);
  });

  test('Azure deployment path needs api-version and api-key', async () => {
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi azure' }] });
    const r = await request({ port: fake.port, method: 'POST', path: '/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21', headers: { 'api-key': 'k', 'content-type': 'application/json' }, body });
    assert.equal(r.status, 200);
    assert.equal(r.json().model, 'my-gpt');
    assert.equal(r.json().choices[0].message.content, 'echo: hi azure');
    assert.equal((await request({ port: fake.port, method: 'POST', path: '/openai/deployments/my-gpt/chat/completions', headers: { 'api-key': 'k' }, body })).status, 404);
    const denied = await request({ port: fake.port, method: 'POST', path: '/openai/deployments/my-gpt/chat/completions?api-version=1', body });
    assert.equal(denied.status, 401);
    assert.equal(denied.json().error.code, '401');
  });
});

describe('fake Anthropic with the @anthropic-ai/sdk SDK', () => {
  const client = () => new Anthropic({ apiKey: 'ak-test', baseURL: fake.url, maxRetries: 0, timeout: 5000 });
  const TOOL = { name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } };

  test('messages.create', async () => {
    const r = await client().messages.create({ model: 'claude-3-5-sonnet', max_tokens: 100, system: 'sys prompt', messages: [{ role: 'user', content: 'hi claude' }] });
    assert.equal(r.type, 'message');
    assert.deepEqual(r.content, [{ type: 'text', text: 'echo: hi claude' }]);
    assert.equal(r.stop_reason, 'end_turn');
    assert.deepEqual([r.usage.input_tokens, r.usage.output_tokens], [4, 3]);
    const rec = fake.requests.at(-1);
    assert.ok(rec.headers['x-api-key'] === 'ak-test' || rec.headers.authorization === 'Bearer ak-test');
    assert.ok(rec.headers['anthropic-version']);
  });

  test('stream event sequence and text', async () => {
    const stream = client().messages.stream({ model: 'c', max_tokens: 100, messages: [{ role: 'user', content: 'a b c' }] });
    const types = [];
    stream.on('streamEvent', (e) => types.push(e.type));
    const msg = await stream.finalMessage();
    assert.equal(msg.content[0].text, 'echo: a b c');
    assert.equal(msg.stop_reason, 'end_turn');
    assert.deepEqual(types.filter((t, i) => t !== types[i - 1]), ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  });

  test('tool_use, JSON and streamed input_json_delta', async () => {
    const body = { model: 'c', max_tokens: 100, tools: [TOOL], messages: [{ role: 'user', content: 'call get_weather now' }] };
    const r = await client().messages.create(body);
    assert.equal(r.stop_reason, 'tool_use');
    const tu = r.content.find((b) => b.type === 'tool_use');
    assert.deepEqual([tu.name, tu.input], ['get_weather', { city: 'city_value' }]);
    const msg = await client().messages.stream(body).finalMessage();
    const stu = msg.content.find((b) => b.type === 'tool_use');
    assert.deepEqual(stu.input, { city: 'city_value' });
  });

  test('missing headers and x-fake-status give Anthropic errors', async () => {
    const body = JSON.stringify({ model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    const noKey = await request({ port: fake.port, method: 'POST', path: '/v1/messages', headers: { 'anthropic-version': '2023-06-01' }, body });
    assert.equal(noKey.status, 401);
    assert.equal(noKey.json().error.type, 'authentication_error');
    const noVersion = await request({ port: fake.port, method: 'POST', path: '/v1/messages', headers: { 'x-api-key': 'k' }, body });
    assert.equal(noVersion.status, 400);
    assert.equal(noVersion.json().type, 'error');
    await assert.rejects(client().messages.create({ model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-status': '529' } }),
      (e) => e instanceof Anthropic.APIError && e.status === 529 && e.error?.error?.type === 'overloaded_error');
  });
});

describe('fake Ollama and llama2 raw', () => {
  test('ollama /api/chat streams NDJSON by default', async () => {
    const r = await request({ port: fake.port, method: 'POST', path: '/api/chat', body: JSON.stringify({ model: 'llama2', messages: [{ role: 'user', content: 'hi llama' }] }) });
    assert.match(r.headers['content-type'], /ndjson/);
    const lines = r.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.map((l) => l.message.content).join(''), 'echo: hi llama');
    assert.equal(lines.at(-1).done, true);
    assert.equal(lines.at(-1).eval_count, 3);
  });

  test('ollama /api/generate without streaming', async () => {
    const r = await request({ port: fake.port, method: 'POST', path: '/api/generate', body: JSON.stringify({ model: 'llama2', prompt: 'why', stream: false }) });
    assert.equal(r.json().response, 'echo: why');
    assert.equal(r.json().done, true);
  });

  test('llama2 raw answers after the prompt, as in Kong fixtures', async () => {
    const inputs = '<s>[INST] <<SYS>> You are a mathematician. <</SYS>> What is 1 + 2? [/INST] <s>[INST] Why zero? [/INST]';
    const r = await request({ port: fake.port, method: 'POST', path: '/llama2/raw', body: JSON.stringify({ inputs, parameters: { max_new_tokens: 512 } }) });
    assert.equal(r.json().data[0].generated_text, `${inputs}\n\necho: Why zero?`);
  });
});

describe('fault injection', () => {
  test('x-fake-split re-cuts an SSE stream but the bytes are the same', async () => {
    const body = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'split this stream' }] });
    const headers = { authorization: 'Bearer k', 'content-type': 'application/json' };
    const whole = await request({ port: fake.port, method: 'POST', path: '/v1/chat/completions', headers, body });
    const split = await request({ port: fake.port, method: 'POST', path: '/v1/chat/completions', headers: { ...headers, 'x-fake-split': 'odd', 'x-fake-frame-delay-ms': '1' }, body });
    const norm = (t) => t.replace(/"id":"[^"]+"|"created":\d+/g, '');
    assert.equal(norm(split.text), norm(whole.text));
    assert.match(split.text, /data: \[DONE\]\n\n$/);
  });

  test('x-fake-reset-after-bytes cuts the body and resets', async () => {
    await assert.rejects(request({ port: fake.port, path: '/bytes?n=5000', headers: { 'x-fake-reset-after-bytes': '1000' } }), (e) => e.partial?.length === 1000 || /reset|aborted|socket hang up/i.test(e.message));
    await fake.waitFor((r) => r.path === '/bytes' && r.state === 'reset', 2000);
  });

  test('garbage, delay, hang and close', async () => {
    const g = await request({ port: fake.port, method: 'POST', path: '/v1/chat/completions', headers: { authorization: 'Bearer k', 'x-fake-garbage': '1' }, body: '{}' });
    assert.equal(g.status, 200);
    assert.throws(() => g.json());
    const t0 = Date.now();
    await request({ port: fake.port, path: '/echo', headers: { 'x-fake-delay-ms': '200' } });
    assert.ok(Date.now() - t0 >= 190);
    await assert.rejects(request({ port: fake.port, path: '/hang', timeoutMs: 300 }), /timed out/);
    await assert.rejects(request({ port: fake.port, path: '/close' }), /socket hang up|ECONNRESET/);
    const raw = await rawRequest({ port: fake.port, data: 'GET /garbage HTTP/1.1\r\nHost: x\r\n\r\n' });
    assert.ok(!raw.toString('latin1').startsWith('HTTP/'));
  });

  test('/__requests lists and clears the records', async () => {
    await request({ port: fake.port, path: '/echo?q=1', headers: { 'x-marker': 'm1' } });
    const list = (await request({ port: fake.port, path: '/__requests' })).json();
    const rec = list.find((r) => r.headers['x-marker'] === 'm1');
    assert.deepEqual([rec.method, rec.path, rec.query.q, rec.state], ['GET', '/echo', '1', 'finished']);
    assert.deepEqual((await request({ port: fake.port, method: 'DELETE', path: '/__requests' })).json(), []);
    assert.equal(fake.requests.length, 0);
  });
});
