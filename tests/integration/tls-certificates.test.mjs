// Kong's certificates and snis entities in kong.yml: the certificate a TLS listener serves is
// chosen by the server name the client asks for (exact, then "*.rest", then "first.*"), with
// --ssl-cert as the default; load errors as Kong's schema gives them; SIGHUP renews them.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, freePort, listenLocal, request, runSluice, startSluice, tempDir } from './lib/harness.mjs';
import { selfSigned } from './lib/tls-helpers.mjs';

const skip = binaryMissing();
const dir = skip ? null : tempDir('sluice-certs-');

// A self-signed certificate for `cn` (with subjectAltName names), RSA or ECDSA P-256.
function makeCert(name, cn, { type = 'ec', san = [cn] } = {}) {
  const p = selfSigned(dir, name, { cn, type, san: san.map((s) => `DNS:${s}`) });
  return { cert: p.certText, key: p.keyText, certFile: p.cert, keyFile: p.key };
}

// The subject CN of the certificate served for `servername` (undefined: no SNI sent), or the error.
function servedCN(port, servername) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end();
      resolve(cn);
    });
    s.setTimeout(5000, () => { s.destroy(); resolve('timeout'); });
    s.on('error', (e) => resolve(`error: ${e.code || e.message}`));
  });
}

describe('certificates in kong.yml, chosen by server name', { skip }, () => {
  let sl, upstream, port, certs;
  const yaml = () => {
    const lit = (pem) => `|\n${pem.trim().split('\n').map((l) => `    ${l}`).join('\n')}\n`;
    return [
      '_format_version: "3.0"',
      'services:',
      `- name: up`,
      `  url: http://127.0.0.1:${upstream.port}`,
      '  routes:',
      '  - {name: r, paths: [/]}',
      'certificates:',
      '- id: 0d1a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b',
      `  cert: ${lit(certs.exact.cert)}  key: ${lit(certs.exact.key)}  snis:`,
      '  - name: exact.test',
      '  - {name: Upper.Test., tags: [t]}',
      `- cert: ${lit(certs.wild.cert)}  key: "{vault://env/SLUICE_TEST_WILD_KEY}"`,
      '  snis: ["*.wild.test", "api.*"]',
      'snis:',
      '- name: byid.test',
      '  certificate: {id: 0d1a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b}',
      '- name: byid2.test',
      '  certificate: 0d1a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b',
      '',
    ].join('\n');
  };

  before(async () => {
    certs = {
      dflt: makeCert('default', 'default.test'),
      exact: makeCert('exact', 'exact.test', { san: ['exact.test', 'upper.test', 'byid.test'] }),
      wild: makeCert('wild', 'wild', { type: 'rsa', san: ['*.wild.test'] }),
    };
    const server = http.createServer((req, res) => res.end('ok'));
    upstream = { server, ...(await listenLocal(server)) };
    port = await freePort();
    sl = await startSluice({
      config: yaml(),
      env: { SLUICE_TEST_WILD_KEY: certs.wild.key },
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', certs.dflt.certFile,
        '--ssl-cert-key', certs.dflt.keyFile, '--workers', '1'],
    });
  });
  after(async () => {
    await sl?.stop();
    upstream?.server.close();
  });

  test('an exact name (nested snis, as maps; case and final dot of the config ignored)', async () => {
    assert.equal(await servedCN(port, 'exact.test'), 'exact.test');
    assert.equal(await servedCN(port, 'EXACT.test'), 'exact.test');
    assert.equal(await servedCN(port, 'upper.test'), 'exact.test');
  });

  test('top-level snis name their certificate by id, as {id: ...} or as a string', async () => {
    assert.equal(await servedCN(port, 'byid.test'), 'exact.test');
    assert.equal(await servedCN(port, 'byid2.test'), 'exact.test');
  });

  test('"*.wild.test" takes one label in front, "api.*" any last label; the key from a vault reference', async () => {
    assert.equal(await servedCN(port, 'a.wild.test'), 'wild');
    assert.equal(await servedCN(port, 'a.b.wild.test'), 'default.test', 'Kong replaces the first label only');
    assert.equal(await servedCN(port, 'api.example'), 'wild');
    assert.equal(await servedCN(port, 'api.example.org'), 'default.test', 'Kong replaces the last label only');
  });

  test('any other name, and no name at all, get the --ssl-cert default', async () => {
    assert.equal(await servedCN(port, 'other.test'), 'default.test');
    assert.equal(await servedCN(port, undefined), 'default.test');
  });

  test('a request over a name-chosen certificate is proxied and verifies with that certificate', async () => {
    const body = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'exact.test', ca: certs.exact.cert }, () => {
        s.write('GET / HTTP/1.1\r\nHost: exact.test\r\nConnection: close\r\n\r\n');
      });
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    assert.match(body, /^HTTP\/1\.1 200 /);
    assert.match(body, /\r\n\r\nok$/);
  });

  test('GET /config redacts the keys, not the certificates', async () => {
    const r = await request({ port: sl.adminPort, path: '/config' });
    const cfg = r.json();
    assert.equal(cfg.certificates[0].key, '<redacted>');
    assert.equal(cfg.certificates[1].key, '<redacted>');
    assert.match(cfg.certificates[0].cert, /BEGIN CERTIFICATE/);
    assert.ok(!r.text.includes('PRIVATE KEY'), 'no key in /config');
  });

  test('GET /status lists the certificates served, with their names and the days before they expire', async () => {
    const st = await sl.status();
    const certs = st.certificates;
    assert.ok(Array.isArray(certs), JSON.stringify(st));
    const dflt = certs.find((c) => c.source === '--ssl-cert');
    assert.equal(dflt.subject, '/CN=default.test');
    assert.equal(dflt.key_type, 'ECDSA');
    assert.match(dflt.not_after, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(dflt.expires_in_days >= 1 && dflt.expires_in_days <= 2, `expires_in_days ${dflt.expires_in_days} (made for 2 days)`);
    const exact = certs.find((c) => c.source === 'certificates[0]');
    assert.equal(exact.subject, '/CN=exact.test');
    assert.deepEqual([...exact.snis].sort(), ['byid.test', 'byid2.test', 'exact.test', 'upper.test']);
    const wild = certs.find((c) => c.source === 'certificates[1]');
    assert.equal(wild.key_type, 'RSA');
    assert.deepEqual([...wild.snis].sort(), ['*.wild.test', 'api.*']);
  });

  test('SIGHUP renews them: a new certificate for a name serves new connections', async () => {
    const renewed = makeCert('renewed', 'renewed.exact.test', { san: ['exact.test'] });
    certs.exact = renewed;
    await sl.reload(yaml());
    assert.equal(await servedCN(port, 'exact.test'), 'renewed.exact.test');
    assert.equal((await sl.status()).certificates.find((c) => c.source === 'certificates[0]').subject,
      '/CN=renewed.exact.test', 'GET /status follows the reload');
    assert.equal(await servedCN(port, 'a.wild.test'), 'wild');
  });

  test('a reload with a certificate that does not match its key is refused; the old ones keep serving', async () => {
    const good = sl.configPath;
    const text = readFileSync(good, 'utf8');
    const mark = sl.logMark();
    // Swap the exact certificate's key for the default's: a mismatch.
    writeFileSync(good, text.replace(certs.exact.key.trim().split('\n').join('\n    '),
      certs.dflt.key.trim().split('\n').join('\n    ')));
    sl.signal('SIGHUP');
    await sl.waitForLog(/reload refused/, { from: mark });
    const lines = sl.lines.slice(mark).join('\n');
    assert.match(lines, /certificates\[0\]: certificate does not match key/);
    assert.equal(await servedCN(port, 'exact.test'), 'renewed.exact.test');
  });
});

describe('certificates without --ssl-cert', { skip }, () => {
  test('an ssl listener may rely on kong.yml certificates alone; an unknown name fails the handshake (unrecognized_name)', async () => {
    const c = makeCert('alone', 'alone.test');
    const lit = (pem) => JSON.stringify(pem);
    const port = await freePort();
    const sl = await startSluice({
      config: `_format_version: "3.0"\ncertificates:\n- cert: ${lit(c.cert)}\n  key: ${lit(c.key)}\n  snis: [alone.test]\n`,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--workers', '1', '--log-level', 'debug'],
    });
    try {
      assert.equal(await servedCN(port, 'alone.test'), 'alone.test');
      const refused = await servedCN(port, 'other.test');
      assert.match(refused, /^error: /);
      await sl.waitForLog(/TLS handshake failed: no certificate for server name 'other\.test', and no --ssl-cert to fall back on/);
      assert.match(await servedCN(port, undefined), /^error: /);
    } finally {
      await sl.stop();
    }
  });

  test('an ssl listener with neither --ssl-cert nor certificates is refused at start, naming both ways', async () => {
    const d = tempDir('sluice-certs-none-');
    const file = path.join(d, 'kong.yml');
    writeFileSync(file, '_format_version: "3.0"\n');
    const r = await runSluice(['-t', '-c', file, '--proxy-listen', '127.0.0.1:1 ssl']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /a --proxy-listen with ssl needs --ssl-cert and --ssl-cert-key .* or certificates with snis in the config/);
  });
});

describe('certificates: load errors as Kong gives them', { skip }, () => {
  test('bad PEM, mismatched keys, half an alternative pair, same-type alternative, duplicate names, unknown ids', async () => {
    const a = makeCert('err-a', 'a.test');
    const b = makeCert('err-b', 'b.test');
    const q = (s) => JSON.stringify(s);
    const file = path.join(dir, 'errors.yml');
    writeFileSync(file, [
      '_format_version: "3.0"',
      'certificates:',
      `- {cert: "not a pem", key: ${q(a.key)}, snis: [one.test]}`,
      `- {cert: ${q(a.cert)}, key: ${q(b.key)}, snis: [two.test]}`,
      `- {cert: ${q(a.cert)}, key: ${q(a.key)}, cert_alt: ${q(b.cert)}, snis: [three.test]}`,
      `- {cert: ${q(a.cert)}, key: ${q(a.key)}, cert_alt: ${q(b.cert)}, key_alt: ${q(b.key)}, snis: [four.test, 10.0.0.1, "x.*.y"]}`,
      `- {cert: ${q(a.cert)}, key: "garbage", snis: [{name: four.test}]}`,
      'snis:',
      '- {name: five.test, certificate: 00000000-0000-4000-8000-000000000000}',
      '',
    ].join('\n'));
    const r = await runSluice(['-t', '-c', file]);
    assert.equal(r.code, 1, r.stderr);
    const e = r.stderr;
    assert.match(e, /errors\.yml:3:\d+: certificates\[0\]\.cert: invalid certificate: /);
    assert.match(e, /errors\.yml:4:\d+: certificates\[1\]: certificate does not match key/);
    assert.match(e, /errors\.yml:5:\d+: certificates\[2\]: all or none of these fields must be set: 'cert_alt', 'key_alt'/);
    assert.match(e, /errors\.yml:6:\d+: certificates\[3\]: certificate and alternative certificate need to have different type \(e\.g\. RSA and ECDSA\)/);
    assert.match(e, /certificates\[3\]\.snis\[1\]: must not be an IP/);
    assert.match(e, /certificates\[3\]\.snis\[2\]: wildcard must be leftmost or rightmost character/);
    assert.match(e, /errors\.yml:7:\d+: certificates\[4\]\.key: invalid key: /);
    assert.match(e, /errors\.yml:7:\d+: certificates\[4\]\.snis\[0\]\.name: duplicate SNI name 'four\.test' \(first at line 6\)/);
    assert.match(e, /errors\.yml:9:\d+: snis\[0\]\.certificate: unknown certificate '00000000-0000-4000-8000-000000000000'/);
    assert.ok(!e.includes('PRIVATE KEY'), 'no key text in the errors');
  });
});
