// Adversarial review: every plugin together on AI routes, configured at
// several scopes at once as a real deployment does (global correlation-id,
// rate-limiting and guard; a service-level decorator; route-level
// rate-limiting, template, guard and ai-proxy), in Kong's priority order
// (correlation-id 100001, rate-limiting 910, ai-prompt-template 773,
// ai-prompt-decorator 772, ai-prompt-guard 771, ai-proxy 770). Each plugin
// alone is covered elsewhere; these tests attack their combinations: what
// one plugin does to the request the next one sees, which instance of a
// plugin runs when several scopes set it, headers and log fields of every
// plugin on every kind of answer, body-size limits against each other, and
// reloads while requests are in flight. One test found a bug (it failed
// before the fix): ai.payload.request logged the client's body, not the
// request a template and a decorator had rewritten.
//
//   SLUICE_BIN=build-asan/sluice node --test tests/integration/combos-review.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import {
  logFields, marker, parseSse, postJson, postStream, receivedWith, recordsWith, streamChunks,
} from './lib/ai-helpers.mjs';
import { binaryMissing, request, sleep, startSluice } from './lib/harness.mjs';

const MODEL = 'gpt-4o';
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const HOUR_MS = 3600 * 1000;
const RUN = `${process.pid}-${Date.now().toString(36)}`;

const chat = (content, extra = {}) => ({ model: MODEL, messages: [{ role: 'user', content }], ...extra });
const plugin = (name, config = {}, extra = {}) => ({ name, config, ...extra });

// Counting tests use hour limits and step clear of an hour's edge, so that a
// counter never resets in the middle of a test.
async function clearOfHourEdge(marginMs = 15000) {
  const left = HOUR_MS - (Date.now() % HOUR_MS);
  if (left < marginMs) await sleep(left + 200);
}

// Every rate-limiting instance here counts by X-Tenant: one tenant per test
// keeps tests (and runs) apart.
let tenants = 0;
const tenant = () => `t${++tenants}-${RUN}`;

function aiProxy(fakeUrl, extra = {}) {
  return plugin('ai-proxy', {
    route_type: 'llm/v1/chat',
    logging: { log_statistics: true, log_payloads: true },
    model: { provider: 'openai', name: MODEL, options: { upstream_url: `${fakeUrl}/v1/chat/completions` } },
    ...extra,
  });
}

const TEMPLATE = { name: 'ask', template: '{"messages": [{"role": "user", "content": "T-RENDERED {{q}}"}]}' };
const DECO_SVC = 'DECO-SVC: you are the service assistant';

function mainConfig(fakeUrl) {
  return {
    plugins: [
      plugin('correlation-id', { generator: 'uuid', echo_downstream: true }),
      plugin('rate-limiting', { hour: 3, limit_by: 'header', header_name: 'X-Tenant' }),
      plugin('ai-prompt-guard', { deny_patterns: ['GLOBAL-BAD'] }),
    ],
    services: [
      {
        name: 'ai',
        url: fakeUrl,
        read_timeout: 800,
        plugins: [plugin('ai-prompt-decorator', { prompts: { prepend: [{ role: 'system', content: DECO_SVC }] } })],
        routes: [
          {
            name: 'full',
            paths: ['/full'],
            plugins: [
              plugin('rate-limiting', { hour: 1000, limit_by: 'header', header_name: 'X-Tenant' }),
              plugin('ai-prompt-template', { log_original_request: true, templates: [TEMPLATE] }),
              plugin('ai-prompt-guard', { deny_patterns: ['ROUTE-BAD'] }),
              aiProxy(fakeUrl),
            ],
          },
          // Only ai-proxy at route level: the global plugins and the
          // service's decorator apply.
          { name: 'other', paths: ['/other'], plugins: [aiProxy(fakeUrl)] },
          {
            name: 'disabled',
            paths: ['/disabled'],
            plugins: [
              plugin('ai-prompt-guard', { deny_patterns: ['ROUTE-BAD'] }, { enabled: false }),
              plugin('rate-limiting', { hour: 1000, limit_by: 'header', header_name: 'X-Tenant' }, { enabled: false }),
              aiProxy(fakeUrl),
            ],
          },
          {
            name: 'limited',
            paths: ['/limited'],
            plugins: [
              plugin('rate-limiting', { hour: 3, limit_by: 'header', header_name: 'X-Tenant' }),
              plugin('ai-prompt-guard', { deny_patterns: ['ROUTE-BAD'] }),
              aiProxy(fakeUrl),
            ],
          },
          {
            // Every prompt plugin allows more than ai-proxy but the guard.
            name: 'limits',
            paths: ['/limits'],
            plugins: [
              plugin('ai-prompt-template', { max_request_body_size: 100000, templates: [TEMPLATE] }),
              plugin('ai-prompt-decorator', { max_request_body_size: 100000, prompts: { append: [{ role: 'user', content: 'LIMITS-APPEND' }] } }),
              plugin('ai-prompt-guard', { max_request_body_size: 9000, deny_patterns: ['ROUTE-BAD'] }),
              aiProxy(fakeUrl, { max_request_body_size: 100000 }),
            ],
          },
          {
            // ai-proxy's own default limit (8192) below the prompt plugins'.
            name: 'proxy-limit',
            paths: ['/proxy-limit'],
            plugins: [
              plugin('ai-prompt-guard', { max_request_body_size: 100000, deny_patterns: ['ROUTE-BAD'] }),
              plugin('ai-prompt-decorator', { max_request_body_size: 100000, prompts: { prepend: [{ role: 'system', content: 'X' }] } }),
              aiProxy(fakeUrl),
            ],
          },
        ],
      },
    ],
  };
}

// How many times ` key=` appears in a log line: every field once.
function fieldCount(line, key) {
  const re = new RegExp(` ${key.replace(/\./g, '\\.')}=`, 'g');
  return (line.match(re) || []).length;
}

function assertOnce(line, keys) {
  for (const k of keys) assert.equal(fieldCount(line, k), 1, `${k} exactly once in: ${line}`);
}

function assertAbsent(line, keys) {
  for (const k of keys) assert.equal(fieldCount(line, k), 0, `no ${k} in: ${line}`);
}

describe('every plugin on one AI route: combinations and scopes', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  let port;
  before(async () => {
    fake = await startFake({ requireAuth: false });
    sl = await startSluice({ config: mainConfig(fake.url), args: ['--max-body-size', '20000'] });
    port = sl.proxyPort;
  });
  after(async () => {
    await sl?.stop(); // asserts exit 0 and no sanitizer report
    await fake?.close();
  });

  // The access line of the answer r (by X-Sluice-Request-Id).
  async function logOf(r) {
    const id = r.headers['x-sluice-request-id'];
    assert.match(String(id), /^[0-9a-f]{32}$/, `X-Sluice-Request-Id on ${r.status}`);
    const line = await sl.waitForLog(new RegExp(`request_id=${id}\\b.*status=`));
    return { line, f: logFields(line) };
  }

  // Nothing carrying text reached the provider, after a sentinel through a
  // route with the same plugins proved the earlier request had its chance.
  async function assertNeverReached(text) {
    const s = marker('sentinel');
    const r = await postJson(port, '/other', chat(s), { headers: { 'x-tenant': tenant() } });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    await fake.waitFor((x) => x.body !== null && x.body.includes(s));
    assert.equal(recordsWith(fake, text).length, 0, `a request carrying ${text} reached the provider`);
  }

  // The headers every answer of these routes carries: the correlation id
  // (echoed), X-Request-Id (ai-proxy route), the rate-limit headers.
  function assertCommonHeaders(r, { limit, remaining } = {}) {
    assert.match(String(r.headers['kong-request-id']), UUID4, `Kong-Request-ID on ${r.status}: ${JSON.stringify(r.headers)}`);
    assert.ok(r.headers['x-request-id'], `X-Request-Id on ${r.status}`);
    if (limit !== undefined) {
      assert.equal(r.headers['x-ratelimit-limit-hour'], String(limit), `limit on ${r.status}`);
      assert.equal(r.headers['ratelimit-limit'], String(limit));
    }
    if (remaining !== undefined) {
      assert.equal(r.headers['x-ratelimit-remaining-hour'], String(remaining), `remaining on ${r.status}`);
      assert.equal(r.headers['ratelimit-remaining'], String(remaining));
    }
  }

  test('a request through every plugin: rendered, decorated, guarded, proxied; every header and log field once', async () => {
    await clearOfHourEdge();
    const m = marker('full');
    const r = await postJson(port, '/full', { messages: '{template://ask}', properties: { q: m } }, { headers: { 'x-tenant': tenant() } });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json().choices[0].message.content, `echo: T-RENDERED ${m}`);
    assertCommonHeaders(r, { limit: 1000, remaining: 999 });
    // The provider got the template rendered, then decorated (773 before 772),
    // and the same correlation id the client was given.
    const rec = await receivedWith(fake, m);
    assert.deepEqual(rec.json.messages, [{ role: 'system', content: DECO_SVC }, { role: 'user', content: `T-RENDERED ${m}` }]);
    assert.equal(rec.headers['kong-request-id'], r.headers['kong-request-id']);
    const { line, f } = await logOf(r);
    assertOnce(line, ['route', 'status', 'ai.provider', 'ai.request_model', 'ai.model', 'ai.prompt_tokens',
      'ai.completion_tokens', 'ai.total_tokens', 'ai.llm_latency_ms', 'ai.payload.original_request',
      'ai.payload.request', 'ai.payload.response']);
    assertAbsent(line, ['ai.prompt_guard', 'rate_limited', 'rate_limit_error', 'error', 'ai.ttft_ms', 'ai.cost']);
    assert.equal(f.route, 'full');
    assert.equal(JSON.parse(f['ai.payload.original_request']).properties.q, m);
  });

  test('the template renders a prompt the route guard refuses: 400, counted, original logged, nothing sent', async () => {
    await clearOfHourEdge();
    const t = tenant();
    const m = marker('tmpl-deny');
    const r = await postJson(port, '/full', { messages: '{template://ask}', properties: { q: `${m} ROUTE-BAD` } }, { headers: { 'x-tenant': t } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error.message, 'bad request');
    assertCommonHeaders(r, { limit: 1000, remaining: 999 });
    const { line, f } = await logOf(r);
    assert.equal(f['ai.prompt_guard'], 'denied by deny_patterns[0]');
    assertOnce(line, ['ai.prompt_guard', 'ai.payload.original_request']);
    assertAbsent(line, ['ai.provider', 'ai.payload.request', 'rate_limited']);
    await assertNeverReached(m);
    // The refusal counted (rate-limiting runs first, as in Kong).
    const ok = await postJson(port, '/full', { messages: '{template://ask}', properties: { q: 'fine' } }, { headers: { 'x-tenant': t } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers['x-ratelimit-remaining-hour'], '998');
  });

  test('the reverse: a denied word in a field the template drops neither reaches the provider nor blocks', async () => {
    const m = marker('tmpl-drop');
    const r = await postJson(port, '/full', { messages: '{template://ask}', properties: { q: m }, user: 'ROUTE-BAD', temperature: 1 }, { headers: { 'x-tenant': tenant() } });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const rec = await receivedWith(fake, m);
    assert.ok(!rec.body.includes('ROUTE-BAD'), rec.body);
    assert.equal(rec.json.user, undefined);
  });

  test('an untemplated request with a denied word is refused by the route guard after the decorator ran', async () => {
    const m = marker('untmpl');
    const r = await postJson(port, '/full', chat(`${m} ROUTE-BAD`), { headers: { 'x-tenant': tenant() } });
    assert.equal(r.status, 400, r.text);
    await assertNeverReached(m);
  });

  test('route-level guard and rate-limiting replace the global ones: neither global instance runs on that route', async () => {
    await clearOfHourEdge();
    const t = tenant();
    // The global guard's word passes on /full (its own guard has another list).
    for (let i = 0; i < 4; i++) {
      const m = marker('glob');
      const r = await postJson(port, '/full', chat(`${m} GLOBAL-BAD`), { headers: { 'x-tenant': t } });
      assert.equal(r.status, 200, `request ${i}: ${r.text.slice(0, 200)}`);
      assertCommonHeaders(r, { limit: 1000, remaining: 999 - i });
      await receivedWith(fake, m);
    }
    // The global limit (3 an hour) was not counted by those 4 requests: on a
    // route it governs, the same tenant has its whole allowance left.
    const o = await postJson(port, '/other', chat('x'), { headers: { 'x-tenant': t } });
    assert.equal(o.status, 200, o.text.slice(0, 200));
    assertCommonHeaders(o, { limit: 3, remaining: 2 });
    // And there the global guard applies.
    const g = await postJson(port, '/other', chat('GLOBAL-BAD'), { headers: { 'x-tenant': tenant() } });
    assert.equal(g.status, 400, g.text);
  });

  test('disabled route-level instances do not shadow the global ones (Kong loads only enabled plugins)', async () => {
    await clearOfHourEdge();
    const t = tenant();
    const m = marker('dis');
    const ok = await postJson(port, '/disabled', chat(`${m} ROUTE-BAD`), { headers: { 'x-tenant': t } });
    assert.equal(ok.status, 200, ok.text.slice(0, 200));
    assertCommonHeaders(ok, { limit: 3, remaining: 2 });
    await receivedWith(fake, m);
    const bad = await postJson(port, '/disabled', chat('GLOBAL-BAD'), { headers: { 'x-tenant': t } });
    assert.equal(bad.status, 400, bad.text);
    assertCommonHeaders(bad, { limit: 3, remaining: 1 });
  });

  test('rate-limiting counts what a later plugin refused and what failed upstream, with its headers on each answer', async () => {
    await clearOfHourEdge();
    const t = tenant();
    const h = { 'x-tenant': t };
    const refused = await postJson(port, '/limited', chat('ROUTE-BAD'), { headers: h });
    assert.equal(refused.status, 400);
    assertCommonHeaders(refused, { limit: 3, remaining: 2 });
    const failed = await postJson(port, '/limited', chat('boom'), { headers: { ...h, 'x-fake-status': '500' } });
    assert.equal(failed.status, 500, failed.text);
    assertCommonHeaders(failed, { limit: 3, remaining: 1 });
    const badJson = await postJson(port, '/limited', '{"messages": [', { headers: h });
    assert.equal(badJson.status, 400, badJson.text);
    assertCommonHeaders(badJson, { limit: 3, remaining: 0 });
    const m = marker('over');
    const over = await postJson(port, '/limited', chat(m), { headers: h });
    assert.equal(over.status, 429, over.text);
    assert.equal(over.json().message, 'API rate limit exceeded');
    assertCommonHeaders(over, { limit: 3, remaining: 0 });
    assert.ok(Number(over.headers['retry-after']) >= 1, JSON.stringify(over.headers));
    const { line, f } = await logOf(over);
    assert.equal(f.rate_limited, 'hour');
    assertOnce(line, ['rate_limited']);
    assertAbsent(line, ['ai.provider', 'ai.prompt_guard']);
    await assertNeverReached(m);
  });

  test('correlation id, X-Request-Id and one log line on every kind of answer of an AI route', async () => {
    const cases = [
      ['upstream 200', {}, 200],
      ['upstream 400', { 'x-fake-status': '400' }, 400],
      ['upstream 503', { 'x-fake-status': '503' }, 503],
      ['upstream closes (502)', { 'x-fake-close': '1' }, 502],
      ['upstream garbage (502)', { 'x-fake-garbage': '1' }, 502],
      ['upstream silent (504 after read_timeout)', { 'x-fake-hang': '1' }, 504],
    ];
    for (const [label, headers, status] of cases) {
      const m = marker('kind');
      const r = await postJson(port, '/other', chat(m), { headers: { ...headers, 'x-tenant': tenant() } });
      assert.equal(r.status, status, `${label}: ${r.text.slice(0, 200)}`);
      assertCommonHeaders(r, { limit: 3, remaining: 2 });
      if (status !== 200) assert.equal(typeof r.json().error, 'object', `${label}: OpenAI error body ${r.text}`);
      // The provider saw the id the client was given.
      const rec = await receivedWith(fake, m);
      assert.equal(rec.headers['kong-request-id'], r.headers['kong-request-id'], label);
      const { line, f } = await logOf(r);
      assert.equal(Number(f.status), status, line);
      assertOnce(line, ['status', 'ai.provider', 'ai.total_tokens']);
    }
    // Refusals by plugins and by ai-proxy itself, never sent.
    const refusals = [
      ['guard', '/other', chat('GLOBAL-BAD'), 400],
      ['malformed JSON', '/other', '{"model": "gpt-4o", "messages": [}', 400],
      ['duplicate key', '/other', '{"model":"gpt-4o","messages":[{"role":"user","content":"a"}],"messages":[]}', 400],
      ['ai-proxy: other model', '/other', chat('m', { model: 'gpt-3.5-turbo' }), 400],
      ['ai-proxy 413 (own max_request_body_size)', '/proxy-limit', chat('y'.repeat(9000)), 413],
    ];
    for (const [label, path, body, status] of refusals) {
      const r = await postJson(port, path, body, { headers: { 'x-tenant': tenant() } });
      assert.equal(r.status, status, `${label}: ${r.text.slice(0, 200)}`);
      assertCommonHeaders(r);
      assert.equal(typeof r.json().error, 'object', `${label}: OpenAI error body ${r.text}`);
      const { f } = await logOf(r);
      assert.equal(Number(f.status), status);
    }
  });

  test('streaming with every plugin on: headers before the first frame, frames whole, stats logged once', async () => {
    await clearOfHourEdge();
    const m = marker('stream');
    const r = await postStream(port, '/full', chat(m, { stream: true }), { headers: { 'x-tenant': tenant() } });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.match(String(r.headers['content-type']), /text\/event-stream/);
    assertCommonHeaders(r, { limit: 1000, remaining: 999 });
    const { json, lastIsDone } = streamChunks(parseSse(r.text));
    assert.ok(lastIsDone, r.text.slice(-200));
    const text = json.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
    assert.equal(text, `echo: ${m}`);
    const rec = await receivedWith(fake, m);
    assert.equal(rec.json.stream, true);
    assert.equal(rec.json.messages[0].content, DECO_SVC);
    const { line } = await logOf(r);
    assertOnce(line, ['ai.provider', 'ai.total_tokens', 'ai.ttft_ms', 'ai.llm_latency_ms',
      'ai.payload.original_request', 'ai.payload.request', 'ai.payload.response']);
  });

  test('body limits: the guard\'s smaller max_request_body_size refuses before ai-proxy\'s larger one applies', async () => {
    const small = marker('lim-ok');
    const ok = await postJson(port, '/limits', chat(`${small} ${'a'.repeat(8400)}`), { headers: { 'x-tenant': tenant() } });
    assert.equal(ok.status, 200, ok.text.slice(0, 200)); // over ai-proxy's default, under every limit set here
    const rec = await receivedWith(fake, small);
    assert.equal(rec.json.messages.at(-1).content, 'LIMITS-APPEND');
    const big = marker('lim-big');
    const r = await postJson(port, '/limits', chat(`${big} ${'a'.repeat(9100)}`), { headers: { 'x-tenant': tenant() } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json().error.message, /9000 bytes/);
    assertCommonHeaders(r);
    await assertNeverReached(big);
  });

  test('--max-body-size below every plugin limit: 413 before any plugin ran, X-Request-Id, not counted, never sent', async () => {
    await clearOfHourEdge();
    const t = tenant();
    const m = marker('huge');
    const r = await postJson(port, '/other', chat(`${m} ${'z'.repeat(30000)}`), { headers: { 'x-tenant': t } });
    assert.equal(r.status, 413, r.text.slice(0, 200));
    assert.ok(r.headers['x-request-id'], JSON.stringify(r.headers));
    assert.equal(r.headers['x-request-id'], r.headers['x-sluice-request-id']);
    // An ai-proxy route answers in OpenAI's error shape, this 413 too (the
    // SDK reads error.message); it used to be the core's {message} shape.
    assert.equal(r.json().error?.message, 'Request body is too large', r.text);
    assert.equal(r.json().error?.type, 'invalid_request_error');
    const { f } = await logOf(r);
    assert.equal(f.status, '413');
    // rate-limiting's access never ran: the tenant's allowance is whole.
    const next = await postJson(port, '/other', chat('after'), { headers: { 'x-tenant': t } });
    assertCommonHeaders(next, { limit: 3, remaining: 2 });
    await assertNeverReached(m);
  });

  test('ai.payload.request logs the request the provider got (rendered and decorated), not the client\'s body', {
  }, async () => {
    const m = marker('payload');
    const r = await postJson(port, '/full', { messages: '{template://ask}', properties: { q: m } }, { headers: { 'x-tenant': tenant() } });
    assert.equal(r.status, 200, r.text.slice(0, 200));
    const rec = await receivedWith(fake, m);
    const { f } = await logOf(r);
    const original = f['ai.payload.original_request'];
    const logged = f['ai.payload.request'];
    assert.ok(original.includes('{template://ask}'), original);
    assert.notEqual(logged, original, 'the logged request is the client\'s, which log_original_request already logs');
    assert.ok(logged.includes(`T-RENDERED ${m}`), `rendered prompt in ai.payload.request: ${logged}`);
    assert.ok(logged.includes(DECO_SVC), `decorator's prompt in ai.payload.request: ${logged}`);
    assert.deepEqual(JSON.parse(logged).messages, rec.json.messages);
  });
});

describe('reloads that add and remove plugins while requests are in flight', { skip: binaryMissing() }, () => {
  let fake;
  before(async () => {
    fake = await startFake({ requireAuth: false });
  });
  after(async () => {
    await fake?.close();
  });

  const config = (routePlugins) => ({
    services: [{
      name: 'ai',
      url: fake.url,
      routes: [{ name: 'r', paths: ['/r'], plugins: [...routePlugins, aiProxy(fake.url)] }],
    }],
  });
  const corr = plugin('correlation-id', { header_name: 'X-Corr', generator: 'uuid', echo_downstream: true });
  const deco = plugin('ai-prompt-decorator', { prompts: { prepend: [{ role: 'system', content: 'OLD-DECO' }] } });
  const guard = plugin('ai-prompt-guard', { deny_patterns: ['NEW-BAD'] });
  const rl = plugin('rate-limiting', { hour: 100, limit_by: 'ip' });

  test('an in-flight request finishes on its old chain; the next one runs the new chain', async () => {
    const sl = await startSluice({ config: config([corr, deco]) });
    try {
      const port = sl.proxyPort;
      const m = marker('inflight');
      const slow = postJson(port, '/r', chat(`${m} NEW-BAD`), { headers: { 'x-fake-delay-ms': '1200' } });
      const rec = await receivedWith(fake, m);
      assert.equal(rec.json.messages[0].content, 'OLD-DECO');
      // Remove correlation-id and the decorator, add guard and rate-limiting.
      await sl.reload(config([guard, rl]));
      const m2 = marker('after');
      const now = await postJson(port, '/r', chat(`${m2} NEW-BAD`));
      assert.equal(now.status, 400, now.text);
      assert.equal(now.headers['x-corr'], undefined);
      assert.equal(now.headers['x-ratelimit-remaining-hour'], '99');
      const ok = await postJson(port, '/r', chat(m2));
      assert.equal(ok.status, 200, ok.text.slice(0, 200));
      const rec2 = await receivedWith(fake, m2);
      assert.equal(rec2.json.messages[0].role, 'user', 'no decorator after the reload');
      assert.equal(rec2.headers['x-corr'], undefined);
      // The old request: its correlation id echoed (the plugin it started
      // with), no rate-limit headers (a plugin it never had), a whole reply.
      const r = await slow;
      assert.equal(r.status, 200, r.text.slice(0, 200));
      assert.match(String(r.headers['x-corr']), UUID4);
      assert.equal(r.headers['x-corr'], rec.headers['x-corr']);
      assert.equal(r.headers['x-ratelimit-remaining-hour'], undefined);
      assert.equal(r.json().choices[0].message.content, `echo: ${m} NEW-BAD`);
      // And the line of the old request was written once, after the reload.
      const id = r.headers['x-sluice-request-id'];
      await sl.waitForLog(new RegExp(`request_id=${id}\\b.*status=200`));
      assert.equal(sl.lines.filter((l) => l.includes(`request_id=${id}`) && /status=/.test(l)).length, 1);
    } finally {
      await sl.stop();
    }
  });

  test('a streaming request survives a reload that removes ai-proxy\'s neighbours and adds a guard', async () => {
    const sl = await startSluice({ config: config([corr, deco, rl]) });
    try {
      const port = sl.proxyPort;
      const m = marker('sreload');
      let reloaded;
      const stream = postStream(port, '/r', chat(`${m} one two three four five`, { stream: true }), {
        headers: { 'x-fake-frame-delay-ms': '150' },
        onChunk: (_d, n) => {
          if (n === 1) reloaded = sl.reload(config([guard])).then(() => Date.now());
        },
      });
      const r = await stream;
      const reloadedAt = await reloaded;
      assert.ok(reloadedAt < r.t0 + r.chunks.at(-1).t, 'the reload took effect before the stream ended');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['x-corr']), UUID4);
      assert.equal(r.headers['x-ratelimit-remaining-hour'], '99');
      const { json, lastIsDone } = streamChunks(r.events);
      assert.ok(lastIsDone, r.text.slice(-200));
      assert.equal(json.map((c) => c.choices?.[0]?.delta?.content ?? '').join(''), `echo: ${m} one two three four five`);
      const after = await postJson(port, '/r', chat('NEW-BAD'));
      assert.equal(after.status, 400);
    } finally {
      await sl.stop();
    }
  });
});
