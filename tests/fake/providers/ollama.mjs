// Fake Ollama native API: /api/chat and /api/generate, streaming NDJSON by
// default (as Ollama does unless "stream": false), tool calls with object
// arguments, and {"error": "..."} bodies.
import { json } from '../emit.mjs';
import { contentText, countTokens, embeddingVector, pickTool, replyText, toolArguments, truncateWords, wordPieces } from '../text.mjs';

export function ollamaError(status, message) {
  return json(status, { error: message || `fake ollama error ${status}` });
}

const NDJSON = { 'content-type': 'application/x-ndjson' };

function timings(promptTokens, evalTokens) {
  return {
    total_duration: 1000000 * (promptTokens + evalTokens + 1),
    load_duration: 100000,
    prompt_eval_count: promptTokens,
    prompt_eval_duration: 100000 * promptTokens,
    eval_count: evalTokens,
    eval_duration: 100000 * evalTokens,
  };
}

function parse(ctx) {
  if (ctx.jsonError) return ollamaError(400, `invalid character in request body: ${ctx.jsonError}`);
  if (!ctx.json || typeof ctx.json !== 'object') return ollamaError(400, 'missing request body');
  if (!ctx.json.model) return ollamaError(400, 'model is required');
  return null;
}

function chatApi(ctx) {
  const bad = parse(ctx);
  if (bad) return bad;
  const body = ctx.json;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const last = messages[messages.length - 1] || {};
  const tools = Array.isArray(body.tools) ? body.tools.filter((t) => t?.function?.name) : [];
  const promptTokens = messages.reduce((n, m) => n + countTokens(contentText(m?.content)), 0);
  let text;
  let toolCalls;
  if (last.role === 'tool') text = replyText(`tool result ${contentText(last.content)}`);
  else {
    const userText = last.role === 'user' ? contentText(last.content) : '';
    const name = pickTool(userText, tools.map((t) => t.function.name));
    if (name) {
      const fn = tools.find((t) => t.function.name === name).function;
      text = '';
      toolCalls = [{ function: { name, arguments: toolArguments(fn.parameters) } }];
    } else text = replyText(userText);
  }
  const [t, cut] = truncateWords(text, body.options?.num_predict);
  text = t;
  const doneReason = cut ? 'length' : 'stop';
  const evalTokens = toolCalls ? countTokens(JSON.stringify(toolCalls)) : countTokens(text);
  const created = new Date().toISOString();
  const final = { model: body.model, created_at: created, message: { role: 'assistant', content: body.stream === false ? text : '' }, done_reason: doneReason, done: true, ...timings(promptTokens, evalTokens) };
  if (toolCalls && body.stream === false) final.message.tool_calls = toolCalls;
  if (body.stream === false) return json(200, final);
  const frames = [];
  if (toolCalls) frames.push(JSON.stringify({ model: body.model, created_at: created, message: { role: 'assistant', content: '', tool_calls: toolCalls }, done: false }) + '\n');
  else {
    for (const piece of wordPieces(text)) {
      if (piece) frames.push(JSON.stringify({ model: body.model, created_at: created, message: { role: 'assistant', content: piece }, done: false }) + '\n');
    }
  }
  frames.push(JSON.stringify(final) + '\n');
  return { status: 200, headers: NDJSON, frames };
}

function generateApi(ctx) {
  const bad = parse(ctx);
  if (bad) return bad;
  const body = ctx.json;
  const prompt = String(body.prompt ?? '');
  const [text, cut] = truncateWords(replyText(prompt), body.options?.num_predict);
  const created = new Date().toISOString();
  const final = { model: body.model, created_at: created, response: body.stream === false ? text : '', done: true, done_reason: cut ? 'length' : 'stop', context: [1, 2, 3], ...timings(countTokens(prompt) + countTokens(body.system), countTokens(text)) };
  if (body.stream === false) return json(200, final);
  const frames = [];
  for (const piece of wordPieces(text)) {
    if (piece) frames.push(JSON.stringify({ model: body.model, created_at: created, response: piece, done: false }) + '\n');
  }
  frames.push(JSON.stringify(final) + '\n');
  return { status: 200, headers: NDJSON, frames };
}

// POST /api/embed: {model, input: string | string[], truncate, dimensions,
// keep_alive, options} -> {model, embeddings: number[][], total_duration,
// load_duration, prompt_eval_count}; always floats (no encoding option).
function embedApi(ctx) {
  const bad = parse(ctx);
  if (bad) return bad;
  const body = ctx.json;
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  if (body.input === undefined || inputs.some((x) => typeof x !== 'string')) {
    return ollamaError(400, 'invalid input type');
  }
  const dims = Math.max(1, Math.min(Number(body.dimensions) || 8, 4096));
  const promptTokens = inputs.reduce((n, t) => n + countTokens(t), 0);
  return json(200, {
    model: body.model,
    embeddings: inputs.map((t) => embeddingVector(t, dims)),
    total_duration: 1000000 * (promptTokens + 1),
    load_duration: 100000,
    prompt_eval_count: promptTokens,
  });
}

const ROUTES = { '/api/chat': chatApi, '/api/generate': generateApi, '/api/embed': embedApi };

export const ollama = {
  name: 'ollama',
  match: (path) => Object.hasOwn(ROUTES, path),
  error: ollamaError,
  handle(ctx) {
    if (ctx.method !== 'POST') return ollamaError(405, 'method not allowed');
    return ROUTES[ctx.path](ctx);
  },
};
