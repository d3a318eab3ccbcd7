// Adversarial review of the TLS listeners' second half: kong.yml `certificates`/`snis` (which
// certificate a handshake gets, chains, cert_alt, many of them, reloads while handshakes are in
// flight), route `snis` next to hosts and paths, the OpenSSL error queue shared with libcurl's
// upstream TLS on one worker, the drain over TLS, and Kong behaviours the binary does not match.
// Transport basics (keep-alive, bodies, streaming, backpressure, --ssl-cert reloads, garbage on
// the port) are tls-listen.test.mjs's; selection basics are tls-certificates.test.mjs's.
//
//   SLUICE_BIN=/work/dev/tls-bin/sluice node --test integration/tls-today-review.test.mjs
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import {
  binaryMissing, freePort, listenLocal, request, runSluice, sleep, startSluice, tempDir, waitFor,
} from './lib/harness.mjs';

const skip = binaryMissing();

// --- certificates (openssl CLI) ----------------------------------------------

const PKI = skip ? null : tempDir('sluice-tls-today-pki-');
process.on('exit', () => PKI && rmSync(PKI, { recursive: true, force: true }));

function openssl(args) {
  execFileSync('openssl', args, { cwd: PKI, stdio: ['ignore', 'ignore', 'pipe'] });
}

// A key and a certificate for it: self-signed, or signed by `issuer`. `san`: DNS names.
function newCert(name, { type = 'ec', cn = name, san = [], issuer, ca = false } = {}) {
  const key = path.join(PKI, `${name}.key`);
  const cert = path.join(PKI, `${name}.pem`);
  const ext = path.join(PKI, `${name}.ext`);
  openssl(type === 'ec'
    ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]
    : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
  const alt = ['IP:127.0.0.1', ...san.map((s) => `DNS:${s}`)].join(',');
  writeFileSync(ext, ca
    ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n'
    : `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${alt}\n`);
  if (!issuer) {
    openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-extensions', 'v3',
      '-config', writeReqConfig(name, ext)]);
  } else {
    const csr = path.join(PKI, `${name}.csr`);
    openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`]);
    openssl(['x509', '-req', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial',
      `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-out', cert, '-extfile', ext]);
  }
  const certPem = readFileSync(cert, 'utf8');
  return { key, cert, certPem, keyPem: readFileSync(key, 'utf8'), cn, fp: new X509Certificate(certPem).fingerprint256 };
}

function writeReqConfig(name, extFile) {
  const f = path.join(PKI, `${name}.cnf`);
  writeFileSync(f, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${readFileSync(extFile, 'utf8')}`);
  return f;
}

const pki = {};
if (!skip) {
  pki.root = newCert('root', { cn: 'today-root', ca: true });
  pki.inter = newCert('inter', { cn: 'today-intermediate', issuer: pki.root, ca: true });
  pki.dflt = newCert('dflt', { cn: 'default-cert', issuer: pki.root, san: ['localhost'] });
  pki.exact = newCert('exact', { cn: 'exact-cert', issuer: pki.root, san: ['www.prec.test'] });
  pki.prefix = newCert('prefix', { cn: 'prefix-cert', issuer: pki.root, san: ['*.prec.test'] });
  pki.suffix = newCert('suffix', { cn: 'suffix-cert', issuer: pki.root, san: ['www.prec.org'] });
  pki.leafInter = newCert('leafinter', { cn: 'behind-intermediate', issuer: pki.inter, san: ['chain.test'] });
  pki.altRsa = newCert('altrsa', { type: 'rsa', cn: 'alt-rsa', issuer: pki.root, san: ['alt.test'] });
  pki.altEc = newCert('altec', { cn: 'alt-ec', issuer: pki.root, san: ['alt.test'] });
  pki.a = newCert('a', { cn: 'a-cert', issuer: pki.root, san: ['a.test'] });
  pki.b = newCert('b', { cn: 'b-cert', issuer: pki.root, san: ['b.test'] });
  pki.star = newCert('star', { cn: 'star-cert', issuer: pki.root, san: ['other.test'] });
  pki.v = [1, 2, 3].map((i) => newCert(`v${i}`, { cn: `version-${i}`, issuer: pki.root, san: ['held.test'] }));
  pki.ca = pki.root.certPem;
}

// YAML block scalar of a PEM text, indented for a key at `indent` spaces.
const lit = (pem, indent = 2) => `|\n${pem.trim().split('\n').map((l) => `${' '.repeat(indent + 2)}${l}`).join('\n')}`;
const certEntry = (c, snis, extra = '') =>
  `- cert: ${lit(c.certPem)}\n  key: ${lit(c.keyPem)}\n${extra}  snis: ${JSON.stringify(snis)}\n`;

// --- clients -----------------------------------------------------------------

// What a handshake with servername got: the leaf's CN and fingerprint, whether the test root
// verifies it, the chain's CNs, and whether a session was resumed; or {error}.
function handshake(port, servername, opts = {}) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: pki.ca, rejectUnauthorized: false, ...opts }, () => {
      const leaf = s.getPeerCertificate(true);
      const chain = [];
      for (let c = leaf; c && c.subject && chain.length < 5; c = c.issuerCertificate === c ? null : c.issuerCertificate) chain.push(c.subject.CN);
      const out = { cn: leaf.subject?.CN, fp: leaf.fingerprint256, authorized: s.authorized, authError: s.authorizationError,
        chain, reused: s.isSessionReused(), protocol: s.getProtocol(), socket: s };
      if (!opts.keep) s.destroy();
      resolve(out);
    });
    s.setTimeout(5000, () => { s.destroy(); resolve({ error: 'timeout' }); });
    s.on('error', (e) => resolve({ error: e.code || e.message }));
  });
}

// One HTTPS request on a fresh connection (no verification): {status, headers, text, json}.
function httpsGet(port, servername, p = '/x', { headers = {}, ...opts } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: p, servername, headers, rejectUnauthorized: false, agent: false, ...opts },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString();
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, headers: res.headers, text, json, socket: res.socket });
        });
      });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

// An upstream that says which service path it was sent to.
async function echoUpstream() {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, host: req.headers.host }));
  });
  return { server, ...(await listenLocal(server)) };
}

// A TCP connection to port whose outgoing bytes can be held: the first `pass` writes go out,
// later ones wait for release(). Use as tls.connect({socket: g.duplex}).
function gatedConnection(port, pass) {
  const raw = net.connect(port, '127.0.0.1');
  const held = [];
  let writes = 0;
  let open = false;
  const duplex = new Duplex({
    write(chunk, enc, cb) {
      writes++;
      if (open || writes <= pass) raw.write(chunk, cb);
      else held.push([chunk, cb]);
    },
    read() {},
    final(cb) { raw.end(); cb(); },
    destroy(err, cb) { raw.destroy(); cb(err); },
  });
  raw.on('data', (d) => duplex.push(d));
  raw.on('end', () => duplex.push(null));
  raw.on('error', (e) => duplex.destroy(e));
  const connected = new Promise((r) => raw.once('connect', r));
  return {
    duplex, raw, connected,
    heldCount: () => held.length,
    release() {
      open = true;
      for (const [c, cb] of held.splice(0)) raw.write(c, cb);
    },
  };
}

// --- kong.yml certificates: which one a handshake gets --------------------------

describe('certificates: Kong\'s selection order, chains, cert_alt', { skip }, () => {
  let sl, port;
  before(async () => {
    port = await freePort();
    const config = [
      '_format_version: "3.0"',
      'certificates:',
      certEntry(pki.exact, ['www.prec.test']),
      certEntry(pki.prefix, ['*.prec.test', '*.test']),
      certEntry(pki.suffix, ['www.prec.*', 'two.*']),
      // leaf, then the intermediate: a client that trusts only the root must verify
      `- cert: ${lit(pki.leafInter.certPem + pki.inter.certPem)}\n  key: ${lit(pki.leafInter.keyPem)}\n  snis: [chain.test]\n`,
      certEntry(pki.altRsa, ['alt.test'], `  cert_alt: ${lit(pki.altEc.certPem)}\n  key_alt: ${lit(pki.altEc.keyPem)}\n`),
    ].join('\n');
    sl = await startSluice({
      config,
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.dflt.cert, '--ssl-cert-key', pki.dflt.key],
    });
  });
  after(async () => {
    await sl?.stop();
  });

  test('one name that three entries could serve: the exact name first, then "*." + the rest, then the last label as "*"', async () => {
    // www.prec.test: exact "www.prec.test", prefix "*.prec.test" and suffix "www.prec.*" all exist.
    assert.equal((await handshake(port, 'www.prec.test')).cn, 'exact-cert');
    assert.equal((await handshake(port, 'WWW.Prec.TEST')).cn, 'exact-cert', 'the client\'s case does not matter');
    // api.prec.test: prefix "*.prec.test" and no "api.prec.*": the prefix one.
    assert.equal((await handshake(port, 'api.prec.test')).cn, 'prefix-cert');
    // www.prec.org: no exact, "*.prec.org" absent, "www.prec.*" present.
    assert.equal((await handshake(port, 'www.prec.org')).cn, 'suffix-cert');
    // a.api.prec.test: "*.api.prec.test" is what Kong looks up, not "*.prec.test".
    assert.equal((await handshake(port, 'a.api.prec.test')).cn, 'default-cert');
  });

  test('two-label names: Kong looks up "first.*" but never "*.tld" ("*.test" serves nothing)', async () => {
    assert.equal((await handshake(port, 'two.test')).cn, 'suffix-cert', 'two.test -> "two.*"');
    assert.equal((await handshake(port, 'x.test')).cn, 'default-cert', 'x.test has no prefix form in Kong');
    assert.equal((await handshake(port, 'localhost')).cn, 'default-cert', 'a one-label name');
  });

  test('a kong.yml certificate with its intermediate: the chain is sent, a client trusting only the root verifies', async () => {
    const r = await handshake(port, 'chain.test');
    assert.equal(r.cn, 'behind-intermediate');
    assert.equal(r.authorized, true, `verification: ${r.authError}`);
    assert.deepEqual(r.chain.slice(0, 3), ['behind-intermediate', 'today-intermediate', 'today-root']);
    // and strict clients (rejectUnauthorized) get through, TLS 1.2 too
    for (const v of ['TLSv1.2', 'TLSv1.3']) {
      const s = await handshake(port, 'chain.test', { rejectUnauthorized: true, minVersion: v, maxVersion: v });
      assert.equal(s.error, undefined, `${v}: ${s.error}`);
      assert.equal(s.protocol, v);
    }
  });

  test('cert_alt: an ECDSA-only client gets the ECDSA leaf, an RSA-only client the RSA one, both verify (1.2 and 1.3)', async () => {
    for (const v of ['TLSv1.3', 'TLSv1.2']) {
      const ec = await handshake(port, 'alt.test', { minVersion: v, maxVersion: v, sigalgs: 'ecdsa_secp256r1_sha256', rejectUnauthorized: true });
      assert.equal(ec.error, undefined, `${v} ECDSA: ${ec.error}`);
      assert.equal(ec.fp, pki.altEc.fp, `${v}: the ECDSA leaf`);
      const rsa = await handshake(port, 'alt.test', { minVersion: v, maxVersion: v, sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256', rejectUnauthorized: true });
      assert.equal(rsa.error, undefined, `${v} RSA: ${rsa.error}`);
      assert.equal(rsa.fp, pki.altRsa.fp, `${v}: the RSA leaf`);
    }
  });

  test('a name-chosen context speaks as the default one: ALPN http/1.1, TLS 1.2 floor, and serves a request', async () => {
    const r = await handshake(port, 'api.prec.test', { ALPNProtocols: ['h2', 'http/1.1'], keep: true });
    assert.equal(r.cn, 'prefix-cert');
    assert.equal(r.socket.alpnProtocol, 'http/1.1', 'ALPN from the certificate\'s own context');
    let got = '';
    r.socket.on('data', (d) => { got += d; });
    r.socket.write('GET /nothing HTTP/1.1\r\nHost: api.prec.test\r\nConnection: close\r\n\r\n');
    await new Promise((res) => r.socket.on('close', res));
    assert.match(got, /^HTTP\/1\.1 404 /, 'no route: the 404 came back over that context');
    const old = await handshake(port, 'api.prec.test', { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.match(old.error ?? `connected with ${old.protocol}`, /PROTOCOL_VERSION/, 'TLS 1.1 asking for a name-chosen certificate: refused by sluice');
  });

  test('a 200 KB request head over TLS: 431, and the connection ends', async () => {
    const r = await handshake(port, 'www.prec.test', { keep: true });
    let got = '';
    r.socket.on('data', (d) => { got += d; });
    r.socket.on('error', () => {});
    r.socket.write(`GET / HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(200000)}\r\n\r\n`);
    await new Promise((res) => r.socket.on('close', res));
    assert.match(got, /^HTTP\/1\.1 431 /);
  });

  test('GET /config redacts key_alt as it does key', async () => {
    const r = await request({ port: sl.adminPort, path: '/config' });
    const alt = r.json().certificates.find((c) => c.cert_alt);
    assert.equal(alt.key, '<redacted>');
    assert.equal(alt.key_alt, '<redacted>');
    assert.ok(!r.text.includes('PRIVATE KEY'));
  });

  test('an RSA-only client asking for a name whose certificate is ECDSA only fails that handshake, and nothing else', async () => {
    const r = await handshake(port, 'www.prec.test', { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' });
    assert.ok(r.error, `no shared signature algorithm: expected a failed handshake, got ${r.cn}`);
    assert.equal((await handshake(port, 'www.prec.test')).cn, 'exact-cert');
  });
});

// --- many certificates -------------------------------------------------------

describe('certificates: three hundred of them', { skip }, () => {
  test('300 entities with 10 distinct certificates: each name gets its own, after a reload too', { timeout: 30000 }, async () => {
    const certs = Array.from({ length: 10 }, (_, i) => newCert(`many${i}`, { cn: `many-${i}`, issuer: pki.root }));
    const yaml = (shift) => {
      let y = '_format_version: "3.0"\ncertificates:\n';
      for (let i = 0; i < 300; i++) y += certEntry(certs[(i + shift) % 10], [`n${i}.many.test`, `*.w${i}.many.test`]);
      return y;
    };
    const port = await freePort();
    const sl = await startSluice({ config: yaml(0), workers: 1, args: ['--proxy-listen', `127.0.0.1:${port} ssl`] });
    try {
      const probe = [0, 1, 2, 9, 10, 11, 99, 100, 101, 150, 199, 200, 254, 255, 298, 299];
      for (const i of probe) {
        assert.equal((await handshake(port, `n${i}.many.test`)).cn, `many-${i % 10}`, `n${i}`);
        assert.equal((await handshake(port, `x.w${i}.many.test`)).cn, `many-${i % 10}`, `x.w${i}`);
      }
      assert.match((await handshake(port, 'n300.many.test')).error ?? '', /UNRECOGNIZED_NAME/, 'a name of none, no default: unrecognized_name');
      await sl.reload(yaml(3));
      for (const i of probe) assert.equal((await handshake(port, `n${i}.many.test`)).cn, `many-${(i + 3) % 10}`, `n${i} after the reload`);
    } finally {
      await sl.stop();
    }
  });
});

// --- reloads while handshakes are in flight ------------------------------------

describe('certificates: reloads while handshakes are in flight', { skip }, () => {
  let sl, port, up;
  const yaml = (v) => [
    '_format_version: "3.0"',
    'services:',
    `- {name: up, url: "http://127.0.0.1:${up.port}/up", routes: [{name: r, paths: [/]}]}`,
    'certificates:',
    certEntry(v, ['held.test']),
  ].join('\n');
  before(async () => {
    up = await echoUpstream();
    port = await freePort();
    sl = await startSluice({ config: yaml(pki.v[0]), workers: 1, args: ['--proxy-listen', `127.0.0.1:${port} ssl`] });
  });
  after(async () => {
    await sl?.stop(); // no sanitizer report: no use of a freed context or SNI table
    up?.server.close();
  });

  async function requestOver(s) {
    s.write('GET /held HTTP/1.1\r\nHost: held.test\r\nConnection: close\r\n\r\n');
    let got = '';
    s.on('data', (d) => { got += d; });
    await new Promise((r) => { s.on('end', r); s.on('close', r); });
    return got;
  }

  test('accepted before two reloads, ClientHello sent after: the certificate of its snapshot (SNI table still alive), then a request', async () => {
    const g = gatedConnection(port, 0);
    await g.connected;
    let accepted = false;
    for (let i = 0; i < 100 && !accepted; i++) {
      accepted = (await sl.status()).connections >= 1;
      if (!accepted) await sleep(20);
    }
    assert.ok(accepted, 'sluice accepted the connection before the reloads');
    const s = tls.connect({ socket: g.duplex, servername: 'held.test', ca: pki.ca });
    s.on('error', () => {});
    assert.ok(await waitFor(() => g.heldCount() >= 1, 3000), 'the ClientHello is held');
    await sl.reload(yaml(pki.v[1]));
    await sl.reload(yaml(pki.v[2])); // the first snapshot is gone now
    g.release();
    await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    assert.equal(s.getPeerCertificate().subject.CN, 'version-1', 'the context of the snapshot current at accept');
    assert.equal(s.authorized, true);
    const got = await requestOver(s);
    assert.match(got, /^HTTP\/1\.1 200 /);
    assert.match(got, /"path":"\/up\/held"/);
    assert.equal((await handshake(port, 'held.test')).cn, 'version-3', 'a new connection gets the newest');
  });

  test('ServerHello sent, client Finished held across two reloads: the handshake completes and serves', async () => {
    await sl.reload(yaml(pki.v[0]));
    const g = gatedConnection(port, 1);
    const s = tls.connect({ socket: g.duplex, servername: 'held.test', ca: pki.ca, maxVersion: 'TLSv1.2' });
    s.on('error', () => {});
    assert.ok(await waitFor(() => g.heldCount() >= 1, 3000), 'the server\'s flight came, the client\'s answer is held');
    await sl.reload(yaml(pki.v[1]));
    await sl.reload(yaml(pki.v[2]));
    g.release();
    await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    assert.equal(s.getPeerCertificate().subject.CN, 'version-1');
    const got = await requestOver(s);
    assert.match(got, /^HTTP\/1\.1 200 /);
  });

  test('200 handshakes while the certificates are reloaded 6 times: each one completes with one of the versions', { timeout: 20000 }, async () => {
    let stop = false;
    const seen = new Map();
    const failures = [];
    const worker = async () => {
      while (!stop) {
        const r = await handshake(port, 'held.test', { rejectUnauthorized: true });
        if (r.error) failures.push(r.error);
        else seen.set(r.cn, (seen.get(r.cn) ?? 0) + 1);
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    for (let i = 0; i < 6; i++) await sl.reload(yaml(pki.v[i % 3]));
    await waitFor(() => [...seen.values()].reduce((a, b) => a + b, 0) >= 200, 8000);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, [], 'no handshake failed');
    assert.ok([...seen.values()].reduce((a, b) => a + b, 0) >= 200, `handshakes: ${JSON.stringify([...seen])}`);
    for (const cn of seen.keys()) assert.match(cn, /^version-[123]$/);
  });

  test('a reload that drops every certificate while the TLS listener has no --ssl-cert is refused; the old ones keep serving', async () => {
    await sl.reload(yaml(pki.v[0]));
    const mark = sl.logMark();
    sl.writeConfig(`_format_version: "3.0"\nservices:\n- {name: up, url: "http://127.0.0.1:${up.port}", routes: [{name: r, paths: [/]}]}\n`);
    sl.signal('SIGHUP');
    await sl.waitForLog(/reload refused/, { from: mark });
    assert.match(sl.lines.slice(mark).join('\n'), /needs --ssl-cert and --ssl-cert-key .* or certificates with snis/);
    assert.equal((await handshake(port, 'held.test')).cn, 'version-1');
    sl.writeConfig(yaml(pki.v[0]));
  });
});

// --- route snis next to hosts and paths ------------------------------------------

describe('route snis: next to hosts and paths', { skip }, () => {
  let sl, port, up;
  before(async () => {
    up = await echoUpstream();
    port = await freePort();
    const svc = (name, route) => ({ name, url: `${up.url}/${name}`, routes: [{ name, strip_path: false, ...route }] });
    sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.dflt.cert, '--ssl-cert-key', pki.dflt.key],
      config: {
        _format_version: '3.0',
        services: [
          svc('host-sni', { protocols: ['https'], hosts: ['api.test'], snis: ['api.test'] }),
          svc('host', { hosts: ['api.test'] }),
          svc('sni-wild', { protocols: ['https'], snis: ['*.tenant.test'], paths: ['/t'] }),
          svc('path', { paths: ['/t'] }),
          svc('sni-prefix', { protocols: ['https'], snis: ['edge.*'], methods: ['POST'] }),
          svc('any', { paths: ['/'] }),
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    up?.server.close();
  });

  const via = async (servername, p, opts) => {
    const r = await httpsGet(port, servername, p, opts);
    assert.equal(r.status, 200, `${servername} ${p}: ${r.status} ${r.text}`);
    return r.json.path.split('/')[1];
  };

  test('hosts + snis (two criteria) beats hosts alone when both match; the SNI, not the Host header, is what snis test', async () => {
    assert.equal(await via('api.test', '/x', { headers: { host: 'api.test' } }), 'host-sni');
    assert.equal(await via('other.test', '/x', { headers: { host: 'api.test' } }), 'host', 'SNI other.test: the snis route is out');
    assert.equal(await via('api.test', '/x', { headers: { host: 'elsewhere.test' } }), 'any', 'SNI api.test but Host elsewhere: hosts decide');
  });

  test('plain HTTP: the https route with hosts + snis still weighs two (snis not considered) and answers 426, as Kong does', async () => {
    const r = await request({ port: sl.proxyPort, path: '/x', headers: { host: 'api.test' } });
    assert.equal(r.status, 426);
  });

  test('"*.tenant.test" matches any depth under tenant.test, not tenant.test itself nor a name that only contains it', async () => {
    assert.equal(await via('a.tenant.test', '/t/1'), 'sni-wild');
    assert.equal(await via('A.B.TENANT.TEST', '/t/1'), 'sni-wild', 'case and depth');
    assert.equal(await via('tenant.test', '/t/1'), 'path');
    assert.equal(await via('a.tenant.test.evil', '/t/1'), 'path');
    assert.equal(await via('atenant.test', '/t/1'), 'path');
    assert.equal(await via('a.tenant.test', '/other'), 'any', 'its path is still required');
  });

  test('"edge.*" with methods: the method is still required; the SNI prefix must end at a dot', async () => {
    assert.equal(await via('edge.example.org', '/e', { method: 'POST' }), 'sni-prefix');
    assert.equal(await via('edge.example.org', '/e'), 'any', 'GET: methods do not match');
    assert.equal(await via('edger.example.org', '/e', { method: 'POST' }), 'any');
  });
});

// --- the OpenSSL error queue, shared with libcurl on one worker -----------------------

describe('failed client handshakes leave nothing for the worker\'s upstream TLS (libcurl)', { skip }, () => {
  let sl, tlsPort, upstream, gate, releases;
  before(async () => {
    // An HTTPS upstream that closes after each answer (a new upstream handshake per request),
    // behind a TCP relay that holds the upstream's first bytes (the ServerHello) for 300 ms:
    // the worker's libcurl handshake is half done while client handshakes fail on the worker.
    const tlsServer = https.createServer({ key: pki.dflt.keyPem, cert: pki.dflt.certPem }, (req, res) => {
      res.setHeader('connection', 'close');
      res.end(JSON.stringify({ path: req.url }));
    });
    const h = await listenLocal(tlsServer);
    releases = [];
    let onConn = null;
    gate = { next: () => new Promise((r) => { onConn = r; }) };
    const relay = net.createServer((c) => {
      const u = net.connect(h.port, '127.0.0.1');
      u.pause();
      c.pipe(u);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
      onConn?.();
      setTimeout(() => { releases.push(Date.now()); u.pipe(c); u.resume(); }, 300);
    });
    const r = await listenLocal(relay);
    upstream = { close: () => { relay.close(); tlsServer.close(); } };
    tlsPort = await freePort();
    sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${tlsPort} ssl`, '--log-level', 'debug'],
      config: [
        '_format_version: "3.0"',
        'services:',
        `- {name: tls-up, url: "https://127.0.0.1:${r.port}", tls_verify: false, routes: [{name: r, paths: [/up]}]}`,
        'certificates:',
        certEntry(pki.a, ['a.test']),
      ].join('\n'),
    });
  });
  after(async () => {
    await sl?.stop();
    upstream?.close();
  });

  // Five ways for a client handshake to fail on the server side, each queueing an OpenSSL error.
  async function failHandshakes() {
    const results = [];
    results.push(await handshake(tlsPort, 'unknown.test')); // servername callback: unrecognized_name
    results.push(await handshake(tlsPort, 'a.test', { ca: pki.dflt.certPem, rejectUnauthorized: true })); // the client refuses it
    // no shared cipher: RSA key exchange only, and a.test's certificate is ECDSA
    results.push(await handshake(tlsPort, 'a.test', { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' }));
    results.push(await new Promise((resolve) => { // one whole record that is not a ClientHello: decode error
      const s = net.connect(tlsPort, '127.0.0.1', () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0xff])));
      s.on('close', () => resolve({ error: 'closed' }));
      s.on('error', () => {});
      s.on('data', () => {});
      setTimeout(() => s.destroy(), 3000);
    }));
    results.push(await new Promise((resolve) => { // the client resets mid-handshake
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'a.test', rejectUnauthorized: false });
      s.on('error', () => {});
      setImmediate(() => { s.destroy(); resolve({ error: 'reset' }); });
    }));
    return results;
  }

  test('three rounds: client handshakes fail while the upstream handshake is half done; every upstream request answers 200', { timeout: 15000 }, async () => {
    for (let round = 0; round < 3; round++) {
      const mark = sl.logMark();
      const connected = gate.next();
      const pending = request({ port: sl.proxyPort, path: `/up/round${round}` });
      await connected; // libcurl's ClientHello is at the upstream, its ServerHello held
      const failed = await failHandshakes();
      const doneAt = Date.now();
      for (const f of failed.slice(0, 3)) assert.ok(f.error, `a handshake that should fail: ${JSON.stringify(f.cn)}`);
      const r = await pending;
      assert.equal(r.status, 200, `round ${round}: ${r.status} ${r.text}`);
      assert.equal(r.json().path, `/round${round}`);
      assert.ok(doneAt < releases.at(-1), 'the client handshakes failed while the upstream handshake waited');
      assert.ok(sl.lines.slice(mark).some((l) => /TLS handshake failed/.test(l)), 'sluice logged failed handshakes');
    }
    // and a good client after all that
    assert.equal((await httpsGet(tlsPort, 'a.test', '/up/after', { ca: pki.ca, rejectUnauthorized: true })).status, 200);
  });
});

// --- SIGTERM over TLS --------------------------------------------------------------

describe('drain over TLS', { skip }, () => {
  test('SIGTERM while a TLS request head is half sent: the rest is read, the request answered (Connection: close), exit 0', async () => {
    const up = await echoUpstream();
    const port = await freePort();
    const sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.dflt.cert, '--ssl-cert-key', pki.dflt.key],
      config: { _format_version: '3.0', services: [{ name: 'up', url: up.url, routes: [{ name: 'r', paths: ['/'] }] }] },
    });
    try {
      const idle = await handshake(port, 'localhost', { keep: true });
      const idleClosed = new Promise((r) => idle.socket.on('close', r));
      const s = (await handshake(port, 'localhost', { keep: true })).socket;
      let got = '';
      s.on('data', (d) => { got += d; });
      const closed = new Promise((r) => s.on('close', r));
      s.write('GET /drain HTTP/1.1\r\nHost: x\r\n');
      await sleep(200); // the half head has been read by sluice (no way to observe it from here)
      sl.signal('SIGTERM');
      let state;
      for (let i = 0; i < 150 && state !== 'draining'; i++) {
        state = (await sl.status()).state;
        if (state !== 'draining') await sleep(20);
      }
      assert.equal(state, 'draining');
      await idleClosed; // an idle TLS connection is closed at once
      s.write('\r\n');
      await closed;
      assert.match(got, /^HTTP\/1\.1 200 /, got);
      assert.match(got, /\r\nconnection: close\r\n/i);
      assert.match(got, /"path":"\/drain"/);
      const st = await sl.waitExit(10000);
      assert.deepEqual(st, { code: 0, signal: null });
    } finally {
      await sl.stop();
      up.server.close();
    }
  });
});

// --- plain HTTP on the TLS port ------------------------------------------------------

// Sends text on a plain TCP connection; resolves with what came back and how it ended.
function plainExchange(port, text) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    const parts = [];
    let how = 'close';
    s.on('data', (d) => parts.push(d));
    s.on('error', (e) => { how = e.code; });
    s.on('close', () => resolve({ got: Buffer.concat(parts).toString('latin1'), how }));
    setTimeout(() => { how = 'timeout'; s.destroy(); }, 4000);
  });
}

describe('plain HTTP sent to the TLS port', { skip }, () => {
  let sl, port;
  before(async () => {
    port = await freePort();
    sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.dflt.cert, '--ssl-cert-key', pki.dflt.key],
      config: { _format_version: '3.0' },
    });
  });
  after(async () => {
    await sl?.stop();
  });

  test('GET: a 400 whose Content-Length is its body, then a clean close (no reset)', async () => {
    const r = await plainExchange(port, 'GET /x HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.equal(r.how, 'close');
    const [head, body] = r.got.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 400 /);
    assert.equal(Number(/content-length: (\d+)/i.exec(head)[1]), Buffer.byteLength(body));
    assert.equal(JSON.parse(body).message, 'The plain HTTP request was sent to HTTPS port');
  });

  test('any method gets that 400, as nginx (Kong) answers every plain request on an ssl port', async () => {
    const wrong = [];
    for (const m of ['DELETE', 'PATCH', 'OPTIONS', 'TRACE']) {
      const r = await plainExchange(port, `${m} /x HTTP/1.1\r\nHost: h\r\n\r\n`);
      if (!/^HTTP\/1\.1 400 /.test(r.got)) wrong.push(`${m}: ${r.how} ${JSON.stringify(r.got.slice(0, 40))}`);
    }
    assert.deepEqual(wrong, []);
  });

  test('HEAD gets the 400 head without a body (RFC 9110 §9.3.2)', async () => {
    const r = await plainExchange(port, 'HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.match(r.got, /^HTTP\/1\.1 400 /);
    assert.equal(r.got.split('\r\n\r\n')[1], '', 'no content after the head of an answer to HEAD');
  });
});

// --- Kong behaviours the binary does not match ---------------------------------------

describe('Kong compatibility of certificates and route snis', { skip }, () => {
  test('an SNI named "*" is Kong\'s default certificate: it serves any name no other entry matches', async () => {
    const config = ['_format_version: "3.0"', 'certificates:', certEntry(pki.star, ['*']), certEntry(pki.a, ['a.test'])].join('\n');
    const dir = tempDir('sluice-star-');
    writeFileSync(path.join(dir, 'kong.yml'), config);
    const port = await freePort();
    const t = await runSluice(['-t', '-c', path.join(dir, 'kong.yml'), '--proxy-listen', `127.0.0.1:${port} ssl`]);
    assert.equal(t.code, 0, `sluice -t: ${t.stderr}`);
    const sl = await startSluice({ config, workers: 1, args: ['--proxy-listen', `127.0.0.1:${port} ssl`] });
    try {
      assert.equal((await handshake(port, 'a.test')).cn, 'a-cert');
      assert.equal((await handshake(port, 'other.test')).cn, 'star-cert');
    } finally {
      await sl.stop();
    }
  });

  test('route snis with Kong\'s default protocols [http, https]: loads; TLS requests match on the SNI, plain ones ignore it', async () => {
    const up = await echoUpstream();
    const config = {
      _format_version: '3.0',
      services: [
        { name: 'sni', url: `${up.url}/sni`, routes: [{ name: 'sni', paths: ['/'], snis: ['a.test'] }] },
        { name: 'only-sni', url: `${up.url}/only-sni`, routes: [{ name: 'only-sni', snis: ['b.test'] }] },
        { name: 'other', url: `${up.url}/other`, routes: [{ name: 'other', paths: ['/x'] }] },
      ],
    };
    const dir = tempDir('sluice-sni-proto-');
    writeFileSync(path.join(dir, 'kong.yml'), JSON.stringify(config));
    try {
      const t = await runSluice(['-t', '-c', path.join(dir, 'kong.yml')]);
      assert.equal(t.code, 0, `sluice -t: ${t.stderr}`);
      const port = await freePort();
      const sl = await startSluice({
        config, workers: 1,
        args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.dflt.cert, '--ssl-cert-key', pki.dflt.key],
      });
      try {
        assert.equal((await httpsGet(port, 'a.test', '/x')).json.path, '/sni/x', 'paths + snis (two criteria) over TLS');
        // (route other strips its path /x)
        assert.equal((await httpsGet(port, 'c.test', '/x')).json.path, '/other', 'another SNI: not that route');
        assert.equal((await httpsGet(port, 'b.test', '/y')).json.path, '/only-sni/y');
        // Plain HTTP: "net.protocol != https or tls.sni == ..." (Kong's router/transform.lua)
        assert.equal((await request({ port: sl.proxyPort, path: '/x' })).json().path, '/sni/x');
      } finally {
        await sl.stop();
      }
    } finally {
      up.server.close();
    }
  });
});

// --- session resumption across server names ---------------------------------------

describe('session resumption and server names', { skip }, () => {
  let sl, port, up;
  before(async () => {
    up = await echoUpstream();
    port = await freePort();
    sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`],
      config: [
        '_format_version: "3.0"',
        'services:',
        `- name: sa\n  url: "${up.url}/sa"\n  routes: [{name: ra, protocols: [https], snis: [a.test]}]`,
        `- name: sb\n  url: "${up.url}/sb"\n  routes: [{name: rb, protocols: [https], snis: [b.test]}]`,
        'certificates:',
        certEntry(pki.a, ['a.test']),
        certEntry(pki.b, ['b.test']),
      ].join('\n'),
    });
  });
  after(async () => {
    await sl?.stop();
    up?.server.close();
  });

  // A first connection to a.test (its session kept), then one to b.test offering that session.
  async function crossResume(version, second = 'b.test') {
    const session = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'a.test', ca: pki.ca, maxVersion: version, minVersion: version }, () => {
        s.write('GET /first HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
      });
      let sess = null;
      s.on('session', (x) => { sess = x; });
      s.on('data', () => {});
      s.on('close', () => (sess ? resolve(sess) : reject(new Error('no session'))));
      s.on('error', reject);
    });
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: second, session, rejectUnauthorized: false, maxVersion: version, minVersion: version }, () => {
        s.write(`GET /second HTTP/1.1\r\nHost: ${second}\r\nConnection: close\r\n\r\n`);
      });
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('end', () => resolve({ reused: s.isSessionReused(), cn: s.getPeerCertificate()?.subject?.CN, path: /"path":"([^"]*)"/.exec(got)?.[1] }));
      s.on('error', reject);
    });
  }

  test('a session resumed under the same name (1.2 session id, 1.3 ticket) keeps its route', async () => {
    for (const v of ['TLSv1.2', 'TLSv1.3']) {
      const r = await crossResume(v, 'a.test');
      assert.equal(r.reused, true, `${v}: resumed`);
      assert.equal(r.path, '/sa/second', v);
    }
  });

  test('TLS 1.3: a ticket offered under another name is the client\'s call (RFC 8446 §4.6.1); the route follows the new SNI', async () => {
    const r = await crossResume('TLSv1.3');
    assert.equal(r.path, '/sb/second');
  });

  test('TLS 1.2: a session of a.test offered with SNI b.test is not resumed (RFC 6066 §3), so b.test gets its certificate and route', async () => {
    const r = await crossResume('TLSv1.2');
    assert.equal(r.reused, false, 'RFC 6066 §3: MUST NOT accept the resumption under another name');
    assert.equal(r.cn, 'b-cert');
    assert.equal(r.path, '/sb/second');
  });
});
