// Adversarial review of the latest TLS changes: a service's ca_certificates / client_certificate
// (upstream TLS against private CAs, mutual TLS; easy-handle and connection reuse across services,
// retries, aborts, 504s, reloads, HTTP/2 upstreams), the ClientHello callback (odd server names,
// HelloRetryRequest, sessions across a reload), the first-byte peek on TLS ports, and Kong's
// listen flags. Basics are in tls-listen, tls-today-review, tls-certificates, tls-sni,
// upstream-ca and upstream-tls; nothing here repeats them.
//
// The "system" CA bundle: a test that must tell the system's trust from a service's CAs runs
// sluice in a private mount namespace (unshare -m) with a directory of ours bound over
// /etc/ssl/certs, holding one CA of ours as both libcurl's CA file (ca-certificates.crt) and
// its CA path (a hashed link). Nothing outside that process sees it.
//
//   SLUICE_BIN=/work/dev/tls-bin/sluice node --test integration/tls-today2-review.test.mjs
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import {
  SLUICE_BIN, binaryMissing, cpuTicks, freePort, listenLocal, request, runSluice, sleep, startSluice, tempDir,
  waitFor,
} from './lib/harness.mjs';
import { tlsFlightReader } from './lib/tls-helpers.mjs';

const skip = binaryMissing();

// --- certificates (openssl CLI) ----------------------------------------------------------------

const PKI = skip ? null : tempDir('sluice-tls2-pki-');
process.on('exit', () => PKI && rmSync(PKI, { recursive: true, force: true }));

function openssl(args) {
  return execFileSync('openssl', args, { cwd: PKI, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

// A P-256 key and a certificate: a CA (ca: true), a server leaf for 127.0.0.1 and `san` names,
// or a client leaf (client: true); signed by `issuer`, or self-signed.
function newCert(name, { issuer, ca = false, client = false, san = [], days = 2 } = {}) {
  const key = path.join(PKI, `${name}.key`);
  const cert = path.join(PKI, `${name}.pem`);
  const ext = path.join(PKI, `${name}.ext`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  const alt = ['IP:127.0.0.1', ...san.map((s) => `DNS:${s}`)].join(',');
  writeFileSync(ext, ca
    ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n'
    : client
      ? 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n'
      : `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${alt}\n`);
  if (!issuer) {
    const cnf = path.join(PKI, `${name}.cnf`);
    writeFileSync(cnf, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${readFileSync(ext, 'utf8')}`);
    openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', String(days), '-subj', `/CN=${name}`,
      '-extensions', 'v3', '-config', cnf]);
  } else {
    const csr = path.join(PKI, `${name}.csr`);
    openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${name}`]);
    openssl(['x509', '-req', '-in', csr, '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-set_serial',
      `0x${randomBytes(8).toString('hex')}`, '-days', String(days), '-out', cert, '-extfile', ext]);
  }
  return { name, certFile: cert, keyFile: key, cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

const pki = {};
if (!skip) {
  pki.sysCa = newCert('sys-ca', { ca: true });
  pki.sysLeaf = newCert('sys-leaf', { issuer: pki.sysCa });
  pki.privCa = newCert('priv-ca', { ca: true });
  pki.privLeaf = newCert('priv-leaf', { issuer: pki.privCa });
  pki.otherCa = newCert('other-ca', { ca: true });
  pki.clientCa = newCert('client-ca', { ca: true });
  pki.client = newCert('sluice-client', { issuer: pki.clientCa, client: true });
  pki.client2 = newCert('sluice-client-2', { issuer: pki.clientCa, client: true });
  pki.clientInter = newCert('client-intermediate', { issuer: pki.clientCa, ca: true });
  pki.client3 = newCert('sluice-client-3', { issuer: pki.clientInter, client: true });
  pki.selfLeaf = newCert('self-leaf'); // self-signed, CA:FALSE
  pki.listen = newCert('listen-default', { issuer: pki.privCa, san: ['localhost'] });
  pki.a = newCert('a-cert', { issuer: pki.privCa, san: ['a.test'] });
  pki.b = newCert('b-cert', { issuer: pki.privCa, san: ['b.test'] });
}

// The directory bound over /etc/ssl/certs: sys-ca as the CA file and in the hashed CA path.
function systemCertsDir() {
  const dir = path.join(PKI, 'system-certs');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'ca-certificates.crt'), pki.sysCa.cert);
  writeFileSync(path.join(dir, 'sys-ca.pem'), pki.sysCa.cert);
  const hash = openssl(['x509', '-hash', '-noout', '-in', pki.sysCa.certFile]).trim();
  symlinkSync('sys-ca.pem', path.join(dir, `${hash}.0`));
  return dir;
}

// A command prefix that runs sluice (same pid) with that directory as /etc/ssl/certs.
function nsWrap(dir) {
  const un = process.getuid() === 0 ? ['unshare', '-m'] : ['unshare', '-Urm'];
  return [...un, 'sh', '-c', 'mount --bind "$0" /etc/ssl/certs && exec "$@"', dir];
}

const nsSkip = (() => {
  if (skip) return skip;
  const un = process.getuid() === 0 ? ['-m'] : ['-Urm'];
  const r = spawnSync('unshare', [...un, 'sh', '-c', 'mount --bind /tmp /etc/ssl/certs'], { encoding: 'utf8' });
  return r.status === 0 ? false : `no private mount namespace here (unshare: ${r.stderr.trim()})`;
})();

// --- upstreams ---------------------------------------------------------------------------------

// Says what the TLS layer saw: the client certificate's CN, and which connection (sluice's port).
function who(req, res) {
  const peer = req.socket.getPeerCertificate?.();
  const body = JSON.stringify({
    client: peer?.subject?.CN ?? null, conn: req.socket.remotePort, http: req.httpVersion, path: req.url,
  });
  if (req.url.startsWith('/hang')) return; // never answered
  res.setHeader('content-type', 'application/json');
  res.end(body);
}

function httpsUpstream(leaf, extra = {}) {
  const server = https.createServer({ cert: leaf.cert, key: leaf.key, ...extra }, who);
  return listenLocal(server).then((l) => ({ server, ...l }));
}

const CA = {
  priv: '11111111-1111-4111-8111-111111111111',
  other: '22222222-2222-4222-8222-222222222222',
  sys: '33333333-3333-4333-8333-333333333333',
  twoInOne: '44444444-4444-4444-8444-444444444444',
};
const CLIENT = {
  one: 'c1111111-1111-4111-8111-111111111111', two: 'c2222222-2222-4222-8222-222222222222',
  chain: 'c3333333-3333-4333-8333-333333333333',
};
const VAULT_CA = '55555555-5555-4555-8555-555555555555';

const svc = (name, port, extra = {}) => ({ name, url: `https://127.0.0.1:${port}`, ...extra, routes: [{ name, paths: [`/${name}`] }] });

const get = (sl, p, opts = {}) => request({ port: sl.proxyPort, path: p, ...opts });

// --- upstream TLS: a service's CAs against the system's ------------------------------------------

// A TCP front for `port` that cuts its first `drop` connections as soon as they send anything
// (a ClientHello answered by a close): sluice's connect fails and, with retries, tries again.
async function flakyFront(port, drop) {
  let seen = 0;
  const socks = new Set();
  const server = net.createServer((c) => {
    const n = ++seen;
    socks.add(c);
    c.on('close', () => socks.delete(c));
    c.on('error', () => {});
    if (n <= drop) {
      c.once('data', () => c.destroy());
      return;
    }
    const up = net.connect(port, '127.0.0.1');
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    c.pipe(up).pipe(c);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const close = () => new Promise((r) => {
    for (const c of socks) c.destroy();
    server.close(() => r());
  });
  return { port: server.address().port, server, close, connections: () => seen };
}

describe('upstream TLS: a service\'s ca_certificates and the system bundle (private /etc/ssl/certs)', { skip: nsSkip }, () => {
  let sl, sysUp, privUp, flaky;
  const hangs = [];
  before(async () => {
    sysUp = await httpsUpstream(pki.sysLeaf);
    privUp = await httpsUpstream(pki.privLeaf);
    privUp.server.on('request', (req) => { if (req.url.startsWith('/hang')) hangs.push(req.url); });
    flaky = await flakyFront(privUp.port, 1);
    sl = await startSluice({
      workers: 1,
      wrap: nsWrap(systemCertsDir()),
      config: {
        ca_certificates: [{ id: CA.priv, cert: pki.privCa.cert }, { id: CA.other, cert: pki.otherCa.cert }],
        services: [
          svc('sys', sysUp.port),
          svc('priv-no-ca', privUp.port),
          svc('priv', privUp.port, { ca_certificates: [CA.priv] }),
          svc('sys-with-priv-ca', sysUp.port, { ca_certificates: [CA.priv] }),
          svc('priv-flaky', flaky.port, { ca_certificates: [CA.priv], retries: 2 }),
          svc('priv-hang', privUp.port, { ca_certificates: [CA.priv], read_timeout: 400 }),
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await sysUp?.close();
    await privUp?.close();
    await flaky?.close();
  });

  // After a transfer that carried the private CA, the same (pooled) easy handle serves a service
  // without CAs: it must be back on the system bundle.
  async function backOnSystemBundle(what) {
    const sys = await get(sl, '/sys');
    assert.equal(sys.status, 200, `${what}: the system CA no longer verifies its upstream: ${sys.text}`);
    const leak = await get(sl, '/priv-no-ca');
    assert.equal(leak.status, 502, `${what}: a service without ca_certificates trusted the private CA: ${leak.text}`);
  }

  test('the private mount namespace works: the "system" CA verifies its upstream, a private upstream is refused, the CA named verifies it', async () => {
    assert.equal((await get(sl, '/sys')).status, 200);
    assert.equal((await get(sl, '/priv-no-ca')).status, 502);
    assert.equal((await get(sl, '/priv')).status, 200);
  });

  test('a service with ca_certificates trusts those CAs only: an upstream signed by a system CA is refused (502)', async () => {
    const r = await get(sl, '/sys-with-priv-ca');
    assert.equal(r.status, 502, `an upstream signed by a system CA, the service naming only a private CA: ${r.status} ${r.text}`);
  });

  test('a plain transfer after one with the CA, on the same worker: back on the system bundle', async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal((await get(sl, '/priv')).status, 200);
      await backOnSystemBundle(`round ${i}`);
    }
  });

  test('a retried connect (the first TLS handshake cut by the upstream) keeps the service\'s CA, and the handle is clean after', async () => {
    const before = flaky.connections();
    const r = await get(sl, '/priv-flaky');
    assert.equal(r.status, 200, r.text);
    assert.equal(flaky.connections() - before, 2, 'one cut handshake, then the retry that verified with the private CA');
    await backOnSystemBundle('after the retry');
  });

  test('a client that leaves while its CA-carrying transfer waits: the handle goes back clean', async () => {
    const mark = sl.logMark();
    const n = hangs.length;
    const req = http.request({ host: '127.0.0.1', port: sl.proxyPort, path: '/priv-hang/hang-abort', agent: false });
    req.on('error', () => {});
    req.end();
    assert.ok(await waitFor(() => hangs.length > n, 5000), 'the upstream got the request');
    req.destroy();
    await sl.waitForLog(/uri="\/priv-hang\/hang-abort".*client_aborted=true/, { from: mark });
    await backOnSystemBundle('after a client abort');
  });

  test('a 504 on a CA-carrying transfer: the handle goes back clean', async () => {
    const r = await get(sl, '/priv-hang/hang-504');
    assert.equal(r.status, 504, r.text);
    await backOnSystemBundle('after a 504');
  });
});

// --- upstream TLS: connections kept apart by CA and client certificate -------------------------

describe('upstream TLS: kept-alive connections, HTTP/2 streams and handles across services', { skip }, () => {
  let sl, privUp, mtlsUp, h2Up, strictUp;
  const mtlsOpts = { requestCert: true, rejectUnauthorized: false, ca: [] };
  before(async () => {
    mtlsOpts.ca = pki.clientCa.cert;
    privUp = await httpsUpstream(pki.privLeaf);
    mtlsUp = await httpsUpstream(pki.privLeaf, mtlsOpts);
    // Requires a client certificate that chains to the client root; knows no intermediate.
    strictUp = await httpsUpstream(pki.privLeaf, { requestCert: true, rejectUnauthorized: true, ca: pki.clientCa.cert });
    const h2 = http2.createSecureServer({ cert: pki.privLeaf.cert, key: pki.privLeaf.key, allowHTTP1: true, ...mtlsOpts }, who);
    const sessions = new Set();
    h2.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
    await new Promise((r) => h2.listen(0, '127.0.0.1', r));
    h2Up = {
      port: h2.address().port,
      close: () => new Promise((r) => {
        for (const s of sessions) s.destroy();
        h2.close(() => r());
      }),
    };
    sl = await startSluice({
      workers: 1,
      env: { SLUICE_T2_CLIENT_KEY: pki.client2.key, SLUICE_T2_CA_PEM: pki.privCa.cert },
      config: {
        ca_certificates: [
          { id: CA.priv, cert: pki.privCa.cert }, { id: CA.other, cert: pki.otherCa.cert },
          { id: VAULT_CA, cert: '{vault://env/SLUICE_T2_CA_PEM}' },
        ],
        certificates: [
          { id: CLIENT.one, cert: pki.client.cert, key: pki.client.key },
          { id: CLIENT.two, cert: pki.client2.cert, key: '{vault://env/SLUICE_T2_CLIENT_KEY}' },
          { id: CLIENT.chain, cert: pki.client3.cert + pki.clientInter.cert, key: pki.client3.key },
        ],
        services: [
          svc('priv', privUp.port, { ca_certificates: [CA.priv] }),
          svc('priv-other', privUp.port, { ca_certificates: [CA.other] }),
          svc('priv-both', privUp.port, { ca_certificates: [CA.other, CA.priv] }),
          svc('verify-off', privUp.port, { ca_certificates: [CA.other], tls_verify: false }),
          svc('mtls1', mtlsUp.port, { ca_certificates: [CA.priv], client_certificate: { id: CLIENT.one } }),
          svc('mtls2', mtlsUp.port, { ca_certificates: [CA.priv], client_certificate: CLIENT.two }),
          svc('mtls-none', mtlsUp.port, { ca_certificates: [CA.priv] }),
          svc('h2-1', h2Up.port, { ca_certificates: [CA.priv], client_certificate: CLIENT.one }),
          svc('h2-2', h2Up.port, { ca_certificates: [CA.priv], client_certificate: CLIENT.two }),
          svc('h2-none', h2Up.port, { ca_certificates: [CA.priv] }),
          svc('priv-vault-ca', privUp.port, { ca_certificates: [VAULT_CA] }),
          svc('strict-chain', strictUp.port, { ca_certificates: [CA.priv], client_certificate: CLIENT.chain }),
          svc('mtls-noverify', mtlsUp.port, { tls_verify: false, client_certificate: CLIENT.one }),
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await privUp?.close();
    await mtlsUp?.close();
    await h2Up?.close();
    await strictUp?.close();
  });

  test('a CA whose cert is a vault reference (the example in docs/configuration.md) verifies the upstream', async () => {
    const r = await get(sl, '/priv-vault-ca');
    assert.equal(r.status, 200, r.text);
  });

  test('a client certificate with its intermediate in cert: the chain is sent, an upstream that trusts only the root accepts it', async () => {
    const r = await get(sl, '/strict-chain');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().client, 'sluice-client-3');
  });

  test('tls_verify: false still presents the client certificate', async () => {
    const r = await get(sl, '/mtls-noverify');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().client, 'sluice-client');
  });

  test('a connection verified with one CA is not reused by a service naming another (502), nor by one naming both', async () => {
    const a = await get(sl, '/priv');
    assert.equal(a.status, 200);
    const b = await get(sl, '/priv-other');
    assert.equal(b.status, 502, `the kept-alive connection of /priv must not serve /priv-other: ${b.text}`);
    const c = await get(sl, '/priv-both');
    assert.equal(c.status, 200);
    assert.notEqual(c.json().conn, a.json().conn, 'another CA list: another connection');
    const again = await get(sl, '/priv');
    assert.equal(again.json().conn, a.json().conn, 'the first connection still serves its own service');
  });

  test('tls_verify: false with ca_certificates: not verified at all (as Kong: verification off wins)', async () => {
    const r = await get(sl, '/verify-off');
    assert.equal(r.status, 200, r.text);
  });

  test('two services with different client certificates to one upstream, interleaved: each presents its own, on its own connection', async () => {
    const seen = { mtls1: new Set(), mtls2: new Set(), 'mtls-none': new Set() };
    for (let i = 0; i < 4; i++) {
      for (const [p, cn] of [['mtls1', 'sluice-client'], ['mtls2', 'sluice-client-2'], ['mtls-none', null]]) {
        const r = await get(sl, `/${p}`);
        assert.equal(r.status, 200, `${p}: ${r.text}`);
        assert.equal(r.json().client, cn, `round ${i}: /${p} presented ${r.json().client}`);
        seen[p].add(r.json().conn);
      }
    }
    const all = [...seen.mtls1, ...seen.mtls2, ...seen['mtls-none']];
    assert.equal(new Set(all).size, all.length, `no connection shared between services: ${JSON.stringify(all)}`);
  });

  test('the client certificate\'s key from a vault reference ({vault://env/...}) is used', async () => {
    const r = await get(sl, '/mtls2');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().client, 'sluice-client-2');
  });

  test('HTTP/2 upstream: concurrent streams of three services are never multiplexed onto another\'s connection', async () => {
    const want = { 'h2-1': 'sluice-client', 'h2-2': 'sluice-client-2', 'h2-none': null };
    const jobs = [];
    for (let i = 0; i < 6; i++) for (const p of Object.keys(want)) jobs.push(get(sl, `/${p}?i=${i}`).then((r) => [p, r]));
    const conns = { 'h2-1': new Set(), 'h2-2': new Set(), 'h2-none': new Set() };
    for (const [p, r] of await Promise.all(jobs)) {
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      const j = r.json();
      assert.equal(j.http, '2.0', 'the upstream was reached over HTTP/2');
      assert.equal(j.client, want[p], `/${p} was sent over a connection that presented ${j.client}`);
      conns[p].add(j.conn);
    }
    for (const a of Object.keys(conns)) {
      for (const b of Object.keys(conns)) {
        if (a < b) for (const c of conns[a]) assert.ok(!conns[b].has(c), `${a} and ${b} shared connection ${c}`);
      }
    }
  });
});

// --- upstream TLS across a reload ---------------------------------------------------------------

describe('upstream TLS: a reload that changes a service\'s CA or client certificate', { skip }, () => {
  let sl, mtlsUp;
  const config = ({ ca = CA.priv, client = CLIENT.one, caPem = pki.privCa.cert } = {}) => ({
    ca_certificates: [{ id: CA.priv, cert: caPem }, { id: CA.other, cert: pki.otherCa.cert }],
    certificates: [
      { id: CLIENT.one, cert: pki.client.cert, key: pki.client.key },
      { id: CLIENT.two, cert: pki.client2.cert, key: pki.client2.key },
    ],
    services: [svc('up', mtlsUp.port, { ca_certificates: [ca], client_certificate: client })],
  });
  before(async () => {
    mtlsUp = await httpsUpstream(pki.privLeaf, { requestCert: true, rejectUnauthorized: false, ca: pki.clientCa.cert });
    sl = await startSluice({ workers: 1, config: config() });
  });
  after(async () => {
    await sl?.stop();
    await mtlsUp?.close();
  });

  // Right: the trust the config names now governs every request after the reload. A connection
  // kept alive from before was verified against a CA the service no longer names (say, one
  // withdrawn because it was compromised); reusing it would keep trusting that CA until the
  // connection happens to close.
  test('the service now names another CA: the connection kept alive from before is not reused (502); back again: 200', async () => {
    const a = await get(sl, '/up');
    assert.equal(a.status, 200);
    await sl.reload(config({ ca: CA.other }));
    const b = await get(sl, '/up');
    assert.equal(b.status, 502, `after the reload the private CA is no longer named: ${b.text}`);
    await sl.reload(config());
    const c = await get(sl, '/up');
    assert.equal(c.status, 200, c.text);
  });

  test('the CA entity keeps its id but its cert changes: the new one governs', async () => {
    assert.equal((await get(sl, '/up')).status, 200);
    await sl.reload(config({ caPem: pki.otherCa.cert }));
    const r = await get(sl, '/up');
    assert.equal(r.status, 502, `same id, another CA: ${r.text}`);
    await sl.reload(config());
  });

  test('the service now names another client certificate: the upstream sees the new one at once', async () => {
    const a = await get(sl, '/up');
    assert.equal(a.json().client, 'sluice-client');
    await sl.reload(config({ client: CLIENT.two }));
    const b = await get(sl, '/up');
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json().client, 'sluice-client-2', 'not the kept-alive connection of the old certificate');
    assert.notEqual(b.json().conn, a.json().conn);
  });
});

// --- upstream TLS: what loads --------------------------------------------------------------------

describe('upstream TLS: load checks Kong makes', { skip }, () => {
  const check = async (config) => {
    const dir = tempDir('sluice-tls2-load-');
    const f = path.join(dir, 'kong.yml');
    writeFileSync(f, JSON.stringify({ _format_version: '3.0', ...config }));
    try {
      return await runSluice(['-t', '-c', f]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  test('a ca_certificates entity with two certificates in its cert is refused, as Kong does ("please submit only one certificate at a time")', async () => {
    const r = await check({
      ca_certificates: [{ id: CA.twoInOne, cert: pki.privCa.cert + pki.selfLeaf.cert }],
      services: [svc('s', 9, { ca_certificates: [CA.twoInOne] })],
    });
    assert.equal(r.code, 1, `loaded: ${r.stderr}`);
    assert.match(r.stderr, /ca_certificates\[0\]\.cert: .*one certificate/);
  });

  test('ca_certificates / client_certificate on an http:// service are refused, as Kong does (they must be null unless protocol is https)', async () => {
    const r = await check({
      ca_certificates: [{ id: CA.priv, cert: pki.privCa.cert }],
      certificates: [{ id: CLIENT.one, cert: pki.client.cert, key: pki.client.key }],
      services: [
        { name: 'a', url: 'http://127.0.0.1:9', ca_certificates: [CA.priv] },
        { name: 'b', url: 'http://127.0.0.1:9', client_certificate: CLIENT.one },
      ],
    });
    assert.equal(r.code, 1, `loaded: ${r.stderr}`);
    assert.match(r.stderr, /services\[0\]\.ca_certificates/);
    assert.match(r.stderr, /services\[1\]\.client_certificate/);
  });
});

// --- TLS listener: ClientHellos written by hand -------------------------------------------------

// A ClientHello record. TLS 1.2 (ECDHE-ECDSA-AES128-GCM-SHA256, P-256) unless tls13; `sni`: the
// host_name bytes (a Buffer or string), or null for no server_name extension; `sniRaw`: the whole
// extension body instead. tls13: supported_versions 1.3 and a key_share of `share` (null: an
// empty client_shares list, which asks the server for a HelloRetryRequest, RFC 8446 4.2.8).
function clientHello({ sni, sniRaw, tls13 = false, share = null, sessionId = Buffer.alloc(0), random = randomBytes(32) } = {}) {
  const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);
  const ext = (type, body) => Buffer.concat([u16(type), u16(body.length), body]);
  const exts = [];
  if (sniRaw) exts.push(ext(0x0000, sniRaw));
  else if (sni != null) {
    const name = Buffer.from(sni, 'latin1');
    exts.push(ext(0x0000, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])));
  }
  exts.push(ext(0x000a, Buffer.concat([u16(4), u16(0x001d), u16(0x0017)]))); // x25519, secp256r1
  exts.push(ext(0x000b, Buffer.from([1, 0])));
  exts.push(ext(0x000d, Buffer.concat([u16(4), u16(0x0403), u16(0x0804)])));
  if (tls13) {
    exts.push(ext(0x002b, Buffer.from([2, 0x03, 0x04])));
    const shares = share ? Buffer.concat([u16(0x001d), u16(share.length), share]) : Buffer.alloc(0);
    exts.push(ext(0x0033, Buffer.concat([u16(shares.length), shares])));
  }
  const extBytes = Buffer.concat(exts);
  const suites = tls13 ? [0x1301] : [0xc02b];
  const body = Buffer.concat([
    Buffer.from([3, 3]), random, Buffer.from([sessionId.length]), sessionId,
    u16(suites.length * 2), ...suites.map(u16), Buffer.from([1, 0]), u16(extBytes.length), extBytes,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
}

// Sends ClientHello bytes and reads the server's plaintext flight until `until(messages)` says
// enough, an alert, or the close. Returns {messages: [{type, body}], alert, closed, socket}.
function sendHello(port, hello, { until = (m) => m.some((x) => x.type === 14), keep = false, timeoutMs = 3000 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(hello));
    const flight = tlsFlightReader();
    const finish = (closed) => {
      clearTimeout(timer);
      if (!keep || closed) s.destroy();
      resolve({ messages: flight.messages, alert: flight.alert, closed, socket: s });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.on('error', () => {});
    s.on('close', () => finish(true));
    s.on('data', (d) => {
      flight.push(d);
      if (flight.alert !== null || until(flight.messages)) finish(false);
    });
  });
}

// The CN of the leaf in a TLS 1.2 Certificate message.
function leafCn(messages) {
  const m = messages.find((x) => x.type === 11);
  if (!m) return null;
  const len = m.body.readUIntBE(3, 3);
  const der = m.body.subarray(6, 6 + len);
  return /CN=([^\n]+)/.exec(new X509Certificate(der).subject)?.[1] ?? null;
}

const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

describe('TLS listener: odd server names, HelloRetryRequest, the first byte', { skip }, () => {
  let sl, port, up;
  before(async () => {
    const server = http.createServer((req, res) => res.end(JSON.stringify({ path: req.url })));
    up = { server, ...(await listenLocal(server)) };
    port = await freePort();
    sl = await startSluice({
      workers: 1,
      args: ['--client-timeout', '2', '--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.listen.certFile,
        '--ssl-cert-key', pki.listen.keyFile],
      config: {
        certificates: [{ cert: pki.a.cert, key: pki.a.key, snis: ['a.test'] }],
        services: [
          { name: 'sni', url: `${up.url}/sni`, routes: [{ name: 'sni', protocols: ['https'], snis: ['a.test'], paths: ['/'] }] },
          { name: 'any', url: `${up.url}/any`, routes: [{ name: 'any', paths: ['/'] }] },
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop(); // no sanitizer report from any of the hellos below
    await up?.close();
  });

  // One HTTPS request with a given SNI over a fresh connection: {cn, path} or {error}.
  function viaName(servername) {
    return new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
        s.write('GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
      });
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('end', () => resolve({ cn: s.getPeerCertificate()?.subject?.CN, path: /"path":"([^"]*)"/.exec(got)?.[1] }));
      s.on('error', (e) => resolve({ error: e.code || e.message }));
      s.setTimeout(3000, () => s.destroy(new Error('timeout')));
    });
  }

  test('a hand-written TLS 1.2 ClientHello is answered with the certificate its name selects (the harness reads the plaintext Certificate)', async () => {
    assert.equal(leafCn((await sendHello(port, clientHello({ sni: 'a.test' }))).messages), 'a-cert');
    assert.equal(leafCn((await sendHello(port, clientHello({ sni: 'A.Test' }))).messages), 'a-cert');
    assert.equal(leafCn((await sendHello(port, clientHello({ sni: null }))).messages), 'listen-default');
  });

  test('odd names: the longest a client may send (255 bytes, then served), bytes above 0x7f, an IP literal: each gets the default certificate', async () => {
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(58)}.test`;
    assert.equal(long.length, 255);
    const l = await viaName(long);
    assert.deepEqual(l, { cn: 'listen-default', path: '/any/x' }, 'a 255-byte name');
    const hi = await sendHello(port, clientHello({ sni: Buffer.from('caf\xe9.a.test', 'latin1') }));
    assert.equal(leafCn(hi.messages), 'listen-default', `a name with a byte above 0x7f (alert ${hi.alert})`);
    const ip = await sendHello(port, clientHello({ sni: '127.0.0.1' }));
    assert.equal(leafCn(ip.messages), 'listen-default', 'an IP literal (RFC 6066 forbids it; no certificate names one)');
  });

  test('malformed server_name extensions (a NUL in the name, 300 bytes, a non-host_name type, a list longer than the extension) end in an alert or a close; sluice serves on', async () => {
    const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);
    const bad = {
      nul: clientHello({ sni: Buffer.from('a.test\0evil.test', 'latin1') }),
      long: clientHello({ sni: 'x'.repeat(300) }),
      type1: clientHello({ sniRaw: Buffer.concat([u16(9), Buffer.from([1]), u16(6), Buffer.from('a.test')]) }),
      overlong: clientHello({ sniRaw: Buffer.concat([u16(200), Buffer.from([0]), u16(6), Buffer.from('a.test')]) }),
      empty: clientHello({ sniRaw: Buffer.alloc(0) }),
    };
    for (const [what, hello] of Object.entries(bad)) {
      const r = await sendHello(port, hello);
      assert.ok(r.alert !== null || r.closed, `${what}: an alert or a close, got ${r.messages.map((m) => m.type)}`);
      assert.equal(leafCn(r.messages), null, `${what}: no certificate sent`);
    }
    // A host_name of length 0: OpenSSL takes it; sluice reads it as no name (the default).
    const zero = await sendHello(port, clientHello({ sniRaw: Buffer.concat([u16(3), Buffer.from([0]), u16(0)]) }));
    assert.equal(leafCn(zero.messages), 'listen-default');
    assert.deepEqual(await viaName('a.test'), { cn: 'a-cert', path: '/sni/x' });
  });

  test('TLS 1.3 HelloRetryRequest (an empty key_share): the second ClientHello is taken through the callback again and answered with a ServerHello', async () => {
    const random = randomBytes(32);
    const sessionId = randomBytes(32);
    const first = await sendHello(port, clientHello({ sni: 'a.test', tls13: true, sessionId, random }), {
      until: (m) => m.length > 0, keep: true,
    });
    try {
      assert.equal(first.alert, null, `alert ${first.alert}`);
      const sh = first.messages[0];
      assert.equal(sh?.type, 2, 'a ServerHello');
      assert.ok(sh.body.subarray(2, 34).equals(HRR_RANDOM), 'whose random says HelloRetryRequest');
      // The second ClientHello, now with an x25519 share (after a change_cipher_spec, as middlebox
      // compatibility mode sends it).
      const { publicKey } = generateKeyPairSync('x25519');
      const share = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
      const second = new Promise((resolve) => {
        let buf = Buffer.alloc(0);
        first.socket.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 5 + 4) resolve(buf);
        });
        first.socket.on('close', () => resolve(buf));
      });
      first.socket.write(Buffer.concat([Buffer.from([0x14, 3, 3, 0, 1, 1]),
        clientHello({ sni: 'a.test', tls13: true, share, sessionId, random })]));
      const got = await second;
      assert.ok(got.length > 0, 'an answer to the second ClientHello');
      const recType = got[0] === 0x14 ? got[6] : got[0];
      assert.equal(recType, 0x16, `a handshake record, not an alert (${got.subarray(0, 12).toString('hex')})`);
    } finally {
      first.socket.destroy();
    }
    assert.deepEqual(await viaName('a.test'), { cn: 'a-cert', path: '/sni/x' });
  });

  // The first write of a connection goes out as its first byte alone, the rest `pauseMs` later.
  function firstByteApart(pauseMs) {
    const raw = net.connect(port, '127.0.0.1');
    let first = true;
    let paused = null;
    const duplex = new Duplex({
      write(chunk, enc, cb) {
        if (!first) return raw.write(chunk, () => cb());
        first = false;
        raw.write(chunk.subarray(0, 1));
        paused = sleep(pauseMs).then(() => raw.write(chunk.subarray(1), () => cb()));
      },
      read() {},
      final(cb) { raw.end(); cb(); },
      destroy(err, cb) { raw.destroy(); cb(err); },
    });
    raw.on('data', (d) => duplex.push(d));
    raw.on('end', () => duplex.push(null));
    raw.on('error', (e) => duplex.destroy(e));
    return { duplex, raw, pause: () => paused };
  }

  test('a ClientHello whose first byte comes alone: the peek consumes nothing, no busy loop meanwhile, then the handshake and the request go through', async () => {
    const pipe = firstByteApart(600);
    const s = tls.connect({ socket: pipe.duplex, servername: 'a.test', rejectUnauthorized: false });
    s.on('error', () => {});
    const connected = new Promise((r) => s.once('secureConnect', r));
    await sleep(150);
    const t0 = cpuTicks(sl.pid);
    await sleep(400);
    const spent = cpuTicks(sl.pid) - t0;
    await pipe.pause();
    await connected;
    assert.equal(s.getPeerCertificate().subject.CN, 'a-cert');
    s.write('GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    let got = '';
    s.on('data', (d) => { got += d; });
    await new Promise((r) => s.on('end', r));
    assert.match(got, /^HTTP\/1\.1 200 [^]*"path":"\/sni\/x"/);
    assert.ok(spent <= 10, `sluice used ${spent} ticks in 400 ms while one byte of a ClientHello waited`);
  });

  test('a plain request whose first byte comes alone: the 400 (sent on that byte), then a clean close', async () => {
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => {});
    let got = '';
    raw.on('data', (d) => { got += d; });
    const closed = new Promise((r) => raw.on('close', r));
    await new Promise((r) => raw.once('connect', r));
    raw.write('P');
    assert.ok(await waitFor(() => got.includes('\r\n\r\n'), 3000), `the 400 came on the first byte: ${JSON.stringify(got)}`);
    raw.write('ATCH /x HTTP/1.1\r\nHost: h\r\n\r\n');
    await closed;
    assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n[^]*The plain HTTP request was sent to HTTPS port/);
  });

  test('one byte of a handshake record, then the client closes: sluice drops it and serves on', async () => {
    for (let i = 0; i < 5; i++) {
      const raw = net.connect(port, '127.0.0.1');
      raw.on('error', () => {});
      await new Promise((r) => raw.once('connect', r));
      raw.end(Buffer.from([0x16]));
      await new Promise((r) => raw.on('close', r));
    }
    assert.deepEqual(await viaName('a.test'), { cn: 'a-cert', path: '/sni/x' });
  });
});

// --- certificates: Kong's "*" entry next to --ssl-cert; sessions across a reload ----------------

describe('certificates: the "*" entry, --ssl-cert, and sessions offered across a reload', { skip }, () => {
  const star = (extra = []) => ({
    certificates: [
      { cert: pki.a.cert, key: pki.a.key, snis: ['a.test'] },
      { cert: pki.b.cert, key: pki.b.key, snis: ['*'] },
      ...extra,
    ],
  });

  test('with --ssl-cert: an unknown name gets the "*" entry, no name gets --ssl-cert (docs/configuration.md); without --ssl-cert no name gets "*"', async () => {
    const port = await freePort();
    const sl = await startSluice({
      workers: 1, config: star(),
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.listen.certFile, '--ssl-cert-key', pki.listen.keyFile],
    });
    try {
      assert.equal(leafCn((await sendHello(port, clientHello({ sni: 'a.test' }))).messages), 'a-cert');
      assert.equal(leafCn((await sendHello(port, clientHello({ sni: 'zzz.example' }))).messages), 'b-cert');
      assert.equal(leafCn((await sendHello(port, clientHello({ sni: null }))).messages), 'listen-default');
    } finally {
      await sl.stop();
    }
    const port2 = await freePort();
    const sl2 = await startSluice({ workers: 1, config: star(), args: ['--proxy-listen', `127.0.0.1:${port2} ssl`] });
    try {
      assert.equal(leafCn((await sendHello(port2, clientHello({ sni: null }))).messages), 'b-cert');
    } finally {
      await sl2.stop();
    }
  });

  test('a session (1.2 id, 1.3 ticket) offered after a reload that gave its name another certificate: a full handshake with the new one, and served', async () => {
    const port = await freePort();
    const server = http.createServer((req, res) => res.end('{}'));
    const up = await listenLocal(server);
    const cfg = (cert) => ({
      certificates: [{ cert: cert.cert, key: cert.key, snis: ['held.test'] }],
      services: [{ name: 'up', url: up.url, routes: [{ name: 'up', paths: ['/'] }] }],
    });
    const sl = await startSluice({ workers: 1, config: cfg(pki.a), args: ['--proxy-listen', `127.0.0.1:${port} ssl`] });
    const connect = (version, session) => new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'held.test', session, rejectUnauthorized: false,
        minVersion: version, maxVersion: version }, () => {
        seen = { reused: s.isSessionReused(), cn: s.getPeerCertificate()?.subject?.CN };
        s.write('GET / HTTP/1.1\r\nHost: held.test\r\nConnection: close\r\n\r\n');
      });
      let sess = null;
      let seen = {};
      let got = '';
      s.on('session', (x) => { sess = x; });
      s.on('data', (d) => { got += d; });
      s.on('close', () => resolve({ session: sess, ...seen, status: got.slice(9, 12) }));
      s.on('error', reject);
    });
    try {
      const sessions = {};
      for (const v of ['TLSv1.2', 'TLSv1.3']) {
        const first = await connect(v);
        assert.equal(first.cn, 'a-cert');
        const again = await connect(v, first.session);
        assert.equal(again.reused, true, `${v}: resumed before the reload (the control)`);
        sessions[v] = again.session ?? first.session;
      }
      await sl.reload(cfg(pki.b));
      for (const v of ['TLSv1.2', 'TLSv1.3']) {
        const r = await connect(v, sessions[v]);
        assert.deepEqual({ reused: r.reused, cn: r.cn, status: r.status }, { reused: false, cn: 'b-cert', status: '200' }, v);
      }
    } finally {
      await sl.stop();
      await up.close();
    }
  });
});

// --- Kong's listen flags ------------------------------------------------------------------------

// sluice with only the listeners given (the harness always adds one of its own): {proc, adminPort,
// stderr(), stop()}. Resolves once GET /status answers.
async function startBare({ args = [], env = {} } = {}) {
  const dir = tempDir('sluice-tls2-bare-');
  const conf = path.join(dir, 'kong.yml');
  writeFileSync(conf, '_format_version: "3.0"\nservices:\n- {name: s, url: "http://127.0.0.1:9", routes: [{name: r, paths: [/nothing]}]}\n');
  const adminPort = await freePort();
  const proc = spawn(SLUICE_BIN, ['-c', conf, '--admin-listen', `127.0.0.1:${adminPort}`, '--workers', '1', ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => proc.on('close', (code, signal) => r({ code, signal })));
  const stop = async () => {
    proc.kill('SIGTERM');
    const st = await Promise.race([exited, sleep(10000).then(() => null)]);
    if (!st) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    return st;
  };
  const deadline = Date.now() + 15000;
  let exitStatus = null;
  exited.then((st) => { exitStatus = st; });
  while (Date.now() < deadline && !exitStatus) {
    try {
      if ((await request({ port: adminPort, path: '/status', timeoutMs: 500 })).status === 200) {
        return { proc, adminPort, stderr: () => err, stop, exited };
      }
    } catch { /* not yet */ }
    await sleep(50);
  }
  await stop();
  return { proc, adminPort, stderr: () => err, exitStatus, exited };
}

const backlogOf = (port) => {
  const ss = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).stdout;
  return Number(/^LISTEN\s+\d+\s+(\d+)\s/m.exec(ss)?.[1]);
};

describe('--proxy-listen flags (Kong\'s listen directives)', { skip }, () => {
  test('backlog=N applies to its own listener only; deferred with ssl: TLS served, plain HTTP gets the 400, a silent client is not accepted', async () => {
    const [p1, p2, p3] = await Promise.all([freePort(), freePort(), freePort()]);
    const sl = await startBare({
      args: ['--proxy-listen', `127.0.0.1:${p1} backlog=33`, '--proxy-listen', `127.0.0.1:${p2} ssl backlog=44 deferred`,
        '--proxy-listen', `127.0.0.1:${p3}`, '--ssl-cert', pki.listen.certFile, '--ssl-cert-key', pki.listen.keyFile],
    });
    assert.ok(sl.stop, `started: ${sl.stderr()}`);
    try {
      assert.deepEqual([backlogOf(p1), backlogOf(p2), backlogOf(p3)], [33, 44, 4096]);
      const hello = await sendHello(p2, clientHello({ sni: 'x.test' }));
      assert.equal(leafCn(hello.messages), 'listen-default', 'TLS on the deferred listener');
      const plain = await rawTcp(p2, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n');
      assert.match(plain, /^HTTP\/1\.1 400 /);
      const silent = net.connect(p2, '127.0.0.1');
      silent.on('error', () => {});
      await new Promise((r) => silent.once('connect', r));
      await sleep(300);
      const st = (await request({ port: sl.adminPort, path: '/status' })).json();
      silent.destroy();
      assert.equal(st.connections, 0, 'a client that said nothing is still in the kernel\'s hands');
    } finally {
      const st = await sl.stop();
      assert.deepEqual(st, { code: 0, signal: null }, sl.stderr());
    }
  });

  test('SLUICE_PROXY_LISTEN as Kong writes proxy_listen (", " between listeners, reuseport backlog=N) works', async () => {
    const [p1, p2] = await Promise.all([freePort(), freePort()]);
    const sl = await startBare({
      env: {
        SLUICE_PROXY_LISTEN: `127.0.0.1:${p1} reuseport backlog=21, 127.0.0.1:${p2} ssl reuseport backlog=22`,
        SLUICE_SSL_CERT: pki.listen.certFile, SLUICE_SSL_CERT_KEY: pki.listen.keyFile,
      },
    });
    assert.ok(sl.stop, `started: ${sl.stderr()}`);
    try {
      assert.deepEqual([backlogOf(p1), backlogOf(p2)], [21, 22]);
      assert.match(await rawTcp(p1, 'GET /nothing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 502 /);
      assert.equal(leafCn((await sendHello(p2, clientHello({ sni: 'x.test' }))).messages), 'listen-default');
    } finally {
      await sl.stop();
    }
  });

  test('the same address and port listed twice (plain and ssl) is refused at start, not split between the two', async () => {
    const port = await freePort();
    const sl = await startBare({
      args: ['--proxy-listen', `127.0.0.1:${port}`, '--proxy-listen', `127.0.0.1:${port} ssl`,
        '--ssl-cert', pki.listen.certFile, '--ssl-cert-key', pki.listen.keyFile],
    });
    if (sl.stop) await sl.stop();
    assert.ok(!sl.stop, 'it started with both');
    assert.notEqual(sl.exitStatus.code, 0);
    assert.match(sl.stderr(), new RegExp(`127\\.0\\.0\\.1:${port}`));
  });
});

// Sends data on a fresh TCP connection; resolves with what came back before the close (3 s max).
function rawTcp(port, data) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(data));
    let got = '';
    s.on('data', (d) => { got += d; });
    s.on('error', () => {});
    const t = setTimeout(() => s.destroy(), 3000);
    s.on('close', () => { clearTimeout(t); resolve(got); });
  });
}
