// Review: Kong's own documentation examples, copied into a kong.yml as Kong
// shows them, must load (`sluice -t`) and, through the real daemon, answer a
// request shaped as Kong's docs show it the way Kong documents.
//
// Sources (each case names its own):
//   DEV  = github.com/Kong/developer.konghq.com  app/_kong_plugins/<plugin>/examples/*.yaml,
//          app/_how-tos/..., app/ai-gateway/ai-providers/*.md (developer.konghq.com)
//   OLD  = github.com/Kong/docs.konghq.com  app/_hub/kong-inc/ai-proxy/how-to/
//          llm-provider-integration-guides/_<provider>.md (docs.konghq.com, 3.6-3.9 era)
//   SPEC = github.com/Kong/kong  spec/03-plugins/38-ai-proxy/*_integration_spec.lua (3.10)
// Changes to the examples, only where a test needs them: every provider URL is
// pointed at the fake providers with `model.options.upstream_url` (Kong's own
// option for it); `${key}` variables are given literal values; Admin-API /
// decK-only snippets (a plugin or route alone) are put under a service.
//
//   SLUICE_BIN=build-asan/sluice node --test tests/integration/kong-docs-review.test.mjs
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, runSluice, startSluice, tempDir } from './lib/harness.mjs';
import { accessLog, assertChatCompletion, postJson, postStream } from './lib/ai-helpers.mjs';

const skip = binaryMissing();
const REDIS_PORT = process.env.SLUICE_TEST_REDIS_PORT ? Number(process.env.SLUICE_TEST_REDIS_PORT) : null;
const NO_REDIS = !REDIS_PORT && 'no redis (set SLUICE_TEST_REDIS_PORT)';

// Each chat example's request, as the docs' curl sends it (OLD guides).
const MATH = { messages: [{ role: 'system', content: 'You are a mathematician' }, { role: 'user', content: 'What is 1+1?' }] };

const dir = tempDir('sluice-kong-docs-');
after(() => rmSync(dir, { recursive: true, force: true }));
let nfile = 0;
async function check(text) {
  const file = path.join(dir, `k${nfile++}.yml`);
  writeFileSync(file, text);
  const r = await runSluice(['-t', '-c', file]);
  return { code: r.code, out: r.stdout + r.stderr };
}

// ------------------------------------------------------------------ the examples, as YAML text
// F: the fake providers' URL (the only edit: upstream_url lines).

const AI_EXAMPLES = (F) => `_format_version: "3.0"
services:
- name: ai-proxy
  url: http://localhost:32000
  routes:
  # DEV ai-proxy/examples/openai-chat-route.yaml
  - name: openai-chat-route
    paths: ["/openai-chat-route"]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth:
          header_name: Authorization
          header_value: Bearer sk-docs-openai
        model:
          provider: openai
          name: gpt-4
          options:
            max_tokens: 512
            temperature: 1.0
            upstream_url: ${F}/v1/chat/completions
  # DEV ai-proxy/examples/anthropic-chat-route.yaml, ai-gateway/ai-providers/anthropic.md
  - name: anthropic-chat
    paths:
      - "~/anthropic-chat$"
    methods:
      - POST
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth:
          header_name: x-api-key
          header_value: sk-ant-docs
        model:
          provider: anthropic
          name: claude-sonnet-4-6
          options:
            anthropic_version: "2023-06-01"
            max_tokens: 512
            temperature: 1.0
            upstream_url: ${F}/v1/messages
  # DEV ai-proxy/examples/azure-chat-route.yaml, ai-gateway/ai-providers/azure.md
  - name: azure-chat-route
    paths: ["/azure-chat-route"]
    plugins:
    - name: ai-proxy
      config:
        model_name_header: false
        route_type: llm/v1/chat
        auth:
          header_name: Authorization
          header_value: Bearer az-docs-key
        model:
          provider: azure
          options:
            azure_api_version: "2025-01-01-preview"
            azure_instance: my-instance
            azure_deployment_id: my-deployment
            upstream_url: ${F}/openai/deployments/my-deployment/chat/completions
  # OLD _azure.md (YAML tab)
  - name: azure-chat
    paths:
      - "~/azure-chat$"
    methods:
      - POST
    plugins:
      - name: ai-proxy
        config:
          route_type: "llm/v1/chat"
          auth:
            header_name: "api-key"
            header_value: "azure-docs-access-key"  # add your own 'Azure OpenAI' access key
          model:
            provider: "azure"
            name: "gpt-35-turbo"
            options:
              azure_instance: "ai-proxy-regression"
              azure_deployment_id: "kong-gpt-3-5"
              upstream_url: ${F}/openai/deployments/kong-gpt-3-5/chat/completions
  # DEV ai-proxy/examples/sdk-multiple-providers.yaml (its route, from the example's warning box)
  - name: azure-chat-sdk
    paths:
      - "~/openai/deployments/(?<azure_instance>[^#?/]+)/chat/completions"
    methods:
      - POST
    plugins:
    - name: ai-proxy
      config:
        route_type: "llm/v1/chat"
        auth:
          header_name: "api-key"
          header_value: azure-docs-access-key
        logging:
          log_statistics: true
          log_payloads: false
        model:
          provider: "azure"
          name: "$(uri_captures.azure_instance)"
          options:
            azure_instance: "my-openai-instace"
            azure_deployment_id: "$(uri_captures.azure_instance)"
            upstream_url: ${F}/openai/deployments/$(uri_captures.azure_instance)/chat/completions
  # DEV ai-proxy/examples/sdk-azure-deployment.yaml: its route; "model: model:" written
  # "model: name:" (Kong's schema has no model.model) and managed identity replaced by an api-key
  - name: azure-chat-model-from-path
    paths:
      - "~/azure/.*"
    methods:
      - POST
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth:
          header_name: api-key
          header_value: azure-docs-access-key
        model:
          provider: "azure"
          name: "$(headers.x-model-name)"
          options:
            azure_instance: "llm-deployment-v1"
            azure_deployment_id: "west-europe-$(headers.x-model-name)"
            azure_api_version: "2024-10-01"
            upstream_url: "${F}/openai/deployments/west-europe-$(headers.x-model-name)/chat/completions"
  # OLD _mistral.md (YAML tab); DEV mistral-chat-route.yaml is the same plugin
  - name: mistral-chat
    paths:
      - "~/mistral-chat$"
    methods:
      - POST
    plugins:
      - name: ai-proxy
        config:
          route_type: "llm/v1/chat"
          auth:
            header_name: "Authorization"
            header_value: "Bearer mistral-docs-key"
          model:
            provider: "mistral"
            name: "mistral-tiny"
            options:
              mistral_format: "openai"
              upstream_url: "${F}/v1/chat/completions"
  # SPEC 06-mistral_integration_spec.lua: completions good with one option
  - name: mistral-completions
    paths: ["/mistral-completions"]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/completions
        auth:
          header_name: Authorization
          header_value: Bearer mistral-key
        model:
          name: mistralai/Mistral-7B-Instruct-v0.1-instruct
          provider: mistral
          options:
            max_tokens: 256
            temperature: 1.0
            mistral_format: openai
            upstream_url: ${F}/v1/completions
  # OLD _llama2.md (YAML tab); DEV llama2-chat-route.yaml, ai-providers/llama.md
  - name: llama2-chat
    paths:
      - "~/llama2-chat$"
    methods:
      - POST
    plugins:
      - name: ai-proxy
        config:
          route_type: "llm/v1/chat"
          model:
            provider: "llama2"
            name: "llama2"
            options:
              llama2_format: "ollama"
              upstream_url: "${F}/api/chat"
  # SPEC 07-llama2_integration_spec.lua: raw format (HuggingFace TGI, llama.cpp)
  - name: llama2-raw
    paths: ["/llama2-raw"]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth:
          header_name: Authorization
          header_value: Bearer llama2-key
        model:
          name: llama-2-7b-chat-hf
          provider: llama2
          options:
            max_tokens: 256
            temperature: 1.0
            llama2_format: raw
            upstream_url: ${F}/llama2/raw
  # DEV ai-proxy/examples/embeddings-route-type.yaml
  - name: embeddings
    paths: ["/embeddings"]
    plugins:
    - name: ai-proxy
      config:
        genai_category: text/embeddings
        route_type: llm/v1/embeddings
        auth:
          header_name: Authorization
          header_value: Bearer sk-docs-openai
        model:
          provider: openai
          name: text-embedding-3-large
          options:
            max_tokens: 512
            temperature: 1.0
            upstream_url: ${F}/v1/embeddings
  # DEV ai-proxy/examples/sdk-dynamic-model-selection.yml (route from its warning box)
  - name: openai-chat
    paths:
      - "~/(?<model>[^#?/]+)/chat/completions$"
    methods:
      - POST
    plugins:
    - name: ai-proxy
      config:
          route_type: llm/v1/chat
          auth:
            header_name: Authorization
            header_value: Bearer sk-docs-openai
          logging:
            log_statistics: true
            log_payloads: false
          model:
            provider: openai
            name: $(uri_captures.model)
            options:
              upstream_url: ${F}/v1/chat/completions
# DEV how-tos/ai-gateway/get-started-with-ai-gateway.md: service, top-level route, global plugin
- name: llm-service
  url: http://localhost:32000
routes:
- name: get-started-chat
  service:
    name: llm-service
  paths:
  - /chat
  protocols:
  - http
  - https
plugins:
- name: ai-proxy
  config:
    route_type: "llm/v1/chat"
    model:
      provider: "openai"
      options:
        upstream_url: ${F}/v1/chat/completions
`;

// The prompt plugins' examples, each on a route in front of the ai-proxy the
// how-tos configure first (DEV use-ai-prompt-guard-plugin.md: Mistral, openai format).
const PROMPT_EXAMPLES = (F) => {
  const proxy = `    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth:
          header_name: Authorization
          header_value: Bearer mistral-docs-key
        model:
          provider: mistral
          name: mistral-tiny
          options:
            mistral_format: openai
            upstream_url: ${F}/v1/chat/completions
`;
  const completionsProxy = proxy.replace('llm/v1/chat', 'llm/v1/completions').replace('/v1/chat/completions', '/v1/completions');
  const route = (name, plugin, p = proxy) => `  - name: ${name}\n    paths: [/${name}]\n    plugins:\n${p}${plugin}`;
  return `_format_version: "3.0"
services:
- name: example-service
  url: ${F}/anything
  routes:
${route('allow-and-deny', `    # DEV ai-prompt-guard/examples/allow-and-deny.yaml, how-tos/use-ai-prompt-guard-plugin.md
    - name: ai-prompt-guard
      config:
        allow_patterns:
          - "(?i).*what is .*"
          - "(?i).*how do i .*"
          - "(?i).*install .*"
          - "(?i).*configure .*"
          - "(?i).*reset .*"
          - "(?i).*troubleshoot .*"
        deny_patterns:
          - "(?i).*bypass.*(login|password|auth).*"
          - "(?i).*hack.*"
          - "(?i).*phish.*"
          - "(?i).*malware.*"
          - "(?i).*cve.*"
          - "(?i).*exploit.*"
          - "(?i).*social engineering.*"
          - "(?i).*pentest.*"
          - "(?i).*impersonate.*"
          - "(?i).*dating.*"
`)}${route('hidden-unicode', `    # DEV ai-prompt-guard/index.md, "Best practices"
    - name: ai-prompt-guard
      config:
        deny_patterns:
        # Zero Width Characters (U+200B-U+200D, U+FEFF)
        - (\\xE2\\x80[\\x8B-\\x8D]|\\xEF\\xBB\\xBF)
        # Bidirectional Text Controls (U+202A-U+202E)
        - \\xE2\\x80[\\xAA-\\xAE]
        # Format Controls (U+2060-U+206F)
        - \\xE2\\x81[\\xA0-\\xAF]
        # Unicode Tag Characters (U+E0020-U+E007F)
        - \\xF3\\xA0\\x80[\\xA0-\\xBF]|\\xF3\\xA0\\x81[\\x80-\\xBF]
`)}${route('allow-only', `    # DEV ai-prompt-guard/examples/allow-only.yaml
    - name: ai-prompt-guard
      config: 
        allow_patterns:
        - '.*\\"card\\".*\\"4[0-9]{3}\\*{12}\\"'
`)}${route('deny-only', `    # DEV ai-prompt-guard/examples/deny-only.yaml
    - name: ai-prompt-guard
      config: 
        deny_patterns:
        - '\\"card\\".*\\"5[0-9]{12}(?:[0-9]{3})?\\"'
`)}${route('templates', `    # DEV how-tos/use-ai-prompt-template-plugin.md (two of its templates) and
    # ai-prompt-template/examples/block-untemplated-requests.yaml
    - name: ai-prompt-template
      config:
        allow_untemplated_requests: false
        templates:
          - name: summarizer
            template: |-
              {
                  "messages": [
                    {
                      "role": "system",
                      "content": "You summarize long texts into concise bullet points."
                    },
                    {
                      "role": "user",
                      "content": "Summarize the following text: {{text}}"
                    }
                  ]
              }
          - name: code-explainer
            template: |-
              {
                  "messages": [
                    {
                      "role": "system",
                      "content": "You are a helpful assistant who explains code to beginners."
                    },
                    {
                      "role": "user",
                      "content": "Explain what the following code does: {{code}}"
                    }
                  ]
              }
          - name: "developer-chat"
            template:  |-
              {
                  "messages": [
                  {
                      "role": "system",
                      "content": "You are a {{program}} expert, in {{language}} programming language."
                  },
                  {
                      "role": "user",
                      "content": "Write me a {{program}} program."
                  }
                ]
              }
`)}${route('completions-template', `    # DEV ai-prompt-template/examples/completions-route-template.yaml
    - name: ai-prompt-template
      config:     
        templates:
          - name: "developer-prompt"
            template:  |-
              {
                  "prompt": "You are a {{language}} programming language expert. Write me a {{program}} program."
              }
`, completionsProxy)}${route('chat-history', `    # DEV ai-prompt-decorator/examples/create-a-complex-chat-history.yaml
    - name: ai-prompt-decorator
      config:
        prompts:
          prepend:
          - role: system
            content: You are data scientist, specialising in survey analytics.
          - role: user
            content: Classify this test result set as positive, negative, or neutral.
          - role: assistant
            content: These tests are NEUTRAL.
          append:
          - role: user
            content: Do not mention any real participant names in your justification.
`)}${route('french', `    # DEV ai-prompt-decorator/examples/engineer-a-prompt.yaml
    - name: ai-prompt-decorator
      config:
        prompts:
          prepend:
            - role: "system"
              content: "You will always respond in the French (France) language."
`)}`;
};

// DEV how-tos/gateway/add-rate-limiting-to-a-service-with-kong-gateway.md (a plugin scoped to
// the service at top level), rate-limiting/examples/rate-limit-with-local-policy.yaml,
// correlation-id/examples/generate-uuid.yaml and how-tos/gateway/add-correlation-ids-to-gateway-logs.md
// (top-level route with `service: {name}`, a global plugin).
const GATEWAY_EXAMPLES = (F) => `_format_version: "3.0"
services:
- name: example-service
  url: ${F}/anything
- name: local-policy-service
  url: ${F}/anything
  routes:
  - name: local-policy
    paths: [/local-policy]
    plugins:
    - name: rate-limiting
      config:
        second: 5
        hour: 1000
        policy: local
  - name: generate-uuid
    paths: [/generate-uuid]
    plugins:
    - name: correlation-id
      config: 
        header_name: Kong-Request-ID
        generator: uuid#counter
        echo_downstream: false
routes:
- name: example-route
  paths:
    - /anything
  service: 
    name: example-service
  protocols:
    - http
    - https
plugins:
- name: rate-limiting
  service: example-service
  config:
    minute: 5
    hour: 1000
- name: correlation-id
  config:
    header_name: Kong-Request-ID
    generator: uuid#counter
`;

// ------------------------------------------------------------------ they load

describe('Kong documentation examples load (sluice -t)', { skip }, () => {
  test('every ai-proxy, prompt, rate-limiting and correlation-id example in one file', async () => {
    for (const [what, text] of [['ai-proxy', AI_EXAMPLES('http://127.0.0.1:9')], ['prompt plugins', PROMPT_EXAMPLES('http://127.0.0.1:9')],
      ['rate-limiting / correlation-id', GATEWAY_EXAMPLES('http://127.0.0.1:9')]]) {
      const r = await check(text);
      assert.equal(r.code, 0, `${what} examples must load as Kong loads them:\n${r.out}`);
    }
  });

  test('the examples as written, with provider hosts that do not resolve here (api.mistral.ai, llama2-server.local)', async () => {
    // DEV mistral-chat-route.yaml and llama2-chat-route.yaml, untouched: upstream_url is resolved per
    // request, never at load.
    const r = await check(`_format_version: "3.0"
services:
- name: ai-proxy
  url: http://localhost:32000
  routes:
  - name: mistral
    paths: [/mistral]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth:
          header_name: Authorization
          header_value: Bearer \${MISTRAL_API_KEY:-unset}
        model:
          provider: mistral
          name: mistral-tiny
          options:
            mistral_format: openai
            upstream_url: https://api.mistral.ai/v1/chat/completions
  - name: llama
    paths: [/llama]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        model:
          provider: llama2
          name: llama2
          options:
            llama2_format: ollama
            upstream_url: http://llama2-server.local:11434/api/chat
`);
    assert.equal(r.code, 0, r.out);
  });

  // OLD _anthropic.md (YAML tab) as written: top_p and top_k swapped (top_p: 256, top_k: 0.5).
  // Kong 3.10 refuses it at load: kong/llm/schemas/init.lua model_options_schema has
  // temperature between {0, 5}, top_p between {0, 1}, top_k an integer between {0, 500},
  // max_tokens an integer, input_cost / output_cost gt 0. sluice loads any finite number
  // (plugins/ai-proxy/ai_proxy.c parse_opt_num) and sends it on every request, where the provider
  // refuses it (Anthropic: top_p must be 0..1), though docs/configuration.md says values out
  // of range are load errors.
  test('model.options outside Kong\'s ranges are refused at load, naming the field (OLD Anthropic guide: top_p 256, top_k 0.5)', {
    // fixed: Kong's model_options_schema ranges
  }, async () => {
    const one = (options) => `_format_version: "3.0"
services:
- name: ai-proxy
  url: http://localhost:32000
  routes:
  - name: anthropic-chat
    paths:
      - "~/anthropic-chat$"
    methods:
      - POST
    plugins:
      - name: ai-proxy
        config:
          route_type: "llm/v1/chat"
          auth:
            header_name: "apikey"
            header_value: "<anthropic_key>"  # add your own Anthropic API key
          model:
            provider: "anthropic"
            name: "claude-2.1"
            options:
${options.map((o) => `              ${o}`).join('\n')}
`;
    // Control: the same route with values Kong accepts loads.
    const ok = await check(one(['max_tokens: 512', 'temperature: 1.0', 'top_p: 0.5', 'top_k: 40', 'input_cost: 3', 'output_cost: 15']));
    assert.equal(ok.code, 0, ok.out);
    const asWritten = await check(one(['max_tokens: 512', 'temperature: 1.0', 'top_p: 256', 'top_k: 0.5']));
    assert.equal(asWritten.code, 1, `the OLD example as written must be refused, as Kong refuses it:\n${asWritten.out}`);
    assert.match(asWritten.out, /config\.model\.options\.top_p:/);
    assert.match(asWritten.out, /config\.model\.options\.top_k:/);
    for (const [field, value] of [['temperature', '5.5'], ['temperature', '-1'], ['top_p', '1.5'], ['top_k', '501'], ['top_k', '2.5'],
      ['max_tokens', '0.5'], ['input_cost', '0'], ['output_cost', '-1']]) {
      const r = await check(one([`${field}: ${value}`]));
      assert.equal(r.code, 1, `${field}: ${value} must be refused:\n${r.out}`);
      assert.match(r.out, new RegExp(`config\\.model\\.options\\.${field}:`), r.out);
    }
  });

  // Providers and formats sluice does not have (later work, README "Known limits"): refused at
  // load with the field named, never loaded and ignored.
  test('examples for what sluice does not have are refused naming the field: ollama / vllm / cohere providers, llm_format anthropic, Azure managed identity', async () => {
    const one = (config) => `_format_version: "3.0"
services:
- name: s
  url: http://localhost:32000
  routes:
  - name: r
    paths: [/r]
    plugins:
    - name: ai-proxy
      config:
${config.replace(/^/gm, '        ')}
`;
    const cases = [
      // DEV ollama-chat-route.yaml (provider ollama, Kong 3.12+)
      ['config.model.provider', 'route_type: llm/v1/chat\nmodel:\n  provider: ollama\n  name: qwen3\n  options:\n    upstream_url: http://lollama-server.local:11434'],
      // DEV vllm-chat-route.yaml
      ['config.model.provider', 'route_type: llm/v1/chat\nmodel:\n  provider: vllm\n  name: vllm-llama-3-8b\n  options:\n    upstream_url: http://vllm:8000/v1/chat/completions'],
      // DEV how-tos/use-ai-prompt-decorator-plugin.md (Cohere)
      ['config.model.provider', 'route_type: llm/v1/chat\nauth:\n  header_name: Authorization\n  header_value: Bearer k\nmodel:\n  provider: cohere\n  name: command-a-03-2025\n  options:\n    max_tokens: 512\n    temperature: 1.0'],
      // DEV claude-code-anthropic.yaml
      ['config.llm_format', "llm_format: anthropic\nroute_type: llm/v1/chat\nlogging:\n  log_statistics: true\nauth:\n  header_name: x-api-key\n  header_value: k\nmax_request_body_size: 524288\nmodel:\n  name: claude-sonnet-4-5-20250929\n  provider: anthropic\n  options:\n    anthropic_version: '2023-06-01'"],
      // DEV sdk-azure-deployment.yaml (auth.azure_use_managed_identity)
      ['config.auth.azure_use_managed_identity', 'route_type: llm/v1/chat\nauth:\n  azure_use_managed_identity: true\nmodel:\n  provider: azure\n  name: gpt-4o\n  options:\n    azure_instance: llm-deployment-v1\n    azure_deployment_id: dep\n    azure_api_version: "2024-10-01"'],
    ];
    for (const [field, config] of cases) {
      const r = await check(one(config));
      assert.equal(r.code, 1, `${field} must be refused:\n${r.out}`);
      assert.ok(r.out.includes(`plugins[0].${field}:`), `the error names ${field}:\n${r.out}`);
    }
  });
});

// ------------------------------------------------------------------ ai-proxy examples through the daemon

describe('ai-proxy examples: a request as Kong\'s docs send it gets what Kong documents', { skip }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({ config: AI_EXAMPLES(fake.url) });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });
  // One request; resolves with the reply and the fake's record(s) of it.
  async function send(p, body, headers = {}) {
    const from = fake.requests.length;
    const r = await postJson(sl.proxyPort, p, body, { headers });
    return { r, up: fake.requests.slice(from) };
  }

  test('openai-chat-route: Bearer key, model gpt-4, max_tokens 512 and temperature 1 sent; a chat.completion back', async () => {
    const { r, up } = await send('/openai-chat-route', MATH);
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'gpt-4' });
    assert.equal(r.json().choices[0].message.content, 'echo: What is 1+1?');
    assert.equal(r.headers['x-sluice-llm-model'], 'openai/gpt-4');
    assert.equal(up.length, 1);
    assert.equal(up[0].path, '/v1/chat/completions');
    assert.equal(up[0].headers.authorization, 'Bearer sk-docs-openai');
    assert.deepEqual({ model: up[0].json.model, max_tokens: up[0].json.max_tokens, temperature: up[0].json.temperature },
      { model: 'gpt-4', max_tokens: 512, temperature: 1 });
    assert.deepEqual(up[0].json.messages, MATH.messages);
  });

  test('anthropic chat route: x-api-key, anthropic-version 2023-06-01, system message moved to "system"; OpenAI reply', async () => {
    const { r, up } = await send('/anthropic-chat', MATH);
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'claude-sonnet-4-6' });
    assert.equal(r.json().choices[0].message.content, 'echo: What is 1+1?');
    assert.equal(up[0].path, '/v1/messages');
    assert.equal(up[0].headers['x-api-key'], 'sk-ant-docs');
    assert.equal(up[0].headers['anthropic-version'], '2023-06-01');
    assert.equal(up[0].json.system, 'You are a mathematician');
    assert.deepEqual(up[0].json.messages, [{ role: 'user', content: 'What is 1+1?' }]);
    assert.deepEqual({ max_tokens: up[0].json.max_tokens, temperature: up[0].json.temperature }, { max_tokens: 512, temperature: 1 });
  });

  test('anthropic chat route, "stream": true: OpenAI chunks and data: [DONE] (Kong\'s streaming guide)', async () => {
    const r = await postStream(sl.proxyPort, '/anthropic-chat', { ...MATH, stream: true });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    assert.equal(r.events.at(-1).data, '[DONE]');
    const chunks = r.events.slice(0, -1).map((e) => JSON.parse(e.data));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'), r.text);
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'echo: What is 1+1?');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  });

  test('azure-chat-route (no model.name, model_name_header false): api-version 2025-01-01-preview, the configured Authorization, no model header', async () => {
    // Without model.name the client names the model (Kong: "model parameter not found in request,
    // nor in gateway configuration" otherwise).
    const none = await send('/azure-chat-route', MATH);
    assert.equal(none.r.status, 400);
    assert.equal(none.r.json().error.message, 'model parameter not found in request, nor in gateway configuration');
    assert.equal(none.up.length, 0);
    const { r, up } = await send('/azure-chat-route', { ...MATH, model: 'gpt-4o' });
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), {});
    assert.equal(r.headers['x-sluice-llm-model'], undefined, 'model_name_header: false');
    assert.equal(up[0].path, '/openai/deployments/my-deployment/chat/completions');
    assert.equal(up[0].query['api-version'], '2025-01-01-preview');
    assert.equal(up[0].headers.authorization, 'Bearer az-docs-key');
  });

  test('azure-chat (OLD guide): api-key header, default api-version 2023-05-15, model gpt-35-turbo; answered by the deployment', async () => {
    const { r, up } = await send('/azure-chat', MATH);
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'kong-gpt-3-5' });
    assert.equal(r.headers['x-sluice-llm-model'], 'azure/kong-gpt-3-5');
    assert.equal(up[0].path, '/openai/deployments/kong-gpt-3-5/chat/completions');
    assert.equal(up[0].query['api-version'], '2023-05-15');
    assert.equal(up[0].headers['api-key'], 'azure-docs-access-key');
    assert.equal(up[0].json.model, 'gpt-35-turbo');
  });

  test('sdk-multiple-providers: an AzureOpenAI SDK request picks the deployment from the path; its api-version is kept, the configured key replaces the client\'s', async () => {
    const { r, up } = await send('/openai/deployments/my-gpt-3-5/chat/completions?api-version=2024-02-01',
      { ...MATH, model: 'my-gpt-3-5' }, { 'api-key': 'client-key' });
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'my-gpt-3-5' });
    assert.equal(up[0].path, '/openai/deployments/my-gpt-3-5/chat/completions');
    assert.equal(up[0].query['api-version'], '2024-02-01');
    assert.equal(up[0].headers['api-key'], 'azure-docs-access-key');
  });

  test('sdk-azure-deployment: "west-europe-$(headers.x-model-name)" names the deployment; without the header, a 400 and no call', async () => {
    // The example's own request body: content as parts.
    const body = { messages: [{ role: 'user', content: [{ type: 'text', text: 'This is my question.' }] }] };
    const { r, up } = await send('/azure/chat', body, { 'x-model-name': 'gpt-4o' });
    assert.equal(r.status, 200, r.text);
    assert.equal(up[0].path, '/openai/deployments/west-europe-gpt-4o/chat/completions');
    assert.equal(up[0].query['api-version'], '2024-10-01');
    assert.equal(up[0].json.model, 'gpt-4o');
    const missing = await send('/azure/chat', body);
    assert.equal(missing.r.status, 400, missing.r.text);
    assert.equal(missing.up.length, 0);
  });

  test('mistral-chat (OLD guide / mistral-chat-route.yaml): OpenAI format with the configured Bearer; mistral-tiny answers', async () => {
    const { r, up } = await send('/mistral-chat', MATH);
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'mistral-tiny' });
    assert.equal(up[0].path, '/v1/chat/completions');
    assert.equal(up[0].headers.authorization, 'Bearer mistral-docs-key');
    assert.deepEqual(up[0].json.messages, MATH.messages);
  });

  test('mistral completions (Kong spec): prompt, max_tokens 256 to /v1/completions; a text_completion back', async () => {
    const { r, up } = await send('/mistral-completions', { prompt: 'What is 1+1?' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().object, 'text_completion');
    assert.equal(r.json().choices[0].text, 'echo: What is 1+1?');
    assert.equal(up[0].path, '/v1/completions');
    assert.deepEqual({ prompt: up[0].json.prompt, model: up[0].json.model, max_tokens: up[0].json.max_tokens },
      { prompt: 'What is 1+1?', model: 'mistralai/Mistral-7B-Instruct-v0.1-instruct', max_tokens: 256 });
  });

  test('llama2-chat, ollama format (OLD guide): /api/chat with both messages, no key; OpenAI reply with usage', async () => {
    const { r, up } = await send('/llama2-chat', MATH);
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'llama2' });
    assert.equal(r.json().choices[0].message.content, 'echo: What is 1+1?');
    assert.equal(up[0].path, '/api/chat');
    assert.equal(up[0].headers.authorization, undefined);
    assert.equal(up[0].json.model, 'llama2');
    assert.deepEqual(up[0].json.messages, MATH.messages);
  });

  test('llama2 raw format (Kong spec): Llama 2 chat template in "inputs", max_new_tokens 256; generated_text becomes the message', async () => {
    const { r, up } = await send('/llama2-raw', MATH);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().object, 'chat.completion');
    assert.equal(r.json().choices[0].message.content, 'echo: What is 1+1?');
    assert.equal(up[0].headers.authorization, 'Bearer llama2-key');
    assert.match(up[0].json.inputs, /^<s>\[INST\] <<SYS>>\nYou are a mathematician\n<<\/SYS>>\n\nWhat is 1\+1\? \[\/INST\]/);
    assert.equal(up[0].json.parameters.max_new_tokens, 256);
  });

  test('embeddings-route-type: text-embedding-3-large, a list of embeddings back (the chat options do not break it)', async () => {
    const { r, up } = await send('/embeddings', { input: 'The food was delicious and the waiter...' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().object, 'list');
    assert.ok(Array.isArray(r.json().data[0].embedding) && r.json().data[0].embedding.length > 0, r.text);
    assert.equal(up[0].path, '/v1/embeddings');
    assert.equal(up[0].json.model, 'text-embedding-3-large');
  });

  test('sdk-dynamic-model-selection: base_url /gpt-4 → model gpt-4; a body naming another model is refused as Kong does', async () => {
    const { r, up } = await send('/gpt-4/chat/completions', MATH);
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'gpt-4' });
    assert.equal(up[0].json.model, 'gpt-4');
    const other = await send('/gpt-4/chat/completions', { ...MATH, model: 'gpt-4o' });
    assert.equal(other.r.status, 400);
    assert.equal(other.r.json().error.message, 'cannot use own model - must be: gpt-4');
    assert.equal(other.up.length, 0);
  });

  test('get-started: a global ai-proxy with provider only; the client\'s model and Authorization pass; "This is a test" shape', async () => {
    const { r, up } = await send('/chat', { model: 'gpt-5-mini', messages: [{ role: 'user', content: 'Say this is a test!' }] },
      { accept: 'application/json', authorization: 'Bearer sk-client-docs' });
    assert.equal(r.status, 200, r.text);
    assertChatCompletion(r.json(), { model: 'gpt-5-mini' });
    assert.equal(r.json().choices[0].message.content, 'echo: Say this is a test!');
    assert.equal(up[0].headers.authorization, 'Bearer sk-client-docs');
    assert.equal(up[0].json.model, 'gpt-5-mini');
  });
});

// ------------------------------------------------------------------ prompt plugin examples

describe('ai-prompt-guard / -template / -decorator examples behave as Kong documents', { skip }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({ config: PROMPT_EXAMPLES(fake.url) });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });
  async function send(p, body) {
    const from = fake.requests.length;
    const r = await postJson(sl.proxyPort, p, body);
    return { r, up: fake.requests.slice(from) };
  }
  const user = (content) => ({ messages: [{ role: 'user', content }] });
  // Kong 3.10's guard answers 400 {"error":{"message":"bad request"}} (kong/plugins/ai-prompt-guard/
  // filters/guard-prompt.lua: "don't let users know 'ai-prompt-guard' is in use").
  async function blocked(p, content) {
    const { r, up } = await send(p, user(content));
    assert.equal(r.status, 400, `${JSON.stringify(content)} must be blocked: ${r.text}`);
    assert.equal(r.json().error.message, 'bad request');
    assert.equal(up.length, 0, 'a blocked prompt never reaches the provider');
  }
  async function passes(p, content) {
    const { r, up } = await send(p, user(content));
    assert.equal(r.status, 200, `${JSON.stringify(content)} must pass: ${r.text}`);
    assert.equal(up.length, 1);
  }

  test('allow-and-deny (how-to): "What is DNS?" passes; bypass-login and dating prompts are blocked; off-topic matches no allow pattern', async () => {
    await passes('/allow-and-deny', 'What is DNS?');
    await blocked('/allow-and-deny', 'How do I bypass login on a secure web portal?');
    await blocked('/allow-and-deny', 'What’s a good line to use on a dating app?');
    await blocked('/allow-and-deny', 'Tell me a joke');
  });

  test('best practices: byte patterns block zero-width, bidi, format and tag characters; plain text passes', async () => {
    for (const ch of ['\u200b', '\ufeff', '\u202e', '\u2060', '\u{E0041}']) await blocked('/hidden-unicode', `hello${ch}world`);
    await passes('/hidden-unicode', 'hello world');
  });

  test('allow-only: a masked card passes, a full card number does not; deny-only: a card starting with 5 is blocked, others pass', async () => {
    await passes('/allow-only', '{"card": "4111************"}');
    await blocked('/allow-only', '{"card": "4111111111111111"}');
    await blocked('/deny-only', '{"card": "5111111111111"}');
    await passes('/deny-only', '{"card": "4111111111111"}');
  });

  test('templates (how-to): each documented request renders its template; an untemplated one gets "this LLM route only supports templated requests"', async () => {
    const cases = [
      [{ messages: '{template://summarizer}', properties: { text: 'Of all human sciences the most useful' } },
        [{ role: 'system', content: 'You summarize long texts into concise bullet points.' },
          { role: 'user', content: 'Summarize the following text: Of all human sciences the most useful' }]],
      // A value with a newline: "sanitizes string inputs to ensure that JSON control characters are escaped".
      [{ messages: '{template://code-explainer}', properties: { code: 'def add(a, b):\n    return a + b' } },
        [{ role: 'system', content: 'You are a helpful assistant who explains code to beginners.' },
          { role: 'user', content: 'Explain what the following code does: def add(a, b):\n    return a + b' }]],
      [{ messages: '{template://developer-chat}', properties: { program: 'fibonacci', language: 'python' } },
        [{ role: 'system', content: 'You are a fibonacci expert, in python programming language.' },
          { role: 'user', content: 'Write me a fibonacci program.' }]],
    ];
    for (const [body, messages] of cases) {
      const { r, up } = await send('/templates', body);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(up[0].json.messages, messages);
    }
    const { r, up } = await send('/templates', user('What is Pythagorean theorem?'));
    assert.equal(r.status, 400);
    assert.equal(r.json().error.message, 'this LLM route only supports templated requests');
    assert.equal(up.length, 0);
  });

  test('completions-route-template: "prompt": "{template://developer-prompt}" renders the prompt for a completions route', async () => {
    const { r, up } = await send('/completions-template', { prompt: '{template://developer-prompt}', properties: { program: 'fibonacci', language: 'python' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().object, 'text_completion');
    assert.equal(up[0].path, '/v1/completions');
    assert.equal(up[0].json.prompt, 'You are a python programming language expert. Write me a fibonacci program.');
  });

  test('create-a-complex-chat-history: three prepended turns, the client\'s message, one appended turn, in order', async () => {
    const { r, up } = await send('/chat-history', user('Test 1: pass. Test 2: fail. Test 3: pass.'));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(up[0].json.messages, [
      { role: 'system', content: 'You are data scientist, specialising in survey analytics.' },
      { role: 'user', content: 'Classify this test result set as positive, negative, or neutral.' },
      { role: 'assistant', content: 'These tests are NEUTRAL.' },
      { role: 'user', content: 'Test 1: pass. Test 2: fail. Test 3: pass.' },
      { role: 'user', content: 'Do not mention any real participant names in your justification.' },
    ]);
  });

  test('engineer-a-prompt: the French system prompt goes first', async () => {
    const { r, up } = await send('/french', MATH);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(up[0].json.messages, [{ role: 'system', content: 'You will always respond in the French (France) language.' }, ...MATH.messages]);
  });
});

// ------------------------------------------------------------------ rate-limiting and correlation-id examples

describe('rate-limiting and correlation-id examples behave as Kong documents', { skip }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({ config: GATEWAY_EXAMPLES(fake.url) });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });
  const get = (p, headers = {}) => request({ port: sl.proxyPort, path: p, headers });

  test('rate-limiting on the service (how-to): 5 a minute, the sixth gets 429 {"message":"API rate limit exceeded"} with Retry-After', async () => {
    // The six requests must fall in one minute: start early enough in it.
    const s = new Date().getUTCSeconds();
    if (s >= 55) await new Promise((res) => setTimeout(res, (61 - s) * 1000));
    for (let i = 1; i <= 5; i++) {
      const r = await get('/anything');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-ratelimit-limit-minute'], '5');
      assert.equal(r.headers['x-ratelimit-remaining-minute'], String(5 - i));
      assert.equal(r.headers['x-ratelimit-limit-hour'], '1000');
      assert.equal(r.headers['x-ratelimit-remaining-hour'], String(1000 - i));
    }
    const sixth = await get('/anything');
    assert.equal(sixth.status, 429);
    assert.equal(sixth.json().message, 'API rate limit exceeded');
    assert.ok(Number(sixth.headers['retry-after']) >= 1, JSON.stringify(sixth.headers));
    assert.equal(sixth.headers['ratelimit-remaining'], '0');
  });

  test('rate-limit-with-local-policy: second 5 and hour 1000 headers; RateLimit-* name the second, the period nearer its limit', async () => {
    const a = await get('/local-policy');
    assert.equal(a.status, 200, a.text);
    assert.equal(a.headers['x-ratelimit-limit-second'], '5');
    assert.equal(a.headers['x-ratelimit-limit-hour'], '1000');
    assert.equal(a.headers['x-ratelimit-remaining-hour'], '999');
    assert.equal(a.headers['ratelimit-limit'], '5');
    assert.ok(Number(a.headers['ratelimit-reset']) <= 1, JSON.stringify(a.headers));
    const b = await get('/local-policy');
    assert.equal(b.headers['x-ratelimit-remaining-hour'], '998');
  });

  test('generate-uuid: the upstream gets Kong-Request-ID <uuid>#<counter>, not echoed; a client\'s own id is honoured', async () => {
    const r = await get('/generate-uuid');
    assert.equal(r.status, 200, r.text);
    assert.match(r.json().headers['kong-request-id'], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}#[1-9]\d*$/);
    assert.equal(r.headers['kong-request-id'], undefined, 'echo_downstream: false');
    const own = await get('/generate-uuid', { 'kong-request-id': 'from-client-1' });
    assert.equal(own.json().headers['kong-request-id'], 'from-client-1');
  });

  // DEV how-tos/gateway/add-correlation-ids-to-gateway-logs.md: the point of the how-to is that the
  // id is in the log line of each request; Kong's handler calls
  // kong.log.set_serialize_value("correlation_id", id) (kong/plugins/correlation-id/handler.lua),
  // and the plugin page says "the correlation_id field is added to the JSON log object".
  // sluice's access line is its log serializer (plugins add fields with gw_request_log_field).
  test('add-correlation-ids-to-gateway-logs: the access log line of the request carries its correlation id', {
    // fixed: correlation_id=<id> in the log line
  }, async () => {
    const mark = sl.logMark();
    // /generate-uuid: its own correlation-id instance, no rate limit in the way.
    const r = await get('/generate-uuid');
    assert.equal(r.status, 200, r.text);
    const id = r.json().headers['kong-request-id'];
    const { fields, line } = await accessLog(sl, r.headers['x-sluice-request-id'], { from: mark });
    assert.equal(fields.correlation_id, id, line);
  });
});

describe('rate-limiting, redis policy (Kong\'s redis record)', { skip: skip || NO_REDIS }, () => {
  test('policy redis with redis.host / redis.port: two an hour pass, the third gets 429', async () => {
    const fake = await startFake();
    const run = `${process.pid}-${Date.now()}`;
    let sl;
    try {
      sl = await startSluice({
        config: `_format_version: "3.0"
services:
- name: redis-docs-${run}
  url: ${fake.url}/anything
  routes:
  - name: redis-docs-route-${run}
    paths: [/redis-docs]
    plugins:
    - name: rate-limiting
      config:
        hour: 2
        limit_by: ip
        policy: redis
        redis:
          host: 127.0.0.1
          port: ${REDIS_PORT}
`,
      });
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await request({ port: sl.proxyPort, path: '/redis-docs' })).status);
      assert.deepEqual(codes, [200, 200, 429]);
    } finally {
      await sl?.stop();
      await fake.close();
    }
  });
});
