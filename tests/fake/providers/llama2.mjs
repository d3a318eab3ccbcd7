// Fake llama2 "raw" endpoint in the format Kong's fixtures show: the request
// is {"inputs": "<s>[INST] <<SYS>> ... <</SYS>> question [/INST]", "parameters": {...}}
// and the reply {"data":[{"generated_text": inputs + answer}]}, the prompt
// repeated in front of the answer. Errors are {"error": "..."}.
import { json } from '../emit.mjs';
import { replyText, truncateWords } from '../text.mjs';

export function llama2Error(status, message) {
  return json(status, { error: message || `fake llama2 error ${status}` });
}

// The text of the last [INST] ... [/INST] block, without its <<SYS>> part.
export function lastInstruction(inputs) {
  const blocks = [...String(inputs).matchAll(/\[INST\]([\s\S]*?)\[\/INST\]/g)];
  if (!blocks.length) return String(inputs).trim();
  let inst = blocks[blocks.length - 1][1];
  inst = inst.replace(/<<SYS>>[\s\S]*?<<\/?SYS>>/, '');
  return inst.trim();
}

export const llama2 = {
  name: 'llama2',
  match: (path) => path === '/llama2/raw' || path === '/raw/llama2',
  error: llama2Error,
  handle(ctx) {
    if (ctx.method !== 'POST') return llama2Error(405, 'method not allowed');
    if (ctx.jsonError || !ctx.json || typeof ctx.json.inputs !== 'string') return llama2Error(400, 'some error');
    const [answer] = truncateWords(replyText(lastInstruction(ctx.json.inputs)), ctx.json.parameters?.max_new_tokens);
    return json(200, { data: [{ generated_text: `${ctx.json.inputs}\n\n${answer}` }] });
  },
};
