// Adversarial review of the fixes in 81391fb..HEAD: the openai_errors chain
// flag (core 413 in OpenAI's shape), ai.payload.request after plugin
// rewrites, keep_stream_payload over many chains and the 256 KiB cut,
// gw_json_parse's one-JSON-text rule, Ollama usage omission, the SSE/NDJSON
// too_large error event, json_like on preserve, and $VAR in enum fields.
// A canned upstream (below) answers byte-exact replies a provider could send.
// One test found a regression (it failed before its fix): json_like matched
// "json" anywhere in the Content-Type, a multipart boundary included.
//
//   SLUICE_BIN=build-asan/sluice node --test tests/integration/late-review.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { logFields, postJson, postStream } from './lib/ai-helpers.mjs';
import { binaryMissing, listenLocal, request, runSluice, startSluice, tempDir } from './lib/harness.mjs';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const MODEL = 'gpt-4o';
const chat = (content, extra = {}) => ({ model: MODEL, messages: [{ role: 'user', content }], ...extra });
const completion = (content) => JSON.stringify({
  id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: MODEL,
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});
const chunk = (content, finish = null) => `data: ${JSON.stringify({
  id: 'c1', object: 'chat.completion.chunk', created: 1, model: MODEL,
  choices: [{ index: 0, delta: content == null ? {} : { content }, finish_reason: finish }],
})}\n\n`;

// Canned replies by path; /echo answers what it got (content type and body).
function canned(req, body, res) {
  const p = req.url.split('?')[0];
  const json = (s) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(s); };
  if (p.startsWith('/crlf/')) return json(completion('crlf ok') + '\r\n');
  if (p.startsWith('/nl/')) return json(completion('nl ok') + '\n');
  if (p.startsWith('/bom/')) return json('\uFEFF' + completion('bom ok'));
  if (p.startsWith('/two/')) return json(completion('first') + '\n' + completion('second'));
  if (p.startsWith('/ollama-nocount/')) {
    return json(JSON.stringify({ model: 'llama3', created_at: '2024-01-01T00:00:00Z',
      message: { role: 'assistant', content: 'hi' }, done: true, done_reason: 'stop' }));
  }
  if (p.startsWith('/ollama-count/')) {
    return json(JSON.stringify({ model: 'llama3', created_at: '2024-01-01T00:00:00Z',
      message: { role: 'assistant', content: 'hi' }, done: true, done_reason: 'stop',
      prompt_eval_count: 0, eval_count: 3 }));
  }
  if (p.startsWith('/bigsse/')) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write(chunk('before'));
    const big = 'data: {"x":"' + 'a'.repeat(9 * 1024 * 1024) + '"}\n\n';
    res.write(big);
    res.end(chunk('after') + chunk(null, 'stop') + 'data: [DONE]\n\n');
    return;
  }
  if (p.startsWith('/bigndjson/')) {
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    const line = (content, done = false) => JSON.stringify({ model: 'llama3', created_at: '2024-01-01T00:00:00Z',
      message: { role: 'assistant', content }, done, ...(done ? { done_reason: 'stop', prompt_eval_count: 1, eval_count: 1 } : {}) }) + '\n';
    res.write(line('before'));
    res.write(line('a'.repeat(9 * 1024 * 1024)));
    res.end(line('after') + line('', true));
    return;
  }
  if (p.startsWith('/burst/')) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    let s = '';
    for (let i = 0; i < 6000; i++) s += chunk(`w${i} `);
    res.end(s + chunk(null, 'stop') + 'data: [DONE]\n\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ path: p, contentType: req.headers['content-type'] ?? null, body: body.toString('latin1') }));
}

let up;
let upUrl;
async function startCanned() {
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => canned(req, Buffer.concat(parts), res));
  });
  return listenLocal(server);
}

const aiProxy = (upstream, extra = {}, opts = {}) => ({
  name: 'ai-proxy',
  config: {
    route_type: 'llm/v1/chat',
    logging: { log_statistics: true, log_payloads: true },
    model: { provider: 'openai', name: MODEL, options: { upstream_url: upstream, ...opts } },
    ...extra,
  },
});

function preserveProxy(extra = {}) {
  return {
    name: 'ai-proxy',
    config: {
      route_type: 'preserve',
      logging: { log_statistics: true, log_payloads: true },
      model: { provider: 'openai', options: { upstream_url: `${upUrl}/echo` } },
      auth: { header_name: 'Authorization', header_value: 'Bearer sk-test' },
      ...extra,
    },
  };
}

describe('late review: fixes in 81391fb..HEAD', { skip: binaryMissing() }, () => {
  before(async () => {
    up = await startCanned();
    upUrl = `http://127.0.0.1:${up.port}`;
  });
  after(async () => { await up?.close(); });

  describe('openai_errors flag: core 413 shape', () => {
    let sl;
    before(async () => {
      sl = await startSluice({
        args: ['--max-body-size', '64'],
        config: {
          plugins: [],
          services: [
            { name: 'ai', url: upUrl, routes: [
              { name: 'ai', paths: ['/ai'], plugins: [aiProxy(`${upUrl}/nl/v1/chat/completions`)] },
              { name: 'off', paths: ['/off'], plugins: [{ ...aiProxy(`${upUrl}/nl/v1/chat/completions`), enabled: false }] },
              { name: 'plain', paths: ['/plain'] },
            ] },
            { name: 'svc', url: upUrl, plugins: [aiProxy(`${upUrl}/nl/v1/chat/completions`)], routes: [
              { name: 'svcroute', paths: ['/svc'] },
            ] },
          ],
        },
      });
    });
    after(async () => { await sl?.stop(); });

    const big = JSON.stringify(chat('x'.repeat(200)));
    test('route-level ai-proxy: 413 for --max-body-size is an OpenAI error object', async () => {
      const r = await request({ port: sl.proxyPort, method: 'POST', path: '/ai', headers: { 'Content-Type': 'application/json' }, body: big });
      assert.equal(r.status, 413);
      const j = JSON.parse(r.body);
      assert.equal(typeof j.error?.message, 'string');
      assert.equal(j.error.type, 'invalid_request_error');
    });
    test('service-level ai-proxy: 413 is an OpenAI error object too', async () => {
      const r = await request({ port: sl.proxyPort, method: 'POST', path: '/svc', headers: { 'Content-Type': 'application/json' }, body: big });
      assert.equal(r.status, 413);
      assert.equal(typeof JSON.parse(r.body).error?.message, 'string');
    });
    test('disabled ai-proxy and a plain route keep the plain {message} shape', async () => {
      for (const p of ['/off', '/plain']) {
        const r = await request({ port: sl.proxyPort, method: 'POST', path: p, body: big });
        assert.equal(r.status, 413, p);
        const j = JSON.parse(r.body);
        assert.equal(typeof j.message, 'string', p);
        assert.equal(j.error, undefined, p);
      }
    });
    test('global ai-proxy (top-level plugins): the 413 is an OpenAI error object', async () => {
      const g = await startSluice({
        args: ['--max-body-size', '64'],
        config: {
          plugins: [aiProxy(`${upUrl}/nl/v1/chat/completions`)],
          services: [{ name: 'ai', url: upUrl, routes: [{ name: 'g', paths: ['/g'] }] }],
        },
      });
      try {
        const r = await request({ port: g.proxyPort, method: 'POST', path: '/g', headers: { 'Content-Type': 'application/json' }, body: big });
        assert.equal(r.status, 413);
        assert.equal(JSON.parse(r.body).error?.type, 'invalid_request_error');
      } finally {
        await g.stop();
      }
    });
    test('a route that gains ai-proxy by a reload answers the 413 in OpenAI shape', async () => {
      const cfg = {
        services: [{ name: 'ai', url: upUrl, routes: [
          { name: 'plain', paths: ['/plain'], plugins: [aiProxy(`${upUrl}/nl/v1/chat/completions`)] },
        ] }],
      };
      await sl.reload(cfg);
      const r = await request({ port: sl.proxyPort, method: 'POST', path: '/plain', headers: { 'Content-Type': 'application/json' }, body: big });
      assert.equal(r.status, 413);
      assert.equal(typeof JSON.parse(r.body).error?.message, 'string');
    });
  });

  describe('replies, streams and payloads', () => {
    let sl;
    before(async () => {
      const route = (name, prefix, plugins) => ({ name, paths: [`/${name}`], plugins });
      sl = await startSluice({
        config: {
          services: [{ name: 'ai', url: upUrl, read_timeout: 20000, routes: [
            route('crlf', '', [aiProxy(`${upUrl}/crlf/v1/chat/completions`)]),
            route('bom', '', [aiProxy(`${upUrl}/bom/v1/chat/completions`)]),
            route('two', '', [aiProxy(`${upUrl}/two/v1/chat/completions`)]),
            route('bigsse', '', [aiProxy(`${upUrl}/bigsse/v1/chat/completions`)]),
            route('burst', '', [aiProxy(`${upUrl}/burst/v1/chat/completions`)]),
            route('ollnc', '', [{ name: 'ai-proxy', config: { route_type: 'llm/v1/chat',
              model: { provider: 'llama2', name: 'llama3', options: { llama2_format: 'ollama', upstream_url: `${upUrl}/ollama-nocount/api/chat` } } } }]),
            route('ollc', '', [{ name: 'ai-proxy', config: { route_type: 'llm/v1/chat',
              model: { provider: 'llama2', name: 'llama3', options: { llama2_format: 'ollama', upstream_url: `${upUrl}/ollama-count/api/chat` } } } }]),
            route('bignd', '', [{ name: 'ai-proxy', config: { route_type: 'llm/v1/chat',
              model: { provider: 'llama2', name: 'llama3', options: { llama2_format: 'ollama', upstream_url: `${upUrl}/bigndjson/api/chat` } } } }]),
            route('pres', '', [preserveProxy()]),
            // preserve sends the client's path: this one reaches the canned /burst/ stream.
            { name: 'presburst', paths: ['/burst/preserve'], strip_path: false, plugins: [preserveProxy({ model: { provider: 'openai', options: { upstream_url: upUrl } } })] },
            route('presdeco', '', [
              { name: 'ai-prompt-decorator', config: { prompts: { prepend: [{ role: 'system', content: 'DECO-ADDED' }] } } },
              preserveProxy(),
            ]),
            route('chatdeco', '', [
              { name: 'ai-prompt-decorator', config: { prompts: { prepend: [{ role: 'system', content: 'DECO-CHAT' }] } } },
              aiProxy(`${upUrl}/nl/v1/chat/completions`),
            ]),
          ] }],
        },
      });
    });
    after(async () => { await sl?.stop(); });

    test('a reply with a trailing CRLF is one JSON text (200)', async () => {
      const r = await postJson(sl.proxyPort, '/crlf', chat('hi'));
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).choices[0].message.content, 'crlf ok');
    });
    test('a reply of two JSON values is a 502 in OpenAI shape, not the first value', async () => {
      const r = await postJson(sl.proxyPort, '/two', chat('hi'));
      assert.equal(r.status, 502);
      const j = JSON.parse(r.body);
      assert.equal(typeof j.error?.message, 'string');
      assert.ok(!r.body.includes('first'));
    });
    test('a reply that starts with a UTF-8 BOM is read (RFC 8259 8.1 lets a parser ignore it)', async () => {
        const r = await postJson(sl.proxyPort, '/bom', chat('hi'));
        assert.equal(r.status, 200, r.body);
        assert.equal(JSON.parse(r.body).choices[0].message.content, 'bom ok');
      });
    test('Ollama reply without counts: no usage object; with counts: usage', async () => {
      const a = await postJson(sl.proxyPort, '/ollnc', { messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(a.status, 200, a.body);
      const ja = JSON.parse(a.body);
      assert.equal(ja.choices[0].message.content, 'hi');
      assert.equal(ja.usage, undefined);
      const b = await postJson(sl.proxyPort, '/ollc', { messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(b.status, 200, b.body);
      const jb = JSON.parse(b.body);
      assert.equal(jb.usage.prompt_tokens, 0);
      assert.equal(jb.usage.completion_tokens, 3);
      assert.equal(jb.usage.total_tokens, 3);
    });
    test('SSE frame over 8 MiB: the stream ends with an error event, no finish_reason stop, nothing after', async () => {
      const r = await postStream(sl.proxyPort, '/bigsse', chat('hi', { stream: true }), { timeoutMs: 15000 });
      assert.equal(r.status, 200);
      const text = r.text;
      assert.ok(text.includes('before'));
      assert.ok(!text.includes('"after"') && !text.includes('after'), 'nothing parsed past the cut');
      assert.ok(/8 MiB/.test(text), 'the error says why');
      assert.ok(!/"finish_reason":"stop"/.test(text), 'not ended as if complete');
      assert.equal((text.match(/data: \[DONE\]/g) || []).length, 1);
    });
    test('NDJSON line over 8 MiB (Ollama): the stream ends with an error event', async () => {
      const r = await postStream(sl.proxyPort, '/bignd', { messages: [{ role: 'user', content: 'hi' }], stream: true }, { timeoutMs: 15000 });
      assert.equal(r.status, 200);
      assert.ok(r.text.includes('before'));
      assert.ok(/8 MiB/.test(r.text), r.text.slice(-400));
      assert.ok(!r.text.includes('after'));
      assert.ok(!/"finish_reason":"stop"/.test(r.text));
    });
    test('a burst of 6000 frames: ai.payload.response is the first 256 KiB of what the client got, and says it was cut', async () => {
      const from = sl.logMark();
      const r = await postStream(sl.proxyPort, '/burst', chat('hi', { stream: true }), { timeoutMs: 15000 });
      assert.equal(r.status, 200);
      assert.ok(r.text.length > 256 * 1024);
      const line = await sl.waitForLog(/ai\.payload\.response=/, { from, timeoutMs: 5000 });
      const f = logFields(line);
      const got = f['ai.payload.response'];
      assert.equal(got.slice(0, 256 * 1024), r.text.slice(0, 256 * 1024));
      assert.equal(got.slice(256 * 1024), `...[cut: ${Buffer.byteLength(r.text)} bytes in all]`);
    });
    test('preserve, a burst of 6000 frames: the client gets every byte; ai.payload.response is the first 256 KiB and says it was cut', async () => {
      const from = sl.logMark();
      const r = await postStream(sl.proxyPort, '/burst/preserve', chat('hi', { stream: true }), { timeoutMs: 15000 });
      assert.equal(r.status, 200);
      assert.ok(r.text.length > 256 * 1024, r.text.slice(0, 300));
      assert.ok(r.text.includes('w5999 ') && r.text.endsWith('data: [DONE]\n\n'), 'passed through whole');
      const line = await sl.waitForLog(/ai\.payload\.response=/, { from, timeoutMs: 5000 });
      const got = logFields(line)['ai.payload.response'];
      assert.equal(got.slice(0, 256 * 1024), r.text.slice(0, 256 * 1024));
      assert.equal(got.slice(256 * 1024), `...[cut: ${Buffer.byteLength(r.text)} bytes in all]`);
    });
    test('ai.payload.request: the client bytes when no plugin rewrote; the decorated request when one did', async () => {
      let from = sl.logMark();
      const raw = '{"model":"gpt-4o",  "messages":[{"role":"user","content":"RAWBYTES"}]}';
      let r = await request({ port: sl.proxyPort, method: 'POST', path: '/pres', headers: { 'Content-Type': 'application/json' }, body: raw });
      assert.equal(r.status, 200);
      let line = await sl.waitForLog(/ai\.payload\.request=.*RAWBYTES/, { from, timeoutMs: 5000 });
      assert.equal(logFields(line)['ai.payload.request'], raw);

      from = sl.logMark();
      r = await request({ port: sl.proxyPort, method: 'POST', path: '/presdeco', headers: { 'Content-Type': 'application/json' }, body: raw });
      assert.equal(r.status, 200);
      const sent = JSON.parse(JSON.parse(r.body).body);
      assert.equal(sent.messages[0].content, 'DECO-ADDED');
      line = await sl.waitForLog(/ai\.payload\.request=.*RAWBYTES/, { from, timeoutMs: 5000 });
      const logged = JSON.parse(logFields(line)['ai.payload.request']);
      assert.deepEqual(logged, sent, 'preserve: the log holds what the provider got');

      from = sl.logMark();
      r = await postJson(sl.proxyPort, '/chatdeco', chat('CHATDECO'));
      assert.equal(r.status, 200, r.body);
      line = await sl.waitForLog(/ai\.payload\.request=.*CHATDECO/, { from, timeoutMs: 5000 });
      const l2 = JSON.parse(logFields(line)['ai.payload.request']);
      assert.equal(l2.messages[0].content, 'DECO-CHAT');
      assert.ok(!line.includes('sk-test'));
    });

    describe('json_like on preserve', () => {
      const post = (body, ct) => request({ port: sl.proxyPort, method: 'POST', path: '/pres', headers: ct ? { 'Content-Type': ct } : {}, body });
      test('form body and text/plain prose pass through untouched', async () => {
        let r = await post('a=1&b=2', 'application/x-www-form-urlencoded');
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body).body, 'a=1&b=2');
        r = await post('  hello {world}', 'text/plain');
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body).body, '  hello {world}');
      });
      test('binary body (bytes 0x00-0xff) passes through byte for byte', async () => {
        const buf = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7 + 3) & 0xff));
        const r = await post(buf, 'application/octet-stream');
        assert.equal(r.status, 200);
        assert.equal(Buffer.from(JSON.parse(r.body).body, 'latin1').compare(buf), 0);
      });
      test('a JSON body behind a BOM and 100 spaces with an uppercase type is held to the strict parse', async () => {
        const r = await post('\uFEFF' + ' '.repeat(100) + '{"model":"a","model":"b"}', 'application/JSON');
        assert.equal(r.status, 400);
        assert.equal(typeof JSON.parse(r.body).error?.message, 'string');
      });
      test('multipart upload whose boundary contains "json" passes through',
        async () => {
          const b = 'xxJSONboundary';
          const body = `--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n--${b}--\r\n`;
          const r = await post(body, `multipart/form-data; boundary=${b}`);
          assert.equal(r.status, 200, r.body);
          assert.equal(JSON.parse(r.body).body, body);
        });
      test('multipart upload starting with whitespace (a preamble CRLF) passes through', async () => {
        const b = 'plainboundary';
        const body = `\r\n--${b}\r\nContent-Disposition: form-data; name="x"\r\n\r\n{"not":"json\r\n--${b}--\r\n`;
        const r = await post(body, `multipart/form-data; boundary=${b}`);
        assert.equal(r.status, 200, r.body);
        assert.equal(JSON.parse(r.body).body, body);
      });
    });
  });

  describe('$VAR in enum fields', () => {
    const cfg = (rt) => `_format_version: "3.0"
services:
  - name: ai
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: [/r]
        plugins:
          - name: ai-proxy
            config:
              route_type: ${rt}
              model: { provider: openai, name: gpt-4o }
              auth: { header_name: Authorization, header_value: Bearer x }
`;
    const check = async (rt, env) => {
      const dir = tempDir();
      const p = path.join(dir, 'kong.yml');
      writeFileSync(p, cfg(rt));
      return runSluice(['-t', '-c', p], { env });
    };
    test('set, default syntax (unset and set), unset and empty variables', async () => {
      let r = await check('$RT', { RT: 'llm/v1/chat' });
      assert.equal(r.code, 0, r.stderr);
      r = await check('"${RT_UNSET_X:-llm/v1/completions}"', {});
      assert.equal(r.code, 0, r.stderr);
      r = await check('"${RT:-preserve}"', { RT: 'llm/v1/embeddings' });
      assert.equal(r.code, 0, r.stderr);
      r = await check('$RT_UNSET_Y', {});
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /RT_UNSET_Y/);
      r = await check('$RT', { RT: '' });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /route_type/);
      r = await check('$RT', { RT: 'llm/v1/nope' });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /llm\/v1\/chat/, 'the error lists the choices');
    });
  });
});
