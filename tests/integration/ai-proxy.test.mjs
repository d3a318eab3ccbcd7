// ai-proxy through the real daemon, non-streaming: every provider (openai,
// azure, anthropic, mistral openai/ollama, llama2 raw/openai/ollama, an
// OpenAI-compatible server) against the fake providers via
// model.options.upstream_url. Each case checks what the client got (OpenAI's
// exact shape) AND what the fake provider received (path, headers, body
// translation), plus credentials, errors, statistics and log lines.
//
//   SLUICE_BIN=build-h8/sluice node --test tests/integration/ai-proxy.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { binaryMissing, closedPort, configText, listenLocal, runSluice, startSluice, tempDir } from './lib/harness.mjs';
import {
  accessLog, aiRoute, assertChatCompletion, assertOpenaiError, assertUsage, marker, postJson, receivedWith,
  requestIdOf,
} from './lib/ai-helpers.mjs';

const SECRETS = {
  openai: 'sk-config-SECRET-openai-7f3a',
  anthropic: 'sk-ant-SECRET-config-91bc',
  azure: 'azure-SECRET-key-55d2',
  query: 'q-SECRET-param-3e1d',
  body: 'b-SECRET-param-8a0f',
  client: 'sk-client-SECRET-c0ffee',
};

const CLAUDE = 'claude-3-5-sonnet-20241022';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
};

// A tiny provider stand-in for replies the shared fakes cannot produce
// (Anthropic's "refusal" stop reason, wrong-shaped 200s): answers every
// request with the reply its path names.
function startCanned(replies) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const r = replies[new URL(req.url, 'http://x').pathname] || { status: 404, body: { error: { message: 'no canned reply' } } };
      const body = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
      res.writeHead(r.status, { 'content-type': r.type || 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return listenLocal(server);
}

function routes(F, C, refused) {
  const chat = (provider, name, options, extra = {}) => ({ route_type: 'llm/v1/chat', model: { provider, ...(name ? { name } : {}), options }, ...extra });
  const stats = { logging: { log_statistics: true } };
  return [
    // OpenAI, no auth configured: the client's key passes through.
    aiRoute('openai', '/openai', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions`, input_cost: 2.5, output_cost: 10 }, stats)),
    aiRoute('openai-auth', '/openai-auth', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions` },
      { auth: { header_name: 'Authorization', header_value: `Bearer ${SECRETS.openai}` }, ...stats })),
    aiRoute('openai-override', '/openai-override', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions` },
      { auth: { header_name: 'Authorization', header_value: `Bearer ${SECRETS.openai}`, allow_override: true } })),
    aiRoute('openai-opts', '/openai-opts', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions`, max_tokens: 3, temperature: 0.25, top_p: 0.5 })),
    aiRoute('openai-anymodel', '/openai-anymodel', chat('openai', null, { upstream_url: `${F}/v1/chat/completions` })),
    aiRoute('openai-tmpl', '/openai-tmpl', chat('openai', '$(headers.x-model)', { upstream_url: `${F}/v1/chat/completions` })),
    aiRoute('openai-completions', '/openai-completions', { route_type: 'llm/v1/completions', model: { provider: 'openai', name: 'gpt-3.5-turbo-instruct', options: { upstream_url: `${F}/v1/completions` } } }),
    aiRoute('openai-embeddings', '/openai-embeddings', { route_type: 'llm/v1/embeddings', model: { provider: 'openai', name: 'text-embedding-3-small', options: { upstream_url: `${F}/v1/embeddings` } } }),
    aiRoute('openai-query', '/openai-query', chat('openai', 'gpt-4o', { upstream_url: `${F}/noauth/v1/chat/completions` },
      { auth: { param_name: 'key', param_value: SECRETS.query, param_location: 'query' }, ...stats })),
    aiRoute('openai-body', '/openai-body', chat('openai', 'gpt-4o', { upstream_url: `${F}/noauth/v1/chat/completions` },
      { auth: { param_name: 'api_key', param_value: SECRETS.body, param_location: 'body' } })),
    aiRoute('compat', '/compat', chat('openai', 'qwen2.5-7b-instruct', { upstream_url: `${F}/noauth/v1/chat/completions` })),
    aiRoute('deny', '/deny', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions` }, { response_streaming: 'deny' })),
    aiRoute('logged', '/logged', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions`, input_cost: 1000000, output_cost: 2000000 },
      { logging: { log_statistics: true, log_payloads: true } })),
    aiRoute('nolog', '/nolog', chat('openai', 'gpt-4o', { upstream_url: `${F}/v1/chat/completions` }, { model_name_header: false })),
    aiRoute('refused', '/refused', chat('openai', 'gpt-4o', { upstream_url: `http://127.0.0.1:${refused}/v1/chat/completions` })),

    // Azure: api-key header, api-version query, deployment's model.
    aiRoute('azure', '/azure', chat('azure', 'gpt-4o', { upstream_url: `${F}/openai/deployments/dep-4o/chat/completions`, azure_api_version: '2024-02-01' },
      { auth: { header_name: 'api-key', header_value: SECRETS.azure } })),
    aiRoute('azure-tmpl', '/azure-tmpl', chat('azure', 'gpt-4o', { upstream_url: `${F}/openai/deployments/$(query_params.dep)/chat/completions` },
      { auth: { header_name: 'api-key', header_value: SECRETS.azure } })),
    aiRoute('azure-passthrough', '/azure-passthrough', chat('azure', 'gpt-4o', { upstream_url: `${F}/openai/deployments/dep-4o/chat/completions` })),
    aiRoute('azure-embeddings', '/azure-embeddings', { route_type: 'llm/v1/embeddings', auth: { header_name: 'api-key', header_value: SECRETS.azure },
      model: { provider: 'azure', name: 'text-embedding-3-small', options: { upstream_url: `${F}/openai/deployments/emb/embeddings` } } }),

    // Anthropic.
    aiRoute('anthropic', '/anthropic', chat('anthropic', CLAUDE, { upstream_url: `${F}/v1/messages`, input_cost: 3, output_cost: 15 },
      { auth: { header_name: 'x-api-key', header_value: SECRETS.anthropic }, ...stats })),
    aiRoute('anthropic-passthrough', '/anthropic-passthrough', chat('anthropic', CLAUDE, { upstream_url: `${F}/v1/messages` })),
    aiRoute('anthropic-opts', '/anthropic-opts', chat('anthropic', CLAUDE, { upstream_url: `${F}/v1/messages`, max_tokens: 2, temperature: 0.1, top_p: 0.9, top_k: 7, anthropic_version: '2024-10-22' },
      { auth: { header_name: 'x-api-key', header_value: SECRETS.anthropic } })),
    aiRoute('anthropic-completions', '/anthropic-completions', { route_type: 'llm/v1/completions', auth: { header_name: 'x-api-key', header_value: SECRETS.anthropic },
      model: { provider: 'anthropic', name: 'claude-2.1', options: { upstream_url: `${F}/v1/complete` } } }),
    aiRoute('anthropic-canned', '/anthropic-canned', chat('anthropic', CLAUDE, { upstream_url: `${C}/refusal` })),
    aiRoute('anthropic-badshape', '/anthropic-badshape', chat('anthropic', CLAUDE, { upstream_url: `${C}/badshape` })),
    aiRoute('anthropic-html', '/anthropic-html', chat('anthropic', CLAUDE, { upstream_url: `${C}/html503` })),

    // Mistral, both formats.
    aiRoute('mistral', '/mistral', chat('mistral', 'mistral-large-latest', { upstream_url: `${F}/v1/chat/completions` })),
    aiRoute('mistral-ollama', '/mistral-ollama', chat('mistral', 'mistral:7b', { upstream_url: `${F}/api/chat`, mistral_format: 'ollama', max_tokens: 50 })),
    aiRoute('mistral-embeddings', '/mistral-embeddings', { route_type: 'llm/v1/embeddings', model: { provider: 'mistral', name: 'mistral-embed', options: { upstream_url: `${F}/v1/embeddings` } } }),

    // preserve: bodies untouched both ways, usage still read.
    aiRoute('preserve-openai', '/preserve-openai', { route_type: 'preserve', model: { provider: 'openai', options: { upstream_url: `${F}/v1/chat/completions`, upstream_path: '/v1/chat/completions', input_cost: 1000000 } }, ...stats }),
    aiRoute('preserve-anthropic', '/preserve-anthropic', { route_type: 'preserve', auth: { header_name: 'x-api-key', header_value: SECRETS.anthropic },
      model: { provider: 'anthropic', options: { upstream_url: `${F}/v1/messages`, upstream_path: '/v1/messages' } }, logging: { log_statistics: true, log_payloads: true } }),
    aiRoute('preserve-ollama', '/preserve-ollama', { route_type: 'preserve', model: { provider: 'mistral', options: { upstream_url: `${F}/api/chat`, upstream_path: '/api/chat', mistral_format: 'ollama' } }, ...stats }),

    // llama2, three formats.
    aiRoute('llama-raw', '/llama-raw', chat('llama2', 'llama-2-7b-chat', { upstream_url: `${F}/llama2/raw`, llama2_format: 'raw', max_tokens: 64, temperature: 0.3, top_k: 40 })),
    aiRoute('llama-raw-completions', '/llama-raw-completions', { route_type: 'llm/v1/completions',
      model: { provider: 'llama2', name: 'llama-2-7b', options: { upstream_url: `${F}/llama2/raw`, llama2_format: 'raw' } } }),
    aiRoute('llama-openai', '/llama-openai', chat('llama2', 'llama-2-7b-chat', { upstream_url: `${F}/noauth/v1/chat/completions`, llama2_format: 'openai' })),
    aiRoute('llama-ollama', '/llama-ollama', chat('llama2', 'llama2:7b', { upstream_url: `${F}/api/chat`, llama2_format: 'ollama' })),
    aiRoute('llama-ollama-completions', '/llama-ollama-completions', { route_type: 'llm/v1/completions',
      model: { provider: 'llama2', name: 'llama2:7b', options: { upstream_url: `${F}/api/generate`, llama2_format: 'ollama' } } }),
  ];
}

const userMsg = (text) => [{ role: 'user', content: text }];
const bearer = (k = SECRETS.client) => ({ authorization: `Bearer ${k}` });

describe('ai-proxy through the daemon (non-streaming)', { skip: binaryMissing() }, () => {
  let fake;
  let canned;
  let sl;
  let port;
  before(async () => {
    fake = await startFake();
    canned = await startCanned({
      '/refusal': { status: 200, body: { id: 'msg_refused01', type: 'message', role: 'assistant', model: CLAUDE, content: [{ type: 'text', text: 'I cannot help.' }], stop_reason: 'refusal', usage: { input_tokens: 5, output_tokens: 4, cache_read_input_tokens: 3, cache_creation_input_tokens: 2 } } },
      '/badshape': { status: 200, body: { id: 'msg_x', type: 'message', role: 'assistant', stop_reason: 'end_turn' } },
      '/html503': { status: 503, type: 'text/html', body: '<html><body>Service Unavailable</body></html>' },
    });
    const F = fake.url;
    const slow = (provider, name, upstream) => aiRoute(`slow-${provider}`, `/slow-${provider}`, { route_type: 'llm/v1/chat', model: { provider, name, options: { upstream_url: `${F}${upstream}` } } });
    sl = await startSluice({
      args: ['--log-level', 'debug'], // the secret check sees every line
      config: {
        services: [
          { name: 'ai', url: F, routes: routes(F, canned.url, await closedPort()) },
          { name: 'ai-slow', url: F, read_timeout: 1000, routes: [slow('openai', 'gpt-4o', '/v1/chat/completions'), slow('anthropic', CLAUDE, '/v1/messages')] },
        ],
      },
    });
    port = sl.proxyPort;
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
    await canned?.close();
  });

  describe('openai', () => {
    test('chat: exact OpenAI reply, the client key passed through, model header', async () => {
      const m = marker('oa');
      const r = await postJson(port, '/openai', { model: 'gpt-4o', messages: userMsg(`hello ${m}`) }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      const c = assertChatCompletion(j, { model: 'gpt-4o', finish: 'stop' });
      assert.equal(c.message.content, `echo: hello ${m}`);
      assert.equal(j.usage.prompt_tokens, 2);
      assert.equal(r.headers['x-sluice-llm-model'], 'openai/gpt-4o');
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/v1/chat/completions');
      assert.equal(rec.method, 'POST');
      assert.equal(rec.headers.authorization, `Bearer ${SECRETS.client}`);
      assert.equal(rec.headers['content-type'], 'application/json');
      assert.equal(rec.json.model, 'gpt-4o');
      assert.equal(rec.json.stream, false);
      assert.deepEqual(rec.json.messages, userMsg(`hello ${m}`));
    });

    test('chat: tool call round trip keeps tools, tool_choice and tool messages', async () => {
      const r = await postJson(port, '/openai', { model: 'gpt-4o', messages: userMsg('please call get_weather'), tools: [WEATHER_TOOL], tool_choice: 'auto' }, { headers: bearer() });
      const j = r.json();
      const c = assertChatCompletion(j, { finish: 'tool_calls' });
      assert.equal(c.message.tool_calls.length, 1);
      const tc = c.message.tool_calls[0];
      assert.equal(tc.type, 'function');
      assert.equal(tc.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'city_value', days: 42 });
      const rec = fake.requests.at(-1);
      assert.deepEqual(rec.json.tools, [WEATHER_TOOL]);
      assert.equal(rec.json.tool_choice, 'auto');
    });

    test('chat: max_tokens → finish_reason length', async () => {
      const r = await postJson(port, '/openai', { model: 'gpt-4o', max_tokens: 2, messages: userMsg('one two three four') }, { headers: bearer() });
      const c = assertChatCompletion(r.json(), { finish: 'length' });
      assert.equal(c.message.content, 'echo: one');
    });

    test('plugin options override the client (max_tokens, temperature, top_p); max_completion_tokens keeps its name', async () => {
      const m = marker('opt');
      const r = await postJson(port, '/openai-opts', { model: 'gpt-4o', max_tokens: 100, temperature: 1.5, top_p: 1, messages: userMsg(`a b c d ${m}`) }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().choices[0].finish_reason, 'length');
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.max_tokens, 3);
      assert.equal(rec.json.temperature, 0.25);
      assert.equal(rec.json.top_p, 0.5);
      const m2 = marker('opt');
      await postJson(port, '/openai-opts', { model: 'gpt-4o', max_completion_tokens: 100, messages: userMsg(m2) }, { headers: bearer() });
      const rec2 = await receivedWith(fake, m2);
      assert.equal(rec2.json.max_completion_tokens, 3);
      assert.equal(rec2.json.max_tokens, undefined);
    });

    test('no model.name: the client\'s model is used; without one either → 400', async () => {
      const m = marker('any');
      const r = await postJson(port, '/openai-anymodel', { model: 'gpt-4o-mini', messages: userMsg(m) }, { headers: bearer() });
      assert.equal(r.json().model, 'gpt-4o-mini');
      assert.equal((await receivedWith(fake, m)).json.model, 'gpt-4o-mini');
      const bad = await postJson(port, '/openai-anymodel', { messages: userMsg('x') }, { headers: bearer() });
      assertOpenaiError(bad, 400, { type: 'invalid_request_error', message: /model/ });
    });

    test('$(headers.x-model) template in model.name', async () => {
      const m = marker('tm');
      const r = await postJson(port, '/openai-tmpl', { messages: userMsg(m) }, { headers: { ...bearer(), 'x-model': 'gpt-4.1-nano' } });
      assert.equal(r.status, 200, r.text);
      assert.equal((await receivedWith(fake, m)).json.model, 'gpt-4.1-nano');
      const missing = await postJson(port, '/openai-tmpl', { messages: userMsg('x') }, { headers: bearer() });
      assertOpenaiError(missing, 400, { type: 'invalid_request_error', message: /x-model/ });
    });

    test('completions and embeddings', async () => {
      const m = marker('cmp');
      const r = await postJson(port, '/openai-completions', { prompt: `say ${m}`, max_tokens: 10 }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      assert.equal(j.object, 'text_completion');
      assert.equal(j.choices[0].text, `echo: say ${m}`);
      assert.equal(j.choices[0].finish_reason, 'stop');
      assertUsage(j.usage);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/v1/completions');
      assert.equal(rec.json.model, 'gpt-3.5-turbo-instruct');

      const e = await postJson(port, '/openai-embeddings', { input: ['alpha beta', 'gamma'], dimensions: 4 }, { headers: bearer() });
      assert.equal(e.status, 200, e.text);
      const ej = e.json();
      assert.equal(ej.object, 'list');
      assert.equal(ej.data.length, 2);
      assert.equal(ej.data[1].index, 1);
      assert.equal(ej.data[0].embedding.length, 4);
      assert.equal(ej.model, 'text-embedding-3-small');
      assert.equal(ej.usage.prompt_tokens, 3);
      const erec = fake.requests.at(-1);
      assert.equal(erec.path, '/v1/embeddings');
      assert.equal(erec.json.model, 'text-embedding-3-small');
      assert.equal(erec.json.stream, undefined, 'no stream flag on embeddings');
    });

    test('OpenAI-compatible server through upstream_url (no key at all)', async () => {
      const m = marker('cp');
      const r = await postJson(port, '/compat', { messages: userMsg(m) });
      assert.equal(r.status, 200, r.text);
      assertChatCompletion(r.json(), { model: 'qwen2.5-7b-instruct', finish: 'stop' });
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/noauth/v1/chat/completions');
      assert.equal(rec.headers.authorization, undefined);
    });
  });

  describe('credentials', () => {
    test('configured header replaces the client\'s key (not forwarded without allow_override)', async () => {
      const m = marker('ca');
      const r = await postJson(port, '/openai-auth', { model: 'gpt-4o', messages: userMsg(m) }, { headers: { ...bearer(), 'x-api-key': 'client-xkey', 'api-key': 'client-akey' } });
      assert.equal(r.status, 200, r.text);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.headers.authorization, `Bearer ${SECRETS.openai}`);
      assert.equal(rec.headers['x-api-key'], undefined);
      assert.equal(rec.headers['api-key'], undefined);
      assert.ok(!JSON.stringify(rec.rawHeaders).includes(SECRETS.client), 'client key nowhere in upstream headers');
    });

    test('allow_override: the client\'s own key wins; without one the configured key is used', async () => {
      const m = marker('ov');
      await postJson(port, '/openai-override', { model: 'gpt-4o', messages: userMsg(m) }, { headers: bearer() });
      assert.equal((await receivedWith(fake, m)).headers.authorization, `Bearer ${SECRETS.client}`);
      const m2 = marker('ov');
      await postJson(port, '/openai-override', { model: 'gpt-4o', messages: userMsg(m2) });
      assert.equal((await receivedWith(fake, m2)).headers.authorization, `Bearer ${SECRETS.openai}`);
    });

    test('query parameter auth', async () => {
      const m = marker('q');
      const r = await postJson(port, '/openai-query', { model: 'gpt-4o', messages: userMsg(m) }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.query.key, SECRETS.query);
      assert.equal(rec.headers.authorization, undefined, 'client key dropped');
    });

    test('body parameter auth', async () => {
      const m = marker('b');
      const r = await postJson(port, '/openai-body', { model: 'gpt-4o', messages: userMsg(m), api_key: 'client-body-key' }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.api_key, SECRETS.body);
      assert.equal(rec.headers.authorization, undefined);
    });

    test('no auth: the client\'s Bearer key becomes api-key (azure) and x-api-key (anthropic)', async () => {
      const m = marker('az');
      const r = await postJson(port, '/azure-passthrough', { messages: userMsg(m) }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.headers['api-key'], SECRETS.client);
      assert.equal(rec.headers.authorization, undefined);
      const m2 = marker('an');
      const r2 = await postJson(port, '/anthropic-passthrough', { messages: userMsg(m2) }, { headers: bearer() });
      assert.equal(r2.status, 200, r2.text);
      const rec2 = await receivedWith(fake, m2);
      assert.equal(rec2.headers['x-api-key'], SECRETS.client);
      assert.equal(rec2.headers.authorization, undefined);
    });

    // At --log-level debug the core turns on CURLOPT_VERBOSE (src/proxy.c,
    // setup_transfer), which writes the upstream request headers, with the
    // injected keys, to stderr: this test fails until that is fixed in the core.
    test('no secret in any log line, even at --log-level debug', async () => {
      // Requests on routes with every kind of configured secret, some failing.
      await postJson(port, '/openai-auth', { model: 'gpt-4o', messages: userMsg('x') }, { headers: { ...bearer(), 'x-fake-status': '401' } });
      await postJson(port, '/openai-query', { model: 'gpt-4o', messages: userMsg('x') });
      await postJson(port, '/openai-body', { model: 'gpt-4o', messages: userMsg('x') });
      await postJson(port, '/anthropic', { messages: userMsg('x') });
      await postJson(port, '/azure', { messages: userMsg('x') });
      const all = sl.stderr();
      for (const [k, s] of Object.entries(SECRETS)) assert.ok(!all.includes(s), `${k} secret in the log:\n${all.split('\n').filter((l) => l.includes(s)).join('\n')}`);
    });
  });

  describe('azure', () => {
    test('chat: deployment URL, api-version, api-key, deployment\'s model answers', async () => {
      const m = marker('az');
      const r = await postJson(port, '/azure', { messages: [{ role: 'system', content: 'sys' }, ...userMsg(m)] }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      assertChatCompletion(r.json(), { model: 'dep-4o', finish: 'stop' });
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/openai/deployments/dep-4o/chat/completions');
      assert.equal(rec.query['api-version'], '2024-02-01');
      assert.equal(rec.headers['api-key'], SECRETS.azure);
      assert.equal(rec.headers.authorization, undefined);
      assert.equal(r.headers['x-sluice-llm-model'], 'azure/dep-4o', 'the header names the model that answered');
    });

    test('$(query_params.dep) template in upstream_url', async () => {
      const m = marker('qt');
      const r = await postJson(port, '/azure-tmpl?dep=dep-from-query', { messages: userMsg(m) });
      assert.equal(r.status, 200, r.text);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/openai/deployments/dep-from-query/chat/completions');
      const missing = await postJson(port, '/azure-tmpl', { messages: userMsg('x') });
      assertOpenaiError(missing, 400, { type: 'invalid_request_error', message: /query_params\.dep/ });
    });

    test('embeddings', async () => {
      const r = await postJson(port, '/azure-embeddings', { input: 'hello world' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().data.length, 1);
      const rec = fake.requests.at(-1);
      assert.equal(rec.path, '/openai/deployments/emb/embeddings');
      assert.equal(rec.query['api-version'], '2023-05-15', 'default api-version');
    });

    test('provider error {"error":{"code","message"}} keeps its status as an OpenAI error', async () => {
      const r = await postJson(port, '/azure', { messages: userMsg('x') }, { headers: { 'x-fake-status': '429' } });
      const e = assertOpenaiError(r, 429, { message: /fake azure error 429/ });
      assert.equal(e.code, '429');
    });
  });

  describe('anthropic', () => {
    test('chat: reply in OpenAI\'s shape, system/stop/temperature/max_tokens translated, headers', async () => {
      const m = marker('an');
      const r = await postJson(port, '/anthropic', {
        model: CLAUDE,
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'developer', content: 'Second rule.' },
          { role: 'user', content: `hello ${m}` },
        ],
        stop: 'NEVER', temperature: 0.7, max_tokens: 50, user: 'user-42',
      }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      const c = assertChatCompletion(j, { model: CLAUDE, finish: 'stop' });
      assert.match(j.id, /^msg_/);
      assert.equal(c.message.content, `echo: hello ${m}`);
      assert.equal(j.usage.prompt_tokens, 7, 'system (5 words) + user (2)');
      assert.equal(j.usage.prompt_tokens_details.cached_tokens, 0);
      assert.equal(r.headers['x-sluice-llm-model'], `anthropic/${CLAUDE}`);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/v1/messages');
      assert.equal(rec.headers['anthropic-version'], '2023-06-01');
      assert.equal(rec.headers['x-api-key'], SECRETS.anthropic);
      assert.equal(rec.headers.authorization, undefined, 'client bearer not forwarded');
      assert.equal(rec.json.system, 'You are terse.\nSecond rule.');
      assert.deepEqual(rec.json.messages, userMsg(`hello ${m}`));
      assert.deepEqual(rec.json.stop_sequences, ['NEVER']);
      assert.equal(rec.json.temperature, 0.7);
      assert.equal(rec.json.max_tokens, 50);
      assert.deepEqual(rec.json.metadata, { user_id: 'user-42' });
      assert.equal(rec.json.stream, false);
    });

    test('stop sequence hit → stop; max_tokens hit → length; default max_tokens 4096', async () => {
      const r = await postJson(port, '/anthropic', { messages: userMsg('alpha STOPHERE beta'), stop: ['STOPHERE'] });
      const c = assertChatCompletion(r.json(), { finish: 'stop' });
      assert.equal(c.message.content, 'echo: alpha ');
      const r2 = await postJson(port, '/anthropic', { messages: userMsg('one two three'), max_completion_tokens: 2 });
      const c2 = assertChatCompletion(r2.json(), { finish: 'length' });
      assert.equal(c2.message.content, 'echo: one');
      const m = marker('mt');
      await postJson(port, '/anthropic', { messages: userMsg(m) });
      assert.equal((await receivedWith(fake, m)).json.max_tokens, 4096);
    });

    test('images: data URI → base64 block, URL → url block', async () => {
      const m = marker('img');
      const r = await postJson(port, '/anthropic', {
        messages: [{ role: 'user', content: [
          { type: 'text', text: `look ${m}` },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'low' } },
        ] }],
      });
      assert.equal(r.status, 200, r.text);
      const rec = await receivedWith(fake, m);
      assert.deepEqual(rec.json.messages[0].content, [
        { type: 'text', text: `look ${m}` },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
      ]);
    });

    test('response_format json_schema → forced json_response tool; its input is message.content', async () => {
      // The fake calls a tool when the user says "call <name>", with
      // arguments made from the tool's schema, after a text preamble (which
      // real Anthropic omits under a forced tool_choice and we drop).
      const m = marker('rf');
      const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false };
      const r = await postJson(port, '/anthropic', {
        messages: userMsg(`${m} call json_response`),
        response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } },
      });
      assert.equal(r.status, 200, r.text);
      const c = assertChatCompletion(r.json(), { finish: 'stop' });
      assert.equal(c.message.tool_calls, undefined, 'no tool_calls');
      assert.deepEqual(JSON.parse(c.message.content), { name: 'name_value', age: 42 });
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.response_format, undefined, 'not sent as is');
      assert.equal(rec.json.tools.length, 1);
      assert.equal(rec.json.tools[0].name, 'json_response');
      assert.deepEqual(rec.json.tools[0].input_schema, schema);
      assert.match(rec.json.tools[0].description, /person/);
      assert.deepEqual(rec.json.tool_choice, { type: 'tool', name: 'json_response' });

      const bad = await postJson(port, '/anthropic', { messages: userMsg('x'), response_format: { type: 'json_schema', json_schema: { name: 'l', schema: { type: 'array' } } } });
      assertOpenaiError(bad, 400, { type: 'invalid_request_error', message: /response_format/ });
    });

    test('tools: definitions, tool_choice, tool_use reply → tool_calls with content', async () => {
      const m = marker('tl');
      const r = await postJson(port, '/anthropic', {
        messages: userMsg(`${m} call get_weather`), tools: [WEATHER_TOOL, { type: 'function', function: { name: 'noop' } }],
        tool_choice: 'required', parallel_tool_calls: false,
      });
      assert.equal(r.status, 200, r.text);
      const c = assertChatCompletion(r.json(), { finish: 'tool_calls' });
      assert.equal(c.message.content, 'I will call get_weather.');
      assert.equal(c.message.tool_calls.length, 1);
      const tc = c.message.tool_calls[0];
      assert.match(tc.id, /^toolu_/);
      assert.equal(tc.type, 'function');
      assert.equal(tc.function.name, 'get_weather');
      assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'city_value', days: 42 });
      const rec = await receivedWith(fake, m);
      assert.deepEqual(rec.json.tools, [
        { name: 'get_weather', description: 'Weather of a city', input_schema: WEATHER_TOOL.function.parameters },
        { name: 'noop', input_schema: { type: 'object' } },
      ]);
      assert.deepEqual(rec.json.tool_choice, { type: 'any', disable_parallel_tool_use: true });

      const fm = marker('tc');
      await postJson(port, '/anthropic', { messages: userMsg(fm), tools: [WEATHER_TOOL], tool_choice: { type: 'function', function: { name: 'get_weather' } } });
      assert.deepEqual((await receivedWith(fake, fm)).json.tool_choice, { type: 'tool', name: 'get_weather' });
    });

    test('assistant tool_calls and tool results → tool_use / merged tool_result blocks', async () => {
      const m = marker('tr');
      const r = await postJson(port, '/anthropic', {
        messages: [
          { role: 'user', content: 'weather in two cities' },
          { role: 'assistant', content: null, tool_calls: [
            { id: 'toolu_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'toolu_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
          ] },
          { role: 'tool', tool_call_id: 'toolu_a', content: `sunny ${m}` },
          { role: 'tool', tool_call_id: 'toolu_b', content: 'rain' },
        ],
        tools: [WEATHER_TOOL],
      });
      assert.equal(r.status, 200, r.text);
      const c = assertChatCompletion(r.json(), { finish: 'stop' });
      assert.equal(c.message.content, `echo: tool result sunny ${m}`);
      const rec = await receivedWith(fake, m);
      assert.deepEqual(rec.json.messages, [
        { role: 'user', content: 'weather in two cities' },
        { role: 'assistant', content: [
          { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_b', name: 'get_weather', input: { city: 'Oslo' } },
        ] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 'toolu_a', content: `sunny ${m}` },
          { type: 'tool_result', tool_use_id: 'toolu_b', content: 'rain' },
        ] },
      ]);
      const bad = await postJson(port, '/anthropic', { messages: [{ role: 'user', content: 'x' },
        { role: 'assistant', tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '[1,2]' } }] }] });
      assertOpenaiError(bad, 400, { type: 'invalid_request_error' });
    });

    test('plugin options override the client; anthropic_version option', async () => {
      const m = marker('ao');
      const r = await postJson(port, '/anthropic-opts', { messages: userMsg(`x y z ${m}`), max_tokens: 500, temperature: 1, top_p: 0.1, top_k: 1 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().choices[0].finish_reason, 'length');
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.max_tokens, 2);
      assert.equal(rec.json.temperature, 0.1);
      assert.equal(rec.json.top_p, 0.9);
      assert.equal(rec.json.top_k, 7);
      assert.equal(rec.headers['anthropic-version'], '2024-10-22');
    });

    test('n > 1 → 400', async () => {
      const r = await postJson(port, '/anthropic', { messages: userMsg('x'), n: 2 });
      assertOpenaiError(r, 400, { type: 'invalid_request_error', message: /n > 1|several choices/ });
    });

    test('legacy completions → /v1/complete with the Human/Assistant prompt', async () => {
      const m = marker('ac');
      const r = await postJson(port, '/anthropic-completions', { prompt: `tell ${m}`, max_tokens: 20 });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      assert.equal(j.object, 'text_completion');
      assert.equal(j.model, 'claude-2.1');
      assert.equal(j.choices[0].text.trim(), `echo: tell ${m}`);
      assert.equal(j.choices[0].finish_reason, 'stop');
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/v1/complete');
      assert.equal(rec.json.prompt, `\n\nHuman: tell ${m}\n\nAssistant:`);
      assert.equal(rec.json.max_tokens_to_sample, 20);
    });

    test('refusal → content_filter; cached tokens counted in the prompt', async () => {
      const r = await postJson(port, '/anthropic-canned', { messages: userMsg('x') });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      assertChatCompletion(j, { finish: 'content_filter' });
      assert.equal(j.id, 'msg_refused01');
      assert.deepEqual(j.usage, { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, prompt_tokens_details: { cached_tokens: 3 } });
    });

    test('provider errors: 401/429/529 keep status and message as OpenAI errors; HTML error body', async () => {
      for (const [status, type] of [[401, 'authentication_error'], [429, 'rate_limit_error'], [529, 'overloaded_error'], [400, 'invalid_request_error']]) {
        const r = await postJson(port, '/anthropic', { messages: userMsg('x') }, { headers: { 'x-fake-status': String(status) } });
        assertOpenaiError(r, status, { type, message: `fake anthropic error ${status}` });
      }
      const bad = await postJson(port, '/anthropic-passthrough', { messages: userMsg('x') }, { headers: bearer('invalid-key') });
      assertOpenaiError(bad, 401, { message: 'invalid x-api-key' });
      const html = await postJson(port, '/anthropic-html', { messages: userMsg('x') });
      assertOpenaiError(html, 503, { message: 'upstream returned HTTP 503' });
    });
  });

  describe('mistral', () => {
    test('openai format', async () => {
      const m = marker('mi');
      const r = await postJson(port, '/mistral', { messages: userMsg(m), temperature: 0.3 }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      assertChatCompletion(r.json(), { model: 'mistral-large-latest', finish: 'stop' });
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/v1/chat/completions');
      assert.equal(rec.headers.authorization, `Bearer ${SECRETS.client}`);
      assert.equal(rec.json.model, 'mistral-large-latest');
      assert.equal(rec.json.temperature, 0.3);
    });

    test('embeddings', async () => {
      const r = await postJson(port, '/mistral-embeddings', { input: 'one two' }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().model, 'mistral-embed');
      assert.equal(r.json().data[0].object, 'embedding');
    });

    test('ollama format: /api/chat body, options, usage from eval counts', async () => {
      const m = marker('mo');
      const r = await postJson(port, '/mistral-ollama', {
        messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: [{ type: 'text', text: `hi ${m}` }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }],
        temperature: 0.4, stop: ['END'], seed: 7, max_tokens: 999,
      }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      const c = assertChatCompletion(j, { model: 'mistral:7b', finish: 'stop' });
      assert.equal(c.message.content, `echo: hi ${m}`);
      assert.equal(j.usage.prompt_tokens, 3);
      assert.equal(j.usage.completion_tokens, 3);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/api/chat');
      assert.equal(rec.json.stream, false);
      assert.equal(rec.json.model, 'mistral:7b');
      assert.deepEqual(rec.json.messages[1], { role: 'user', content: `hi ${m}`, images: [PNG] });
      assert.equal(rec.json.options.num_predict, 50, 'option max_tokens wins');
      assert.equal(rec.json.options.temperature, 0.4);
      assert.deepEqual(rec.json.options.stop, ['END']);
      assert.equal(rec.json.options.seed, 7);
    });

    test('ollama format: tool calls', async () => {
      const r = await postJson(port, '/mistral-ollama', { messages: userMsg('call get_weather'), tools: [WEATHER_TOOL] });
      const c = assertChatCompletion(r.json(), { finish: 'tool_calls' });
      assert.equal(c.message.tool_calls[0].function.name, 'get_weather');
      assert.equal(typeof c.message.tool_calls[0].id, 'string');
      assert.deepEqual(JSON.parse(c.message.tool_calls[0].function.arguments), { city: 'city_value', days: 42 });
    });

    test('ollama error {"error": "..."} keeps its status', async () => {
      const r = await postJson(port, '/mistral-ollama', { messages: userMsg('x') }, { headers: { 'x-fake-status': '404' } });
      assertOpenaiError(r, 404, { message: 'fake ollama error 404' });
    });
  });

  describe('llama2', () => {
    test('raw: Llama 2 chat template, parameters, prompt echo stripped', async () => {
      const m = marker('lr');
      const r = await postJson(port, '/llama-raw', {
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'first' },
          { role: 'assistant', content: 'ok' },
          { role: 'user', content: `second ${m}` },
        ], temperature: 0.9, top_p: 0.8,
      });
      assert.equal(r.status, 200, r.text);
      const c = assertChatCompletion(r.json(), { model: 'llama-2-7b-chat', finish: 'stop', usage: false });
      assert.equal(c.message.content, `echo: second ${m}`);
      const rec = await receivedWith(fake, m);
      assert.equal(rec.path, '/llama2/raw');
      assert.equal(rec.json.inputs, `<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nfirst [/INST] ok </s><s>[INST] second ${m} [/INST]`);
      assert.deepEqual(rec.json.parameters, { max_new_tokens: 64, temperature: 0.3, top_k: 40, top_p: 0.8, stream: false });
    });

    test('raw: completions', async () => {
      const m = marker('lc');
      const r = await postJson(port, '/llama-raw-completions', { prompt: `what ${m}` });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().object, 'text_completion');
      assert.equal(r.json().choices[0].text, `echo: what ${m}`);
      assert.equal((await receivedWith(fake, m)).json.inputs, `<s>[INST] what ${m} [/INST]`);
    });

    test('raw: a stream request answered with one JSON reply → the reply as an OpenAI stream', async () => {
      // The shared fake answers raw requests with JSON whatever `stream` says
      // (as a /generate endpoint does); TGI streams are in ai-proxy-stream.
      const m = marker('ls');
      const r = await postJson(port, '/llama-raw', { stream: true, messages: userMsg(`streamed ${m}`) });
      assert.equal(r.status, 200, r.text);
      assert.match(String(r.headers['content-type']), /text\/event-stream/);
      const events = r.text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
      assert.equal(events.at(-1), '[DONE]');
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
      assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'llama-2-7b-chat'));
      assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), `echo: streamed ${m}`);
      assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.stream, true, 'stream asked of the provider');
      assert.equal(rec.json.parameters.details, true);
    });

    test('raw: error {"error": "..."} keeps its status', async () => {
      const r = await postJson(port, '/llama-raw', { messages: userMsg('x') }, { headers: { 'x-fake-status': '422' } });
      assertOpenaiError(r, 422, { message: 'fake llama2 error 422' });
    });

    test('openai format', async () => {
      const m = marker('lo');
      const r = await postJson(port, '/llama-openai', { messages: userMsg(m) });
      assert.equal(r.status, 200, r.text);
      assertChatCompletion(r.json(), { model: 'llama-2-7b-chat', finish: 'stop' });
      assert.equal((await receivedWith(fake, m)).json.model, 'llama-2-7b-chat');
    });

    test('ollama format: chat and completions (/api/generate)', async () => {
      const m = marker('ll');
      const r = await postJson(port, '/llama-ollama', { messages: userMsg(`${m} one two`), max_tokens: 2 });
      assert.equal(r.status, 200, r.text);
      const c = assertChatCompletion(r.json(), { model: 'llama2:7b', finish: 'length' });
      assert.equal(c.message.content, `echo: ${m}`);
      assert.equal((await receivedWith(fake, m)).json.options.num_predict, 2);
      const m2 = marker('lg');
      const g = await postJson(port, '/llama-ollama-completions', { prompt: `gen ${m2}` });
      assert.equal(g.status, 200, g.text);
      const gj = g.json();
      assert.equal(gj.object, 'text_completion');
      assert.equal(gj.choices[0].text, `echo: gen ${m2}`);
      assertUsage(gj.usage);
      const grec = await receivedWith(fake, m2);
      assert.equal(grec.path, '/api/generate');
      assert.equal(grec.json.prompt, `gen ${m2}`);
    });
  });

  describe('preserve', () => {
    test('OpenAI: body passed through untouched both ways, usage and cost recorded', async () => {
      const m = marker('po');
      const body = { model: 'gpt-4o-mini', messages: userMsg(`keep ${m}`), temperature: 0.5, logit_bias: { 1734: -100 } };
      const mark = sl.logMark();
      const r = await postJson(port, '/preserve-openai', body, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      assert.equal(j.system_fingerprint, 'fp_fake', 'provider fields kept');
      assert.equal(j.choices[0].message.refusal, null);
      const rec = await receivedWith(fake, m);
      assert.deepEqual(rec.json, body, 'request body untouched');
      assert.equal(rec.headers.authorization, `Bearer ${SECRETS.client}`);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), j.usage.prompt_tokens);
      assert.equal(Number(f['ai.completion_tokens']), j.usage.completion_tokens);
      assert.equal(Number(f['ai.cost']), j.usage.prompt_tokens, 'cost from input_cost');
    });

    test('Anthropic: native Messages body and reply, auth injected, usage recorded', async () => {
      const m = marker('pa');
      const body = { model: CLAUDE, max_tokens: 20, system: 'sys', messages: userMsg(`native ${m}`) };
      const mark = sl.logMark();
      const r = await postJson(port, '/preserve-anthropic', body, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const j = r.json();
      assert.equal(j.type, 'message', 'Anthropic\'s own reply shape');
      assert.equal(j.content[0].text, `echo: native ${m}`);
      const rec = await receivedWith(fake, m);
      assert.deepEqual(rec.json, body);
      assert.equal(rec.headers['x-api-key'], SECRETS.anthropic);
      assert.equal(rec.headers['anthropic-version'], '2023-06-01');
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), j.usage.input_tokens);
      assert.equal(Number(f['ai.completion_tokens']), j.usage.output_tokens);
      assert.equal(JSON.parse(f['ai.payload.response']).id, j.id);
    });

    test('Ollama: native body kept, NDJSON stream passed through, usage recorded', async () => {
      const m = marker('pol');
      const body = { model: 'mistral:7b', messages: userMsg(`ndjson ${m}`), options: { seed: 3 } };
      const mark = sl.logMark();
      const r = await postJson(port, '/preserve-ollama', body);
      assert.equal(r.status, 200, r.text);
      const lines = r.text.trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(lines.map((l) => l.message.content).join(''), `echo: ndjson ${m}`);
      assert.equal(lines.at(-1).done, true);
      const rec = await receivedWith(fake, m);
      assert.deepEqual(rec.json, body);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(Number(f['ai.prompt_tokens']), lines.at(-1).prompt_eval_count);
      assert.equal(Number(f['ai.completion_tokens']), lines.at(-1).eval_count);
    });
  });

  describe('client errors (400 invalid_request_error, nothing sent upstream)', () => {
    const cases = [
      ['invalid JSON', '/openai', '{"model": "gpt-4o", "messages": [', /JSON/],
      ['a JSON array', '/openai', '[1,2]', /JSON object/],
      ['missing messages', '/openai', { model: 'gpt-4o' }, /messages/],
      ['messages not an array', '/anthropic', { messages: 'hi' }, /messages/],
      ['missing prompt', '/openai-completions', { model: 'gpt-3.5-turbo-instruct' }, /prompt/],
      ['missing input', '/openai-embeddings', { model: 'text-embedding-3-small' }, /input/],
      ['model contradicting the configured one', '/openai', { model: 'gpt-3.5-turbo', messages: userMsg('x') }, /gpt-4o/],
      ['stream on a response_streaming deny route', '/deny', { model: 'gpt-4o', stream: true, messages: userMsg('x') }, /stream/],
      ['n > 1 on an Ollama route', '/mistral-ollama', { n: 2, messages: userMsg('x') }, /n > 1/],
      ['n > 1 on a llama2 raw route', '/llama-raw', { n: 3, messages: userMsg('x') }, /n > 1/],
      ['response_format with a non-object schema on Anthropic', '/anthropic', { messages: userMsg('x'), response_format: { type: 'json_schema', json_schema: { name: 'a', schema: { type: 'string' } } } }, /response_format/],
      ['image URL on an Ollama route', '/mistral-ollama', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] }, /image/],
    ];
    for (const [name, path, body, re] of cases) {
      test(name, async () => {
        const before = fake.requests.length;
        const r = await postJson(port, path, body, { headers: bearer() });
        assertOpenaiError(r, 400, { type: 'invalid_request_error', message: re });
        assert.equal(fake.requests.length, before, 'nothing reached the provider');
      });
    }

    test('body larger than max_request_body_size → 413', async () => {
      const r = await postJson(port, '/openai', { model: 'gpt-4o', messages: userMsg('x'.repeat(9000)) });
      assertOpenaiError(r, 413);
    });
  });

  describe('upstream failures', () => {
    test('provider 500 keeps status and message (OpenAI)', async () => {
      const r = await postJson(port, '/openai', { model: 'gpt-4o', messages: userMsg('x') }, { headers: { ...bearer(), 'x-fake-status': '500' } });
      assertOpenaiError(r, 500, { type: 'server_error', message: 'fake upstream error 500' });
    });

    test('untranslatable 200 (garbage) → 502 with a clear message, for every translation', async () => {
      for (const path of ['/openai', '/anthropic', '/mistral-ollama', '/llama-raw', '/openai-embeddings']) {
        const body = path === '/openai-embeddings' ? { input: 'x' } : { messages: userMsg('x') };
        const r = await postJson(port, path, body, { headers: { ...bearer(), 'x-fake-garbage': '1' } });
        const e = assertOpenaiError(r, 502, { message: /not (a )?JSON|could not translate/ });
        assert.match(e.message, /translate|JSON/, `${path}: ${e.message}`);
      }
    });

    test('a 200 with the wrong shape → 502', async () => {
      const r = await postJson(port, '/anthropic-badshape', { messages: userMsg('x') });
      assertOpenaiError(r, 502, { message: /Anthropic message/ });
    });

    test('upstream hang past the service read_timeout → 504 (OpenAI and Anthropic routes)', async () => {
      for (const path of ['/slow-openai', '/slow-anthropic']) {
        const t0 = Date.now();
        const r = await postJson(port, path, { messages: userMsg('x') }, { headers: { ...bearer(), 'x-fake-hang': '1' }, timeoutMs: 8000 });
        assert.equal(r.status, 504, `${path}: ${r.text}`);
        assert.ok(Date.now() - t0 < 5000, 'answered near the read timeout');
        assert.match(String(r.headers['content-type']), /application\/json/);
        // The gateway's own errors are OpenAI-shaped on AI routes too.
        assert.equal(r.json().error.type, 'api_error');
        assert.match(r.json().error.message, /timing out/);
      }
    });

    test('connection refused → 502 with an OpenAI error object', async () => {
      const r = await postJson(port, '/refused', { model: 'gpt-4o', messages: userMsg('x') });
      assert.equal(r.status, 502, r.text);
      assert.equal(r.json().error.type, 'api_error');
      assert.match(r.json().error.message, /failed to connect/);
    });
  });

  describe('statistics and logs', () => {
    test('log_statistics: ai.* fields with tokens, cost, latency, provider, model', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/anthropic', { messages: userMsg('count these words') });
      assert.equal(r.status, 200, r.text);
      const u = r.json().usage;
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.provider'], 'anthropic');
      assert.equal(f['ai.model'], CLAUDE);
      assert.equal(Number(f['ai.prompt_tokens']), u.prompt_tokens);
      assert.equal(Number(f['ai.completion_tokens']), u.completion_tokens);
      assert.equal(Number(f['ai.total_tokens']), u.total_tokens);
      const cost = (u.prompt_tokens * 3 + u.completion_tokens * 15) / 1e6;
      assert.ok(Math.abs(Number(f['ai.cost']) - cost) < 1e-6, `cost ${f['ai.cost']} vs ${cost}`);
      assert.ok(Number(f['ai.llm_latency_ms']) > 0, `latency ${f['ai.llm_latency_ms']}`);
      assert.equal(f['ai.payload.request'], undefined, 'no payloads without log_payloads');
    });

    test('log_payloads adds the request and response bodies', async () => {
      const mark = sl.logMark();
      const m = marker('lp');
      const r = await postJson(port, '/logged', { model: 'gpt-4o', messages: userMsg(m) }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.ok(f['ai.payload.request'].includes(m), f['ai.payload.request']);
      assert.deepEqual(JSON.parse(f['ai.payload.response']).choices, r.json().choices);
      const u = r.json().usage;
      assert.ok(Math.abs(Number(f['ai.cost']) - (u.prompt_tokens + 2 * u.completion_tokens)) < 1e-6, `cost ${f['ai.cost']}`);
    });

    test('no ai.* fields without log_statistics; model_name_header false drops the header', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/nolog', { model: 'gpt-4o', messages: userMsg('x') }, { headers: bearer() });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-sluice-llm-model'], undefined);
      const { line } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.ok(!line.includes('ai.'), line);
    });

    test('the answering model names the header and the log (Azure deployment)', async () => {
      const mark = sl.logMark();
      const r = await postJson(port, '/openai-query', { model: 'gpt-4o', messages: userMsg('x') });
      const { fields: f } = await accessLog(sl, requestIdOf(r), { from: mark });
      assert.equal(f['ai.provider'], 'openai');
      assert.equal(f['ai.model'], 'gpt-4o');
    });
  });
});

// Provider-required options are config errors when the file is loaded
// (sluice -t), each naming the field's path; nothing starts.
describe('ai-proxy config errors at load time', { skip: binaryMissing() }, () => {
  const cases = [
    ['azure without azure_instance', { provider: 'azure', name: 'gpt-4o' }, 'llm/v1/chat', /model\.options\.azure_instance/],
    ['azure without azure_deployment_id', { provider: 'azure', name: 'gpt-4o', options: { azure_instance: 'i' } }, 'llm/v1/chat', /model\.options\.azure_deployment_id/],
    ['llama2 without upstream_url', { provider: 'llama2', name: 'l', options: { llama2_format: 'raw' } }, 'llm/v1/chat', /model\.options\.upstream_url/],
    ['llama2 without llama2_format', { provider: 'llama2', name: 'l', options: { upstream_url: 'http://x/' } }, 'llm/v1/chat', /model\.options\.llama2_format/],
    ['llama2 with an unknown format', { provider: 'llama2', name: 'l', options: { upstream_url: 'http://x/', llama2_format: 'tgi' } }, 'llm/v1/chat', /model\.options\.llama2_format/],
    ['mistral ollama without upstream_url', { provider: 'mistral', name: 'm', options: { mistral_format: 'ollama' } }, 'llm/v1/chat', /model\.options\.upstream_url/],
    ['anthropic embeddings', { provider: 'anthropic', name: 'claude' }, 'llm/v1/embeddings', /route_type/],
    ['an unknown provider', { provider: 'gemini-x', name: 'g' }, 'llm/v1/chat', /model\.provider/],
  ];
  for (const [name, model, routeType, re] of cases) {
    test(name, async () => {
      const dir = tempDir();
      const file = path.join(dir, 'kong.yml');
      writeFileSync(file, configText({ services: [{ name: 'ai', url: 'http://127.0.0.1:1', routes: [aiRoute('r', '/r', { route_type: routeType, model })] }] }));
      const r = await runSluice(['-t', '-c', file]);
      assert.notEqual(r.code, 0, `accepted: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout + r.stderr, re);
    });
  }
  test('a valid llama2 raw route loads', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'kong.yml');
    writeFileSync(file, configText({ services: [{ name: 'ai', url: 'http://127.0.0.1:1', routes: [aiRoute('r', '/r', { route_type: 'llm/v1/chat', model: { provider: 'llama2', name: 'l', options: { upstream_url: 'http://x/', llama2_format: 'raw' } } })] }] }));
    const r = await runSluice(['-t', '-c', file]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  });
});
