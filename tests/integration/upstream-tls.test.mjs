// Upstream transport: HTTPS upstreams (verified unless tls_verify is false),
// HTTP/2 when the upstream offers it over TLS, and keep-alive reuse of
// upstream connections across requests.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { assertErrorBody, binaryMissing, cpuTicks, request, startSluice, tempDir } from './lib/harness.mjs';

const skip = binaryMissing();

function selfSignedCert() {
  const dir = tempDir('sluice-tls-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
  { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

// Answers with what it saw of the transport.
function describe(req, res) {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ httpVersion: req.httpVersion, path: req.url, via: req.headers.via ?? null }));
}

let h2server, h1tls, plain, shortLived, sluice, plainSockets = 0, shortSockets = 0;

before(async () => {
  if (skip) return;
  const tls = selfSignedCert();
  h2server = http2.createSecureServer({ ...tls, allowHTTP1: true }, describe);
  h1tls = https.createServer(tls, describe);
  plain = http.createServer({ keepAliveTimeout: 30000 }, describe);
  plain.on('connection', () => plainSockets++);
  // Answers with keep-alive, then closes the idle connection 100 ms later.
  shortLived = http.createServer((req, res) => {
    res.on('finish', () => setTimeout(() => req.socket.destroy(), 100));
    describe(req, res);
  });
  shortLived.on('connection', () => shortSockets++);
  const [h2port, h1port, plainPort, shortPort] = await Promise.all([
    listen(h2server), listen(h1tls), listen(plain), listen(shortLived)]);
  sluice = await startSluice({
    workers: 1,
    config: {
      _format_version: '3.0',
      services: [
        { name: 'h2-noverify', url: `https://127.0.0.1:${h2port}`, tls_verify: false,
          routes: [{ name: 'h2', paths: ['/h2'] }] },
        { name: 'h2-verify', url: `https://127.0.0.1:${h2port}`,
          routes: [{ name: 'verify', paths: ['/verify'] }] },
        { name: 'h1-tls', url: `https://127.0.0.1:${h1port}`, tls_verify: false,
          routes: [{ name: 'h1', paths: ['/h1'] }] },
        { name: 'plain', url: `http://127.0.0.1:${plainPort}`,
          routes: [{ name: 'plain', paths: ['/plain'] }] },
        { name: 'short', url: `http://127.0.0.1:${shortPort}`,
          routes: [{ name: 'short', paths: ['/short'] }] },
      ],
    },
  });
});

after(async () => {
  if (sluice) await sluice.stop();
  for (const s of [h2server, h1tls, plain, shortLived]) s?.close();
});

test('an HTTPS upstream that offers h2 is reached over HTTP/2 (tls_verify: false)', { skip }, async () => {
  const r = await request({ port: sluice.proxyPort, path: '/h2/x' });
  assert.equal(r.status, 200, r.text);
  const j = r.json();
  assert.equal(j.httpVersion, '2.0');
  assert.equal(j.path, '/x');
  assert.equal(j.via, '1.1 sluice');
});

test('an HTTPS upstream with HTTP/1.1 only still works', { skip }, async () => {
  const r = await request({ port: sluice.proxyPort, path: '/h1/y' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().httpVersion, '1.1');
});

test('tls_verify (default true) refuses a certificate no CA vouches for: 502', { skip }, async () => {
  const r = await request({ port: sluice.proxyPort, path: '/verify/x' });
  assertErrorBody(r, 502, /certificate|SSL/i);
});

test('upstream connections are kept alive and reused across requests', { skip }, async () => {
  const before = plainSockets;
  for (let i = 0; i < 5; i++) {
    const r = await request({ port: sluice.proxyPort, path: `/plain/${i}` });
    assert.equal(r.status, 200);
  }
  assert.equal(plainSockets - before, 1, 'five sequential requests over one upstream connection');
});

test('an upstream that closes an idle keep-alive connection: no busy loop, the next request reconnects', { skip }, async () => {
  const first = await request({ port: sluice.proxyPort, path: '/short/1' });
  assert.equal(first.status, 200);
  const before = cpuTicks(sluice.pid);
  await new Promise((r) => setTimeout(r, 700)); // the upstream closes the idle connection meanwhile
  const spent = cpuTicks(sluice.pid) - before;
  assert.ok(spent <= 5, `sluice used ${spent} ticks of CPU while idle: a closed idle socket must not spin`);
  const second = await request({ port: sluice.proxyPort, path: '/short/2' });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.json().path, '/2');
  assert.equal(shortSockets, 2, 'a new upstream connection after the old one was closed');
});
