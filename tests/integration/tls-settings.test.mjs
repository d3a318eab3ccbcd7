// Kong's ssl_protocols and ssl_ciphers as --ssl-protocols / --ssl-ciphers; by default TLS 1.2 offers
// Mozilla's intermediate list (Kong's default ssl_cipher_suite): forward secrecy and AEAD only.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { binaryMissing, runSluice } from './lib/harness.mjs';
import { handshake, tlsFixture, withTlsSluice } from './lib/tls-helpers.mjs';

const skip = binaryMissing();
let fix, cert, key;

const withSluice = (args, fn) => withTlsSluice(fix, args, fn);

describe('TLS protocol and cipher settings', { skip }, () => {
  before(() => {
    fix = tlsFixture('sluice-tls-settings-');
    ({ cert, key } = fix);
  });

  test('by default TLS 1.2 takes ECDHE with AES-GCM or ChaCha20, and refuses CBC suites OpenSSL would otherwise offer', async () => {
    await withSluice([], async (port) => {
      const gcm = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.deepEqual(gcm, { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      const cbc = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384' });
      assert.ok(cbc.error, `a CBC-only TLS 1.2 client was served: ${JSON.stringify(cbc)}`);
      const v13 = await handshake(port, {});
      assert.equal(v13.protocol, 'TLSv1.3');
    });
  });

  test('--ssl-ciphers replaces the TLS 1.2 list', async () => {
    await withSluice(['--ssl-ciphers', 'ECDHE-ECDSA-AES128-SHA'], async (port) => {
      const cbc = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' });
      assert.deepEqual(cbc, { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-SHA' });
      const gcm = await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.ok(gcm.error, 'a suite left out of --ssl-ciphers is not offered');
    });
  });

  test('--ssl-protocols TLSv1.3 refuses TLS 1.2 clients; TLSv1.2 refuses TLS 1.3-only clients', async () => {
    await withSluice(['--ssl-protocols', 'TLSv1.3'], async (port) => {
      assert.match((await handshake(port, { maxVersion: 'TLSv1.2' })).error ?? '', /PROTOCOL|VERSION|ALERT/i);
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.3');
    });
    await withSluice(['--ssl-protocols', 'TLSv1.2'], async (port) => {
      assert.ok((await handshake(port, { minVersion: 'TLSv1.3' })).error, 'a TLS 1.3-only client was served');
      assert.equal((await handshake(port, {})).protocol, 'TLSv1.2');
    });
  });

  test('bad values are refused by -t and at start, naming the setting', async () => {
    const base = ['-t', '-c', fix.conf, '--ssl-cert', cert, '--ssl-cert-key', key];
    let r = await runSluice([...base, '--ssl-protocols', 'TLSv1.1 TLSv1.2']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--ssl-protocols: TLSv1\.1 is not offered: deprecated by RFC 8996/);
    r = await runSluice([...base, '--ssl-protocols', 'TLSv2']);
    assert.match(r.stderr, /--ssl-protocols: unknown protocol \(known: TLSv1\.2, TLSv1\.3\)/);
    r = await runSluice([...base, '--ssl-ciphers', 'NOT-A-CIPHER']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--ssl-ciphers 'NOT-A-CIPHER': no cipher OpenSSL knows in it/);
    r = await runSluice(base, { env: { SLUICE_SSL_PROTOCOLS: 'TLSv1.3', SLUICE_SSL_CIPHERS: 'ECDHE-ECDSA-AES128-GCM-SHA256' } });
    assert.equal(r.code, 0, r.stderr);
  });
});
