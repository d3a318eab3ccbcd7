// Deterministic "model" behaviour shared by every fake provider: what the
// reply says, how many tokens things count as, and which tool gets called.
// Tests assert on these, so they must depend on the request alone.
import { createHash } from 'node:crypto';

// One token per whitespace-separated word: crude, but stable and easy to
// predict from a test.
export function countTokens(text) {
  if (text == null) return 0;
  const m = String(text).match(/\S+/g);
  return m ? m.length : 0;
}

// Text of an OpenAI or Anthropic content value: a string, or an array of
// parts (text parts kept, images counted as "[image]").
export function contentText(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => {
        if (typeof p === 'string') return p;
        if (!p || typeof p !== 'object') return '';
        if (p.type === 'text' || p.type === 'input_text') return p.text ?? '';
        if (p.type === 'image_url' || p.type === 'image') return '[image]';
        if (p.type === 'tool_result') return contentText(p.content);
        return '';
      })
      .filter((s) => s !== '')
      .join(' ');
  }
  return String(content);
}

// The reply to a prompt: "echo: <prompt>", so a test sees its own words come back.
export function replyText(prompt) {
  return `echo: ${prompt}`;
}

// Splits text into stream deltas, one word each (with its following space),
// so concatenating the deltas gives the text back exactly.
export function wordPieces(text) {
  const pieces = String(text).match(/\S+\s*|\s+/g);
  return pieces && pieces.length ? pieces : [''];
}

// Keeps the first n words (max_tokens): returns [text, truncated].
export function truncateWords(text, n) {
  if (n == null || !Number.isFinite(Number(n))) return [text, false];
  const pieces = wordPieces(text);
  let words = 0;
  let out = '';
  for (const p of pieces) {
    if (/\S/.test(p)) {
      if (words === Number(n)) return [out.trimEnd(), true];
      words++;
    }
    out += p;
  }
  return [text, false];
}

// "call get_weather" in the last user message picks that tool, when the
// request offers a tool of that name.
export function pickTool(userText, toolNames) {
  const m = /\bcall\s+([A-Za-z0-9_.-]+)/.exec(userText || '');
  if (!m) return null;
  return toolNames.includes(m[1]) ? m[1] : null;
}

// Arguments for a tool call made up from its JSON schema: string properties
// get "<name>_value", numbers 42, booleans true.
export function toolArguments(schema) {
  const args = {};
  const props = (schema && schema.properties) || {};
  for (const [name, p] of Object.entries(props)) {
    const t = Array.isArray(p?.type) ? p.type[0] : p?.type;
    if (t === 'number' || t === 'integer') args[name] = 42;
    else if (t === 'boolean') args[name] = true;
    else if (t === 'array') args[name] = [];
    else if (t === 'object') args[name] = {};
    else if (Array.isArray(p?.enum) && p.enum.length) args[name] = p.enum[0];
    else args[name] = `${name}_value`;
  }
  return args;
}

// Stable ids derived from the request, prefixed like the provider's own.
let counter = 0;
export function fakeId(prefix) {
  counter++;
  return prefix + createHash('sha256').update(`${process.pid}:${counter}:${Date.now()}`).digest('hex').slice(0, 24);
}

// A deterministic unit-ish vector for an embedding input.
export function embeddingVector(text, dims) {
  const out = [];
  let block = 0;
  while (out.length < dims) {
    const h = createHash('sha256').update(`${block++}:${text}`).digest();
    for (let i = 0; i + 1 < h.length && out.length < dims; i += 2) {
      out.push(Math.round(((h.readUInt16BE(i) / 65535) * 2 - 1) * 1e6) / 1e6);
    }
  }
  return out;
}

export function sha256Hex(buf) {
  return createHash('sha256').update(buf).digest('hex');
}
