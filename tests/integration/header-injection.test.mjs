// Header values built from client input must never split the head they are
// written into. ai-proxy names the model in X-Sluice-LLM-Model; the model
// comes from the client's JSON body (where "\r\n" is a legal escape) or
// from a $(query_params.x) template (percent-decoded). With evkeyvalq,
// evhttp_add_header refused such values; gw_headers_add_ref does not check.
//
//   SLUICE_BIN=build/sluice node --test tests/integration/header-injection.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, listenLocal, rawRequest, startSluice } from './lib/harness.mjs';
import { aiRoute } from './lib/ai-helpers.mjs';

const REPLY = JSON.stringify({
  id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

// The reply's own "model" is clean: a buffered 2xx reply renames the
// header after it; a stream (or an error) leaves the request's name there.
const EVENTS = [
  { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' }, finish_reason: null }] },
  { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
].map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n';

function startProvider() {
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const stream = JSON.parse(Buffer.concat(parts).toString() || '{}').stream === true;
      const body = stream ? EVENTS : REPLY;
      res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return listenLocal(server);
}

// The response head as raw lines (so that an injected line is visible).
async function headOf(port, path, body) {
  const data = `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  const raw = (await rawRequest({ port, data })).toString('latin1');
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, `a head: ${raw.slice(0, 300)}`);
  return raw.slice(0, end).split('\r\n');
}

describe('client input in response headers', { skip: binaryMissing() }, () => {
  let prov, sl;
  before(async () => {
    prov = await startProvider();
    const up = `${prov.url}/v1/chat/completions`;
    sl = await startSluice({
      workers: 1,
      config: {
        services: [{
          name: 'ai', url: prov.url, routes: [
            aiRoute('any', '/any', { route_type: 'llm/v1/chat', model: { provider: 'openai', options: { upstream_url: up } } }),
            aiRoute('tmpl', '/tmpl', { route_type: 'llm/v1/chat', model: { provider: 'openai', name: '$(query_params.m)', options: { upstream_url: up } } }),
          ],
        }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await prov?.close();
  });

  const chat = (model, stream = true) => JSON.stringify({ ...(model ? { model } : {}), stream, messages: [{ role: 'user', content: 'hi' }] });

  test('a model name with CR/LF from the body does not split the head', async () => {
    const lines = await headOf(sl.proxyPort, '/any', chat('gpt-4o\r\nX-Injected: body'));
    assert.match(lines[0], /^HTTP\/1\.1 /);
    assert.ok(!lines.some((l) => /^x-injected:/i.test(l)), `injected header line:\n${lines.join('\n')}`);
    for (const l of lines.slice(1)) assert.match(l, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+: /, `malformed line ${JSON.stringify(l)}`);
  });

  test('a model name with CR/LF from a query template does not split the head', async () => {
    const lines = await headOf(sl.proxyPort, '/tmpl?m=gpt-4o%0D%0AX-Injected:%20query', chat(null));
    assert.ok(!lines.some((l) => /^x-injected:/i.test(l)), `injected header line:\n${lines.join('\n')}`);
    for (const l of lines.slice(1)) assert.match(l, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+: /, `malformed line ${JSON.stringify(l)}`);
  });

  test('a model name with CR/LF in a buffered reply does not split the head', async () => {
    const lines = await headOf(sl.proxyPort, '/any', chat('gpt-4o\r\nX-Injected: body', false));
    assert.ok(!lines.some((l) => /^x-injected:/i.test(l)), `injected header line:\n${lines.join('\n')}`);
  });

  test('a clean model name is still named', async () => {
    for (const stream of [true, false]) {
      const lines = await headOf(sl.proxyPort, '/any', chat('gpt-4o-mini', stream));
      assert.ok(lines.some((l) => /^x-sluice-llm-model: openai\/gpt-4o(-mini)?$/i.test(l)), lines.join('\n'));
    }
  });
});

// The access line quotes uri="..." and error="...": a '"' or '\' in a
// request target (both legal there) must not end the field early.
describe('client input in the access log line', { skip: binaryMissing() }, () => {
  let prov, sl;
  before(async () => {
    prov = await startProvider();
    sl = await startSluice({ workers: 1, config: { services: [{ name: 'plain', url: prov.url, routes: [{ name: 'plain', paths: ['/plain'] }] }] } });
  });
  after(async () => {
    await sl?.stop();
    await prov?.close();
  });

  test('quotes and backslashes in the target are escaped in uri="..."', async () => {
    const mark = sl.logMark();
    const raw = (await rawRequest({ port: sl.proxyPort, data: 'GET /plain/a"b\\c?x="1"%20status=999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' })).toString('latin1');
    assert.match(raw, /^HTTP\/1\.1 200 /);
    const line = await sl.waitForLog(/route=plain /, { from: mark });
    assert.ok(line.includes(' uri="/plain/a\\"b\\\\c?x=\\"1\\"%20status=999" status=200 '), line);
    // One status= field: the one the proxy wrote.
    assert.equal(line.match(/ status=/g).length, 1, line);
  });
});
