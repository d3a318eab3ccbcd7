// Fake Anthropic Messages API (/v1/messages, JSON and the SSE event
// sequence, tool_use) and the legacy Text Completions API (/v1/complete).
// Like the real API it insists on x-api-key and anthropic-version.
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

// {"type":"error","error":{"type","message"}}, plus the request-id header the real API sends.
export function anthropicError(status, message) {
  const type = ERROR_TYPES[status] || (status >= 500 ? 'api_error' : 'invalid_request_error');
  const headers = { 'request-id': fakeId('req_') };
  if (status === 429) headers['retry-after'] = '1';
  return json(status, { type: 'error', error: { type, message: message || `fake anthropic error ${status}` } }, headers);
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
  if (body.messages.length === 0) return anthropicError(400, 'messages: at least one message is required');
  if (body.messages[0]?.role !== 'user' && body.messages[0]?.role !== 'assistant') {
    return anthropicError(400, `messages.0.role: Input should be 'user' or 'assistant'`);
  }
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
function completeApi(ctx) {
  const bad = checkHeaders(ctx);
  if (bad) return bad;
  const body = ctx.json;
  if (!body.model) return anthropicError(400, 'model: Field required');
  if (typeof body.prompt !== 'string') return anthropicError(400, 'prompt: Field required');
  if (body.max_tokens_to_sample === undefined) return anthropicError(400, 'max_tokens_to_sample: Field required');
  const m = /Human:\s*([\s\S]*?)\s*(?:\n\nAssistant:\s*)?$/.exec(body.prompt);
  const [text, cut] = truncateWords(replyText(m ? m[1] : body.prompt), body.max_tokens_to_sample);
  return json(200, { type: 'completion', id: fakeId('compl_'), completion: ` ${text}`, stop_reason: cut ? 'max_tokens' : 'stop_sequence', model: body.model, stop: cut ? null : '\n\nHuman:', log_id: fakeId('') });
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
