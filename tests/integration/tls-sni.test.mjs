// Routes matching on the TLS server name (Kong's route `snis`, traditional_compatible router):
// exact names and one '*' at either end, TLS requests only, one more criterion in the precedence.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, freePort, listenLocal, request, startSluice, tempDir } from './lib/harness.mjs';

const skip = binaryMissing();

// Names whatever upstream path it was sent, so the test sees which service the route picked.
function echoUpstream() {
  return http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, proto: req.headers['x-forwarded-proto'] ?? null }));
  });
}

function tlsGet(port, servername, p = '/x') {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: p, servername, rejectUnauthorized: false, agent: false },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(parts).toString() }));
      });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('route snis', { skip }, () => {
  let upstream, sl, tlsPort;
  before(async () => {
    upstream = echoUpstream();
    const { port } = await listenLocal(upstream);
    const dir = tempDir('sluice-sni-');
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    tlsPort = await freePort();
    sl = await startSluice({
      args: ['--proxy-listen', `127.0.0.1:${tlsPort} ssl`, '--ssl-cert', cert, '--ssl-cert-key', key],
      config: {
        _format_version: '3.0',
        services: [
          { name: 'exact', url: `http://127.0.0.1:${port}/exact`,
            routes: [{ name: 'exact', protocols: ['https'], paths: ['/'], snis: ['A.Example.com.'] }] },
          { name: 'suffix', url: `http://127.0.0.1:${port}/suffix`,
            routes: [{ name: 'suffix', protocols: ['https'], paths: ['/'], snis: ['*.wild.test'] }] },
          { name: 'prefix', url: `http://127.0.0.1:${port}/prefix`,
            routes: [{ name: 'prefix', protocols: ['https'], paths: ['/'], snis: ['api.*'] }] },
          // snis alone is enough on an [https] route.
          { name: 'only-sni', url: `http://127.0.0.1:${port}/only-sni`,
            routes: [{ name: 'only-sni', protocols: ['https'], snis: ['bare.test'] }] },
          { name: 'fallback', url: `http://127.0.0.1:${port}/fallback`,
            routes: [{ name: 'fallback', paths: ['/x', '/logged'], strip_path: false }] },
        ],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    upstream?.close();
  });

  test('an exact name matches case-insensitively, the route\'s final dot ignored', async () => {
    for (const name of ['a.example.com', 'A.EXAMPLE.COM']) {
      const r = await tlsGet(tlsPort, name);
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.text), { path: '/exact/x', proto: 'https' }, name);
    }
    const sub = await tlsGet(tlsPort, 'b.a.example.com');
    assert.equal(JSON.parse(sub.text).path, '/fallback/x', 'an exact name is not a suffix');
  });

  test('*.name matches names ending in .name; name.* names starting with name.', async () => {
    assert.equal(JSON.parse((await tlsGet(tlsPort, 'x.wild.test')).text).path, '/suffix/x');
    assert.equal(JSON.parse((await tlsGet(tlsPort, 'deep.x.wild.test')).text).path, '/suffix/x');
    assert.equal(JSON.parse((await tlsGet(tlsPort, 'wild.test')).text).path, '/fallback/x');
    assert.equal(JSON.parse((await tlsGet(tlsPort, 'api.example.org')).text).path, '/prefix/x');
    assert.equal(JSON.parse((await tlsGet(tlsPort, 'apis.example.org')).text).path, '/fallback/x');
  });

  test('a route with snis and no paths takes any path of that name; at equal weight a path route wins', async () => {
    const r = await tlsGet(tlsPort, 'bare.test', '/any/thing');
    assert.equal(JSON.parse(r.text).path, '/only-sni/any/thing');
    // snis alone and a path alone weigh one criterion each: then the longer path wins, as in
    // Kong's priority (match weight, then ... uri length).
    const tie = await tlsGet(tlsPort, 'bare.test', '/x');
    assert.equal(JSON.parse(tie.text).path, '/fallback/x');
  });

  test('a client that sends no server name (connecting by IP) matches no route with snis', async () => {
    // Node sends no SNI for an IP address.
    const r = await tlsGet(tlsPort, undefined);
    assert.equal(JSON.parse(r.text).path, '/fallback/x');
  });

  test('plain HTTP: snis do not apply, the [https] route answers 426 as Kong does', async () => {
    // The exact route (paths "/" + snis) weighs more than the fallback ("/x") and, SNI not
    // being considered for plain HTTP, wins and refuses.
    const r = await request({ port: sl.proxyPort, path: '/x' });
    assert.equal(r.status, 426);
    assert.match(r.text, /Please use HTTPS protocol/);
  });

  test('TLS 1.2: a session made for one name is not resumed under another, so routing follows the new name (RFC 6066 3)', async () => {
    const tls = await import('node:tls');
    const session = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'a.example.com', rejectUnauthorized: false,
        minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, () => {
        s.write('GET /first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      let sess = null;
      s.on('session', (x) => { sess = x; });
      s.on('data', () => {});
      s.on('close', () => (sess ? resolve(sess) : reject(new Error('no session'))));
      s.on('error', reject);
    });
    const again = (servername) => new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername, session, rejectUnauthorized: false,
        minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, () => {
        s.write('GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('end', () => resolve({ reused: s.isSessionReused(), path: /"path":"([^"]*)"/.exec(got)?.[1] }));
      s.on('error', reject);
    });
    const same = await again('a.example.com');
    assert.deepEqual(same, { reused: true, path: '/exact/x' }, 'resumed under its own name, routed by it');
    const other = await again('x.wild.test');
    assert.deepEqual(other, { reused: false, path: '/suffix/x' }, 'not resumed under another name');
  });

  test('the access log names the route the server name chose', async () => {
    const mark = sl.logMark();
    await tlsGet(tlsPort, 'x.wild.test', '/logged');
    const line = await sl.waitForLog(/uri="\/logged"/, { since: mark });
    assert.match(line, /route=suffix/);
  });
});

describe('route snis: config errors', { skip }, () => {
  test('snis on a route that takes plain HTTP, an IP, a port or a misplaced wildcard are load errors', async () => {
    const { runSluice } = await import('./lib/harness.mjs');
    const dir = tempDir('sluice-sni-bad-');
    const file = path.join(dir, 'kong.yml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, [
      '_format_version: "3.0"',
      'services:',
      '- name: s',
      '  url: http://127.0.0.1:9',
      '  routes:',
      '  - {name: a, paths: [/], protocols: [http], snis: [a.test]}',
      '  - {name: b, protocols: [https], snis: [10.0.0.1, "x.test:443", "a.*.test"]}',
      '',
    ].join('\n'));
    const r = await runSluice(['-t', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /routes\[0\]\.snis: 'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'/);
    assert.match(r.stderr, /routes\[1\]\.snis\[0\]: must not be an IP/);
    assert.match(r.stderr, /routes\[1\]\.snis\[1\]: must not have a port/);
    assert.match(r.stderr, /routes\[1\]\.snis\[2\]: wildcard must be leftmost or rightmost character/);
  });
});
