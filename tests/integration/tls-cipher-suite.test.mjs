// Kong's ssl_cipher_suite as --ssl-cipher-suite: modern, intermediate (the default), old, fips and
// custom, each checked by real handshakes against the daemon (protocol offered, cipher chosen, whose
// order wins), and custom's three settings refused beside any other suite rather than ignored.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { before, describe, test } from 'node:test';

import { binaryMissing, freePort, runSluice, startSluice } from './lib/harness.mjs';
import { handshake, tlsFixture, withTlsSluice } from './lib/tls-helpers.mjs';

const skip = binaryMissing();
let fix, cert, key, conf;

// A whole HTTP request over the listener: sluice answers its 404 for an unknown route.
function get(port, opts) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/nowhere', rejectUnauthorized: false, agent: false, ...opts }, (res) => {
      const protocol = res.socket.getProtocol();
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, protocol }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const withSluice = (args, fn) => withTlsSluice(fix, args, fn);

// TLS 1.0 and 1.1 need OpenSSL's security level 0 on the client side too (Node's OpenSSL 3).
const LEGACY = { ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA@SECLEVEL=0' };
// Two TLS 1.2 suites every named suite but modern has, listed in the opposite order of the
// server's lists (which put AES128-GCM first): whoever's order wins shows in the choice.
const TWO_GCM = 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256';

describe('--ssl-cipher-suite (Kong\'s ssl_cipher_suite)', { skip }, () => {
  before(() => {
    fix = tlsFixture('sluice-tls-suite-');
    ({ cert, key, conf } = fix);
  });

  test('default (intermediate): TLS 1.0 and 1.1 refused, TLS 1.2 in the client\'s order, TLS 1.3', async () => {
    await withSluice([], async (port) => {
      for (const v of ['TLSv1', 'TLSv1.1']) {
        const r = await handshake(port, { minVersion: v, maxVersion: v, ...LEGACY });
        assert.ok(r.error, `${v} was served by default: ${JSON.stringify(r)}`);
      }
      assert.deepEqual(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: TWO_GCM }),
        { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.3');
    });
  });

  test('intermediate given by name is the default', async () => {
    await withSluice(['--ssl-cipher-suite', 'intermediate'], async (port) => {
      assert.deepEqual(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: TWO_GCM }),
        { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
      assert.ok((await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' })).error,
        'intermediate served a CBC suite');
    });
  });

  test('modern: TLS 1.3 only; a TLS 1.2 client is refused; a request is answered over TLS 1.3', async () => {
    await withSluice(['--ssl-cipher-suite', 'modern'], async (port) => {
      const r12 = await handshake(port, { maxVersion: 'TLSv1.2' });
      assert.match(r12.error ?? '', /PROTOCOL|VERSION|ALERT/i, JSON.stringify(r12));
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.3');
      const res = await get(port);
      assert.equal(res.status, 404);
      assert.match(res.body, /no Route matched/);
    });
  });

  test('old: TLS 1.0 and 1.1 clients with CBC suites are served, TLS 1.2 in the server\'s order, and HTTP works over TLS 1.0', async () => {
    await withSluice(['--ssl-cipher-suite', 'old'], async (port) => {
      assert.deepEqual(await handshake(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ...LEGACY }),
        { protocol: 'TLSv1', cipher: 'ECDHE-ECDSA-AES128-SHA' });
      assert.deepEqual(await handshake(port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ...LEGACY }),
        { protocol: 'TLSv1.1', cipher: 'ECDHE-ECDSA-AES128-SHA' });
      assert.deepEqual(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: TWO_GCM }),
        { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.3');
      const res = await get(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1', ...LEGACY });
      assert.equal(res.status, 404);
      assert.equal(res.protocol, 'TLSv1');
    });
  });

  test('fips: TLS 1.2 only, FIPS suites only (no ChaCha20), the server\'s order', async () => {
    await withSluice(['--ssl-cipher-suite', 'fips'], async (port) => {
      assert.ok((await handshake(port, { minVersion: 'TLSv1.3' })).error, 'fips served TLS 1.3');
      assert.ok((await handshake(port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ...LEGACY })).error,
        'fips served TLS 1.1');
      const chacha = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' });
      assert.ok(chacha.error, `fips served ChaCha20: ${JSON.stringify(chacha)}`);
      const gcm = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.deepEqual(gcm, { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.2');
    });
  });

  test('custom: the server\'s order by default (Kong\'s ssl_prefer_server_ciphers on); off gives the client\'s', async () => {
    await withSluice(['--ssl-cipher-suite', 'custom'], async (port) => {
      assert.deepEqual(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: TWO_GCM }),
        { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    });
    await withSluice(['--ssl-cipher-suite', 'custom', '--ssl-prefer-server-ciphers', 'off'], async (port) => {
      assert.deepEqual(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: TWO_GCM }),
        { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
    });
  });

  test('custom settings without a suite mean custom; from the environment too', async () => {
    await withSluice(['--ssl-protocols', 'TLSv1.2'], async (port) => {
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.2');
      assert.deepEqual(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: TWO_GCM }),
        { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' }, 'custom prefers the server\'s order');
    });
    const port = await freePort();
    const sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', cert, '--ssl-cert-key', key],
      env: { SLUICE_SSL_CIPHER_SUITE: 'modern' },
    });
    try {
      assert.ok((await handshake(port, { maxVersion: 'TLSv1.2' })).error, 'SLUICE_SSL_CIPHER_SUITE=modern served TLS 1.2');
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.3');
    } finally {
      await sl.stop();
    }
  });

  test('--ssl-dhparam (Kong\'s ssl_dhparam): a named group, a PEM file or PEM text sets the DHE group; by default it follows the key', async () => {
    const rsa = tlsFixture('sluice-tls-dh-', { rsa: true });
    const pem = path.join(rsa.dir, 'dh4096.pem');
    execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'group:ffdhe4096', '-out', pem],
      { stdio: 'ignore' });
    const dhe = (port) => new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.2',
        ciphers: 'DHE-RSA-AES128-GCM-SHA256' }, () => {
        const r = { cipher: s.getCipher().name, ...s.getEphemeralKeyInfo() };
        s.end();
        resolve(r);
      });
      s.on('error', (e) => resolve({ error: e.code || e.message }));
    });
    const want = (size) => ({ cipher: 'DHE-RSA-AES128-GCM-SHA256', type: 'DH', size });
    await withTlsSluice(rsa, ['--ssl-cipher-suite', 'custom'], async (port) => assert.deepEqual(await dhe(port), want(2048)));
    await withTlsSluice(rsa, ['--ssl-cipher-suite', 'custom', '--ssl-dhparam', 'ffdhe3072'],
      async (port) => assert.deepEqual(await dhe(port), want(3072)));
    await withTlsSluice(rsa, ['--ssl-cipher-suite', 'old', '--ssl-dhparam', pem],
      async (port) => assert.deepEqual(await dhe(port), want(4096)));
    await withTlsSluice(rsa, ['--ssl-cipher-suite', 'custom'], async (port) => assert.deepEqual(await dhe(port), want(4096)),
      { env: { SLUICE_SSL_DHPARAM: readFileSync(pem, 'utf8') } });
    const base = ['-t', '-c', rsa.conf, '--ssl-cert', rsa.cert, '--ssl-cert-key', rsa.key];
    let r = await runSluice([...base, '--ssl-dhparam', 'ffdhe2048']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--ssl-dhparam applies to --ssl-cipher-suite old, fips or custom only, and --ssl-cipher-suite is intermediate \(the default\)/);
    r = await runSluice([...base, '--ssl-dhparam', 'ffdhe2048'], { env: { SLUICE_SSL_CIPHER_SUITE: 'modern' } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--ssl-dhparam applies to .* and SLUICE_SSL_CIPHER_SUITE is modern/);
    for (const [v, msg] of [['ffdhe1024', /--ssl-dhparam 'ffdhe1024': not a group/],
      [path.join(rsa.dir, 'missing.pem'), /missing\.pem': No such file or directory/],
      [rsa.cert, /no DH parameters in it/]]) {
      r = await runSluice([...base, '--ssl-cipher-suite', 'custom', '--ssl-dhparam', v]);
      assert.equal(r.code, 1, `${v}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
  });

  test('bad values and conflicts are bad options (exit 2) at -t and at start, naming the setting', async () => {
    const base = ['-t', '-c', conf, '--ssl-cert', cert, '--ssl-cert-key', key];
    let r = await runSluice([...base, '--ssl-cipher-suite', 'strong']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--ssl-cipher-suite: expected one of modern, intermediate, old, fips, custom, got 'strong'/);
    for (const [flag, v] of [['--ssl-ciphers', 'ECDHE-ECDSA-AES128-SHA'], ['--ssl-protocols', 'TLSv1.3'],
      ['--ssl-prefer-server-ciphers', 'off']]) {
      r = await runSluice([...base, '--ssl-cipher-suite', 'modern', flag, v]);
      assert.equal(r.code, 2, `${flag} beside modern: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${flag} applies to --ssl-cipher-suite custom only, and --ssl-cipher-suite is modern`));
    }
    // the same conflict from the environment names the variables
    r = await runSluice(base, { env: { SLUICE_SSL_CIPHER_SUITE: 'old', SLUICE_SSL_PREFER_SERVER_CIPHERS: 'off' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /SLUICE_SSL_PREFER_SERVER_CIPHERS applies to --ssl-cipher-suite custom only, and SLUICE_SSL_CIPHER_SUITE is old/);
    r = await runSluice([...base, '--ssl-prefer-server-ciphers', 'yes']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--ssl-prefer-server-ciphers: expected on or off, got 'yes'/);
    r = await runSluice([...base, '--ssl-ciphers', 'old']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--ssl-ciphers 'old': .*Kong's suite: --ssl-cipher-suite old/);
    r = await runSluice([...base, '--ssl-protocols', 'TLSv1.1 TLSv1.2']);
    assert.match(r.stderr, /TLSv1\.1 is not offered: .*--ssl-cipher-suite old enables it/);
    // the same refusal stops a start, before any listener opens
    const port = await freePort();
    r = await runSluice(['-c', conf, '--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', cert,
      '--ssl-cert-key', key, '--admin-listen', 'off', '--ssl-cipher-suite', 'fips', '--ssl-ciphers', 'AES128-SHA']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--ssl-ciphers applies to --ssl-cipher-suite custom only, and --ssl-cipher-suite is fips/);
    r = await runSluice(['-h']);
    assert.match(r.stdout, /--ssl-cipher-suite/);
    assert.match(r.stdout, /--ssl-prefer-server-ciphers/);
  });
});
