// The official `openai` Node SDK as the client of ai-proxy routes (baseURL
// = the sluice route), against the Anthropic and OpenAI fakes: a client must
// not be able to tell Claude from GPT. Chat, streaming with and without
// stream_options.include_usage, tool calls (streamed deltas assembled by the
// SDK's own stream helper), embeddings, provider errors as the SDK's
// APIError with the right status. Also the issue's example config, loaded
// unchanged.
//
//   SLUICE_BIN=build-h8/sluice node --test tests/integration/ai-proxy-sdk.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { startFake } from '../fake/server.mjs';
import { embeddingVector } from '../fake/text.mjs';
import { binaryMissing, runSluice, startSluice, tempDir } from './lib/harness.mjs';
import { accessLog, aiRoute, marker, receivedWith, thrown } from './lib/ai-helpers.mjs';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const CLAUDE = 'claude-3-5-sonnet-20241022';
const ENV_KEY = 'sk-ant-from-env-SECRET-4d2e';
const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] } },
};

// The issue's example, byte for byte.
const ISSUE_EXAMPLE = `_format_version: "3.0"
services:
- name: ai
  url: https://localhost
  routes:
  - name: chat
    paths: ["/ai-gateway/chat"]
    plugins:
    - name: ai-proxy
      config:
        route_type: "llm/v1/chat"
        auth: { header_name: "x-api-key", header_value: "$ANTHROPIC_API_KEY" }
        model: { provider: "anthropic", name: "claude-3-5-sonnet-20241022" }
        logging: { log_statistics: true, log_payloads: true }
`;

// The same, pointed at the fake: only an options line added to model.
function exampleAtFake(fakeUrl) {
  return ISSUE_EXAMPLE.replace('name: "claude-3-5-sonnet-20241022" }',
    `name: "claude-3-5-sonnet-20241022", options: { upstream_url: "${fakeUrl}/v1/messages" } }`);
}

const sdk = (sl, route, apiKey = 'sk-sdk-client') => new OpenAI({ apiKey, baseURL: `${sl.proxyUrl}${route}`, timeout: 10000, maxRetries: 0 });

describe('openai SDK against ai-proxy', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    const F = fake.url;
    const chat = (provider, name, upstream, extra = {}) => ({ route_type: 'llm/v1/chat', model: { provider, name, options: { upstream_url: `${F}${upstream}` } }, ...extra });
    sl = await startSluice({
      config: {
        services: [{
          name: 'ai', url: F, routes: [
            aiRoute('claude', '/claude', chat('anthropic', CLAUDE, '/v1/messages')),
            aiRoute('gpt', '/gpt', chat('openai', 'gpt-4o', '/v1/chat/completions')),
            aiRoute('ollama', '/ollama', chat('mistral', 'mistral:7b', '/api/chat', { model: { provider: 'mistral', name: 'mistral:7b', options: { upstream_url: `${F}/api/chat`, mistral_format: 'ollama' } } })),
            aiRoute('emb', '/emb', { route_type: 'llm/v1/embeddings', model: { provider: 'openai', name: 'text-embedding-3-small', options: { upstream_url: `${F}/v1/embeddings` } } }),
            aiRoute('emb-ollama', '/emb-ollama', { route_type: 'llm/v1/embeddings', model: { provider: 'llama2', name: 'nomic-embed-text', options: { upstream_url: `${F}/api/embed`, llama2_format: 'ollama' } } }),
          ],
        }, {
          name: 'ai-slow', url: F, read_timeout: 1000, routes: [aiRoute('slow', '/slow', chat('anthropic', CLAUDE, '/v1/messages'))],
        }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  for (const [label, route, model] of [['Anthropic', '/claude', CLAUDE], ['OpenAI', '/gpt', 'gpt-4o'], ['Ollama (mistral)', '/ollama', 'mistral:7b']]) {
    describe(`${label} behind the route`, () => {
      test('chat', async () => {
        const m = marker('sdk');
        const c = await sdk(sl, route).chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `hello ${m}` }], max_tokens: 100 });
        assert.equal(c.object, 'chat.completion');
        assert.equal(c.model, model);
        assert.equal(c.choices[0].message.role, 'assistant');
        assert.equal(c.choices[0].message.content, `echo: hello ${m}`);
        assert.equal(c.choices[0].finish_reason, 'stop');
        assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens);
        assert.ok(c.usage.prompt_tokens >= 4);
        const rec = await receivedWith(fake, m);
        if (route === '/claude') {
          assert.equal(rec.headers['x-api-key'], 'sk-sdk-client', 'the SDK\'s key in Anthropic\'s header');
          assert.equal(rec.json.system, 'Be brief.');
        }
      });

      test('stream without include_usage: no usage chunk', async () => {
        const stream = await sdk(sl, route).chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: 'one two three' }] });
        let text = '';
        let finish = null;
        const usages = [];
        let n = 0;
        for await (const chunk of stream) {
          n++;
          if (chunk.usage) usages.push(chunk.usage);
          for (const ch of chunk.choices) {
            text += ch.delta?.content ?? '';
            if (ch.finish_reason) finish = ch.finish_reason;
          }
        }
        assert.ok(n >= 3, `${n} chunks`);
        assert.equal(text, 'echo: one two three');
        assert.equal(finish, 'stop');
        assert.deepEqual(usages, [], 'no usage without include_usage');
      });

      test('stream with include_usage: the last chunk carries usage', async () => {
        const stream = await sdk(sl, route).chat.completions.create({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'one two three' }] });
        const chunks = [];
        for await (const chunk of stream) chunks.push(chunk);
        const last = chunks.at(-1);
        assert.deepEqual(last.choices, []);
        assert.equal(last.usage.prompt_tokens, 3);
        assert.equal(last.usage.completion_tokens, 4);
        assert.equal(last.usage.total_tokens, 7);
        assert.equal(chunks.filter((c) => c.usage).length, 1, 'one usage chunk');
      });

      test('tool call, non-streamed', async () => {
        const c = await sdk(sl, route).chat.completions.create({ model, messages: [{ role: 'user', content: 'please call get_weather' }], tools: [WEATHER_TOOL] });
        assert.equal(c.choices[0].finish_reason, 'tool_calls');
        const tc = c.choices[0].message.tool_calls;
        assert.equal(tc.length, 1);
        assert.equal(tc[0].type, 'function');
        assert.equal(tc[0].function.name, 'get_weather');
        assert.equal(typeof tc[0].id, 'string');
        assert.deepEqual(JSON.parse(tc[0].function.arguments), { city: 'city_value', unit: 'celsius' });
        // The tool result goes back; the model answers from it.
        const m = marker('res');
        const c2 = await sdk(sl, route).chat.completions.create({ model, tools: [WEATHER_TOOL], messages: [
          { role: 'user', content: 'please call get_weather' },
          c.choices[0].message,
          { role: 'tool', tool_call_id: tc[0].id, content: `sunny-${m}` },
        ] });
        assert.equal(c2.choices[0].message.content, `echo: tool result sunny-${m}`);
      });

      test('tool call, streamed deltas assembled by the SDK', async () => {
        const runner = sdk(sl, route).chat.completions.stream({ model, messages: [{ role: 'user', content: 'call get_weather now' }], tools: [WEATHER_TOOL] });
        const args = [];
        runner.on('tool_calls.function.arguments.delta', (e) => args.push(e.arguments_delta));
        const final = await runner.finalChatCompletion();
        assert.equal(final.choices[0].finish_reason, 'tool_calls');
        const tc = final.choices[0].message.tool_calls;
        assert.equal(tc.length, 1);
        assert.equal(tc[0].function.name, 'get_weather');
        assert.deepEqual(JSON.parse(tc[0].function.arguments), { city: 'city_value', unit: 'celsius' });
        assert.ok(args.length >= 1, 'argument deltas');
      });
    });
  }

  test('embeddings', async () => {
    const e = await sdk(sl, '/emb').embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta gamma'], dimensions: 6 });
    assert.equal(e.data.length, 2);
    assert.equal(e.data[0].embedding.length, 6);
    assert.ok(e.data[0].embedding.every((x) => typeof x === 'number'));
    assert.notDeepEqual(e.data[0].embedding, e.data[1].embedding);
    assert.equal(e.usage.prompt_tokens, 3);
    // The SDK asks for base64 by default and decodes it: the vectors must survive.
    const f = await sdk(sl, '/emb').embeddings.create({ model: 'text-embedding-3-small', input: 'alpha', dimensions: 6, encoding_format: 'float' });
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(f.data[0].embedding[i] - e.data[0].embedding[i]) < 1e-6);
  });

  // The SDK sends encoding_format "base64" unless told otherwise and decodes
  // the strings as float32: an upstream that can only send numbers (Ollama's
  // /api/embed) or ignores the option must still give the SDK the vectors.
  const f32 = (v) => v.map(Math.fround);
  test('embeddings from Ollama\'s native API: base64 (the SDK default) and float both give the vectors', async () => {
    const m = marker('emb');
    const inputs = [`alpha ${m}`, `beta gamma ${m}`];
    const e = await sdk(sl, '/emb-ollama').embeddings.create({ model: 'nomic-embed-text', input: inputs, dimensions: 6 });
    assert.equal(e.object, 'list');
    assert.deepEqual(e.data.map((d) => d.index), [0, 1]);
    assert.deepEqual(e.data.map((d) => Array.from(d.embedding)), inputs.map((t) => f32(embeddingVector(t, 6))));
    assert.equal(e.usage.prompt_tokens, e.usage.total_tokens);
    assert.ok(e.usage.prompt_tokens >= 4);
    const rec = await receivedWith(fake, `alpha ${m}`);
    assert.equal(rec.path, '/api/embed');
    assert.deepEqual(rec.json.input, inputs);
    assert.equal(rec.json.dimensions, 6, 'dimensions passed on to Ollama');
    assert.equal(rec.json.encoding_format, undefined, 'no OpenAI-only field sent to Ollama');
    const f = await sdk(sl, '/emb-ollama').embeddings.create({ model: 'nomic-embed-text', input: inputs[0], dimensions: 6, encoding_format: 'float' });
    assert.deepEqual(f.data[0].embedding, embeddingVector(inputs[0], 6), 'floats untouched when floats were asked for');
  });

  test('embeddings from a compatible server that ignores encoding_format: the SDK still gets the vectors', async () => {
    const e = await sdk(sl, '/emb').embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], dimensions: 5 },
      { headers: { 'x-fake-floats-only': '1' } });
    assert.deepEqual(e.data.map((d) => Array.from(d.embedding)), [f32(embeddingVector('alpha', 5)), f32(embeddingVector('beta', 5))]);
  });

  for (const route of ['/claude', '/gpt']) {
    test(`${route}: provider errors surface as APIError with the provider's status`, async () => {
      for (const [status, cls] of [[400, OpenAI.BadRequestError], [401, OpenAI.AuthenticationError], [429, OpenAI.RateLimitError], [500, OpenAI.InternalServerError]]) {
        const e = await thrown(() => sdk(sl, route).chat.completions.create({ model: route === '/claude' ? CLAUDE : 'gpt-4o', messages: [{ role: 'user', content: 'x' }] },
          { headers: { 'x-fake-status': String(status) } }));
        assert.ok(e instanceof OpenAI.APIError, `${status}: ${e}`);
        assert.ok(e instanceof cls, `${status}: ${e.constructor.name}`);
        assert.equal(e.status, status);
        assert.match(e.message, /fake (anthropic|upstream) error/);
        assert.equal(typeof e.error?.message, 'string', 'the error object reaches the SDK');
      }
      // A key the provider refuses.
      const bad = await thrown(() => sdk(sl, route, 'invalid-key').chat.completions.create({ model: route === '/claude' ? CLAUDE : 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }));
      assert.ok(bad instanceof OpenAI.AuthenticationError, String(bad));
      assert.equal(bad.status, 401);
      // The gateway's own 400.
      const own = await thrown(() => sdk(sl, route).chat.completions.create({ model: 'some-other-model', messages: [{ role: 'user', content: 'x' }] }));
      assert.ok(own instanceof OpenAI.BadRequestError, String(own));
      assert.equal(own.error?.type, 'invalid_request_error');
    });
  }

  test('an upstream that hangs past read_timeout → APIError 504', async () => {
    const t0 = Date.now();
    const e = await thrown(() => sdk(sl, '/slow').chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-hang': '1' } }));
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.equal(e.status, 504);
    assert.ok(Date.now() - t0 < 5000);
  });

  test('errors on a stream request surface as APIError too', async () => {
    const e = await thrown(async () => {
      const s = await sdk(sl, '/claude').chat.completions.create({ model: CLAUDE, stream: true, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-status': '429' } });
      for await (const _ of s);
    });
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.status, 429);
  });

  test('a stream that breaks raises in the SDK instead of hanging', async () => {
    const t0 = Date.now();
    const e = await thrown(async () => {
      const s = await sdk(sl, '/claude').chat.completions.create({ model: CLAUDE, stream: true, messages: [{ role: 'user', content: 'a b c d e f g h' }] },
        { headers: { 'x-fake-reset-after-bytes': '900' } });
      for await (const _ of s);
    });
    assert.ok(Date.now() - t0 < 5000);
    assert.ok(e instanceof Error, String(e));
  });
});

describe('the issue\'s example config', { skip: binaryMissing() }, () => {
  test('loads unchanged (sluice -t)', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'kong.yml');
    writeFileSync(file, ISSUE_EXAMPLE);
    const r = await runSluice(['-t', '-c', file], { env: { ANTHROPIC_API_KEY: ENV_KEY } });
    assert.equal(r.code, 0, `sluice -t: ${r.stdout}${r.stderr}`);
    assert.ok(!(r.stdout + r.stderr).includes(ENV_KEY), 'key not printed');
  });

  test('starts unchanged and answers an SDK client with an OpenAI-shaped reply or error', async () => {
    // No network here: the real Anthropic API cannot answer, but the daemon
    // must start with the config as written and answer the SDK sensibly.
    const sl = await startSluice({ config: ISSUE_EXAMPLE, env: { ANTHROPIC_API_KEY: ENV_KEY } });
    try {
      const client = new OpenAI({ apiKey: 'unused', baseURL: `${sl.proxyUrl}/ai-gateway/chat`, timeout: 20000, maxRetries: 0 });
      const e = await thrown(() => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }));
      assert.ok(e instanceof OpenAI.BadRequestError, `a contradicting model is refused before any network: ${e}`);
      assert.match(e.message, /claude-3-5-sonnet-20241022/);
    } finally {
      await sl.stop();
    }
    assert.ok(!sl.stderr().includes(ENV_KEY), 'key not logged');
  });

  test('with upstream_url added, works end to end with the env key injected', async () => {
    const fake = await startFake();
    const sl = await startSluice({ config: exampleAtFake(fake.url), env: { ANTHROPIC_API_KEY: ENV_KEY } });
    try {
      const client = new OpenAI({ apiKey: 'sk-client-not-forwarded', baseURL: `${sl.proxyUrl}/ai-gateway/chat`, timeout: 10000, maxRetries: 0 });
      const mark = sl.logMark();
      const m = marker('ex');
      const raw = await client.chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: `hi ${m}` }] }).withResponse();
      const c = raw.data;
      assert.equal(c.choices[0].message.content, `echo: hi ${m}`);
      assert.equal(c.model, CLAUDE);
      assert.equal(raw.response.headers.get('x-sluice-llm-model'), `anthropic/${CLAUDE}`);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.headers['x-api-key'], ENV_KEY, '$ANTHROPIC_API_KEY from the daemon\'s env');
      assert.equal(rec.headers.authorization, undefined, 'client key not forwarded');
      assert.equal(rec.headers['anthropic-version'], '2023-06-01');
      const { fields: f } = await accessLog(sl, raw.response.headers.get('x-sluice-request-id'), { from: mark });
      assert.equal(f['ai.provider'], 'anthropic');
      assert.equal(Number(f['ai.total_tokens']), c.usage.total_tokens);
      assert.ok(f['ai.payload.request'].includes(m));
      assert.ok(f['ai.payload.response'].includes(m));
      // Streamed too.
      const s = await client.chat.completions.create({ model: CLAUDE, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'p q' }] });
      let text = '';
      let usage = null;
      for await (const ch of s) {
        text += ch.choices[0]?.delta?.content ?? '';
        if (ch.usage) usage = ch.usage;
      }
      assert.equal(text, 'echo: p q');
      assert.equal(usage.total_tokens, 5);
    } finally {
      await sl.stop();
      await fake.close();
    }
    assert.ok(!sl.stderr().includes(ENV_KEY), 'key not logged');
  });
});
