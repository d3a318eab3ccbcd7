// TLS on the proxy listeners (`--proxy-listen ADDR:PORT ssl`, `--ssl-cert`,
// `--ssl-cert-key`): startup and `-t` errors about the certificate files,
// TLS 1.2/1.3 only, ALPN http/1.1, RSA + ECDSA pairs, a chain, everything
// plain HTTP does over one TLS connection (keep-alive, pipelining, bodies both
// ways, streaming, 100-continue, backpressure, client aborts, the log line),
// X-Forwarded-Proto/Port, route protocols [https], hostile clients on the TLS
// port, certificate rotation on SIGHUP (and a refused one), the drain on
// SIGTERM, SLUICE_* variables, and the OpenAI SDK over https.
//
// Certificates are made here with the openssl CLI: a test CA, an
// intermediate, RSA and ECDSA (P-256) leaves for IP:127.0.0.1, so clients
// verify with `ca:` as a real one would.
//
//   SLUICE_BIN=/work/dev/tls-bin/sluice node --test integration/tls-listen.test.mjs
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import {
  SLUICE_BIN, assertCleanExit, binaryMissing, configText, cpuTicks, freePort, request, runSluice, sanitizerReport, sleep,
  startSluice, tempDir, waitFor,
} from './lib/harness.mjs';
import { aiRoute, logFields, marker, parseSse } from './lib/ai-helpers.mjs';

const skip = binaryMissing();
const TESTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sha = (b) => createHash('sha256').update(b).digest('hex');

// --- certificates ------------------------------------------------------------

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir, name, type) {
  const key = path.join(dir, `${name}.key`);
  openssl(type === 'ec'
    ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]
    : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], dir);
  return key;
}

// A certificate for name's key, signed by issuer (or self-signed when none).
function newCert(dir, name, { type = 'rsa', cn = name, issuer, ca = false } = {}) {
  const key = newKey(dir, name, type);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, ca
    ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n'
    : 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nsubjectKeyIdentifier=hash\n');
  if (!issuer) {
    openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`], dir);
  } else {
    const csr = path.join(dir, `${name}.csr`);
    openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial',
      `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-out', cert, '-extfile', ext], dir);
  }
  return { key, cert, fp: new X509Certificate(readFileSync(cert)).fingerprint256, cn };
}

const PKI_DIR = tempDir('sluice-tls-listen-pki-');
const pki = {};
if (!skip) {
  pki.root = newCert(PKI_DIR, 'root', { cn: 'sluice-test-root', ca: true });
  pki.inter = newCert(PKI_DIR, 'inter', { cn: 'sluice-test-intermediate', issuer: pki.root, ca: true });
  pki.rsa = newCert(PKI_DIR, 'rsa', { cn: 'sluice-rsa', issuer: pki.root });
  pki.rsa2 = newCert(PKI_DIR, 'rsa2', { cn: 'sluice-rsa-rotated', issuer: pki.root });
  pki.ec = newCert(PKI_DIR, 'ec', { type: 'ec', cn: 'sluice-ec', issuer: pki.root });
  pki.leafInter = newCert(PKI_DIR, 'leafinter', { cn: 'sluice-behind-intermediate', issuer: pki.inter });
  // leaf first, then its chain (the intermediate), as Kong's ssl_cert.
  pki.chain = { key: pki.leafInter.key, cert: path.join(PKI_DIR, 'chain.pem'), fp: pki.leafInter.fp, cn: pki.leafInter.cn };
  writeFileSync(pki.chain.cert, Buffer.concat([readFileSync(pki.leafInter.cert), readFileSync(pki.inter.cert)]));
  pki.otherKey = newKey(PKI_DIR, 'other', 'rsa');
  pki.rsa2b = newCert(PKI_DIR, 'rsa2b', { cn: 'sluice-rsa-second', issuer: pki.root });
  pki.notPem = path.join(PKI_DIR, 'not-pem.pem');
  writeFileSync(pki.notPem, 'this is not a certificate\n');
  pki.encKey = path.join(PKI_DIR, 'encrypted.key');
  openssl(['pkey', '-in', pki.rsa.key, '-aes256', '-passout', 'pass:secret', '-out', pki.encKey], PKI_DIR);
  pki.ca = readFileSync(pki.root.cert);
}
process.on('exit', () => rmSync(PKI_DIR, { recursive: true, force: true }));

const certArgs = (pairs) => ['--ssl-cert', pairs.map((p) => p.cert).join(','), '--ssl-cert-key', pairs.map((p) => p.key).join(',')];

// --- TLS clients -------------------------------------------------------------

// A verified TLS connection (the test CA) to 127.0.0.1:port; resolves once the
// handshake is done, rejects with the handshake's error or after timeoutMs.
function tlsConnect(port, opts = {}, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: pki.ca, ...opts });
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error(`TLS handshake with :${port} did not finish within ${timeoutMs} ms`), { code: 'TIMEOUT' }));
    }, timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// Parses the complete HTTP/1.1 responses in buf (Content-Length, chunked, or
// no body for 1xx/204/304). Interim 1xx answers are returned too.
function parseResponses(buf) {
  const out = [];
  let s = buf.toString('latin1');
  for (;;) {
    const end = s.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...lines] = s.slice(0, end).split('\r\n');
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(statusLine.split(' ')[1]);
    let rest = s.slice(end + 4);
    let body = '';
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      let complete = false;
      for (;;) {
        const le = rest.indexOf('\r\n');
        if (le < 0) break;
        const size = parseInt(rest.slice(0, le), 16);
        if (rest.length < le + 2 + size + 2) break;
        body += rest.slice(le + 2, le + 2 + size);
        rest = rest.slice(le + 2 + size + 2);
        if (size === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
    } else if (status >= 200 && status !== 204 && status !== 304) {
      const len = Number(headers['content-length'] ?? 0);
      if (rest.length < len) break;
      body = rest.slice(0, len);
      rest = rest.slice(len);
    }
    out.push({ status, statusLine, headers, text: body, body: Buffer.from(body, 'latin1'), json: () => JSON.parse(Buffer.from(body, 'latin1').toString('utf8')) });
    s = rest;
  }
  return out;
}

// Everything a socket reads, and whether/when it closed.
function collect(sock) {
  const st = { buf: Buffer.alloc(0), closed: false, closedAt: 0, error: null };
  sock.on('data', (d) => (st.buf = Buffer.concat([st.buf, d])));
  sock.on('error', (e) => (st.error = e));
  sock.on('close', () => {
    st.closed = true;
    st.closedAt = Date.now();
  });
  st.responses = () => parseResponses(st.buf);
  st.waitResponses = async (n, ms = 8000) => {
    assert.ok(await waitFor(() => st.responses().length >= n || st.closed, ms), `${n} responses within ${ms} ms; got: ${st.buf.toString('latin1').slice(0, 400)}`);
    const r = st.responses();
    assert.ok(r.length >= n, `${n} responses before the close; got ${r.length}: ${st.buf.toString('latin1').slice(0, 400)}`);
    return r;
  };
  return st;
}

// One HTTPS request, bounded; resolves with the response and what the TLS
// socket showed (protocol, ALPN, peer certificate fingerprint).
function httpsRequest({ port, method = 'GET', path: p = '/', headers = {}, body, agent = false, timeoutMs = 10000, tlsOpts = {} } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, method, path: p, headers: { ...headers }, agent, ca: pki.ca, ...tlsOpts };
    if (body !== undefined && opts.headers['content-length'] === undefined && opts.headers['transfer-encoding'] === undefined) {
      opts.headers['content-length'] = Buffer.byteLength(body);
    }
    let sock;
    const req = https.request(opts, (res) => {
      const info = { protocol: res.socket.getProtocol(), alpn: res.socket.alpnProtocol, fp: res.socket.getPeerCertificate().fingerprint256 };
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        clearTimeout(timer);
        const buf = Buffer.concat(parts);
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text: buf.toString('utf8'), json: () => JSON.parse(buf.toString('utf8')), ...info, socket: sock });
      });
      res.on('aborted', () => {
        clearTimeout(timer);
        reject(Object.assign(new Error('response aborted'), { partial: Buffer.concat(parts) }));
      });
    });
    req.on('socket', (s) => (sock = s));
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${p} timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(body);
  });
}

// The peer certificate's fingerprint a fresh verified connection gets.
async function servedFingerprint(port, opts = {}) {
  const s = await tlsConnect(port, opts);
  const fp = s.getPeerCertificate().fingerprint256;
  s.destroy();
  return fp;
}

// The first flight a real client sends (a ClientHello), captured from a TCP
// server that then hangs up.
async function captureClientHello() {
  const got = [];
  const srv = net.createServer((s) => s.on('data', (d) => {
    got.push(d);
    s.destroy();
  }));
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const c = tls.connect({ host: '127.0.0.1', port: srv.address().port, rejectUnauthorized: false });
  c.on('error', () => {});
  await waitFor(() => got.length > 0, 3000);
  c.destroy();
  srv.close();
  return Buffer.concat(got);
}

// Opens a TCP connection to port, sends data (if any) and resolves with how
// long the peer took to close it (null if still open after ms) and what it sent.
function tcpUntilClose(port, data, ms = 6000) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const parts = [];
    const s = net.connect(port, '127.0.0.1', () => data && s.write(data));
    s.on('data', (d) => parts.push(d));
    s.on('error', () => {});
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ closedAfter: null, got: Buffer.concat(parts) });
    }, ms);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ closedAfter: Date.now() - t0, got: Buffer.concat(parts) });
    });
  });
}

// tcpUntilClose, with the socket (to destroy it early) beside the result.
function tcpHold(port, data, ms = 6000) {
  const t0 = Date.now();
  const parts = [];
  const sock = net.connect(port, '127.0.0.1', () => data && sock.write(data));
  sock.on('data', (d) => parts.push(d));
  sock.on('error', () => {});
  const result = new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ closedAfter: null, got: Buffer.concat(parts) }), ms);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ closedAfter: Date.now() - t0, got: Buffer.concat(parts) });
    });
  });
  return { sock, result };
}

// A TCP connection wrapped in a Duplex for tls.connect({ socket }): after
// holdTail(), the next TLS write goes out without its last 10 bytes (the
// record stays incomplete at the server) until release().
function holdingPipe(port) {
  const raw = net.connect(port, '127.0.0.1');
  let holdNext = false;
  let held = Buffer.alloc(0);
  const duplex = new Duplex({
    write(chunk, enc, cb) {
      if (!holdNext) return raw.write(chunk, () => cb());
      holdNext = false;
      const k = Math.max(1, chunk.length - 10);
      held = chunk.subarray(k);
      raw.write(chunk.subarray(0, k), () => cb());
    },
    read() {},
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (d) => duplex.push(d));
  raw.on('end', () => duplex.push(null));
  raw.on('error', (e) => duplex.destroy(e));
  return { duplex, raw, holdTail: () => (holdNext = true), release: () => raw.write(held) };
}

function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

function minimalConfig() {
  const dir = tempDir('sluice-tls-cfg-');
  const file = path.join(dir, 'kong.yml');
  writeFileSync(file, configText({ services: [] }));
  return { dir, file };
}

// --- startup and -t ----------------------------------------------------------

describe('TLS startup errors', { skip }, () => {
  let cfg;
  before(() => (cfg = minimalConfig()));
  after(() => rmSync(cfg.dir, { recursive: true, force: true }));

  // The daemon with an ssl listener and these certificate flags must refuse
  // to start; a daemon that starts instead makes runSluice time out.
  async function startupFails(extra) {
    const port = await freePort();
    return runSluice(['-c', cfg.file, '--proxy-listen', `127.0.0.1:${port} ssl`, '--admin-listen', 'off', '--workers', '1', ...extra], { timeoutMs: 8000 });
  }

  test('an ssl listener without --ssl-cert/--ssl-cert-key: exit non-zero, the message names both flags', async () => {
    const r = await startupFails([]);
    assert.notEqual(r.code, 0, r.stderr);
    assert.equal(r.signal, null);
    assert.match(r.stderr, /--ssl-cert\b/);
    assert.match(r.stderr, /--ssl-cert-key\b/);
    assert.equal(sanitizerReport(r.stderr), null);
    const only = await startupFails(['--ssl-cert', pki.rsa.cert]);
    assert.notEqual(only.code, 0, only.stderr);
    assert.match(only.stderr, /--ssl-cert-key\b/);
  });

  const cases = [
    ['a missing certificate file', () => ({ args: ['--ssl-cert', path.join(PKI_DIR, 'nope.pem'), '--ssl-cert-key', pki.rsa.key], names: path.join(PKI_DIR, 'nope.pem') })],
    ['a missing key file', () => ({ args: ['--ssl-cert', pki.rsa.cert, '--ssl-cert-key', path.join(PKI_DIR, 'nope.key')], names: path.join(PKI_DIR, 'nope.key') })],
    ['a certificate file that is not PEM', () => ({ args: ['--ssl-cert', pki.notPem, '--ssl-cert-key', pki.rsa.key], names: pki.notPem })],
    ['a key file that is not PEM', () => ({ args: ['--ssl-cert', pki.rsa.cert, '--ssl-cert-key', pki.notPem], names: pki.notPem })],
    ['a key that does not match its certificate', () => ({ args: ['--ssl-cert', pki.rsa.cert, '--ssl-cert-key', pki.otherKey], names: pki.otherKey })],
    ['an encrypted key (no terminal to ask a passphrase)', () => ({ args: ['--ssl-cert', pki.rsa.cert, '--ssl-cert-key', pki.encKey], names: pki.encKey })],
    ['lists of different lengths', () => ({ args: ['--ssl-cert', `${pki.rsa.cert},${pki.ec.cert}`, '--ssl-cert-key', pki.rsa.key], names: /--ssl-cert-key/ })],
    ['two pairs of the same key type (RSA, RSA)', () => ({ args: certArgs([pki.rsa, pki.rsa2]), names: /RSA|key type/i })],
    ['keys given in the wrong order (RSA cert with the EC key)', () => ({ args: ['--ssl-cert', `${pki.rsa.cert},${pki.ec.cert}`, '--ssl-cert-key', `${pki.ec.key},${pki.rsa.key}`], names: pki.ec.key })],
  ];
  for (const [label, make] of cases) {
    test(`${label}: startup error naming it (exit 1), and sluice -t reports it too (exit 1)`, async () => {
      const { args, names } = make();
      const re = names instanceof RegExp ? names : new RegExp(names.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      const r = await startupFails(args);
      assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(sanitizerReport(r.stderr), null);
      const t = await runSluice(['-t', '-c', cfg.file, ...args], { timeoutMs: 8000 });
      assert.equal(t.code, 1, `sluice -t exit code; stderr:\n${t.stderr}`);
      assert.match(t.stderr, re);
    });
  }

  test('sluice -t with valid certificate flags (RSA + ECDSA): exit 0', async () => {
    const t = await runSluice(['-t', '-c', cfg.file, ...certArgs([pki.rsa, pki.ec])], { timeoutMs: 8000 });
    assert.equal(t.code, 0, t.stderr);
  });

  test('--admin-listen ... ssl is refused at startup: the admin listener stays plain HTTP', async () => {
    const [p, a] = [await freePort(), await freePort()];
    const r = await runSluice(['-c', cfg.file, '--proxy-listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${a} ssl`, '--workers', '1', ...certArgs([pki.rsa])], { timeoutMs: 8000 });
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /admin/);
  });
});

// --- the main instance: a plain and a TLS listener side by side ---------------

describe('TLS listener', { skip }, () => {
  let fake, sl, tlsPort, big, bigDone = false, bigSock, bigStart = 0;
  const BIG = 48 * 1024 * 1024;
  const MB = Buffer.alloc(1024 * 1024, 'y');

  before(async () => {
    fake = await startFake();
    // Writes BIG bytes as fast as the socket takes them.
    big = http.createServer((req, res) => {
      bigDone = false;
      bigSock = res.socket;
      bigStart = res.socket.bytesWritten;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG });
      let sent = 0;
      const pump = () => {
        while (sent < BIG) {
          sent += MB.length;
          if (!res.write(MB)) return res.once('drain', pump);
        }
        res.end(() => (bigDone = true));
      };
      pump();
    });
    await new Promise((r) => big.listen(0, '127.0.0.1', r));
    tlsPort = await freePort();
    const F = fake.url;
    sl = await startSluice({
      workers: 2,
      args: ['--proxy-listen', `127.0.0.1:${tlsPort} ssl`, ...certArgs([pki.rsa, pki.ec])],
      config: {
        services: [
          { name: 'up', url: F, routes: [{ name: 'up', paths: ['/up'] }] },
          { name: 'secure', url: F, routes: [
            { name: 'https-only', paths: ['/secure'], protocols: ['https'] },
            { name: 'https-301', paths: ['/moved'], protocols: ['https'], https_redirect_status_code: 301 },
          ] },
          { name: 'big', url: `http://127.0.0.1:${big.address().port}`, routes: [{ name: 'big', paths: ['/big'] }] },
          { name: 'ai', url: F, routes: [aiRoute('gpt', '/gpt', { route_type: 'llm/v1/chat', model: { provider: 'openai', name: 'gpt-4o', options: { upstream_url: `${F}/v1/chat/completions` } } })] },
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
    big?.close();
    big?.closeAllConnections();
  });

  test('a verified HTTPS request: TLS 1.3, ALPN http/1.1, the RSA leaf, echo through the upstream', async () => {
    const r = await httpsRequest({ port: tlsPort, path: '/up/echo?a=1', tlsOpts: { ALPNProtocols: ['http/1.1'] } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.protocol, 'TLSv1.3');
    assert.equal(r.alpn, 'http/1.1');
    assert.equal(r.json().url, '/echo?a=1');
    assert.ok([pki.rsa.fp, pki.ec.fp].includes(r.fp), 'one of the configured certificates');
  });

  test('X-Forwarded-Proto: https and X-Forwarded-Port: the TLS port; the plain listener still says http', async () => {
    const s = await httpsRequest({ port: tlsPort, path: '/up/echo' });
    assert.equal(s.status, 200);
    assert.equal(s.json().headers['x-forwarded-proto'], 'https');
    assert.equal(s.json().headers['x-forwarded-port'], String(tlsPort));
    const p = await request({ port: sl.proxyPort, path: '/up/echo' });
    assert.equal(p.status, 200);
    assert.equal(p.json().headers['x-forwarded-proto'], 'http');
    assert.equal(p.json().headers['x-forwarded-port'], String(sl.proxyPort));
  });

  test('curl --cacert: HTTPS works, and curl (offering h2 and http/1.1) gets HTTP/1.1', async () => {
    const out = await new Promise((resolve, reject) => execFile('curl', ['-sS', '--max-time', '8', '--cacert', pki.root.cert,
      '-w', '\n%{http_code} %{http_version} %{ssl_verify_result}', `https://127.0.0.1:${tlsPort}/up/echo?curl=1`],
    (e, stdout, stderr) => (e ? reject(new Error(`curl: ${e.message} ${stderr}`)) : resolve(stdout))));
    const lines = out.trimEnd().split('\n');
    assert.equal(lines.pop(), '200 1.1 0');
    assert.equal(JSON.parse(lines.join('\n')).url, '/echo?curl=1');
  });

  test('TLS 1.2 works; so does TLS 1.3', async () => {
    const a = await httpsRequest({ port: tlsPort, path: '/up/echo', tlsOpts: { maxVersion: 'TLSv1.2' } });
    assert.equal(a.status, 200);
    assert.equal(a.protocol, 'TLSv1.2');
    const b = await httpsRequest({ port: tlsPort, path: '/up/echo', tlsOpts: { minVersion: 'TLSv1.3' } });
    assert.equal(b.status, 200);
    assert.equal(b.protocol, 'TLSv1.3');
  });

  for (const v of ['TLSv1', 'TLSv1.1']) {
    test(`a client limited to ${v} fails the handshake (protocol_version from sluice); sluice keeps serving`, async () => {
      const e = await tlsConnect(tlsPort, { minVersion: 'TLSv1', maxVersion: v, ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false }).then(
        (s) => {
          s.destroy();
          return null;
        }, (err) => err);
      assert.ok(e, `the ${v} handshake must fail`);
      assert.notEqual(e.code, 'TIMEOUT', 'a clean failure, not a hang');
      assert.match(String(e.code), /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION/, `${e.code} ${e.message}`);
      const r = await httpsRequest({ port: tlsPort, path: '/up/echo' });
      assert.equal(r.status, 200);
    });
  }

  test('ALPN: [h2, http/1.1] selects http/1.1; [h2] alone connects without ALPN or fails cleanly, never hangs', async () => {
    const both = await tlsConnect(tlsPort, { ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(both.alpnProtocol, 'http/1.1');
    both.destroy();
    let h2only;
    try {
      h2only = await tlsConnect(tlsPort, { ALPNProtocols: ['h2'] });
    } catch (e) {
      assert.notEqual(e.code, 'TIMEOUT', 'no hang');
    }
    if (h2only) {
      assert.equal(h2only.alpnProtocol, false, 'h2 must not be selected');
      const st = collect(h2only);
      h2only.write('GET /up/echo?alpn=none HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
      const [res] = await st.waitResponses(1);
      assert.equal(res.status, 200);
      h2only.destroy();
    }
    const r = await httpsRequest({ port: tlsPort, path: '/up/echo' });
    assert.equal(r.status, 200);
  });

  test('RSA + ECDSA pairs: an ECDSA-only client gets the ECDSA leaf, an RSA-only client the RSA leaf (both verify)', async () => {
    for (const version of ['TLSv1.3', 'TLSv1.2']) {
      const ec = await tlsConnect(tlsPort, { minVersion: version, maxVersion: version, sigalgs: 'ecdsa_secp256r1_sha256' });
      assert.equal(ec.getPeerCertificate().fingerprint256, pki.ec.fp, `${version}: ECDSA leaf`);
      assert.equal(ec.getPeerCertificate().nistCurve, 'P-256');
      ec.destroy();
      const rsa = await tlsConnect(tlsPort, { minVersion: version, maxVersion: version, sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' });
      assert.equal(rsa.getPeerCertificate().fingerprint256, pki.rsa.fp, `${version}: RSA leaf`);
      assert.equal(rsa.authorized, true);
      rsa.destroy();
    }
  });

  test('keep-alive: 30 requests over one TLS connection', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca });
    const sockets = new Set();
    try {
      for (let i = 0; i < 30; i++) {
        const r = await httpsRequest({ port: tlsPort, path: `/up/echo?i=${i}`, agent });
        assert.equal(r.status, 200);
        assert.equal(r.json().url, `/echo?i=${i}`);
        sockets.add(r.socket);
      }
    } finally {
      agent.destroy();
    }
    assert.equal(sockets.size, 1, 'one TLS connection carried all 30');
  });

  test('pipelining: 600 requests (with small bodies between) in one burst are answered in order', async () => {
    const s = await tlsConnect(tlsPort);
    const st = collect(s);
    let data = '';
    for (let i = 0; i < 600; i++) {
      data += i % 10 === 5
        ? `POST /up/echo?i=${i} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nb${String(i % 100).padStart(2, '0')}`
        : `GET /up/echo?i=${i} HTTP/1.1\r\nHost: t\r\n\r\n`;
    }
    data += 'GET /up/echo?i=last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n';
    assert.ok(data.length > 16384, `several TLS records (${data.length} bytes)`);
    s.write(data);
    const res = await st.waitResponses(601, 9000);
    s.destroy();
    assert.equal(res.length, 601);
    res.forEach((r, i) => {
      assert.equal(r.status, 200, `response ${i}`);
      assert.equal(r.json().url, `/echo?i=${i === 600 ? 'last' : i}`, `response ${i} in order`);
      if (i % 10 === 5 && i < 600) assert.equal(r.json().bodyLength, 3);
    });
  });

  test('a request head split into one TLS record per byte is read whole', async () => {
    const s = await tlsConnect(tlsPort);
    s.setNoDelay(true);
    const st = collect(s);
    const head = 'GET /up/echo?split=1 HTTP/1.1\r\nHost: t\r\nX-Split: yes\r\nConnection: close\r\n\r\n';
    for (const ch of head) {
      s.write(ch);
      await sleep(1);
    }
    const [r] = await st.waitResponses(1);
    s.destroy();
    assert.equal(r.status, 200);
    assert.equal(r.json().headers['x-split'], 'yes');
  });

  test('a 5 MB upload (Content-Length) arrives intact', { timeout: 20000 }, async () => {
    const body = randomBytes(5 * 1024 * 1024 + 7);
    const r = await httpsRequest({ port: tlsPort, method: 'POST', path: '/up/echo', body, headers: { 'content-type': 'application/octet-stream' }, timeoutMs: 15000 });
    assert.equal(r.status, 200, r.text.slice(0, 200));
    assert.equal(r.json().bodyLength, body.length);
    assert.equal(r.json().bodySha256, sha(body));
  });

  test('a 3 MB chunked upload arrives intact', { timeout: 20000 }, async () => {
    const parts = Array.from({ length: 48 }, () => randomBytes(65536));
    const whole = Buffer.concat(parts);
    const r = await new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: tlsPort, method: 'PUT', path: '/up/echo', agent: false, ca: pki.ca, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        const got = [];
        res.on('data', (d) => got.push(d));
        res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(Buffer.concat(got).toString()) }));
      });
      req.on('error', reject);
      req.setTimeout(15000, () => req.destroy(new Error('timeout')));
      (async () => {
        for (const p of parts) {
          req.write(p);
          await sleep(1);
        }
        req.end();
      })();
    });
    assert.equal(r.status, 200);
    assert.equal(r.json.bodyLength, whole.length);
    assert.equal(r.json.bodySha256, sha(whole));
  });

  test('a 20 MB answer arrives intact', { timeout: 20000 }, async () => {
    const n = 20 * 1024 * 1024 + 3;
    const r = await httpsRequest({ port: tlsPort, path: `/up/bytes?n=${n}`, timeoutMs: 15000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, n);
    assert.equal(sha(r.body), r.headers['x-fake-sha256']);
  });

  test('an 8 MB answer to a reader that keeps pausing (TLS writes retried after WANT_WRITE) arrives intact', { timeout: 20000 }, async () => {
    const n = 8 * 1024 * 1024;
    const s = await tlsConnect(tlsPort);
    const st = collect(s);
    let seen = 0;
    s.on('data', (d) => {
      const before = seen;
      seen += d.length;
      if (Math.floor(before / (1024 * 1024)) !== Math.floor(seen / (1024 * 1024))) {
        s.pause();
        setTimeout(() => s.resume(), 150);
      }
    });
    s.write(`GET /up/bytes?n=${n} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
    const [r] = await st.waitResponses(1, 15000);
    s.destroy();
    assert.equal(r.status, 200);
    assert.equal(r.body.length, n);
    assert.equal(sha(r.body), r.headers['x-fake-sha256']);
  });

  test('Expect: 100-continue over TLS: 100 first, then the body, then the answer', async () => {
    const s = await tlsConnect(tlsPort);
    const st = collect(s);
    s.write('POST /up/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    assert.ok(await waitFor(() => st.buf.includes('\r\n\r\n')), 'an interim answer');
    assert.match(st.buf.toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    s.write('hello');
    const res = await st.waitResponses(2);
    s.destroy();
    assert.equal(res[1].status, 200);
    assert.equal(res[1].json().bodyLength, 5);
  });

  test('a streamed (chunked) answer: each piece reaches the TLS client before the next is sent', async () => {
    const s = await tlsConnect(tlsPort);
    const arrivals = [];
    const st = collect(s);
    s.on('data', () => arrivals.push(Date.now()));
    const t0 = Date.now();
    s.write('GET /up/chunked?n=4&size=50&delay=400 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const [r] = await st.waitResponses(1);
    s.destroy();
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 200);
    assert.equal(sha(r.body), r.headers['x-fake-sha256']);
    const first = arrivals[0] - t0;
    const last = arrivals[arrivals.length - 1] - t0;
    // The upstream spends >= 1200 ms between its first and last piece: a
    // buffered answer would arrive in one go at the end.
    assert.ok(last - first >= 900, `first bytes at ${first} ms, last at ${last} ms: the pieces were held back`);
  });

  test('SSE through ai-proxy over TLS: frames arrive one by one, ending in [DONE]', async () => {
    const s = await tlsConnect(tlsPort);
    const st = collect(s);
    const arrivals = [];
    s.on('data', (d) => arrivals.push({ t: Date.now(), text: d.toString() }));
    const body = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'alpha beta gamma delta' }] });
    s.write(`POST /gpt HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer sk-tls\r\nContent-Type: application/json\r\nX-Fake-Frame-Delay-Ms: 250\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const [r] = await st.waitResponses(1, 9000);
    s.destroy();
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.match(r.headers['content-type'], /text\/event-stream/);
    const events = parseSse(r.body.toString('utf8'));
    assert.equal(events[events.length - 1].data, '[DONE]');
    const text = events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, 'echo: alpha beta gamma delta');
    const withData = arrivals.filter((a) => a.text.includes('data:'));
    assert.ok(withData.length >= 4, `${withData.length} separate arrivals carrying frames`);
    assert.ok(withData[withData.length - 1].t - withData[0].t >= 750, 'frames spread over the upstream\'s pacing');
  });

  test('a slow TLS reader pauses the upstream (memory stays bounded), then gets every byte', { timeout: 40000 }, async () => {
    const baseline = rssKiB(sl.pid);
    const s = await tlsConnect(tlsPort);
    let head = Buffer.alloc(0);
    let bodyBytes = -1;
    s.on('data', (d) => {
      if (bodyBytes >= 0) {
        bodyBytes += d.length;
        return;
      }
      head = Buffer.concat([head, d]);
      const i = head.indexOf('\r\n\r\n');
      if (i >= 0) bodyBytes = head.length - (i + 4);
    });
    s.on('error', () => {});
    s.write('GET /big/x HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.ok(await waitFor(() => bodyBytes >= 0, 5000), 'the head arrived');
    s.pause();
    await sleep(1500);
    const held = rssKiB(sl.pid) - baseline;
    // What the upstream handed to its socket and the client has not read:
    // kernel socket buffers on both sides plus sluice's own (256 KiB).
    const inFlight = bigSock.bytesWritten - bigStart - bodyBytes;
    assert.equal(bigDone, false, 'the upstream cannot have finished: the transfer is paused');
    assert.ok(inFlight < 16 * 1024 * 1024, `${inFlight} bytes between the upstream and the paused TLS client`);
    assert.ok(held < 40 * 1024, `sluice grew by ${held} KiB while the TLS client did not read (ASan allocator included)`);
    assert.ok(bodyBytes < BIG / 2, `the client had read only ${bodyBytes} bytes`);
    s.resume();
    await waitFor(() => bodyBytes >= BIG, 30000);
    s.destroy();
    assert.equal(bodyBytes, BIG, 'every byte arrived once the client read again');
  });

  test('a TLS client that leaves mid-stream: the upstream transfer is aborted, the log says client_aborted', async () => {
    const m = marker('abort');
    const s = await tlsConnect(tlsPort);
    const st = collect(s);
    const mark = sl.logMark();
    s.write(`GET /up/chunked?n=30&size=10&delay=200&m=${m} HTTP/1.1\r\nHost: t\r\n\r\n`);
    assert.ok(await waitFor(() => st.buf.includes('\r\n\r\n'), 5000), 'the head arrived');
    const id = /x-sluice-request-id: *([0-9a-f]+)/i.exec(st.buf.toString('latin1'))?.[1];
    s.destroy();
    const rec = await fake.waitFor((x) => x.query.m === m && x.state !== 'open', 4000);
    assert.equal(rec.state, 'aborted');
    assert.ok(id, 'a request id');
    const line = await sl.waitForLog(new RegExp(`request_id=${id}\\b.*status=`), { from: mark });
    assert.equal(logFields(line).client_aborted, 'true', line);
  });

  test('the access log line of a TLS request', async () => {
    const mark = sl.logMark();
    const r = await httpsRequest({ port: tlsPort, method: 'POST', path: '/up/echo?log=1', body: 'abc' });
    assert.equal(r.status, 200);
    const id = r.headers['x-sluice-request-id'];
    const line = await sl.waitForLog(new RegExp(`request_id=${id}\\b.*status=`), { from: mark });
    const f = logFields(line);
    assert.equal(f.status, '200');
    assert.equal(f.method, 'POST');
    assert.equal(f.uri, '/up/echo?log=1');
    assert.equal(f.route, 'up');
    assert.equal(f.client, '127.0.0.1');
    assert.ok(Number(f.bytes) >= r.body.length, `bytes=${f.bytes} (body ${r.body.length})`);
  });

  test('route protocols [https]: served over TLS; plain HTTP gets 426 with Upgrade', async () => {
    const s = await httpsRequest({ port: tlsPort, path: '/secure/echo' });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.json().headers['x-forwarded-proto'], 'https');
    const p = await request({ port: sl.proxyPort, path: '/secure/echo' });
    assert.equal(p.status, 426, p.text);
    assert.match(p.text, /HTTPS/);
    assert.match(String(p.headers.upgrade), /TLS/);
  });

  test('route protocols [https] with https_redirect_status_code 301: plain HTTP is redirected to https://', async () => {
    const p = await request({ port: sl.proxyPort, path: '/moved/echo?q=1', headers: { host: 'example.test' } });
    assert.equal(p.status, 301, p.text);
    assert.equal(p.headers.location, 'https://example.test/moved/echo?q=1');
    const s = await httpsRequest({ port: tlsPort, path: '/moved/echo?q=1' });
    assert.equal(s.status, 200);
    assert.equal(s.json().url, '/echo?q=1');
  });

  test('default protocols [http, https]: the same route serves both', async () => {
    assert.equal((await httpsRequest({ port: tlsPort, path: '/up/echo' })).status, 200);
    assert.equal((await request({ port: sl.proxyPort, path: '/up/echo' })).status, 200);
  });

  test('a client\'s own X-Forwarded-Proto/Port are replaced, and do not get a plain request past protocols [https]', async () => {
    const s = await httpsRequest({ port: tlsPort, path: '/up/echo', headers: { 'x-forwarded-proto': 'http', 'x-forwarded-port': '1' } });
    assert.equal(s.json().headers['x-forwarded-proto'], 'https');
    assert.equal(s.json().headers['x-forwarded-port'], String(tlsPort));
    const p = await request({ port: sl.proxyPort, path: '/up/echo', headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(p.json().headers['x-forwarded-proto'], 'http');
    const q = await request({ port: sl.proxyPort, path: '/secure/echo', headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(q.status, 426);
  });

  test('40 concurrent TLS connections, each with a request, all answered', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => httpsRequest({ port: tlsPort, path: `/up/echo?c=${i}` })));
    rs.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.json().url, `/echo?c=${i}`);
    });
  });

  test('TLS session resumption (1.2 session id, 1.3 ticket) works and serves requests', async () => {
    for (const version of ['TLSv1.2', 'TLSv1.3']) {
      const opts = { minVersion: version, maxVersion: version };
      const first = await tlsConnect(tlsPort, opts);
      const st = collect(first);
      first.write('GET /up/echo?resume=1 HTTP/1.1\r\nHost: t\r\n\r\n');
      await st.waitResponses(1);
      const session = first.getSession();
      first.end();
      assert.ok(session, `${version}: a session to resume`);
      const second = await tlsConnect(tlsPort, { ...opts, session });
      assert.equal(second.isSessionReused(), true, `${version}: session reused`);
      const st2 = collect(second);
      second.write('GET /up/echo?resume=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
      const [r] = await st2.waitResponses(1);
      second.destroy();
      assert.equal(r.status, 200);
    }
  });

  test('a TLS 1.2 client asking to renegotiate is refused at once (no_renegotiation), no hang; sluice keeps serving', async () => {
    const s = await tlsConnect(tlsPort, { maxVersion: 'TLSv1.2' });
    const outcome = await new Promise((resolve) => {
      const t = setTimeout(() => resolve('pending'), 3000);
      const done = (x) => {
        clearTimeout(t);
        resolve(x);
      };
      s.once('error', (e) => done(`error ${e.code}`));
      s.once('close', () => done('closed'));
      s.renegotiate({ rejectUnauthorized: true }, (err) => done(err ? `error ${err.code}` : 'renegotiated'));
    });
    s.destroy();
    assert.match(outcome, /^(error|closed)/, `renegotiation must be refused, not ${outcome}`);
    const r = await httpsRequest({ port: tlsPort, path: '/up/echo' });
    assert.equal(r.status, 200);
  });

  test('the OpenAI SDK over https (test CA in NODE_EXTRA_CA_CERTS): chat and streaming', { timeout: 20000 }, async () => {
    const script = `
      import OpenAI from 'openai';
      const c = new OpenAI({ apiKey: 'sk-tls-sdk', baseURL: process.env.BASE, timeout: 8000, maxRetries: 0 });
      const chat = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello over tls' }] });
      const stream = await c.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'one two three' }] });
      let text = '', n = 0;
      for await (const ch of stream) { n++; for (const x of ch.choices) text += x.delta?.content ?? ''; }
      console.log(JSON.stringify({ chat: chat.choices[0].message.content, object: chat.object, text, n }));`;
    const out = await new Promise((resolve, reject) => execFile(process.execPath, ['--input-type=module', '-e', script], {
      cwd: TESTS_DIR, timeout: 15000,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.root.cert, BASE: `https://127.0.0.1:${tlsPort}/gpt` },
    }, (e, stdout, stderr) => (e ? reject(new Error(`SDK script failed: ${e.message}\n${stderr}`)) : resolve(stdout))));
    const j = JSON.parse(out.trim().split('\n').pop());
    assert.equal(j.object, 'chat.completion');
    assert.equal(j.chat, 'echo: hello over tls');
    assert.equal(j.text, 'echo: one two three');
    assert.ok(j.n >= 3, `${j.n} chunks`);
  });
});

// --- hostile clients on the TLS port ------------------------------------------

describe('TLS port: clients that do not speak TLS properly', { skip }, () => {
  let fake, sl, tlsPort, hello;
  before(async () => {
    fake = await startFake();
    hello = await captureClientHello();
    tlsPort = await freePort();
    sl = await startSluice({
      workers: 1,
      args: ['--client-timeout', '2', '--proxy-listen', `127.0.0.1:${tlsPort} ssl`, ...certArgs([pki.rsa])],
      config: { services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] },
    });
  });
  after(async () => {
    await sl?.stop(); // also asserts no sanitizer report after all of it
    await fake?.close();
  });

  test('plain HTTP sent to the TLS port: nothing or a plain 400, then the connection is closed', async () => {
    const r = await tcpUntilClose(tlsPort, 'GET /up/echo HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.ok(r.closedAfter !== null && r.closedAfter < 4500, `closed after ${r.closedAfter} ms`);
    // Nothing, or (as nginx does) a plain 400 before the close.
    assert.match(r.got.toString('latin1'), /^(HTTP\/1\.[01] 400 [^]*)?$/);
    assert.equal((await httpsRequest({ port: tlsPort, path: '/up/echo' })).status, 200);
  });

  test('random bytes: the connection is closed', async () => {
    const r = await tcpUntilClose(tlsPort, randomBytes(4096));
    assert.ok(r.closedAfter !== null && r.closedAfter < 4500, `closed after ${r.closedAfter} ms`);
    assert.equal((await httpsRequest({ port: tlsPort, path: '/up/echo' })).status, 200);
  });

  test('a TLS record header that promises a huge record: closed', async () => {
    // handshake record, version 3.1, length 0xffff (over the 16 KB + slack limit)
    const r = await tcpUntilClose(tlsPort, Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), randomBytes(2000)]));
    assert.ok(r.closedAfter !== null && r.closedAfter < 4500, `closed after ${r.closedAfter} ms`);
  });

  test('20 silent connections are closed at --client-timeout; a real client is served meanwhile', async () => {
    const silent = Array.from({ length: 20 }, () => tcpUntilClose(tlsPort, null));
    await sleep(200);
    const r = await httpsRequest({ port: tlsPort, path: '/up/echo?meanwhile=1', timeoutMs: 1500 });
    assert.equal(r.status, 200, 'served while 20 handshakes were pending');
    for (const x of await Promise.all(silent)) {
      assert.ok(x.closedAfter !== null, 'closed');
      assert.ok(x.closedAfter >= 1500 && x.closedAfter < 4500, `closed after ${x.closedAfter} ms (timeout 2 s)`);
    }
  });

  test('a truncated ClientHello does not stall the worker: no busy loop, another client is served', async () => {
    const h = tcpHold(tlsPort, hello.subarray(0, Math.floor(hello.length / 2)));
    try {
      await sleep(300);
      const before = cpuTicks(sl.pid);
      await sleep(500);
      const spent = cpuTicks(sl.pid) - before;
      const r = await httpsRequest({ port: tlsPort, path: '/up/echo?after-truncated=1', timeoutMs: 2000 }).catch((e) => e);
      assert.equal(r.status, 200, `another client is served (${r.message ?? r.status})`);
      assert.ok(spent <= 10, `sluice used ${spent} ticks in 500 ms while a ClientHello was half there`);
    } finally {
      h.sock.destroy();
    }
  });

  test('a truncated ClientHello is closed at --client-timeout', async () => {
    const h = tcpHold(tlsPort, hello.subarray(0, 100), 5000);
    try {
      const x = await h.result;
      assert.ok(x.closedAfter !== null && x.closedAfter >= 1500 && x.closedAfter < 4500, `closed after ${x.closedAfter} ms (timeout 2 s)`);
    } finally {
      h.sock.destroy();
    }
  });

  test('after the handshake, a record that arrives in two parts with a pause: no busy loop, others served, then answered', async () => {
    const pipe = holdingPipe(tlsPort);
    const s = tls.connect({ socket: pipe.duplex, host: '127.0.0.1', ca: pki.ca });
    const st = collect(s);
    try {
      await new Promise((resolve, reject) => {
        s.once('secureConnect', resolve);
        s.once('error', reject);
      });
      await sleep(100); // the TLS 1.3 tickets have come and gone
      pipe.holdTail();
      s.write('GET /up/echo?split-record=1 HTTP/1.1\r\nHost: t\r\n\r\n');
      await sleep(200);
      const before = cpuTicks(sl.pid);
      await sleep(500);
      const spent = cpuTicks(sl.pid) - before;
      const r = await httpsRequest({ port: tlsPort, path: '/up/echo?meanwhile=2', timeoutMs: 2000 }).catch((e) => e);
      pipe.release();
      const [res] = await st.waitResponses(1, 3000);
      assert.equal(res.status, 200, 'the split record is read once whole');
      assert.equal(r.status, 200, `another client is served while the record is incomplete (${r.message ?? r.status})`);
      assert.ok(spent <= 10, `sluice used ${spent} ticks in 500 ms waiting for the rest of a record`);
    } finally {
      s.destroy();
      pipe.raw.destroy();
    }
  });

  test('an idle TLS keep-alive connection is closed after --client-timeout', async () => {
    const s = await tlsConnect(tlsPort);
    const st = collect(s);
    s.write('GET /up/echo HTTP/1.1\r\nHost: t\r\n\r\n');
    await st.waitResponses(1);
    const t0 = Date.now();
    assert.ok(await waitFor(() => st.closed, 6000), 'closed');
    s.destroy();
    const after = st.closedAt - t0;
    assert.ok(after >= 1500 && after < 4500, `closed after ${after} ms`);
  });

  test('a TLS client that sends half a head (slowloris) is closed after --client-timeout', async () => {
    const s = await tlsConnect(tlsPort);
    const st = collect(s);
    const t0 = Date.now();
    s.write('GET /up/echo HTTP/1.1\r\nHost: t\r\n');
    assert.ok(await waitFor(() => st.closed, 6000), 'closed');
    s.destroy();
    assert.ok(st.closedAt - t0 < 4500, `closed after ${st.closedAt - t0} ms`);
  });

  test('a client that closes right after the handshake, or in the middle of it: sluice keeps serving', async () => {
    for (let i = 0; i < 10; i++) {
      const s = await tlsConnect(tlsPort);
      s.end();
      const raw = net.connect(tlsPort, '127.0.0.1', () => {
        raw.write(hello.subarray(0, 20 + i));
        raw.destroy();
      });
      raw.on('error', () => {});
      const r2 = net.connect(tlsPort, '127.0.0.1', () => {
        r2.write(hello);
        r2.resetAndDestroy();
      });
      r2.on('error', () => {});
    }
    await sleep(300);
    assert.equal((await httpsRequest({ port: tlsPort, path: '/up/echo' })).status, 200);
  });
});

// --- SIGHUP: certificates read again ----------------------------------------

describe('TLS certificates on SIGHUP', { skip }, () => {
  let fake, sl, tlsPort, certFile, keyFile;
  const cfg = (extraRoutes = []) => ({
    services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }, ...extraRoutes] }],
  });
  // A new connection's certificate once the workers have the new snapshot.
  async function waitServed(fp) {
    let got;
    for (let i = 0; i < 20; i++) {
      got = await servedFingerprint(tlsPort);
      if (got === fp) return got;
      await sleep(50);
    }
    return got;
  }
  before(async () => {
    fake = await startFake();
    tlsPort = await freePort();
    const dir = tempDir('sluice-tls-rotate-');
    certFile = path.join(dir, 'server.pem');
    keyFile = path.join(dir, 'server.key');
    copyFileSync(pki.chain.cert, certFile);
    copyFileSync(pki.chain.key, keyFile);
    sl = await startSluice({ workers: 2, args: ['--proxy-listen', `127.0.0.1:${tlsPort} ssl`, '--ssl-cert', certFile, '--ssl-cert-key', keyFile], config: cfg() });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
    if (certFile) rmSync(path.dirname(certFile), { recursive: true, force: true });
  });

  test('a leaf + intermediate file: the chain is sent, a client trusting only the root verifies', async () => {
    const s = await tlsConnect(tlsPort);
    assert.equal(s.authorized, true);
    const peer = s.getPeerCertificate(true);
    s.destroy();
    assert.equal(peer.fingerprint256, pki.chain.fp);
    assert.equal(peer.issuerCertificate?.subject?.CN, 'sluice-test-intermediate');
  });

  test('new files + SIGHUP: new connections get the new certificate, an open one keeps working', async () => {
    const old = await tlsConnect(tlsPort);
    const oldFp = old.getPeerCertificate().fingerprint256;
    const oldSt = collect(old);
    old.write('GET /up/echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n');
    await oldSt.waitResponses(1);
    copyFileSync(pki.rsa2.cert, certFile);
    copyFileSync(pki.rsa2.key, keyFile);
    const mark = sl.logMark();
    await sl.reload(cfg([{ name: 'added', paths: ['/added'] }]));
    await sl.waitForLog(/config reloaded/, { from: mark });
    assert.equal(await waitServed(pki.rsa2.fp), pki.rsa2.fp, 'the new certificate on a new connection');
    assert.equal((await httpsRequest({ port: tlsPort, path: '/added/echo' })).status, 200, 'the kong.yml change too');
    // The connection opened before the reload still answers, with its old certificate.
    old.write('GET /up/echo?n=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const res = await oldSt.waitResponses(2);
    old.destroy();
    assert.equal(res[1].status, 200);
    assert.equal(res[1].json().url, '/echo?n=2');
    assert.equal(oldFp, pki.chain.fp);
  });

  const broken = [
    ['a certificate file that is not PEM', () => writeFileSync(certFile, 'garbage\n'), () => certFile],
    ['a key that does not match the certificate', () => copyFileSync(pki.otherKey, keyFile), () => keyFile],
    ['a missing key file', () => unlinkSync(keyFile), () => keyFile],
  ];
  for (const [label, breakIt, named] of broken) {
    test(`SIGHUP with ${label}: refused as a whole (log names the file), old certificate and old kong.yml kept`, async () => {
      copyFileSync(pki.rsa2.cert, certFile);
      copyFileSync(pki.rsa2.key, keyFile);
      breakIt();
      const before = (await sl.status()).config.sha256;
      const mark = sl.logMark();
      sl.writeConfig(cfg([{ name: 'added', paths: ['/added'] }, { name: 'never', paths: ['/never'] }]));
      sl.signal('SIGHUP');
      await sl.waitForLog(/reload refused/, { from: mark });
      assert.ok(sl.lines.slice(mark).some((l) => l.includes(named())), `a log line names ${named()}:\n${sl.lines.slice(mark).join('\n')}`);
      assert.equal((await sl.status()).config.sha256, before, 'kong.yml change not applied');
      assert.equal((await httpsRequest({ port: tlsPort, path: '/never/x' })).status, 404, 'the new route is not there');
      assert.equal((await httpsRequest({ port: tlsPort, path: '/added/echo' })).status, 200);
      for (let i = 0; i < 4; i++) assert.equal(await servedFingerprint(tlsPort), pki.rsa2.fp, 'still the last good certificate');
    });
  }

  test('files fixed + SIGHUP: the reload is applied, the new certificate served', async () => {
    copyFileSync(pki.rsa.cert, certFile);
    copyFileSync(pki.rsa.key, keyFile);
    await sl.reload(cfg([{ name: 'fixed', paths: ['/fixed'] }]));
    assert.equal(await waitServed(pki.rsa.fp), pki.rsa.fp);
    assert.equal((await httpsRequest({ port: tlsPort, path: '/fixed/echo' })).status, 200);
  });

  test('SIGHUP with only the certificate files changed (kong.yml as it was): the new certificate is served', async () => {
    copyFileSync(pki.rsa2.cert, certFile);
    copyFileSync(pki.rsa2.key, keyFile);
    const mark = sl.logMark();
    sl.signal('SIGHUP');
    await sl.waitForLog(/config reloaded|reload refused/, { from: mark });
    assert.equal(await waitServed(pki.rsa2.fp), pki.rsa2.fp);
  });
});

// --- SIGTERM drains TLS requests ---------------------------------------------

describe('TLS graceful stop', { skip }, () => {
  test('SIGTERM: an in-flight TLS request finishes, an idle keep-alive TLS connection is closed, exit 0', async () => {
    const fake = await startFake();
    const tlsPort = await freePort();
    const sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${tlsPort} ssl`, ...certArgs([pki.ec])],
      config: { services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] },
    });
    try {
      // An idle keep-alive TLS connection must not hold the exit back.
      const idle = await tlsConnect(tlsPort);
      const idleSt = collect(idle);
      idle.write('GET /up/echo?idle=1 HTTP/1.1\r\nHost: t\r\n\r\n');
      await idleSt.waitResponses(1);
      const m = marker('drain');
      const pending = httpsRequest({ port: tlsPort, path: `/up/delay?ms=1500&m=${m}` });
      await fake.waitFor((x) => x.query.m === m, 3000);
      sl.signal('SIGTERM');
      const r = await pending;
      assert.equal(r.status, 200);
      assert.equal(r.json().query.m, m);
      const t0 = Date.now();
      await sl.stop({ timeoutMs: 8000 }); // --drain-timeout is 30 s: an exit within 8 s did not wait for the idle one
      assert.ok(Date.now() - t0 < 5000, 'exit soon after the last in-flight request');
      assert.ok(await waitFor(() => idleSt.closed, 2000), 'the idle TLS connection was closed');
      idle.destroy();
    } finally {
      await sl.kill();
      await fake.close();
    }
  });
});

// --- SLUICE_* variables --------------------------------------------------------

describe('TLS from the environment', { skip }, () => {
  test('SLUICE_PROXY_LISTEN="A,B ssl" + SLUICE_SSL_CERT/_KEY (RSA,ECDSA lists): a plain and a TLS listener', async () => {
    const fake = await startFake();
    const cfg = minimalConfig();
    writeFileSync(cfg.file, configText({ services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] }));
    const [plainPort, tlsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    const proc = spawn(SLUICE_BIN, ['-c', cfg.file, '--admin-listen', `127.0.0.1:${adminPort}`, '--workers', '1'], {
      env: {
        ...process.env,
        SLUICE_PROXY_LISTEN: `127.0.0.1:${plainPort},127.0.0.1:${tlsPort} ssl`,
        SLUICE_SSL_CERT: `${pki.rsa.cert},${pki.ec.cert}`,
        SLUICE_SSL_CERT_KEY: `${pki.rsa.key},${pki.ec.key}`,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((r) => proc.on('close', (code, signal) => r({ code, signal })));
    try {
      let ready = false;
      for (let i = 0; i < 200 && !ready; i++) {
        ready = await request({ port: adminPort, path: '/status', timeoutMs: 500 }).then((r) => r.status === 200, () => false);
        if (!ready) await sleep(50);
      }
      assert.ok(ready, `sluice ready; stderr:\n${stderr}`);
      const s = await httpsRequest({ port: tlsPort, path: '/up/echo' });
      assert.equal(s.status, 200);
      assert.equal(s.json().headers['x-forwarded-proto'], 'https');
      assert.equal(s.json().headers['x-forwarded-port'], String(tlsPort));
      assert.equal(await servedFingerprint(tlsPort, { sigalgs: 'ecdsa_secp256r1_sha256' }), pki.ec.fp);
      const p = await request({ port: plainPort, path: '/up/echo' });
      assert.equal(p.status, 200);
      assert.equal(p.json().headers['x-forwarded-proto'], 'http');
      proc.kill('SIGTERM');
      const st = await Promise.race([exited, sleep(10000).then(() => ({ code: 'timeout' }))]);
      assertCleanExit(st, stderr);
    } finally {
      proc.kill('SIGKILL');
      await fake.close();
      rmSync(cfg.dir, { recursive: true, force: true });
    }
  });
});
