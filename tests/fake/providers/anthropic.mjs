// Fake Anthropic Messages API (/v1/messages, JSON and the SSE event
// sequence, tool_use) and the legacy Text Completions API (/v1/complete, JSON
// and SSE). Like the real API it insists on x-api-key and anthropic-version,
// refuses unknown request fields, roles other than user/assistant, and
// temperature/top_p outside 0..1; error bodies carry request_id.
import { json, sseFrame, SSE_HEADERS } from '../emit.mjs';
import { contentText, countTokens, fakeId, pickTool, replyText, toolArguments, truncateWords, wordPieces } from '../text.mjs';

const ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

// {"type":"error","error":{"type","message"},"request_id":"req_..."}
// (docs.anthropic.com/en/api/errors), the same id as the request-id header.
export function anthropicError(status, message) {
  const type = ERROR_TYPES[status] || (status >= 500 ? 'api_error' : 'invalid_request_error');
  const requestId = fakeId('req_');
  const headers = { 'request-id': requestId };
  if (status === 429) headers['retry-after'] = '1';
  return json(status, { type: 'error', error: { type, message: message || `fake anthropic error ${status}` }, request_id: requestId }, headers);
}

// The request fields of docs.anthropic.com/en/api/messages and /en/api/complete.
// The API validates strictly: any other top-level field is
// 400 "<field>: Extra inputs are not permitted".
const MESSAGES_PARAMS = new Set([
  'model', 'messages', 'max_tokens', 'container', 'context_management', 'mcp_servers', 'metadata', 'output_config',
  'output_format', 'service_tier', 'stop_sequences', 'stream', 'system', 'temperature', 'thinking', 'tool_choice',
  'tools', 'top_k', 'top_p',
]);
const COMPLETE_PARAMS = new Set([
  'model', 'prompt', 'max_tokens_to_sample', 'metadata', 'stop_sequences', 'stream', 'temperature', 'top_k', 'top_p',
]);

function checkFields(body, known) {
  for (const k of Object.keys(body)) {
    if (!known.has(k)) return anthropicError(400, `${k}: Extra inputs are not permitted`);
  }
  // temperature: "Ranges from 0.0 to 1.0"; top_p likewise a probability.
  for (const k of ['temperature', 'top_p']) {
    const v = body[k];
    if (v === undefined) continue;
    if (typeof v !== 'number') return anthropicError(400, `${k}: Input should be a valid number`);
    if (v < 0) return anthropicError(400, `${k}: Input should be greater than or equal to 0`);
    if (v > 1) return anthropicError(400, `${k}: Input should be less than or equal to 1`);
  }
  return null;
}

// The current SDK sends its API key as "Authorization: Bearer", older
// clients as x-api-key: both count.
function checkHeaders(ctx) {
  const bearer = /^Bearer\s+(\S+)/i.exec(ctx.headers.authorization || '');
  const key = ctx.headers['x-api-key'] || (bearer && bearer[1]);
  if (ctx.requireAuth) {
    if (!key) return anthropicError(401, 'x-api-key header is required');
    if (key.startsWith('invalid')) return anthropicError(401, 'invalid x-api-key');
  }
  if (!ctx.headers['anthropic-version']) return anthropicError(400, 'anthropic-version: header is required');
  if (ctx.jsonError) return anthropicError(400, `invalid JSON in request body: ${ctx.jsonError}`);
  if (!ctx.json || typeof ctx.json !== 'object' || Array.isArray(ctx.json)) return anthropicError(400, 'request body must be a JSON object');
  return null;
}

function systemText(system) {
  if (system == null) return '';
  return typeof system === 'string' ? system : contentText(system);
}

function answer(body) {
  const messages = body.messages;
  const last = messages[messages.length - 1] || {};
  const tools = Array.isArray(body.tools) ? body.tools.filter((t) => t && t.name) : [];
  const inputTokens = countTokens(systemText(body.system))
    + messages.reduce((n, m) => n + countTokens(contentText(m?.content)), 0)
    + tools.reduce((n, t) => n + countTokens(t.name) + countTokens(t.description), 0);
  const blocks = Array.isArray(last.content) ? last.content : [];
  const toolResult = blocks.find((b) => b && b.type === 'tool_result');
  if (last.role === 'user' && toolResult) {
    return { text: replyText(`tool result ${contentText(toolResult.content)}`), inputTokens, tool: null };
  }
  const userText = last.role === 'user' ? contentText(last.content) : '';
  const forbidden = body.tool_choice?.type === 'none';
  const name = forbidden ? null : pickTool(userText, tools.map((t) => t.name));
  if (name) {
    const tool = tools.find((t) => t.name === name);
    return { text: `I will call ${name}.`, inputTokens, tool: { id: fakeId('toolu_'), name, input: toolArguments(tool.input_schema) } };
  }
  return { text: replyText(userText), inputTokens, tool: null };
}

// Applies max_tokens and stop_sequences to the text the way the API reports them.
function limitText(text, body) {
  let stopReason = 'end_turn';
  let stopSequence = null;
  for (const s of Array.isArray(body.stop_sequences) ? body.stop_sequences : []) {
    const at = typeof s === 'string' && s ? text.indexOf(s) : -1;
    if (at >= 0) {
      text = text.slice(0, at);
      stopReason = 'stop_sequence';
      stopSequence = s;
      break;
    }
  }
  const [t, cut] = truncateWords(text, body.max_tokens);
  if (cut) return [t, 'max_tokens', null];
  return [text, stopReason, stopSequence];
}

function messagesApi(ctx) {
  const bad = checkHeaders(ctx);
  if (bad) return bad;
  const body = ctx.json;
  if (!body.model) return anthropicError(400, 'model: Field required');
  if (!Array.isArray(body.messages)) return anthropicError(400, 'messages: Field required');
  if (body.max_tokens === undefined) return anthropicError(400, 'max_tokens: Field required');
  const badField = checkFields(body, MESSAGES_PARAMS);
  if (badField) return badField;
  if (body.messages.length === 0) return anthropicError(400, 'messages: at least one message is required');
  // Every message is "user" or "assistant": there is no "system" role (the
  // system prompt is the top-level system field) and no "tool" role.
  const badRole = body.messages.findIndex((m) => m?.role !== 'user' && m?.role !== 'assistant');
  if (badRole >= 0) return anthropicError(400, `messages.${badRole}.role: Input should be 'user' or 'assistant'`);
  const ans = answer(body);
  let [text, stopReason, stopSequence] = limitText(ans.text, body);
  const content = [];
  if (text) content.push({ type: 'text', text });
  let outputTokens = countTokens(text);
  if (ans.tool && stopReason === 'end_turn') {
    content.push({ type: 'tool_use', id: ans.tool.id, name: ans.tool.name, input: ans.tool.input });
    stopReason = 'tool_use';
    outputTokens += countTokens(ans.tool.name) + countTokens(JSON.stringify(ans.tool.input));
  }
  const id = fakeId('msg_');
  const usage = { input_tokens: ans.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: outputTokens };
  if (!body.stream) {
    return json(200, { id, type: 'message', role: 'assistant', model: body.model, content, stop_reason: stopReason, stop_sequence: stopSequence, usage },
      { 'request-id': fakeId('req_') });
  }
  const frames = [];
  const ev = (type, data) => frames.push(sseFrame({ type, ...data }, type));
  ev('message_start', { message: { id, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } });
  content.forEach((block, index) => {
    if (block.type === 'text') {
      ev('content_block_start', { index, content_block: { type: 'text', text: '' } });
      if (index === 0) ev('ping', {});
      for (const piece of wordPieces(block.text)) {
        if (piece) ev('content_block_delta', { index, delta: { type: 'text_delta', text: piece } });
      }
    } else {
      ev('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
      if (index === 0) ev('ping', {});
      const args = JSON.stringify(block.input);
      ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } });
      for (let off = 0; off < args.length; off += 6) {
        ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: args.slice(off, off + 6) } });
      }
    }
    ev('content_block_stop', { index });
  });
  ev('message_delta', { delta: { stop_reason: stopReason, stop_sequence: stopSequence }, usage: { output_tokens: outputTokens } });
  ev('message_stop', {});
  return { status: 200, headers: { ...SSE_HEADERS, 'request-id': fakeId('req_') }, frames };
}

// Legacy Text Completions: prompt "\n\nHuman: ...\n\nAssistant:".
// docs.anthropic.com/en/api/prompt-validation: after light sanitizing (a
// missing leading "\n\n" before "Human:", trailing spaces) the first turn
// must be "\n\nHuman:" (a system text may precede it) and the last turn
// "\n\nAssistant:". /en/api/streaming: stream: true answers SSE "completion"
// events (a ping among them), the last one carrying stop_reason.
function completeApi(ctx) {
  const bad = checkHeaders(ctx);
  if (bad) return bad;
  const body = ctx.json;
  if (!body.model) return anthropicError(400, 'model: Field required');
  if (typeof body.prompt !== 'string') return anthropicError(400, 'prompt: Field required');
  if (body.max_tokens_to_sample === undefined) return anthropicError(400, 'max_tokens_to_sample: Field required');
  const badField = checkFields(body, COMPLETE_PARAMS);
  if (badField) return badField;
  const prompt = (body.prompt.startsWith('Human:') ? `\n\n${body.prompt}` : body.prompt).replace(/ +$/, '');
  const turns = [...prompt.matchAll(/\n\n(Human|Assistant):/g)].map((t) => t[1]);
  if (turns[0] !== 'Human') return anthropicError(400, 'prompt must start with "\\n\\nHuman:" turn');
  if (turns.at(-1) !== 'Assistant') return anthropicError(400, 'prompt must end with "\\n\\nAssistant:" turn');
  const m = /Human:\s*([\s\S]*?)\s*(?:\n\nAssistant:\s*)?$/.exec(prompt);
  const [text, cut] = truncateWords(replyText(m ? m[1] : prompt), body.max_tokens_to_sample);
  const stopReason = cut ? 'max_tokens' : 'stop_sequence';
  if (!body.stream) {
    return json(200, { type: 'completion', id: fakeId('compl_'), completion: ` ${text}`, stop_reason: stopReason, model: body.model, stop: cut ? null : '\n\nHuman:', log_id: fakeId('') },
      { 'request-id': fakeId('req_') });
  }
  const frames = [];
  const ev = (completion, stop) => frames.push(sseFrame({ type: 'completion', completion, stop_reason: stop, model: body.model }, 'completion'));
  wordPieces(text).forEach((piece, i) => {
    ev(i === 0 ? ` ${piece}` : piece, null);
    if (i === 0) frames.push(sseFrame({ type: 'ping' }, 'ping'));
  });
  ev('', stopReason);
  return { status: 200, headers: { ...SSE_HEADERS, 'request-id': fakeId('req_') }, frames };
}

const ROUTES = { '/v1/messages': messagesApi, '/v1/complete': completeApi };

export const anthropic = {
  name: 'anthropic',
  match: (path) => Object.hasOwn(ROUTES, path),
  error: anthropicError,
  handle(ctx) {
    if (ctx.method !== 'POST') return anthropicError(405, 'Method Not Allowed');
    return ROUTES[ctx.path](ctx);
  },
};
