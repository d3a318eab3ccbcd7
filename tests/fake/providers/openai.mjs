// Fake OpenAI (and Azure OpenAI, and any OpenAI-compatible server): chat
// completions (JSON and SSE, tool calls, stream_options.include_usage),
// legacy completions and embeddings, with OpenAI's error objects. Like the
// real APIs it refuses request fields it does not know (but behind /noauth)
// and stream_options without stream: true; Azure adds its content-filter
// annotations and refuses stream_options on api-versions before 2024-09-01.
import { json, sseFrame, SSE_HEADERS } from '../emit.mjs';
import {
  contentText, countTokens, embeddingVector, fakeId, pickTool, replyText, toolArguments, truncateWords, wordPieces,
} from '../text.mjs';

const ERROR_TYPES = {
  400: ['invalid_request_error', null],
  401: ['invalid_request_error', 'invalid_api_key'],
  403: ['invalid_request_error', 'unsupported_country_region_territory'],
  404: ['invalid_request_error', 'model_not_found'],
  429: ['requests', 'rate_limit_exceeded'],
};

// OpenAI's error body: {"error":{"message","type","param","code"}}.
export function openaiError(status, message, param = null) {
  const [type, code] = ERROR_TYPES[status] || (status >= 500 ? ['server_error', null] : ['invalid_request_error', null]);
  const headers = status === 429 ? { 'retry-after': '1' } : {};
  return json(status, { error: { message: message || `fake upstream error ${status}`, type, param, code } }, headers);
}

// The request fields of https://platform.openai.com/docs/api-reference/chat/create
// and .../completions/create. api.openai.com refuses any other top-level field:
// 400 "Unrecognized request argument supplied: <name>". OpenAI-compatible
// servers (the /noauth prefix) take extra sampling fields such as top_k.
const CHAT_PARAMS = new Set([
  'messages', 'model', 'audio', 'frequency_penalty', 'function_call', 'functions', 'logit_bias', 'logprobs',
  'max_completion_tokens', 'max_tokens', 'metadata', 'modalities', 'n', 'parallel_tool_calls', 'prediction',
  'presence_penalty', 'prompt_cache_key', 'reasoning_effort', 'response_format', 'safety_identifier', 'seed',
  'service_tier', 'stop', 'store', 'stream', 'stream_options', 'temperature', 'tool_choice', 'tools', 'top_logprobs',
  'top_p', 'user', 'verbosity', 'web_search_options',
]);
// Azure OpenAI's own chat extensions (On Your Data, enhancements, Defender for Cloud).
const AZURE_CHAT_PARAMS = new Set([...CHAT_PARAMS, 'data_sources', 'enhancements', 'user_security_context']);
const COMPLETION_PARAMS = new Set([
  'model', 'prompt', 'best_of', 'echo', 'frequency_penalty', 'logit_bias', 'logprobs', 'max_tokens', 'n',
  'presence_penalty', 'seed', 'stop', 'stream', 'stream_options', 'suffix', 'temperature', 'top_p', 'user',
]);
// Azure api-versions before 2024-09-01(-preview) do not know stream_options
// (Kong's default 2023-05-15 among them): 400 "Unrecognized request argument
// supplied: stream_options". A version that is not a date (v1 "preview") is new.
const AZURE_STREAM_OPTIONS_SINCE = '2024-09-01';

// The request-field checks api.openai.com and Azure make before anything else.
function checkFields(ctx, known, azureVersion) {
  const body = ctx.json;
  if (!ctx.compat) {
    for (const k of Object.keys(body)) {
      const tooOld = k === 'stream_options' && azureVersion && /^\d{4}-\d{2}-\d{2}/.test(azureVersion)
        && azureVersion.slice(0, 10) < AZURE_STREAM_OPTIONS_SINCE;
      if (!known.has(k) || tooOld) return openaiError(400, `Unrecognized request argument supplied: ${k}`);
    }
  }
  // "stream_options: ... Only set this when you set stream: true."
  if (body.stream_options != null && body.stream !== true) {
    return openaiError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'stream_options');
  }
  return null;
}

// Azure's content filtering is on by default for every deployment: replies
// carry its annotations (learn.microsoft.com .../openai/concepts/content-filter).
const SAFE = { filtered: false, severity: 'safe' };
const NOT_DETECTED = { filtered: false, detected: false };
function promptFilterResults() {
  return [{ prompt_index: 0, content_filter_results: { hate: SAFE, jailbreak: NOT_DETECTED, self_harm: SAFE, sexual: SAFE, violence: SAFE } }];
}
function contentFilterResults() {
  return { hate: SAFE, protected_material_code: NOT_DETECTED, protected_material_text: NOT_DETECTED, self_harm: SAFE, sexual: SAFE, violence: SAFE };
}

// Azure's own error body for what its gateway rejects: {"error":{"code","message"}}.
export function azureError(status, message) {
  if (status === 400) return openaiError(status, message);
  return json(status, { error: { code: String(status), message: message || `fake azure error ${status}` } },
    status === 429 ? { 'retry-after': '1' } : {});
}

function bearer(headers) {
  const m = /^Bearer\s+(\S+)/i.exec(headers.authorization || '');
  return m ? m[1] : null;
}

// OpenAI wants "Authorization: Bearer <key>"; a key starting with "invalid" is refused.
function checkOpenaiAuth(ctx) {
  if (!ctx.requireAuth) return null;
  const key = bearer(ctx.headers);
  if (!key) {
    return openaiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
  }
  if (key.startsWith('invalid')) return openaiError(401, 'Incorrect API key provided. This is a fake response.');
  return null;
}

function checkAzureAuth(ctx) {
  if (!ctx.query.get('api-version')) return azureError(404, 'Resource not found');
  if (!ctx.requireAuth) return null;
  const key = ctx.headers['api-key'] || bearer(ctx.headers);
  if (!key || key.startsWith('invalid')) {
    return azureError(401, 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.');
  }
  return null;
}

function parseBody(ctx) {
  if (ctx.jsonError) {
    return openaiError(400, 'We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)');
  }
  if (!ctx.json || typeof ctx.json !== 'object' || Array.isArray(ctx.json)) return openaiError(400, 'Invalid request body');
  return null;
}

// The chat "model": the last message decides the reply; tools are called on request.
export function chatAnswer(body) {
  const messages = body.messages;
  const last = messages[messages.length - 1] || {};
  const tools = Array.isArray(body.tools) ? body.tools.filter((t) => t && t.function) : [];
  const promptTokens = messages.reduce((n, m) => n + countTokens(contentText(m?.content)), 0)
    + tools.reduce((n, t) => n + countTokens(t.function.name) + countTokens(t.function.description), 0);
  if (last.role === 'tool') {
    return { text: replyText(`tool result ${contentText(last.content)}`), promptTokens, toolCall: null };
  }
  const lastUser = [...messages].reverse().find((m) => m && m.role === 'user');
  const userText = contentText(lastUser?.content);
  const forbidden = body.tool_choice === 'none';
  const name = forbidden ? null : pickTool(userText, tools.map((t) => t.function.name));
  if (name) {
    const fn = tools.find((t) => t.function.name === name).function;
    return { text: null, promptTokens, toolCall: { id: fakeId('call_'), name, arguments: JSON.stringify(toolArguments(fn.parameters)) } };
  }
  return { text: replyText(userText), promptTokens, toolCall: null };
}

function usageOf(promptTokens, completionTokens) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function chat(ctx, modelOverride, azureVersion) {
  const bad = parseBody(ctx) || checkFields(ctx, azureVersion ? AZURE_CHAT_PARAMS : CHAT_PARAMS, azureVersion);
  if (bad) return bad;
  const body = ctx.json;
  const model = modelOverride || body.model;
  if (!model) return openaiError(400, 'you must provide a model parameter');
  if (!Array.isArray(body.messages)) return openaiError(400, "'messages' is a required property");
  if (body.messages.length === 0) return openaiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.");
  const ans = chatAnswer(body);
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  let text = ans.text;
  let finish = ans.toolCall ? 'tool_calls' : 'stop';
  if (text !== null) {
    const [t, cut] = truncateWords(text, maxTokens);
    text = t;
    if (cut) finish = 'length';
  }
  const completionTokens = ans.toolCall ? countTokens(ans.toolCall.name) + countTokens(ans.toolCall.arguments) : countTokens(text);
  const n = Math.max(1, Math.min(Number(body.n) || 1, 8));
  const id = fakeId('chatcmpl-');
  const created = Math.floor(Date.now() / 1000);
  const toolCalls = ans.toolCall
    ? [{ id: ans.toolCall.id, type: 'function', function: { name: ans.toolCall.name, arguments: ans.toolCall.arguments } }]
    : undefined;

  if (!body.stream) {
    const choices = [];
    for (let i = 0; i < n; i++) {
      const message = { role: 'assistant', content: text, refusal: null, annotations: [] };
      if (toolCalls) message.tool_calls = toolCalls;
      const choice = { index: i, message, logprobs: null, finish_reason: finish };
      if (azureVersion) choice.content_filter_results = contentFilterResults();
      choices.push(choice);
    }
    const reply = {
      id, object: 'chat.completion', created, model, choices,
      usage: usageOf(ans.promptTokens, completionTokens * n), service_tier: 'default', system_fingerprint: 'fp_fake',
    };
    if (azureVersion) reply.prompt_filter_results = promptFilterResults();
    return json(200, reply);
  }

  const includeUsage = !!body.stream_options?.include_usage;
  const frames = [];
  // Azure opens the stream with the prompt's filter annotations in a chunk of
  // its own: empty choices, empty id/model/object, created 0 (the reason the
  // Azure docs tell clients to skip chunks whose choices are empty).
  if (azureVersion) {
    frames.push(sseFrame({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults() }));
  }
  const chunk = (choices, extra = {}) => {
    if (azureVersion) {
      for (const ch of choices) ch.content_filter_results = ch.delta.content || ch.delta.tool_calls?.[0]?.function?.arguments ? contentFilterResults() : {};
    }
    const c = { id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_fake', choices, ...extra };
    if (includeUsage) c.usage = null;
    frames.push(sseFrame(c));
  };
  for (let i = 0; i < n; i++) {
    if (toolCalls) {
      const tc = toolCalls[0];
      chunk([{ index: i, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } }], refusal: null }, logprobs: null, finish_reason: null }]);
      // Arguments arrive in small pieces, as the real API sends them.
      const args = tc.function.arguments;
      for (let off = 0; off < args.length; off += 5) {
        chunk([{ index: i, delta: { tool_calls: [{ index: 0, function: { arguments: args.slice(off, off + 5) } }] }, logprobs: null, finish_reason: null }]);
      }
    } else {
      chunk([{ index: i, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]);
      for (const piece of wordPieces(text)) {
        if (piece) chunk([{ index: i, delta: { content: piece }, logprobs: null, finish_reason: null }]);
      }
    }
    chunk([{ index: i, delta: {}, logprobs: null, finish_reason: finish }]);
  }
  if (includeUsage) {
    frames.push(sseFrame({ id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_fake', choices: [], usage: usageOf(ans.promptTokens, completionTokens * n) }));
  }
  frames.push('data: [DONE]\n\n');
  return { status: 200, headers: SSE_HEADERS, frames };
}

function completions(ctx, modelOverride, azureVersion) {
  const bad = parseBody(ctx) || checkFields(ctx, COMPLETION_PARAMS, azureVersion);
  if (bad) return bad;
  const body = ctx.json;
  const model = modelOverride || body.model;
  if (!model) return openaiError(400, 'you must provide a model parameter');
  if (body.prompt === undefined) return openaiError(400, "'prompt' is a required property");
  const prompt = Array.isArray(body.prompt) ? body.prompt.join(' ') : String(body.prompt);
  const [text, cut] = truncateWords(replyText(prompt), body.max_tokens);
  const finish = cut ? 'length' : 'stop';
  const id = fakeId('cmpl-');
  const created = Math.floor(Date.now() / 1000);
  const usage = { prompt_tokens: countTokens(prompt), completion_tokens: countTokens(text), total_tokens: countTokens(prompt) + countTokens(text) };
  if (!body.stream) {
    const reply = { id, object: 'text_completion', created, model, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }], usage };
    if (azureVersion) {
      reply.choices[0].content_filter_results = contentFilterResults();
      reply.prompt_filter_results = promptFilterResults();
    }
    return json(200, reply);
  }
  const includeUsage = !!body.stream_options?.include_usage;
  const frames = [];
  const pieces = wordPieces(text);
  pieces.forEach((piece, i) => {
    const c = { id, object: 'text_completion', created, model, choices: [{ text: piece, index: 0, logprobs: null, finish_reason: i === pieces.length - 1 ? finish : null }] };
    if (includeUsage) c.usage = null;
    frames.push(sseFrame(c));
  });
  if (includeUsage) frames.push(sseFrame({ id, object: 'text_completion', created, model, choices: [], usage }));
  frames.push('data: [DONE]\n\n');
  return { status: 200, headers: SSE_HEADERS, frames };
}

function embeddings(ctx, modelOverride) {
  const bad = parseBody(ctx);
  if (bad) return bad;
  const body = ctx.json;
  const model = modelOverride || body.model;
  if (!model) return openaiError(400, 'you must provide a model parameter');
  if (body.input === undefined || body.input === null || body.input === '') return openaiError(400, "'input' is a required property");
  const inputs = Array.isArray(body.input) && body.input.length && typeof body.input[0] !== 'number' ? body.input : [body.input];
  const dims = Math.max(1, Math.min(Number(body.dimensions) || 8, 4096));
  let tokens = 0;
  const data = inputs.map((inp, index) => {
    const text = Array.isArray(inp) ? inp.join(' ') : String(inp);
    tokens += Array.isArray(inp) ? inp.length : countTokens(text);
    const vec = embeddingVector(text, dims);
    let embedding = vec;
    // x-fake-floats-only: a compatible server that ignores encoding_format
    // (as older llama.cpp and Ollama /v1 builds did) and sends numbers.
    if (body.encoding_format === 'base64' && !ctx.headers['x-fake-floats-only']) {
      const buf = Buffer.alloc(vec.length * 4);
      vec.forEach((v, i) => buf.writeFloatLE(v, i * 4));
      embedding = buf.toString('base64');
    }
    return { object: 'embedding', index, embedding };
  });
  return json(200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

const OPENAI_ROUTES = { '/v1/chat/completions': chat, '/v1/completions': completions, '/v1/embeddings': embeddings };
const AZURE_RE = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/;
const AZURE_ROUTES = { 'chat/completions': chat, completions, embeddings };

export const openai = {
  name: 'openai',
  match: (path) => Object.hasOwn(OPENAI_ROUTES, path),
  error: openaiError,
  handle(ctx) {
    if (ctx.method !== 'POST') return openaiError(405, `Invalid method for URL (${ctx.method} ${ctx.path})`);
    return checkOpenaiAuth(ctx) || OPENAI_ROUTES[ctx.path](ctx);
  },
};

export const azure = {
  name: 'azure',
  match: (path) => AZURE_RE.test(path),
  error: azureError,
  handle(ctx) {
    const [, deployment, op] = AZURE_RE.exec(ctx.path);
    if (ctx.method !== 'POST') return azureError(405, 'Method not allowed');
    // Azure answers with the deployment's model whatever the body says.
    return checkAzureAuth(ctx) || AZURE_ROUTES[op](ctx, decodeURIComponent(deployment), ctx.query.get('api-version'));
  },
};
