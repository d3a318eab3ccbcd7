// Upstream TLS as Kong configures it per service: ca_certificates (the CAs an HTTPS upstream is
// verified against, instead of the system's bundle) and client_certificate (mutual TLS).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, listenLocal, request, runSluice, startSluice, tempDir } from './lib/harness.mjs';

const skip = binaryMissing();

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

// A CA, and leaves it signs: for the server (IP 127.0.0.1) and for a client.
function makePki(dir) {
  const ext = path.join(dir, 'ext.cnf');
  writeFileSync(ext, [
    '[ca]', 'basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign',
    '[server]', 'basicConstraints=CA:FALSE', 'subjectAltName=IP:127.0.0.1', 'extendedKeyUsage=serverAuth',
    '[client]', 'basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth', '',
  ].join('\n'));
  const ca = (name) => {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-extensions', 'ca', '-config', ext], dir);
  };
  // openssl req -x509 needs a config with distinguished_name: give one.
  writeFileSync(ext, `[req]\ndistinguished_name=dn\n[dn]\n${readFileSync(ext, 'utf8')}`);
  const leaf = (name, caName, section) => {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
      '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`,
      '-CAcreateserial', '-days', '2', '-extfile', ext, '-extensions', section, '-out', `${name}.pem`], dir);
  };
  ca('private-ca');
  ca('other-ca');
  ca('client-ca');
  leaf('upstream', 'private-ca', 'server');
  leaf('sluice-client', 'client-ca', 'client');
  const read = (f) => readFileSync(path.join(dir, f), 'utf8');
  return {
    ca: read('private-ca.pem'), otherCa: read('other-ca.pem'), clientCa: read('client-ca.pem'),
    server: { cert: read('upstream.pem'), key: read('upstream.key') },
    client: { cert: read('sluice-client.pem'), key: read('sluice-client.key') },
  };
}

// Says who the client was, as the TLS layer saw it.
function who(req, res) {
  const peer = req.socket.getPeerCertificate();
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ client: peer?.subject?.CN ?? null, authorized: req.socket.authorized }));
}

const CA_ID = '3f5c8a3e-6f7b-4c9a-9e52-1b2c3d4e5f60';
const OTHER_CA_ID = '7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const CLIENT_ID = 'c1c2c3c4-d5d6-4e7f-8a9b-0c1d2e3f4a5b';

describe('services: ca_certificates and client_certificate', { skip }, () => {
  let pki, plainTls, mtls, sl;
  before(async () => {
    const dir = tempDir('sluice-upca-');
    pki = makePki(dir);
    plainTls = https.createServer({ ...pki.server }, who);
    mtls = https.createServer({ ...pki.server, requestCert: true, rejectUnauthorized: true, ca: pki.clientCa }, who);
    const [a, b] = await Promise.all([listenLocal(plainTls), listenLocal(mtls)]);
    const svc = (name, port, extra) => ({ name, url: `https://127.0.0.1:${port}`, ...extra,
      routes: [{ name, paths: [`/${name}`] }] });
    sl = await startSluice({
      workers: 1,
      config: {
        _format_version: '3.0',
        ca_certificates: [
          { id: CA_ID, cert: pki.ca, tags: ['internal'] },
          { id: OTHER_CA_ID, cert: pki.otherCa },
        ],
        certificates: [{ id: CLIENT_ID, cert: pki.client.cert, key: pki.client.key }],
        services: [
          svc('system', a.port),
          svc('private', a.port, { ca_certificates: [CA_ID] }),
          svc('wrong-ca', a.port, { ca_certificates: [OTHER_CA_ID] }),
          svc('both-cas', a.port, { ca_certificates: [OTHER_CA_ID, CA_ID] }),
          svc('mtls', b.port, { ca_certificates: [CA_ID], client_certificate: { id: CLIENT_ID } }),
          svc('mtls-no-cert', b.port, { ca_certificates: [CA_ID] }),
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    plainTls?.close();
    mtls?.close();
  });

  test('an upstream signed by a private CA fails against the system bundle (502), passes with the CA named', async () => {
    const sys = await request({ port: sl.proxyPort, path: '/system' });
    assert.equal(sys.status, 502, sys.text);
    const ok = await request({ port: sl.proxyPort, path: '/private' });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json(), { client: null, authorized: false });
  });

  test('another CA does not verify it; a list with the right one among others does', async () => {
    assert.equal((await request({ port: sl.proxyPort, path: '/wrong-ca' })).status, 502);
    assert.equal((await request({ port: sl.proxyPort, path: '/both-cas' })).status, 200);
  });

  test('client_certificate: an upstream that requires one sees sluice\'s certificate', async () => {
    const r = await request({ port: sl.proxyPort, path: '/mtls' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { client: 'sluice-client', authorized: true });
  });

  test('a service without it is refused by that upstream, even right after one with it (no connection reuse across them)', async () => {
    assert.equal((await request({ port: sl.proxyPort, path: '/mtls' })).status, 200);
    const r = await request({ port: sl.proxyPort, path: '/mtls-no-cert' });
    assert.equal(r.status, 502, r.text);
    // And the kept-alive mTLS connection still serves its own service.
    assert.equal((await request({ port: sl.proxyPort, path: '/mtls' })).status, 200);
  });

  test('GET /config shows the CA certificates, and the client key redacted', async () => {
    const cfg = (await request({ port: sl.adminPort, path: '/config' })).json();
    assert.equal(cfg.ca_certificates.length, 2);
    assert.match(cfg.ca_certificates[0].cert, /BEGIN CERTIFICATE/);
    assert.equal(cfg.certificates[0].key, '<redacted>');
  });
});

describe('ca_certificates: load errors', { skip }, () => {
  test('not a CA, not PEM, a wrong cert_digest, unknown ids', async () => {
    const dir = tempDir('sluice-upca-err-');
    const pki = makePki(dir);
    const q = (s) => JSON.stringify(s);
    const file = path.join(dir, 'kong.yml');
    writeFileSync(file, [
      '_format_version: "3.0"',
      'ca_certificates:',
      `- {id: ${CA_ID}, cert: ${q(pki.server.cert)}}`,
      `- {id: ${OTHER_CA_ID}, cert: "nope"}`,
      `- {cert: ${q(pki.ca)}, cert_digest: "00ff"}`,
      'services:',
      '- name: s',
      '  url: https://127.0.0.1:9',
      '  ca_certificates: [00000000-0000-4000-8000-000000000000]',
      '  client_certificate: {id: 11111111-0000-4000-8000-000000000000}',
      '  tls_verify_depth: 3',
      '',
    ].join('\n'));
    const r = await runSluice(['-t', '-c', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /:3:\d+: ca_certificates\[0\]\.cert: certificate does not appear to be a CA because it is missing the "CA" basic constraint/);
    assert.match(r.stderr, /:4:\d+: ca_certificates\[1\]\.cert: invalid certificate: /);
    assert.match(r.stderr, /:5:\d+: ca_certificates\[2\]\.cert_digest: does not match the certificate \(its SHA-256 is [0-9a-f]{64}\)/);
    assert.match(r.stderr, /:9:\d+: services\[0\]\.ca_certificates\[0\]: unknown ca_certificate '00000000-0000-4000-8000-000000000000'/);
    assert.match(r.stderr, /:10:\d+: services\[0\]\.client_certificate: unknown certificate '11111111-0000-4000-8000-000000000000'/);
    assert.match(r.stderr, /services\[0\]\.tls_verify_depth: not supported: tls_verify_depth is not available/);
  });
});
