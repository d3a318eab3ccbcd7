// Review of Kong's TLS listener settings (--ssl-cipher-suite, --ssl-prefer-server-ciphers,
// --ssl-session-tickets / -timeout / -cache-size) where the feature tests do not go: kong.yml
// certificates (each its own SSL_CTX, chosen by the client's SNI) beside an RSA + ECDSA --ssl-cert
// pair, sessions across server names, SIGHUP (good and refused), nginx's value syntax at its edges,
// and the Release (mimalloc) binary over thousands of TLS handshakes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { RELEASE_BIN, RELEASE_WRAP, SLUICE_BIN, binaryMissing, freePort, releaseMissing, runSluice, startSluice, tempDir } from './lib/harness.mjs';
import { selfSigned } from './lib/tls-helpers.mjs';

const skip = binaryMissing();

let dir;
const pem = {}; // name -> { cert, key } paths and texts

function makeCert(name, cn, type) {
  pem[name] = selfSigned(dir, name, { cn, type });
}

// kong.yml: a.test served by an RSA certificate entity, b.test by an ECDSA one.
const sniConfig = () => [
  '_format_version: "3.0"',
  'certificates:',
  `- cert: ${JSON.stringify(pem.a.certText)}\n  key: ${JSON.stringify(pem.a.keyText)}\n  snis: ["a.test"]`,
  `- cert: ${JSON.stringify(pem.b.certText)}\n  key: ${JSON.stringify(pem.b.keyText)}\n  snis: ["b.test"]`,
  '',
].join('\n');

// --ssl-cert: an RSA and an ECDSA pair side by side (Kong's ssl_cert with two files).
const dualCert = () => ['--ssl-cert', `${pem.rsa.cert},${pem.ec.cert}`, '--ssl-cert-key', `${pem.rsa.key},${pem.ec.key}`];

// One TLS connection that sends a request (so that a TLS 1.3 ticket arrives before the close):
// { protocol, cipher, cn, reused, session, ticket } or { error }.
function hs(port, opts = {}) {
  return new Promise((resolve) => {
    let r = null;
    let session;
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
      r = {
        protocol: s.getProtocol(),
        cipher: s.getCipher().name,
        cn: s.getPeerCertificate()?.subject?.CN,
        reused: s.isSessionReused(),
        ticket: s.getTLSTicket(), // TLS 1.2: known once the handshake is done
      };
      s.write('GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    s.on('session', (x) => { session = x; });
    s.on('data', () => {});
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('error', (e) => { if (!r) r = { error: e.code || e.message }; });
    s.on('close', () => {
      if (r && !r.error) {
        r.session = session ?? s.getSession();
      }
      resolve(r ?? { error: 'closed' });
    });
  });
}

const VERSIONS = {
  'TLSv1': { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'ALL:@SECLEVEL=0' },
  'TLSv1.1': { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'ALL:@SECLEVEL=0' },
  'TLSv1.2': { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' },
  'TLSv1.3': { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' },
};
const V12 = VERSIONS['TLSv1.2'];
const V13 = VERSIONS['TLSv1.3'];
const NAMES = { 'a.test': 'a-cert', 'b.test': 'b-cert' };

async function withSluice(args, fn, { config = sniConfig(), workers = 1, wrap = [] } = {}) {
  const port = await freePort();
  const sl = await startSluice({ config, workers, wrap, args: ['--proxy-listen', `127.0.0.1:${port} ssl`, ...args] });
  try {
    await fn(port, sl);
  } finally {
    await sl.stop();
  }
}

describe('tls suites review', { skip }, () => {
  before(() => {
    dir = tempDir('sluice-tls-suites-review-');
    makeCert('rsa', 'rsa-default', 'rsa');
    makeCert('ec', 'ec-default', 'ec');
    makeCert('a', 'a-cert', 'rsa');
    makeCert('b', 'b-cert', 'ec');
    writeFileSync(path.join(dir, 'kong.yml'), sniConfig());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // --- 1. each suite on every context ----------------------------------------------------------

  // Kong's kong/conf_loader/constants.lua CIPHER_SUITES: protocols, and prefer_server_ciphers.
  const SUITES = {
    modern: { protocols: ['TLSv1.3'], serverOrder: false },
    intermediate: { protocols: ['TLSv1.2', 'TLSv1.3'], serverOrder: false },
    old: { protocols: ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'], serverOrder: true },
    fips: { protocols: ['TLSv1.2'], serverOrder: true },
    custom: { protocols: ['TLSv1.2', 'TLSv1.3'], serverOrder: true },
  };

  for (const [suite, want] of Object.entries(SUITES)) {
    test(`${suite}: the same protocols and the same order rule on the --ssl-cert pair and on each kong.yml certificate`, async () => {
      await withSluice(['--ssl-cipher-suite', suite, ...dualCert()], async (port) => {
        const wrong = [];
        for (const name of [undefined, 'a.test', 'b.test']) {
          for (const [v, opts] of Object.entries(VERSIONS)) {
            const r = await hs(port, { servername: name, ...opts });
            const served = !r.error;
            if (served !== want.protocols.includes(v)) wrong.push(`${name ?? 'no SNI'} ${v}: ${JSON.stringify(r)}`);
            else if (served && name && r.cn !== NAMES[name]) wrong.push(`${name} ${v}: certificate ${r.cn}`);
            else if (served && r.protocol !== v) wrong.push(`${name ?? 'no SNI'} ${v}: got ${r.protocol}`);
          }
        }
        // Whose order wins: the same two suites offered in both orders. The server's order gives
        // one answer for both; the client's gives each list's first.
        const pairs = [];
        if (want.protocols.includes('TLSv1.2')) {
          pairs.push(['a.test', V12, 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES128-GCM-SHA256']);
          pairs.push(['b.test', V12, 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-GCM-SHA256']);
        }
        if (want.protocols.includes('TLSv1.3')) pairs.push(['a.test', V13, 'TLS_AES_256_GCM_SHA384', 'TLS_AES_128_GCM_SHA256']);
        for (const [name, opts, x, y] of pairs) {
          const r1 = await hs(port, { servername: name, ...opts, ciphers: `${x}:${y}` });
          const r2 = await hs(port, { servername: name, ...opts, ciphers: `${y}:${x}` });
          const serverOrder = r1.cipher === r2.cipher;
          if (r1.error || r2.error || serverOrder !== want.serverOrder) {
            wrong.push(`${name} ${opts.maxVersion} order: ${x}:${y} -> ${r1.cipher ?? r1.error}, ${y}:${x} -> ${r2.cipher ?? r2.error}`);
          }
        }
        assert.deepEqual(wrong, []);
      });
    });
  }

  test('RSA + ECDSA --ssl-cert pair, no SNI: the certificate follows whoever\'s order wins (client: intermediate, server: old)', async () => {
    const rsaFirst = 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256';
    const ecFirst = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256';
    await withSluice(['--ssl-cipher-suite', 'intermediate', ...dualCert()], async (port) => {
      assert.equal((await hs(port, { ...V12, ciphers: rsaFirst })).cn, 'rsa-default');
      assert.equal((await hs(port, { ...V12, ciphers: ecFirst })).cn, 'ec-default');
      // TLS 1.0 is not intermediate's, with either key
      assert.ok((await hs(port, { ...VERSIONS.TLSv1, ciphers: 'ECDHE-RSA-AES128-SHA:@SECLEVEL=0' })).error);
    });
    await withSluice(['--ssl-cipher-suite', 'old', ...dualCert()], async (port) => {
      // old's list puts the ECDSA suites first
      assert.equal((await hs(port, { ...V12, ciphers: rsaFirst })).cn, 'ec-default');
      assert.equal((await hs(port, { ...V12, ciphers: ecFirst })).cn, 'ec-default');
      // an RSA-only TLS 1.0 client gets the RSA certificate, with old's CBC suites (plain RSA key exchange included)
      assert.deepEqual(pick(await hs(port, { ...VERSIONS.TLSv1, ciphers: 'ECDHE-RSA-AES128-SHA:@SECLEVEL=0' })),
        { protocol: 'TLSv1', cipher: 'ECDHE-RSA-AES128-SHA', cn: 'rsa-default' });
      assert.deepEqual(pick(await hs(port, { ...VERSIONS['TLSv1.1'], ciphers: 'AES256-SHA:@SECLEVEL=0' })),
        { protocol: 'TLSv1.1', cipher: 'AES256-SHA', cn: 'rsa-default' });
      // a suite Kong's old list does not have (DHE with CBC-SHA1) is still refused
      assert.ok((await hs(port, { ...VERSIONS.TLSv1, ciphers: 'DHE-RSA-AES128-SHA:@SECLEVEL=0' })).error);
    });
  });

  // --- 2. sessions on contexts chosen by name ----------------------------------------------------

  test('tickets off, timeout 2s: each name resumes its own session from the cache (1.2 and 1.3), never another name\'s, none after 2s', async () => {
    await withSluice(['--ssl-session-tickets', 'off', '--ssl-session-timeout', '2s', ...dualCert()], async (port) => {
      const got = {};
      for (const [v, opts] of [['1.2', V12], ['1.3', V13]]) {
        for (const name of ['a.test', 'b.test', undefined]) {
          const first = await hs(port, { servername: name, ...opts });
          assert.equal(first.ticket, undefined, `${v} ${name}: a ticket with tickets off`);
          assert.ok(first.session, `${v} ${name}: no session`);
          got[`${v} ${name ?? '-'}`] = first.session;
        }
      }
      const reused = async (v, from, to) => {
        const r = await hs(port, { servername: to, ...(v === '1.2' ? V12 : V13), session: got[`${v} ${from ?? '-'}`] });
        assert.ok(!r.error, JSON.stringify(r));
        // a full handshake shows the certificate of the name asked for (a resumed one sends none)
        if (to && !r.reused) assert.ok(NAMES[to] ? r.cn === NAMES[to] : /-default$/.test(r.cn), `${v} ${from} -> ${to}: ${r.cn}`);
        return r.reused;
      };
      const table = {};
      for (const v of ['1.2', '1.3']) {
        for (const [from, to] of [['a.test', 'a.test'], ['b.test', 'b.test'], [undefined, undefined],
          ['a.test', 'b.test'], ['b.test', 'a.test'], ['a.test', undefined], [undefined, 'a.test'], ['a.test', 'zz.test']]) {
          table[`${v} ${from ?? '-'} -> ${to ?? '-'}`] = await reused(v, from, to);
        }
      }
      assert.deepEqual(table, {
        '1.2 a.test -> a.test': true, '1.2 b.test -> b.test': true, '1.2 - -> -': true,
        '1.2 a.test -> b.test': false, '1.2 b.test -> a.test': false, '1.2 a.test -> -': false,
        '1.2 - -> a.test': false, '1.2 a.test -> zz.test': false,
        '1.3 a.test -> a.test': true, '1.3 b.test -> b.test': true, '1.3 - -> -': true,
        '1.3 a.test -> b.test': false, '1.3 b.test -> a.test': false, '1.3 a.test -> -': false,
        '1.3 - -> a.test': false, '1.3 a.test -> zz.test': false,
      });
      await sleep(3100);
      for (const v of ['1.2', '1.3']) {
        for (const name of ['a.test', 'b.test']) {
          assert.equal(await reused(v, name, name), false, `${v} ${name}: resumed after the 2s timeout`);
        }
      }
    });
  });

  test('tickets on: a name\'s ticket (1.2 and 1.3) resumes under that name only, and not after the timeout', async () => {
    await withSluice(['--ssl-session-timeout', '2s', ...dualCert()], async (port) => {
      for (const opts of [V12, V13]) {
        const a = await hs(port, { servername: 'a.test', ...opts });
        if (opts === V12) assert.ok(a.ticket?.length > 0, 'no TLS 1.2 ticket with tickets on');
        assert.equal((await hs(port, { servername: 'a.test', ...opts, session: a.session })).reused, true, `${opts.maxVersion} a -> a`);
        const b = await hs(port, { servername: 'b.test', ...opts, session: a.session });
        assert.deepEqual([b.reused, b.cn], [false, 'b-cert'], `${opts.maxVersion} a's ticket under b.test`);
        const none = await hs(port, { ...opts, session: a.session });
        assert.equal(none.reused, false, `${opts.maxVersion} a's ticket without SNI`);
      }
      const a12 = await hs(port, { servername: 'a.test', ...V12 });
      const b13 = await hs(port, { servername: 'b.test', ...V13 });
      await sleep(3100);
      assert.equal((await hs(port, { servername: 'a.test', ...V12, session: a12.session })).reused, false, '1.2 ticket after timeout');
      assert.equal((await hs(port, { servername: 'b.test', ...V13, session: b13.session })).reused, false, '1.3 ticket after timeout');
    });
  });

  test('one session cache for every name: a 1k cache (tickets off) forgets a.test\'s session after five b.test handshakes; 10m keeps it', async () => {
    const run = async (extra) => {
      let out;
      await withSluice(['--ssl-session-tickets', 'off', ...extra, ...dualCert()], async (port) => {
        const a = await hs(port, { servername: 'a.test', ...V12 });
        let b;
        for (let i = 0; i < 5; i++) b = await hs(port, { servername: 'b.test', ...V12 });
        // b first: a miss on a adds a new session, which in a one-entry cache would push b out
        const bReused = (await hs(port, { servername: 'b.test', ...V12, session: b.session })).reused;
        out = { a: (await hs(port, { servername: 'a.test', ...V12, session: a.session })).reused, b: bReused };
      });
      return out;
    };
    assert.deepEqual(await run(['--ssl-session-cache-size', '1k']), { a: false, b: true });
    assert.deepEqual(await run([]), { a: true, b: true });
  });

  test('4 workers, tickets off: a session resumes whichever worker takes the connection (the cache is shared)', async () => {
    await withSluice(['--ssl-session-tickets', 'off', ...dualCert()], async (port) => {
      const s12 = await hs(port, { servername: 'a.test', ...V12 });
      const s13 = await hs(port, { servername: 'b.test', ...V13 });
      const results = [];
      for (let i = 0; i < 12; i++) {
        results.push((await hs(port, { servername: 'a.test', ...V12, session: s12.session })).reused);
        results.push((await hs(port, { servername: 'b.test', ...V13, session: s13.session })).reused);
      }
      assert.deepEqual(results, Array(24).fill(true));
    }, { workers: 4 });
  });

  // --- 4. SIGHUP ----------------------------------------------------------------------------------

  test('SIGHUP keeps the suite and the session settings on every context; a reload refused for a bad --ssl-cert keeps serving them', async () => {
    const cert = path.join(dir, 'hup.pem');
    const key = path.join(dir, 'hup.key');
    writeFileSync(cert, pem.rsa.certText);
    writeFileSync(key, pem.rsa.keyText);
    const args = ['--ssl-cipher-suite', 'old', '--ssl-session-tickets', 'off', '--ssl-session-timeout', '1h',
      '--ssl-cert', cert, '--ssl-cert-key', key];
    await withSluice(args, async (port, sl) => {
      const check = async (when) => {
        for (const name of [undefined, 'a.test', 'b.test']) {
          const r10 = await hs(port, { servername: name, ...VERSIONS.TLSv1 });
          assert.equal(r10.protocol, 'TLSv1', `${when}, ${name ?? 'no SNI'}: TLS 1.0 (old) ${JSON.stringify(r10)}`);
          const r12 = await hs(port, { servername: name, ...V12 });
          assert.equal(r12.ticket, undefined, `${when}, ${name ?? 'no SNI'}: a ticket with tickets off`);
          assert.equal((await hs(port, { servername: name, ...V12, session: r12.session })).reused, true, `${when}: resumes`);
        }
      };
      await check('at start');
      await sl.reload(sniConfig() + '_comment: reloaded\n');
      await check('after a reload');
      const kept = await hs(port, { servername: 'b.test', ...V13 });
      writeFileSync(cert, 'not a certificate\n');
      const mark = sl.logMark();
      sl.signal('SIGHUP');
      await sl.waitForLog(/reload refused/, { from: mark });
      await check('after a refused reload');
      // the context (and its cache) from before the refused reload is the one still serving
      assert.equal((await hs(port, { servername: 'b.test', ...V13, session: kept.session })).reused, true);
    }, { workers: 2 });
  });

  // --- 3. parsing, -t, environment, -h -------------------------------------------------------------

  test('nginx time/size syntax at its edges: refused with exit 2 naming the flag; accepted forms work', async () => {
    const base = ['-t', '-c', path.join(dir, 'kong.yml'), ...dualCert()];
    const refused = [];
    for (const [flag, v] of [
      ['--ssl-session-timeout', '1 d'], ['--ssl-session-timeout', '1D'], ['--ssl-session-timeout', '1H'],
      ['--ssl-session-timeout', '-5'], ['--ssl-session-timeout', '-0'], ['--ssl-session-timeout', '5mx'],
      ['--ssl-session-timeout', '5m x'], ['--ssl-session-timeout', ''], ['--ssl-session-timeout', '  '],
      ['--ssl-session-timeout', '9223372036854775808s'], ['--ssl-session-timeout', '99999999999999999999'],
      ['--ssl-session-timeout', '1w 1s'], ['--ssl-session-timeout', '604801'], ['--ssl-session-timeout', '1M'],
      ['--ssl-session-timeout', '1y'], ['--ssl-session-timeout', '5ms'], ['--ssl-session-timeout', '0x10'],
      ['--ssl-session-timeout', '1e3'],
      ['--ssl-session-cache-size', '1023'], ['--ssl-session-cache-size', '10 m'], ['--ssl-session-cache-size', '10m '],
      ['--ssl-session-cache-size', '1025m'], ['--ssl-session-cache-size', '2g'], ['--ssl-session-cache-size', '0k'],
      ['--ssl-session-cache-size', '-1k'], ['--ssl-session-cache-size', '1.5m'], ['--ssl-session-cache-size', '10mb'],
      ['--ssl-session-cache-size', '9999999999999999999k'], ['--ssl-session-cache-size', ''],
      ['--ssl-session-tickets', 'On'], ['--ssl-session-tickets', 'true'], ['--ssl-session-tickets', ''],
    ]) {
      const r = await runSluice([...base, flag, v]);
      if (r.code !== 2 || !r.stderr.includes(`sluice: ${flag}: expected`) || !r.stderr.includes(`'${v}'`)) {
        refused.push(`${flag} '${v}': exit ${r.code} ${r.stderr.trim().split('\n').pop()}`);
      }
    }
    assert.deepEqual(refused, []);
    const accepted = [];
    for (const [flag, v] of [
      ['--ssl-session-timeout', '1w'], ['--ssl-session-timeout', '7d 0s'], ['--ssl-session-timeout', '604800'],
      ['--ssl-session-timeout', '1d 1h 1m 1s'], ['--ssl-session-timeout', '010'],
      ['--ssl-session-cache-size', '1k'], ['--ssl-session-cache-size', '1K'], ['--ssl-session-cache-size', '1024'],
      ['--ssl-session-cache-size', '1G'], ['--ssl-session-cache-size', '10M'],
    ]) {
      const r = await runSluice([...base, flag, v]);
      if (r.code !== 0) accepted.push(`${flag} '${v}': exit ${r.code} ${r.stderr.trim()}`);
    }
    assert.deepEqual(accepted, []);
  });

  test('timeout units out of nginx\'s order, repeated, or a bare number after a unit are refused (nginx: "invalid value")',
    async () => {
      const base = ['-t', '-c', path.join(dir, 'kong.yml'), ...dualCert()];
      const got = {};
      for (const v of ['1d 1d', '30m 1h', '1m 1m 1m', '5s5', '1h30m', '+5m']) got[v] = (await runSluice([...base, '--ssl-session-timeout', v])).code;
      assert.deepEqual(got, { '1d 1d': 2, '30m 1h': 2, '1m 1m 1m': 2, '5s5': 2, '1h30m': 2, '+5m': 2 });
    });

  test('environment: a bad SLUICE_SSL_SESSION_* names the variable (exit 2); a flag given wins over a bad variable', async () => {
    const base = ['-t', '-c', path.join(dir, 'kong.yml'), ...dualCert()];
    for (const [name, v] of [['SLUICE_SSL_SESSION_CACHE_SIZE', '10x'], ['SLUICE_SSL_SESSION_TIMEOUT', '8d'],
      ['SLUICE_SSL_SESSION_TICKETS', 'maybe']]) {
      const r = await runSluice(base, { env: { [name]: v } });
      assert.equal(r.code, 2, `${name}=${v}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`\\(from ${name}\\)`));
    }
    const r = await runSluice([...base, '--ssl-session-cache-size', '1m', '--ssl-session-timeout', '5m'],
      { env: { SLUICE_SSL_SESSION_CACHE_SIZE: '10x', SLUICE_SSL_SESSION_TIMEOUT: 'never' } });
    assert.equal(r.code, 0, r.stderr);
    // an empty variable is not read
    assert.equal((await runSluice(base, { env: { SLUICE_SSL_SESSION_TIMEOUT: '', SLUICE_SSL_CIPHER_SUITE: '' } })).code, 0);
    // a suite from the environment applies, and SLUICE_SSL_SESSION_TIMEOUT reaches the ticket lifetime
    const port = await freePort();
    const sl = await startSluice({
      config: sniConfig(),
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, ...dualCert()],
      env: { SLUICE_SSL_CIPHER_SUITE: 'fips', SLUICE_SSL_SESSION_TIMEOUT: '1s' },
    });
    try {
      assert.ok((await hs(port, { servername: 'a.test', ...V13 })).error, 'SLUICE_SSL_CIPHER_SUITE=fips served TLS 1.3');
      const a = await hs(port, { servername: 'a.test', ...V12 });
      assert.equal(a.protocol, 'TLSv1.2');
      await sleep(2100);
      assert.equal((await hs(port, { servername: 'a.test', ...V12, session: a.session })).reused, false);
    } finally {
      await sl.stop();
    }
  });

  test('a bad suite value from the environment names the variable it came from, as the session variables do',
    async () => {
      const base = ['-t', '-c', path.join(dir, 'kong.yml'), ...dualCert()];
      let r = await runSluice(base, { env: { SLUICE_SSL_CIPHER_SUITE: 'Modern' } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /SLUICE_SSL_CIPHER_SUITE/);
      r = await runSluice([...base, '--ssl-cipher-suite', 'old'], { env: { SLUICE_SSL_PREFER_SERVER_CIPHERS: 'off' } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /SLUICE_SSL_PREFER_SERVER_CIPHERS/);
    });

  test('-t: the suite is checked without any ssl listener; bad values and conflicts are bad options (exit 2) with the reason', async () => {
    const conf = path.join(dir, 'kong.yml');
    let r = await runSluice(['-t', '-c', conf, '--ssl-cipher-suite', 'bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--ssl-cipher-suite: expected one of modern, intermediate, old, fips, custom, got 'bogus'/);
    r = await runSluice(['-t', '-c', conf, '--ssl-cipher-suite', 'MODERN']);
    assert.equal(r.code, 2, 'suite names are lowercase, as Kong\'s');
    r = await runSluice(['-t', '-c', conf, '--ssl-cipher-suite', 'custom', '--ssl-protocols', 'TLSv1.3', '--ssl-prefer-server-ciphers', 'off',
      '--ssl-ciphers', 'ECDHE-RSA-AES128-GCM-SHA256']);
    assert.equal(r.code, 0, r.stderr);
    // a bad option stops before the config is read: exit 2 even with a bad suite beside it
    r = await runSluice(['-t', '-c', conf, '--ssl-cipher-suite', 'bogus', '--ssl-session-timeout', '9d']);
    assert.equal(r.code, 2);
    // the last of a repeated flag wins; a bad one before it is still a bad option, as for every flag
    r = await runSluice(['-t', '-c', conf, '--ssl-cipher-suite', 'fips', '--ssl-cipher-suite', 'old']);
    assert.equal(r.code, 0, r.stderr);
    r = await runSluice(['-t', '-c', conf, '--ssl-cipher-suite', 'bogus', '--ssl-cipher-suite', 'old']);
    assert.equal(r.code, 2, r.stderr);
    r = await runSluice(['-h']);
    assert.equal(r.code, 0);
    for (const re of [/--ssl-session-tickets on\|off[\s\S]*default on/, /--ssl-session-timeout T[\s\S]*default 1d, at most 7d/,
      /--ssl-session-cache-size SIZE[\s\S]*default 10m/, /--ssl-cipher-suite S/, /--ssl-prefer-server-ciphers on\|off/]) {
      assert.match(r.stdout, re);
    }
  });

  // --- 5. the Release (mimalloc) binary ----------------------------------------------------------------

  test('the start-up line names the allocator: mimalloc for a Release binary linked with it, AddressSanitizer\'s under ASan', async () => {
    const names = [[SLUICE_BIN, []]];
    if (!releaseMissing) names.push([RELEASE_BIN, RELEASE_WRAP]);
    for (const [bin, wrap] of names) {
      const ldd = execFileSync('ldd', [bin], { encoding: 'utf8' });
      const want = /libmimalloc/.test(ldd) ? /malloc mimalloc \d+\.\d+\.\d+$/ : /libasan/.test(ldd) ? /malloc AddressSanitizer's$/ : /malloc glibc$/;
      const sl = await startSluice({ workers: 1, wrap });
      try {
        await sl.waitForLog(want);
      } finally {
        await sl.stop();
      }
    }
  });

  const rssKiB = (pid) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

  for (const [what, extra] of [['tickets on', []], ['tickets off, a 1k cache', ['--ssl-session-tickets', 'off', '--ssl-session-cache-size', '1k']]]) {
    test(`Release binary, ${what}: 4000 TLS handshakes with a request each (1.2, 1.3, three names): RSS flat after the first 1000`,
      { skip: releaseMissing, timeout: 60000 }, async () => {
        await withSluice([...extra, ...dualCert()], async (port, sl) => {
          const rss = [];
          const names = [undefined, 'a.test', 'b.test'];
          for (let round = 0; round < 400; round++) {
            const batch = [];
            for (let k = 0; k < 10; k++) batch.push(hs(port, { servername: names[k % 3], ...(k % 2 ? V12 : V13) }));
            const rs = await Promise.all(batch);
            assert.deepEqual(rs.filter((r) => r.error), []);
            if (round % 100 === 99) rss.push(rssKiB(sl.pid));
          }
          assert.ok(rss[3] - rss[0] <= 1024, `RSS after 1000/2000/3000/4000 handshakes: ${rss.join(' ')} KiB`);
        }, { wrap: RELEASE_WRAP });
      });
  }
});

function pick(r) {
  return r.error ? r : { protocol: r.protocol, cipher: r.cipher, cn: r.cn };
}
