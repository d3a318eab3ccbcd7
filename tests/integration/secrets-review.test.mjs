// Review: secrets never leak. Distinctive secrets are planted everywhere a
// kong.yml can hold one (ai-proxy header/query/body credentials, Azure's
// api-key, redis passwords flat and nested, key-auth keys, $VAR and
// {vault://env/...} values, a password in an upstream_url's userinfo) and
// the client sends its own (Authorization, x-api-key, api-key, Cookie,
// Proxy-Authorization, a key in the body). They are then hunted for in every
// stderr line at --log-level info and debug (start, requests answered 200 /
// 401 / 429 / 500 / 502 / 503 by the provider, 504, refused connections, TLS
// failures, broken streams, rate-limit refusals, good and bad reloads,
// drain), in the answers' bodies and headers, in GET /config and in
// `sluice -t` output for files with an error next to (or on) a secret.
//
// Not covered here (ops-review.test.mjs does it): GET /config redaction of
// the ordinary secret fields, anchors and merge keys, the redis WRONGPASS
// line at debug level.
//
// Five of these are bugs, marked todo (they assert the correct behaviour):
// a password in a URL's userinfo is printed (config errors, the debug
// "upstream" line, GET /config), an unterminated ${ in a secret field is
// quoted in the config error, and (found on the way, not about secrets) a
// failed name resolution can leave the next client connection unread. The
// sweeps leave name resolution out for that reason (the last test has it).
//
//   cd tests && SLUICE_BIN=/work/main/build-asan/sluice node --test integration/secrets-review.test.mjs
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { postJson, postStream } from './lib/ai-helpers.mjs';
import { binaryMissing, freePort, rawRequest, request, runSluice, startSluice, tempDir } from './lib/harness.mjs';

// Configured secrets (the operator's): none may appear anywhere but upstream.
const CONF = {
  header: 'cfg-header-SECRET-h1',
  query: 'cfg-query-SECRET-q2',
  body: 'cfg-body-SECRET-b3',
  azure: 'cfg-azure-SECRET-z4',
  redis: 'cfg-redis-SECRET-r5',
  legacyRedis: 'cfg-legacy-redis-SECRET-r6',
  keyauth: 'cfg-keyauth-SECRET-k7',
  envVar: 'cfg-envvar-SECRET-e8',
  vault: 'cfg-vault-SECRET-v9',
  anthropic: 'cfg-anthropic-SECRET-a0',
};
// The client's credentials (headers): never logged, never echoed.
const CLIENT = {
  authorization: 'Bearer client-authz-SECRET-c1',
  'x-api-key': 'client-xapikey-SECRET-c2',
  'api-key': 'client-apikey-SECRET-c3',
  cookie: 'session=client-cookie-SECRET-c4',
  'proxy-authorization': 'Basic client-proxyauth-SECRET-c5',
};
const CLIENT_SECRETS = Object.values(CLIENT).map((v) => v.replace(/^(Bearer|Basic|session=) ?/, ''));
const ALL = [...Object.values(CONF), ...CLIENT_SECRETS];
const ENV = { SECRETS_REVIEW_KEY: CONF.envVar, SECRETS_REVIEW_VAULT: CONF.vault };

const msgs = { messages: [{ role: 'user', content: 'hello there' }] };
const leaks = (text, list = ALL) => list.filter((s) => text.includes(s));

// One AI route; `options` go to model.options; upstream_url defaults to the
// fake's OpenAI-compatible no-auth chat path.
function aiRoute(name, auth, { provider = 'openai', routeType = 'llm/v1/chat', options = {}, before = [], paths = [`/${name}`] } = {}) {
  return { name, paths, plugins: [...before, { name: 'ai-proxy', config: {
    route_type: routeType, auth, logging: { log_statistics: true, log_payloads: true },
    model: { provider, name: provider === 'anthropic' ? 'claude-3-5-sonnet-20241022' : 'gpt-4o', options },
  } }] };
}

function sweepConfig(fakeUrl, deadPort, redisPort, generation = 0) {
  const chat = `${fakeUrl}/noauth/v1/chat/completions`;
  return {
    _comment: `generation ${generation}`,
    services: [{
      name: 'ai', url: fakeUrl, read_timeout: 400, retries: 1,
      routes: [
        aiRoute('hdr', { header_name: 'Authorization', header_value: `Bearer ${CONF.header}` }, { options: { upstream_url: `${fakeUrl}/v1/chat/completions` } }),
        aiRoute('env', { header_name: 'Authorization', header_value: 'Bearer ${SECRETS_REVIEW_KEY}' }, { options: { upstream_url: `${fakeUrl}/v1/chat/completions` } }),
        aiRoute('qry', { param_name: 'key', param_value: '{vault://env/secrets-review-vault}', param_location: 'query' }, { options: { upstream_url: chat } }),
        // preserve keeps the client's path: the fake's no-auth OpenAI path.
        aiRoute('pq', { param_name: 'key', param_value: CONF.query, param_location: 'query' }, { routeType: 'preserve', paths: ['/noauth/v1/chat/completions'], options: { upstream_url: fakeUrl } }),
        aiRoute('bdy', { param_name: 'key', param_value: CONF.body, param_location: 'body' }, { options: { upstream_url: chat } }),
        aiRoute('dec', { param_name: 'key', param_value: CONF.body, param_location: 'body' }, { options: { upstream_url: chat },
          before: [{ name: 'ai-prompt-decorator', config: { prompts: { prepend: [{ role: 'system', content: 'be brief' }] } } }] }),
        aiRoute('az', { header_name: 'api-key', header_value: CONF.azure }, { provider: 'azure',
          options: { azure_instance: 'x', azure_deployment_id: 'dep1', azure_api_version: '2024-10-21',
            upstream_url: `${fakeUrl}/openai/deployments/$(headers.x-dep)/chat/completions?api-version=2024-10-21` } }),
        aiRoute('ant', { header_name: 'x-api-key', header_value: CONF.anthropic }, { provider: 'anthropic',
          options: { upstream_url: `${fakeUrl}/v1/messages`, anthropic_version: '2023-06-01' } }),
        aiRoute('tls', { param_name: 'key', param_value: CONF.query, param_location: 'query' }, { options: { upstream_url: `https://${fakeUrl.slice(7)}/v1/chat/completions` } }),
        aiRoute('dead', { header_name: 'Authorization', header_value: `Bearer ${CONF.header}` }, { options: { upstream_url: `http://127.0.0.1:${deadPort}/v1?key=x` } }),
      ],
    }, {
      name: 'plain', url: fakeUrl,
      routes: [
        { name: 'p', paths: ['/p'] },
        { name: 'rl', paths: ['/rl'], plugins: [{ name: 'rate-limiting', config: { minute: 1, policy: 'local', limit_by: 'ip' } }] },
        { name: 'rr', paths: ['/rr'], plugins: [{ name: 'rate-limiting', config: { minute: 1000, policy: 'redis',
          redis: { host: '127.0.0.1', port: redisPort, password: CONF.redis, timeout: 300 } } }] },
        { name: 'rr2', paths: ['/rr2'], plugins: [{ name: 'rate-limiting', config: { minute: 1000, policy: 'redis',
          redis_host: '127.0.0.1', redis_port: redisPort, redis_password: CONF.legacyRedis, redis_timeout: 300 } }] },
      ],
    }],
    consumers: [{ username: 'alice', keyauth_credentials: [{ key: CONF.keyauth }] }],
  };
}

for (const level of ['info', 'debug']) {
  describe(`--log-level ${level}: every path a request can take, no secret in a log line, an answer body or header`, { skip: binaryMissing() }, () => {
    let fake;
    let redis;
    let deadPort;
    before(async () => {
      fake = await startFake();
      deadPort = await freePort();
      // A Redis that refuses every password (AUTH's error path).
      redis = net.createServer((s) => {
        s.on('data', () => s.write('-WRONGPASS invalid username-password pair or user is disabled.\r\n'));
        s.on('error', () => {});
      });
      await new Promise((r) => redis.listen(0, '127.0.0.1', r));
    });
    after(async () => {
      await fake?.close();
      redis?.close();
    });

    test('start, 200/401/429/500/502/503/504, refused and TLS connects, broken stream, rate limits, good and bad reloads, drain', async () => {
      const sl = await startSluice({ config: sweepConfig(fake.url, deadPort, redis.address().port), args: ['--log-level', level], env: ENV });
      const answers = [];
      const keep = (where, r) => {
        answers.push({ where, text: `${r.status} ${JSON.stringify(r.headers)} ${r.text ?? ''}` });
        return r;
      };
      let stopped = false;
      try {
        const h = { headers: CLIENT };
        for (const p of ['/hdr', '/env', '/qry', '/bdy', '/dec'])
          assert.equal(keep(p, await postJson(sl.proxyPort, p, msgs, h)).status, 200, p);
        // The configured credentials were in play (so their absence below means something).
        const chats = fake.requests.filter((q) => q.path.endsWith('/chat/completions'));
        assert.equal(chats.at(-5).headers.authorization, `Bearer ${CONF.header}`);
        assert.equal(chats.at(-4).headers.authorization, `Bearer ${CONF.envVar}`);
        assert.equal(chats.at(-3).query.key, CONF.vault);
        assert.equal(chats.at(-2).json.key, CONF.body);
        assert.equal(chats.at(-1).json.key, CONF.body);
        // The client's own key in the body: replaced upstream by the configured one.
        assert.equal(keep('/bdy+key', await postJson(sl.proxyPort, '/bdy', { ...msgs, key: 'client-body-key-c6' }, h)).status, 200);
        assert.equal(fake.requests.at(-1).json.key, CONF.body);
        assert.equal(keep('/pq', await postJson(sl.proxyPort, '/noauth/v1/chat/completions', { model: 'gpt-4o', ...msgs }, h)).status, 200);
        assert.equal(fake.requests.at(-1).query.key, CONF.query);
        assert.equal(keep('/az', await postJson(sl.proxyPort, '/az', msgs, { headers: { ...CLIENT, 'x-dep': 'dep1' } })).status, 200);
        assert.equal(fake.requests.at(-1).headers['api-key'], CONF.azure);
        assert.equal(keep('/ant', await postJson(sl.proxyPort, '/ant', msgs, h)).status, 200);
        assert.equal(fake.requests.at(-1).headers['x-api-key'], CONF.anthropic);
        // Provider errors, whole and streamed.
        for (const st of ['401', '429', '500', '502', '503']) {
          keep(`/hdr ${st}`, await postJson(sl.proxyPort, '/hdr', msgs, { headers: { ...CLIENT, 'x-fake-status': st } }));
          keep(`/qry ${st} stream`, await postStream(sl.proxyPort, '/qry', { ...msgs, stream: true }, { headers: { ...CLIENT, 'x-fake-status': st } }));
        }
        assert.equal(keep('/qry 504', await postJson(sl.proxyPort, '/qry', msgs, { headers: { ...CLIENT, 'x-fake-delay-ms': '1500' } })).status, 504);
        keep('/qry broken stream', await postStream(sl.proxyPort, '/qry', { ...msgs, stream: true }, { headers: { ...CLIENT, 'x-fake-reset-after-bytes': '60' } }));
        keep('/qry closed', await postJson(sl.proxyPort, '/qry', msgs, { headers: { ...CLIENT, 'x-fake-close': '1' } }));
        keep('/qry garbage', await postJson(sl.proxyPort, '/qry', msgs, { headers: { ...CLIENT, 'x-fake-garbage': '1' } }));
        assert.equal(keep('/tls', await postJson(sl.proxyPort, '/tls', msgs, h)).status, 502);
        assert.equal(keep('/dead', await postJson(sl.proxyPort, '/dead', msgs, h)).status, 502);
        // Plain proxying, rate limits (local 429, redis refusing AUTH).
        keep('/p', await request({ port: sl.proxyPort, path: '/p/echo', headers: CLIENT }));
        keep('/rl', await request({ port: sl.proxyPort, path: '/rl/echo', headers: CLIENT }));
        assert.equal(keep('/rl 429', await request({ port: sl.proxyPort, path: '/rl/echo', headers: CLIENT })).status, 429);
        keep('/rr', await request({ port: sl.proxyPort, path: '/rr/echo', headers: CLIENT }));
        keep('/rr2', await request({ port: sl.proxyPort, path: '/rr2/echo', headers: CLIENT }));
        // Bad heads carrying credentials.
        for (const [where, data] of [
          ['garbage head', `GARBAGE\r\nAuthorization: ${CLIENT.authorization}\r\n\r\n`],
          ['bad header', `GET /p HTTP/1.1\r\nHost: a\r\nCookie : ${CLIENT.cookie}\r\n\r\n`],
        ]) {
          const text = String(await rawRequest({ port: sl.proxyPort, data, timeoutMs: 5000 }).catch((e) => assert.fail(`${where}: ${e.message}`)));
          assert.match(text, /^HTTP\/1\.1 400 /, where);
          keep(where, { status: 400, headers: {}, text });
        }
        // A good reload, then a refused one whose file keeps every secret.
        await sl.reload(sweepConfig(fake.url, deadPort, redis.address().port, 1));
        const mark = sl.logMark();
        const bad = sweepConfig(fake.url, deadPort, redis.address().port, 2);
        bad.services[0].routes[0].plugins[0].config.model.options.max_tokens = 'many';
        sl.writeConfig(bad);
        sl.signal('SIGHUP');
        await sl.waitForLog(/reload refused/, { from: mark });
        assert.ok(sl.lines.slice(mark).some((l) => /max_tokens: expected a number/.test(l)), sl.lines.slice(mark).join('\n'));
        await sl.stop();
        stopped = true;
      } finally {
        if (!stopped) await sl.kill();
      }
      const text = sl.stderr();
      assert.match(text, /WRONGPASS|redis/i, 'the redis AUTH refusal was logged (the password was in play)');
      assert.match(text, /status=504/);
      assert.match(text, /stopped/);
      assert.deepEqual(leaks(text), [], `secrets in the ${level} log:\n${text.split('\n').filter((l) => leaks(l).length).join('\n')}`);
      // The access line of a preserve/query route says nothing of the key put upstream.
      assert.ok(!/key=cfg-/.test(text));
      const leaked = answers.filter((a) => leaks(a.text, Object.values(CONF)).length);
      assert.deepEqual(leaked.map((a) => a.where), [], `configured secrets in answers:\n${leaked.map((a) => `${a.where}: ${a.text}`).join('\n')}`);
      // The client's credentials are not echoed back either (the plain /p echo
      // upstream reflects them by design: only sluice's own answers count).
      const own = answers.filter((a) => !['/p', '/rl', '/rr', '/rr2'].includes(a.where) && leaks(a.text, CLIENT_SECRETS).length);
      assert.deepEqual(own.map((a) => a.where), [], `client credentials in sluice's answers:\n${own.map((a) => `${a.where}: ${a.text}`).join('\n')}`);
    });
  });
}

describe('config errors next to (or on) a secret: `sluice -t` and a refused reload name the field, not the value', { skip: binaryMissing() }, () => {
  const check = async (yaml, { env = {}, expect }) => {
    const dir = tempDir();
    const file = path.join(dir, 'kong.yml');
    writeFileSync(file, yaml);
    const r = await runSluice(['-t', '-c', file], { env });
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    const out = r.stdout + r.stderr;
    for (const re of expect) assert.match(out, re);
    return out;
  };
  const ai = (auth) => `_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: ["/r"]
        plugins:
          - name: ai-proxy
            config:
              route_type: llm/v1/chat
              auth: ${auth}
              model: {provider: openai, name: gpt-4o}
`;

  test('errors on secret fields and their neighbours: each reported with file:line:col, the secret never printed', async () => {
    const S = 'SECRET-near-error-s1';
    const cases = [
      [ai(`{header_name: Authorization, header_value: "Bearer ${S}\\n"}`), /auth\.header_value: must not contain a line break/],
      [ai(`{header_value: "Bearer ${S}"}`), /header_name and header_value go together/],
      [ai(`{header_name: "Authorization: Bearer ${S}x", header_value: "Bearer ${S}"}`), /auth\.header_name: must be a header name/],
      [ai(`{param_name: key, param_value: "${S}", param_location: header}`), /auth\.param_location: expected one of query, body/],
      [ai(`{param_name: key, param_value: "${S}"}`), /param_name, param_value and param_location go together/],
      [ai(`{header_name: x-api-key, header_valeu: "${S}"}`), /auth\.header_valeu: unknown field/],
      [ai(`{header_name: x-api-key, header_value: [${S}]}`), /auth\.header_value: expected a string/],
      [ai(`{azure_client_secret: "${S}"}`), /auth\.azure_client_secret: not supported/],
      [ai(`{aws_secret_access_key: "${S}"}`), /auth\.aws_secret_access_key: not supported/],
      [ai(`{gcp_service_account_json: "{\\"private_key\\": \\"${S}\\"}"}`), /auth\.gcp_service_account_json: not supported/],
      [ai(`{header_name: x-api-key, header_value: "{vault://aws/${S}}"}`), /vault 'aws' is not supported/],
      [ai(`{header_name: x-api-key, header_value: "{vault://env/SECRETS_REVIEW_UNSET_${S.length}}"}`), /environment variable SECRETS_REVIEW_UNSET_\d+ is not set/],
      [`_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: ["/r"]
        plugins:
          - name: rate-limiting
            config: {minute: 5, policy: redis, redis: {host: 127.0.0.1, password: "${S}${'x'.repeat(1100)}"}}
`, /redis\.password: length must be/],
      [`_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: ["/r"]
        plugins:
          - name: rate-limiting
            config: {minute: 5, policy: redis, redis_password: "${S}", redis: {host: 127.0.0.1, password: "other-${S}"}}
`, /redis_password: and redis\.password are both given and differ/],
      [`_format_version: "3.0"
consumers:
  - username: a
    keyauth_credentials: [{key: "${S}"}]
  - username: b
    keyauth_credentials: [{key: "${S}"}]
`, /keyauth_credentials\[0\]\.key: duplicate key-auth key/],
      // A YAML syntax error on the secret's own line.
      [ai(`{header_name: x-api-key, header_value: "${S}}`), /kong\.yml:\d+:\d+: /],
    ];
    const found = [];
    for (const [yaml, re] of cases) {
      const out = await check(yaml, { expect: [re] });
      if (out.includes(S)) found.push(`${re}: ${out}`);
    }
    assert.deepEqual(found, [], 'a secret printed by an error message');
  });

  test('a refused reload of a file with an error on a secret field: logged without the secret, old config serves', async () => {
    const S = 'SECRET-reload-s2';
    const good = ai(`{header_name: x-api-key, header_value: "${S}"}`);
    const sl = await startSluice({ config: good });
    try {
      const mark = sl.logMark();
      sl.writeConfig(ai(`{header_name: x-api-key, header_value: "${S}\\r\\nX-Evil: 1"}`));
      sl.signal('SIGHUP');
      await sl.waitForLog(/reload refused/, { from: mark });
      const since = sl.lines.slice(mark).join('\n');
      assert.match(since, /auth\.header_value: must not contain a line break/);
      assert.ok(!since.includes(S), since);
      assert.equal((await sl.status()).config.generation, 1);
    } finally {
      await sl.stop();
    }
    assert.ok(!sl.stderr().includes(S));
  });

  test('a service url with a password in its userinfo: refused, and the password is not printed', {
    // fixed: the password is masked
  }, async () => {
    const out = await check(`_format_version: "3.0"
services:
  - name: s
    url: http://admin:PW-userinfo-SECRET-u1@127.0.0.1:9/base
    routes: [{name: r, paths: ["/r"]}]
`, { expect: [/kong\.yml:4:\d+: services\[0\]\.url: invalid url/] });
    assert.ok(!out.includes('PW-userinfo-SECRET-u1'), out);
    // A raw '@' inside the password (not percent-encoded): masked to the last '@'.
    const out2 = await check(`_format_version: "3.0"
services:
  - name: s
    url: http://admin:PW-at@SECRET-u2@127.0.0.1:9/base
    routes: [{name: r, paths: ["/r"]}]
`, { expect: [/kong\.yml:4:\d+: services\[0\]\.url: invalid url/] });
    assert.ok(!out2.includes('SECRET-u2') && !out2.includes('PW-at'), out2);
  });

  test('an unterminated ${ in a secret field: the error does not quote the secret', {
    // fixed: not quoted on secret fields
  }, async () => {
    const out = await check(ai('{header_name: x-api-key, header_value: "sk-abc${Q9tail-SECRET-d1"}'), {
      expect: [/auth\.header_value: invalid variable reference/],
    });
    assert.ok(!out.includes('Q9tail-SECRET-d1'), out);
    const out2 = await check(`_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: ["/r"]
        plugins:
          - name: rate-limiting
            config: {minute: 5, policy: redis, redis: {host: 127.0.0.1, password: "p4ss\${Z7tail-SECRET-d2"}}
`, { expect: [/redis\.password: invalid variable reference/] });
    assert.ok(!out2.includes('Z7tail-SECRET-d2'), out2);
  });
});

describe('a password in model.options.upstream_url (curl sends it as Basic auth)', { skip: binaryMissing() }, () => {
  const PW = 'UPW-userinfo-SECRET-u2';
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    const host = fake.url.slice('http://'.length);
    sl = await startSluice({
      config: { services: [{ name: 'ai', url: fake.url, routes: [
        aiRoute('ui', {}, { options: { upstream_url: `http://ollama:${PW}@${host}/noauth/v1/chat/completions` } }),
      ] }] },
      args: ['--log-level', 'debug'],
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  test('it is a live credential: the provider gets it as Authorization: Basic', async () => {
    const r = await postJson(sl.proxyPort, '/ui', msgs);
    assert.equal(r.status, 200, r.text);
    assert.equal(fake.requests.at(-1).headers.authorization, `Basic ${Buffer.from(`ollama:${PW}`).toString('base64')}`);
    assert.ok(!r.text.includes(PW) && !JSON.stringify(r.headers).includes(PW));
  });

  test('--log-level debug: the "upstream POST <url>" line does not print the password', {
    // fixed: masked
  }, async () => {
    const r = await postJson(sl.proxyPort, '/ui', msgs);
    assert.equal(r.status, 200, r.text);
    await sl.waitForLog(new RegExp(`request_id=${r.headers['x-sluice-request-id']} .*status=200`));
    const line = await sl.waitForLog(/ upstream POST /);
    assert.ok(!sl.stderr().includes(PW), line);
  });

  test('GET /config does not show the password', {
    // fixed: masked
  }, async () => {
    const r = await request({ port: sl.adminPort, path: '/config' });
    assert.equal(r.status, 200);
    assert.ok(r.json().services[0].routes[0].plugins[0].config.model.options.upstream_url.includes('/noauth/v1/chat/completions'), 'the rest of the url is shown');
    assert.ok(!r.text.includes(PW), r.text);
  });
});

describe('GET /config and HEAD /config: $VAR and vault references are shown as written, never expanded', { skip: binaryMissing() }, () => {
  test('a non-secret field built from a secret variable shows the reference, not the value', async () => {
    const fake = await startFake();
    const sl = await startSluice({
      config: { services: [{ name: 'ai', url: fake.url, routes: [
        aiRoute('a', { header_name: 'x-api-key', header_value: '${SECRETS_REVIEW_KEY}' }, { options: {
          upstream_url: `${fake.url}/noauth/v1/chat/completions?tenant={vault://env/secrets-review-vault}` } }),
      ] }] },
      env: ENV,
    });
    try {
      const r = await request({ port: sl.adminPort, path: '/config' });
      assert.equal(r.status, 200);
      assert.deepEqual(leaks(r.text), []);
      const c = r.json().services[0].routes[0].plugins[0].config;
      assert.equal(c.auth.header_value, '<redacted>');
      assert.match(c.model.options.upstream_url, /tenant=\{vault:\/\/env\/secrets-review-vault\}$/);
      const h = await request({ port: sl.adminPort, path: '/config', method: 'HEAD' });
      assert.equal(h.status, 200);
      assert.equal(h.text, '');
      // The expanded value is what goes upstream.
      assert.equal((await postJson(sl.proxyPort, '/a', msgs)).status, 200);
      assert.equal(fake.requests.at(-1).query.tenant, CONF.vault);
      assert.equal(fake.requests.at(-1).headers['x-api-key'], CONF.envVar);
    } finally {
      await sl.stop();
      await fake.close();
    }
  });
});

// Found while sweeping the error paths above (not a secrets bug): curl's
// threaded resolver hands its socketpair to the multi socket callback, which
// "parks" it on CURL_POLL_REMOVE; curl then closes it with close(), not
// through CURLOPT_CLOSESOCKETFUNCTION, so the parked event outlives the fd.
// The next accept() that gets that number is never registered with epoll
// (libevent believes it is) and the client waits forever (strace: accept4
// → fd 23 with no EPOLL_CTL_ADD after the resolver's socketpair [23, 24]
// was closed).
describe('after failed name resolutions, new client connections are still served', { skip: binaryMissing() }, () => {
  // Deterministic: connection A stays open after its lookup failed, so the
  // next accept() gets the number the resolver's socketpair had.
  test('after a failed lookup on a kept-alive connection, a second connection (the freed descriptor number) is served', async () => {
    const fake = await startFake();
    const sl = await startSluice({
      workers: 1,
      config: { services: [
        { name: 'ai', url: fake.url, routes: [aiRoute('dns', {}, { options: { upstream_url: 'http://no-such-host.invalid/v1/chat/completions' } })] },
        { name: 'plain', url: fake.url, routes: [{ name: 'p', paths: ['/p'] }] },
      ] },
    });
    const open = [];
    try {
      for (let i = 0; i < 5; i++) {
        const a = net.connect(sl.proxyPort, '127.0.0.1');
        open.push(a);
        await new Promise((ok) => a.once('connect', ok));
        const body = JSON.stringify(msgs);
        const got = new Promise((ok) => { let t = ''; a.on('data', (d) => { t += d; if (/\r\n\r\n[\s\S]*\}$/.test(t)) ok(t); }); });
        a.write(`POST /dns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        assert.match(await got, /^HTTP\/1\.1 503 /);
        const p = await request({ port: sl.proxyPort, path: '/p/echo', timeoutMs: 3000 }).catch((e) => assert.fail(`round ${i}: GET /p/echo on a second connection: ${e.message}`));
        assert.equal(p.status, 200);
      }
    } finally {
      for (const a of open) a.destroy();
      await sl.stop();
      await fake.close();
    }
  });

  test('60 x (503 name resolution failed, then a plain GET on a new connection): every GET answered', {
    timeout: 90000,
  }, async () => {
    const fake = await startFake();
    const sl = await startSluice({
      workers: 1,
      config: { services: [
        { name: 'ai', url: fake.url, routes: [aiRoute('dns', {}, { options: { upstream_url: 'http://no-such-host.invalid/v1/chat/completions' } })] },
        { name: 'plain', url: fake.url, routes: [{ name: 'p', paths: ['/p'] }] },
      ] },
    });
    try {
      for (let i = 0; i < 60; i++) {
        // The lookup itself may take the resolver's 5 s timeout on a host
        // whose name server drops a query now and then: not the point here.
        const d = await postJson(sl.proxyPort, '/dns', msgs, { timeoutMs: 15000 }).catch((e) => assert.fail(`iteration ${i}: POST /dns: ${e.message}`));
        assert.equal(d.status, 503);
        const p = await request({ port: sl.proxyPort, path: '/p/echo', timeoutMs: 2000 }).catch((e) => assert.fail(`iteration ${i}: GET /p/echo: ${e.message}`));
        assert.equal(p.status, 200);
      }
    } finally {
      await sl.stop();
      await fake.close();
    }
  });
});
