// The TLS documentation taken literally: README.md (flags table, "TLS:", "Known limits"),
// docs/configuration.md (routes snis/protocols, certificates and snis, ca_certificates, services'
// TLS fields, YAML tags), conf/sluice.service's commented TLS lines and `sluice -h`, each sentence
// run against the real binary. The YAML examples are read out of the docs themselves.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, freePort, listenLocal, REPO, request, runSluice, SLUICE_BIN, sleep, startSluice, tempDir } from './lib/harness.mjs';

const skip = binaryMissing();
const README = readFileSync(path.join(REPO, 'README.md'), 'utf8');
const CONFIG_MD = readFileSync(path.join(REPO, 'docs/configuration.md'), 'utf8');
const UNIT = readFileSync(path.join(REPO, 'conf/sluice.service'), 'utf8');

// --- a small PKI ---------------------------------------------------------------

const DIR = skip ? null : tempDir('sluice-tls-docs-');
const openssl = (args, cwd = DIR) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

function newCert(name, { cn = name, type = 'rsa', issuer, ca = false, san = [cn], keyFormat } = {}) {
  const key = path.join(DIR, `${name}.key`);
  const cert = path.join(DIR, `${name}.pem`);
  if (type === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
  else openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  if (keyFormat === 'traditional') {
    openssl(['pkey', '-in', key, '-traditional', '-out', `${key}.trad`]);
    copyFileSync(`${key}.trad`, key);
  }
  const ext = path.join(DIR, `${name}.ext`);
  writeFileSync(ext, ca ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n'
    : `basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${san.map((s) => (/^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',')}\n`);
  const csr = path.join(DIR, `${name}.csr`);
  openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`]);
  const signer = issuer ? ['-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial', `${Date.now()}${Math.floor(Math.random() * 1000)}`] : ['-signkey', key];
  openssl(['x509', '-req', '-in', csr, ...signer, '-days', '2', '-out', cert, '-extfile', ext]);
  return { name, cn, key, cert, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

const pki = {};
if (!skip) {
  pki.root = newCert('root', { cn: 'docs-root', ca: true });
  pki.inter = newCert('inter', { cn: 'docs-intermediate', ca: true, issuer: pki.root });
  pki.leaf = newCert('leaf', { cn: 'docs-leaf', issuer: pki.inter, san: ['localhost', '127.0.0.1'] });
  // README: "--ssl-cert /etc/sluice/tls/fullchain.pem --ssl-cert-key /etc/sluice/tls/privkey.pem"
  pki.fullchain = path.join(DIR, 'fullchain.pem');
  writeFileSync(pki.fullchain, pki.leaf.certPem + pki.inter.certPem);
  pki.privkey = pki.leaf.key;
  pki.rsa = newCert('rsa', { cn: 'docs-rsa', issuer: pki.root, san: ['localhost'] });
  pki.ec = newCert('ec', { cn: 'docs-ec', type: 'ec', issuer: pki.root, san: ['localhost'] });
  pki.rsaTrad = newCert('rsatrad', { cn: 'docs-rsa-traditional', issuer: pki.root, keyFormat: 'traditional' });
  pki.ecTrad = newCert('ectrad', { cn: 'docs-ec-sec1', type: 'ec', issuer: pki.root, keyFormat: 'traditional' });
  pki.api = newCert('api', { cn: 'api-cert', type: 'ec', san: ['api.example.com', '*.example.com', 'old-api.example.com'] });
  pki.dflt = newCert('dflt', { cn: 'default-cert', type: 'ec', san: ['default.test'] });
  pki.encKey = path.join(DIR, 'encrypted.key');
  openssl(['pkey', '-in', pki.rsa.key, '-aes256', '-passout', 'pass:secret', '-out', pki.encKey]);
  // An expired CA (Kong refuses one: "not be expired"), made with `openssl ca` for its dates.
  const caDir = path.join(DIR, 'oldca');
  mkdirSync(caDir);
  writeFileSync(path.join(caDir, 'index.txt'), '');
  writeFileSync(path.join(caDir, 'serial'), '01\n');
  writeFileSync(path.join(caDir, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n' +
    'default_md=sha256\npolicy=p\nunique_subject=no\nx509_extensions=x\n[p]\ncommonName=supplied\n[x]\nbasicConstraints=critical,CA:TRUE\n');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'old.key', '-out', 'old.csr', '-subj', '/CN=expired-ca'], caDir);
  openssl(['ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'old.key', '-in', 'old.csr', '-out', 'old.pem',
    '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-notext'], caDir);
  pki.expiredCaPem = readFileSync(path.join(caDir, 'old.pem'), 'utf8');
}
process.on('exit', () => DIR && rmSync(DIR, { recursive: true, force: true }));

const EMPTY = skip ? null : path.join(DIR, 'empty.yml');
if (!skip) writeFileSync(EMPTY, '_format_version: "3.0"\n');

// --- clients -------------------------------------------------------------------

// Handshake only: {protocol, cipher, cn, alpn, authorized} or {error}.
function handshake(port, opts = {}) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
      const r = { protocol: s.getProtocol(), cipher: s.getCipher().name, cn: s.getPeerCertificate().subject?.CN,
        alpn: s.alpnProtocol, authorized: s.authorized, authError: s.authorizationError };
      s.end();
      resolve(r);
    });
    s.setTimeout(5000, () => { s.destroy(); resolve({ error: 'timeout' }); });
    s.on('error', (e) => resolve({ error: e.code || e.message }));
  });
}

// One HTTPS request: {status, headers, text, json()}.
function httpsGet({ port, path: p = '/', servername, host = 'localhost', ca, headers = {} }) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      createConnection: () => tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: !!ca, ALPNProtocols: ['h2', 'http/1.1'] }),
      path: p, headers: { host, ...headers }, // no agent: createConnection is used
    }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        resolve({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// An upstream that answers with the request it saw.
async function echoUpstream() {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, headers: req.headers }));
  });
  return { server, ...(await listenLocal(server)) };
}

// Spawns sluice exactly as given (no listener added by the harness), waits for /status.
async function spawnBare(args, env) {
  const proc = spawn(SLUICE_BIN, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((r) => proc.on('close', (code, signal) => r({ code, signal })));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
    const st = await exited;
    clearTimeout(t);
    return st;
  };
  return { proc, stop, stderr: () => stderr, exited };
}

async function waitAdmin(port, bare, ms = 15000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (bare.proc.exitCode !== null) throw new Error(`sluice exited: ${bare.stderr()}`);
    try {
      const r = await request({ port, path: '/status', timeoutMs: 1000 });
      if (r.status === 200) return r.json();
    } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error(`sluice not ready: ${bare.stderr()}`);
}

// The first ```yaml block after a heading of docs/configuration.md.
function docYaml(heading) {
  const at = CONFIG_MD.indexOf(heading);
  assert.ok(at >= 0, `heading ${heading} in docs/configuration.md`);
  const m = /```yaml\n([\s\S]*?)```/.exec(CONFIG_MD.slice(at));
  return m[1];
}

async function checkYaml(text, env = {}) {
  const file = path.join(DIR, `check-${Date.now()}-${Math.random().toString(16).slice(2)}.yml`);
  writeFileSync(file, text);
  const r = await runSluice(['-t', '-c', file], { env });
  return { ...r, out: r.stdout + r.stderr };
}

// --- sluice -h and the README table ---------------------------------------------------

describe('sluice -h and the README flags table', { skip }, () => {
  test('every flag the README names is in sluice -h, every setting -h lists is in the README table, and each env name follows SLUICE_<NAME>', async () => {
    const h = await runSluice(['-h']);
    assert.equal(h.code, 0);
    const helpFlags = new Set([...h.stdout.matchAll(/(?:^|[\s,])(--?[a-zA-Z][a-z-]*)/gm)].map((m) => m[1]));
    const table = README.slice(README.indexOf('| flag | environment | default |'), README.indexOf('\nTLS:'));
    const rows = table.split('\n').filter((l) => l.startsWith('| `-')).map((l) => l.split(/(?<!\\)\|/).map((c) => c.trim()))
      .map((c) => ({ flag: /`(--?[a-z][a-z-]*)/.exec(c[1])[1], env: /`(SLUICE_[A-Z_]+)`/.exec(c[2])?.[1] }));
    assert.ok(rows.length >= 14, `README table rows: ${rows.length}`);
    const running = README.slice(README.indexOf('## Running it'), README.indexOf('| flag |'));
    const readmeFlags = new Set([...rows.map((r) => r.flag), ...[...running.matchAll(/sluice ((?:-[a-z] ?)+)/g)].flatMap((m) => m[1].trim().split(/\s+/))]);
    const missingInHelp = [...readmeFlags].filter((f) => !helpFlags.has(f));
    assert.deepEqual(missingInHelp, [], `README flags sluice -h does not list\n${h.stdout}`);
    // Settings: -h's long options that take a value (everything but --test/--version/--help).
    const helpSettings = [...h.stdout.matchAll(/^\s+(?:-[a-zA-Z], )?(--[a-z-]+) [A-Z]/gm)].map((m) => m[1]);
    const longOf = { '-c': '--config' };
    const tableLong = new Set(rows.map((r) => longOf[r.flag] ?? r.flag));
    assert.deepEqual(helpSettings.filter((f) => !tableLong.has(f)), [], 'settings of sluice -h missing from the README table');
    for (const r of rows) {
      const long = longOf[r.flag] ?? r.flag;
      assert.equal(r.env, `SLUICE_${long.slice(2).toUpperCase().replace(/-/g, '_')}`, `env name of ${r.flag}`);
    }
  });

  test('the TLS settings read from the environment alone (SLUICE_SSL_CERT/_KEY with two files, SLUICE_SSL_PROTOCOLS, SLUICE_SSL_CIPHERS)', async () => {
    const port = await freePort();
    const sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`],
      env: {
        SLUICE_SSL_CERT: `${pki.rsa.cert},${pki.ec.cert}`,
        SLUICE_SSL_CERT_KEY: `${pki.rsa.key},${pki.ec.key}`,
        SLUICE_SSL_PROTOCOLS: 'TLSv1.2',
        SLUICE_SSL_CIPHERS: 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384',
      },
    });
    try {
      const ec = await handshake(port, { ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384', maxVersion: 'TLSv1.2' });
      assert.deepEqual([ec.cn, ec.cipher], ['docs-ec', 'ECDHE-ECDSA-AES256-GCM-SHA384']);
      const rsa = await handshake(port, { ciphers: 'ECDHE-RSA-AES256-GCM-SHA384', maxVersion: 'TLSv1.2' });
      assert.deepEqual([rsa.cn, rsa.cipher], ['docs-rsa', 'ECDHE-RSA-AES256-GCM-SHA384']);
      assert.ok((await handshake(port, { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' })).error, 'SLUICE_SSL_CIPHERS replaced the list');
      assert.ok((await handshake(port, { minVersion: 'TLSv1.3' })).error, 'SLUICE_SSL_PROTOCOLS=TLSv1.2 refuses TLS 1.3');
    } finally {
      await sl.stop();
    }
  });

  test('the README default written out ("--ssl-protocols \'TLSv1.2 TLSv1.3\'", Kong\'s space-separated form) is accepted; Kong\'s listen flags http2 and proxy_protocol are refused naming the flag', async () => {
    const base = ['-t', '-c', EMPTY, '--ssl-cert', pki.rsa.cert, '--ssl-cert-key', pki.rsa.key];
    let r = await runSluice([...base, '--ssl-protocols', 'TLSv1.2 TLSv1.3', '--proxy-listen', '127.0.0.1:1 ssl']);
    assert.equal(r.code, 0, r.stderr);
    for (const flag of ['http2', 'proxy_protocol']) {
      r = await runSluice([...base, '--proxy-listen', `127.0.0.1:1 ${flag} ssl`]);
      assert.notEqual(r.code, 0, `${flag}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${flag}: \\S`), `${flag} named with a reason`);
    }
  });
});

// --- README "TLS:" ----------------------------------------------------------------

describe('README "TLS:" paragraph, as written', { skip }, () => {
  let sl, up, tlsPort;
  before(async () => {
    up = await echoUpstream();
    tlsPort = await freePort();
    // --proxy-listen '0.0.0.0:8443 ssl' --ssl-cert .../fullchain.pem --ssl-cert-key .../privkey.pem, beside plain ones
    sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${tlsPort} ssl`, '--ssl-cert', pki.fullchain, '--ssl-cert-key', pki.privkey],
      config: {
        services: [{ name: 'up', url: `http://127.0.0.1:${up.port}`, routes: [
          { name: 'any', paths: ['/any'] },
          { name: 'secure', paths: ['/secure'], protocols: ['https'] },
          { name: 'redir', paths: ['/redir'], protocols: ['https'], https_redirect_status_code: 308 },
        ] }],
      },
    });
  });
  after(async () => {
    await sl?.stop();
    up?.server.close();
  });

  test('fullchain.pem (leaf, then its chain): a client trusting only the root verifies; TLS 1.3 and 1.2; HTTP/1.1 chosen by ALPN', async () => {
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2']) {
      const r = await handshake(tlsPort, { ca: pki.root.certPem, rejectUnauthorized: true, servername: 'localhost', maxVersion, ALPNProtocols: ['h2', 'http/1.1'] });
      assert.equal(r.error, undefined, `${maxVersion}: ${r.error}`);
      assert.deepEqual([r.protocol, r.cn, r.authorized, r.alpn], [maxVersion, 'docs-leaf', true, 'http/1.1']);
    }
  });

  test('requests over TLS go upstream with X-Forwarded-Proto: https; plain ones with http', async () => {
    const t = await httpsGet({ port: tlsPort, path: '/any', ca: pki.root.certPem, servername: 'localhost' });
    assert.equal(t.status, 200);
    assert.equal(t.json().headers['x-forwarded-proto'], 'https');
    const p = await request({ port: sl.proxyPort, path: '/any' });
    assert.equal(p.json().headers['x-forwarded-proto'], 'http');
  });

  test('protocols: [https]: served over TLS; plain HTTP gets 426, or the route\'s https_redirect_status_code (308, Location https://host/path?query)', async () => {
    assert.equal((await httpsGet({ port: tlsPort, path: '/secure', ca: pki.root.certPem, servername: 'localhost' })).status, 200);
    const p = await request({ port: sl.proxyPort, path: '/secure' });
    assert.equal(p.status, 426, p.text);
    const r = await request({ port: sl.proxyPort, path: '/redir/x?a=1&b=2', headers: { host: 'api.example.com' } });
    assert.equal(r.status, 308, r.text);
    assert.equal(r.headers.location, 'https://api.example.com/redir/x?a=1&b=2');
  });

  test('https_redirect_status_code is 426, 301, 302, 307 or 308: 303 is a load error', async () => {
    const yml = (code) => `_format_version: "3.0"\nservices:\n- name: s\n  url: http://127.0.0.1:1\n  routes:\n  - {name: r, paths: [/], protocols: [https], https_redirect_status_code: ${code}}\n`;
    for (const ok of [426, 301, 302, 307, 308]) assert.equal((await checkYaml(yml(ok))).code, 0, `${ok}`);
    const bad = await checkYaml(yml(303));
    assert.equal(bad.code, 1);
    assert.match(bad.out, /routes\[0\]\.https_redirect_status_code/);
  });
});

// --- README: certificate files read again on SIGHUP ---------------------------------------

describe('README: "a file that is missing, not PEM, encrypted or not matching its key refuses the whole reload"', { skip }, () => {
  let sl, port, certFile, keyFile;
  const cfg = (route) => ({ services: [{ name: 's', url: 'http://127.0.0.1:1', routes: [{ name: route, paths: [`/${route}`] }] }] });
  before(async () => {
    port = await freePort();
    const d = path.join(DIR, 'reload');
    mkdirSync(d);
    certFile = path.join(d, 'fullchain.pem');
    keyFile = path.join(d, 'privkey.pem');
    copyFileSync(pki.rsa.cert, certFile);
    copyFileSync(pki.rsa.key, keyFile);
    sl = await startSluice({ workers: 1, config: cfg('first'), args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', certFile, '--ssl-cert-key', keyFile] });
  });
  after(async () => {
    await sl?.stop();
  });

  const cases = [
    ['the certificate file missing', () => unlinkSync(certFile), () => certFile],
    ['an encrypted key (a renewal tool that set a passphrase)', () => copyFileSync(pki.encKey, keyFile), () => keyFile],
  ];
  for (const [label, breakIt, named] of cases) {
    test(`${label}: SIGHUP refused as a whole (new kong.yml not applied), the old certificate still served; sluice -t says the same`, async () => {
      copyFileSync(pki.rsa.cert, certFile);
      copyFileSync(pki.rsa.key, keyFile);
      const before = (await sl.status()).config.sha256;
      breakIt();
      sl.writeConfig(cfg(`next${Date.now()}`));
      const mark = sl.logMark();
      sl.signal('SIGHUP');
      const line = await sl.waitForLog(/reload refused/, { from: mark });
      assert.ok(sl.lines.slice(mark).join('\n').includes(named()), `the log names ${named()}:\n${sl.lines.slice(mark).join('\n')} (${line})`);
      assert.equal((await sl.status()).config.sha256, before, 'the old kong.yml is kept');
      assert.equal((await handshake(port)).cn, 'docs-rsa');
      const t = await runSluice(['-t', '-c', sl.configPath, '--ssl-cert', certFile, '--ssl-cert-key', keyFile]);
      assert.equal(t.code, 1, t.stderr);
      assert.ok(t.stderr.includes(named()), t.stderr);
    });
  }

  test('renewed files + SIGHUP: new connections get the new certificate, an open one keeps its own and is served', async () => {
    copyFileSync(pki.rsa.cert, certFile);
    copyFileSync(pki.rsa.key, keyFile);
    await sl.reload(cfg(`again${Date.now()}`));
    const old = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise((r, j) => { old.once('secureConnect', r); old.once('error', j); });
    assert.equal(old.getPeerCertificate().subject.CN, 'docs-rsa');
    copyFileSync(pki.ec.cert, certFile);
    copyFileSync(pki.ec.key, keyFile);
    await sl.reload(cfg(`renewed${Date.now()}`));
    assert.equal((await handshake(port)).cn, 'docs-ec');
    const got = await new Promise((resolve) => {
      let buf = '';
      old.on('data', (d) => { buf += d; if (buf.includes('\r\n\r\n')) resolve(buf); });
      old.on('close', () => resolve(buf));
      old.write('GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    old.destroy();
    assert.match(got, /^HTTP\/1\.1 404 /, 'the connection opened before the renewal still answers');
  });
});

// --- conf/sluice.service: the commented TLS lines -------------------------------------------

// systemd's Environment= value: specifiers resolved first (%d: $CREDENTIALS_DIRECTORY, %%: %),
// then split into words on whitespace, double/single quotes grouping, backslash escapes
// (systemd.exec(5) "Environment=", systemd.unit(5) "Specifiers").
function systemdEnvironment(value, credDir) {
  const v = value.replace(/%[%d]/g, (s) => (s === '%%' ? '%' : credDir));
  const out = {};
  let word = null;
  let quote = null;
  const flush = () => {
    if (word !== null) {
      const eq = word.indexOf('=');
      out[word.slice(0, eq)] = word.slice(eq + 1);
    }
    word = null;
  };
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"') word += v[++i];
      else word += c;
    } else if (/\s/.test(c)) flush();
    else if (c === '"' || c === "'") { quote = c; word ??= ''; }
    else if (c === '\\') word = (word ?? '') + v[++i];
    else word = (word ?? '') + c;
  }
  flush();
  return out;
}

describe('conf/sluice.service: the commented TLS lines, as systemd would pass them', { skip }, () => {
  const lines = UNIT.split('\n').filter((l) => /^#(LoadCredential|Environment)=/.test(l)).map((l) => l.slice(1));
  let credDir, env;
  before(() => {
    credDir = path.join(DIR, 'run', 'credentials', 'sluice.service');
    mkdirSync(credDir, { recursive: true });
    // LoadCredential=NAME:SOURCE copies SOURCE to %d/NAME.
    const sources = { fullchain: pki.fullchain, privkey: pki.privkey };
    for (const l of lines.filter((x) => x.startsWith('LoadCredential='))) {
      const [name, src] = l.slice('LoadCredential='.length).split(':');
      copyFileSync(sources[path.basename(src, '.pem')], path.join(credDir, name));
    }
    env = {};
    for (const l of lines.filter((x) => x.startsWith('Environment='))) Object.assign(env, systemdEnvironment(l.slice('Environment='.length), credDir));
  });

  test('the lines parse as systemd does: one SLUICE_PROXY_LISTEN with its space, the two file variables pointing at the LoadCredential names', () => {
    assert.equal(lines.length, 5, lines.join('\n'));
    assert.deepEqual(Object.keys(env).sort(), ['SLUICE_PROXY_LISTEN', 'SLUICE_SSL_CERT', 'SLUICE_SSL_CERT_KEY',
      'SLUICE_SSL_CIPHER_SUITE', 'SLUICE_SSL_SESSION_TICKETS']);
    assert.equal(env.SLUICE_SSL_CIPHER_SUITE, 'intermediate');
    assert.equal(env.SLUICE_SSL_SESSION_TICKETS, 'off');
    assert.equal(env.SLUICE_PROXY_LISTEN, '0.0.0.0:8000,0.0.0.0:8443 ssl');
    assert.equal(env.SLUICE_SSL_CERT, path.join(credDir, 'tls.crt'));
    assert.equal(env.SLUICE_SSL_CERT_KEY, path.join(credDir, 'tls.key'));
  });

  test('ExecStartPre (sluice -t) with that environment checks the credential files: ok, then exit 1 naming a missing key', async () => {
    let r = await runSluice(['-t', '-c', EMPTY], { env });
    assert.equal(r.code, 0, r.stderr);
    const saved = readFileSync(env.SLUICE_SSL_CERT_KEY);
    unlinkSync(env.SLUICE_SSL_CERT_KEY);
    try {
      r = await runSluice(['-t', '-c', EMPTY], { env });
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.includes(env.SLUICE_SSL_CERT_KEY), r.stderr);
    } finally {
      writeFileSync(env.SLUICE_SSL_CERT_KEY, saved);
    }
  });

  test('ExecStart with that environment (addresses moved to free local ports): a plain and a TLS listener, the credential certificate served', async () => {
    const [p1, p2, admin] = [await freePort(), await freePort(), await freePort()];
    const listen = env.SLUICE_PROXY_LISTEN.replace('0.0.0.0:8000', `127.0.0.1:${p1}`).replace('0.0.0.0:8443', `127.0.0.1:${p2}`);
    assert.match(listen, / ssl$/);
    const bare = await spawnBare(['-c', EMPTY, '--admin-listen', `127.0.0.1:${admin}`, '--workers', '1'],
      { ...process.env, ...env, SLUICE_PROXY_LISTEN: listen });
    try {
      await waitAdmin(admin, bare);
      const r = await handshake(p2, { ca: pki.root.certPem, rejectUnauthorized: true, servername: 'localhost' });
      assert.deepEqual([r.cn, r.authorized], ['docs-leaf', true], JSON.stringify(r));
      const plain = await request({ port: p1, path: '/' });
      assert.equal(plain.status, 404);
    } finally {
      const st = await bare.stop();
      assert.deepEqual(st, { code: 0, signal: null }, bare.stderr());
    }
  });
});

// --- cipher suites ------------------------------------------------------------------------

describe('README: the default cipher list ("ECDHE or DHE with AES-GCM or ChaCha20; no CBC"; "TLS 1.3 suites are OpenSSL\'s")', { skip }, () => {
  let sl, port;
  before(async () => {
    port = await freePort();
    sl = await startSluice({ workers: 1, args: ['--proxy-listen', `127.0.0.1:${port} ssl`,
      '--ssl-cert', `${pki.rsa.cert},${pki.ec.cert}`, '--ssl-cert-key', `${pki.rsa.key},${pki.ec.key}`] });
  });
  after(async () => {
    await sl?.stop();
  });

  test('each ECDHE suite of Mozilla\'s intermediate list is served (RSA and ECDSA), and CBC or RSA key exchange is not', async () => {
    const suites = ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'];
    for (const c of suites) {
      const r = await handshake(port, { ciphers: c, maxVersion: 'TLSv1.2' });
      assert.equal(r.cipher, c, `${c}: ${JSON.stringify(r)}`);
    }
    for (const c of ['AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384']) {
      assert.ok((await handshake(port, { ciphers: c, maxVersion: 'TLSv1.2' })).error, `${c} was served`);
    }
  });

  test('TLS 1.3: OpenSSL\'s three default suites each negotiate', async () => {
    for (const c of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
      const r = await handshake(port, { ciphers: c, minVersion: 'TLSv1.3' });
      assert.deepEqual([r.protocol, r.cipher], ['TLSv1.3', c], JSON.stringify(r));
    }
  });

  test('the DHE suites of the default list (DHE-RSA with AES-GCM or ChaCha20) are served to a DHE-only client, as Kong\'s intermediate does (dhparams ffdhe2048)', async () => {
      for (const c of ['DHE-RSA-AES128-GCM-SHA256', 'DHE-RSA-AES256-GCM-SHA384', 'DHE-RSA-CHACHA20-POLY1305']) {
        const r = await handshake(port, { ciphers: c, maxVersion: 'TLSv1.2' });
        assert.equal(r.cipher, c, `${c}: ${JSON.stringify(r)}`);
      }
    });

  test('a bad --ssl-protocols / --ssl-ciphers is refused by -t even while no listener speaks TLS yet (as Kong, whose nginx always carries ssl_protocols)', async () => {
      let r = await runSluice(['-t', '-c', EMPTY, '--ssl-protocols', 'TLSv2']);
      assert.equal(r.code, 1, `--ssl-protocols TLSv2: ${r.stderr}`);
      assert.match(r.stderr, /--ssl-protocols/);
      r = await runSluice(['-t', '-c', EMPTY], { env: { SLUICE_SSL_CIPHERS: 'NOT-A-CIPHER' } });
      assert.equal(r.code, 1, `SLUICE_SSL_CIPHERS=NOT-A-CIPHER: ${r.stderr}`);
      assert.match(r.stderr, /--ssl-ciphers/);
    });

  test('Kong\'s ssl_cipher_suite names (modern, old, fips) are not settings: --ssl-ciphers refuses them with the reason', async () => {
    for (const name of ['modern', 'old', 'fips', 'intermediate']) {
      const r = await runSluice(['-t', '-c', EMPTY, '--ssl-cert', pki.rsa.cert, '--ssl-cert-key', pki.rsa.key, '--ssl-ciphers', name]);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`--ssl-ciphers '${name}'`));
    }
  });
});

// --- docs/configuration.md "certificates and snis" ---------------------------------------

describe('docs/configuration.md "certificates and snis": the example', { skip }, () => {
  const example = skip ? '' : docYaml('## certificates and snis');
  const vaultEnv = skip ? {} : { API_CERT: pki.api.certPem, API_KEY: pki.api.keyPem };

  test('verbatim, it loads (the top-level sni names the certificate\'s id)', async () => {
    const r = await checkYaml(`_format_version: "3.0"\n${example}`, vaultEnv);
    assert.equal(r.code, 0, r.out);
  });

  describe('as written, served', () => {
    let sl, port;
    before(async () => {
      port = await freePort();
      sl = await startSluice({ workers: 1, env: vaultEnv, config: `_format_version: "3.0"\n${example}`,
        args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.dflt.cert, '--ssl-cert-key', pki.dflt.key] });
    });
    after(async () => {
      await sl?.stop();
    });

    test('api.example.com, old-api.example.com (top-level snis) and a.example.com get it; a.b.example.com and other names get --ssl-cert', async () => {
      for (const n of ['api.example.com', 'old-api.example.com', 'a.example.com', 'API.Example.COM']) assert.equal((await handshake(port, { servername: n })).cn, 'api-cert', n);
      for (const n of ['a.b.example.com', 'example.com', 'other.test']) assert.equal((await handshake(port, { servername: n })).cn, 'default-cert', n);
      assert.equal((await handshake(port)).cn, 'default-cert', 'no server name');
    });

    test('"PEM, unencrypted; redacted in GET /config": the key is redacted, the certificate shown as written', async () => {
      const r = await request({ port: sl.adminPort, path: '/config' });
      assert.equal(r.status, 200);
      assert.ok(!r.text.includes('PRIVATE KEY'), 'no key in GET /config');
      const cert = r.json().certificates[0];
      assert.equal(cert.key, '<redacted>');
      assert.equal(cert.cert, '{vault://env/API_CERT}', 'the certificate as written in the file');
    });
  });

  test('an encrypted key in kong.yml is refused at load, naming the field', async () => {
    const enc = readFileSync(pki.encKey, 'utf8');
    const r = await checkYaml(`_format_version: "3.0"\ncertificates:\n- cert: "$C"\n  key: "$K"\n  snis: [e.test]\n`, { C: pki.rsa.certPem, K: enc });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /certificates\[0\]\.key/);
  });

  test('keys as OpenSSL and certbot write them load, in kong.yml and as --ssl-cert-key: PKCS#8, traditional RSA, SEC1 EC', async () => {
    assert.match(pki.rsaTrad.keyPem, /BEGIN RSA PRIVATE KEY/);
    assert.match(pki.ecTrad.keyPem, /BEGIN EC PRIVATE KEY/);
    assert.match(pki.rsa.keyPem, /BEGIN PRIVATE KEY/);
    for (const c of [pki.rsa, pki.ec, pki.rsaTrad, pki.ecTrad]) {
      const t = await runSluice(['-t', '-c', EMPTY, '--ssl-cert', c.cert, '--ssl-cert-key', c.key]);
      assert.equal(t.code, 0, `${c.name}: ${t.stderr}`);
      const y = await checkYaml(`_format_version: "3.0"\ncertificates:\n- cert: "$C"\n  key: "$K"\n  snis: [k.test]\n`, { C: c.certPem, K: c.keyPem });
      assert.equal(y.code, 0, `${c.name} in kong.yml: ${y.out}`);
    }
  });

  test('YAML tags (Errors): a PEM as `!!str |` or `! |` loads; `!!binary` is refused at its position, naming certificates[0].cert', async () => {
    const block = (pem) => pem.trim().split('\n').map((l) => `    ${l}`).join('\n');
    const doc = (tag) => `_format_version: "3.0"\ncertificates:\n- cert: ${tag}|\n${block(pki.api.certPem)}\n  key: "$K"\n  snis: [t.test]\n`;
    for (const tag of ['', '!!str ', '! ']) assert.equal((await checkYaml(doc(tag), { K: pki.api.keyPem })).code, 0, `tag '${tag}'`);
    const r = await checkYaml(doc('!!binary '), { K: pki.api.keyPem });
    assert.equal(r.code, 1);
    assert.match(r.out, /:3:\d+: certificates\[0\]\.cert: unsupported YAML tag '!!binary'/);
  });
});

// --- docs/configuration.md "ca_certificates" and the services' TLS fields -----------------

describe('docs/configuration.md "ca_certificates": the example and the fields', { skip }, () => {
  const example = skip ? '' : docYaml('## ca_certificates');
  const vaultEnv = skip ? {} : { INTERNAL_CA_PEM: pki.root.certPem };
  const env = () => ({ ...vaultEnv, VLLM_CLIENT_CERT: pki.rsa.certPem, VLLM_CLIENT_KEY: pki.rsa.keyPem });

  test('verbatim, it loads (client_certificate as {id: ...} or as a plain string; tls_verify_depth: null as decK writes it)', async () => {
    let r = await checkYaml(`_format_version: "3.0"\n${example}`, env());
    assert.equal(r.code, 0, r.out);
    const asString = example.replace(/client_certificate: \{id: c1c2c3c4-d5d6-4e7f-8a9b-0c1d2e3f4a5b\}/, 'client_certificate: c1c2c3c4-d5d6-4e7f-8a9b-0c1d2e3f4a5b\n  tls_verify_depth: null');
    assert.notEqual(asString, example);
    r = await checkYaml(`_format_version: "3.0"\n${asString}`, env());
    assert.equal(r.code, 0, r.out);
  });

  test('cert: an expired CA is refused (Kong\'s check); cert_digest equal to the SHA-256 of the DER loads', async () => {
    let r = await checkYaml('_format_version: "3.0"\nca_certificates:\n- cert: "$X"\n', { X: pki.expiredCaPem });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /ca_certificates\[0\]\.cert: .*expired/i);
    const digest = createHash('sha256').update(new X509Certificate(pki.root.certPem).raw).digest('hex');
    r = await checkYaml(`_format_version: "3.0"\nca_certificates:\n- cert: "$X"\n  cert_digest: ${digest}\n`, { X: pki.root.certPem });
    assert.equal(r.code, 0, r.out);
  });
});

// --- docs/configuration.md "routes": snis ------------------------------------------------------

describe('docs/configuration.md "routes": snis', { skip }, () => {
  let sl, port, up;
  before(async () => {
    up = await echoUpstream();
    port = await freePort();
    sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', pki.dflt.cert, '--ssl-cert-key', pki.dflt.key],
      config: { services: [{ name: 'up', url: `http://127.0.0.1:${up.port}`, routes: [
        { name: 'star', snis: ['*'], paths: ['/s'] },
        { name: 'fallback', paths: ['/s'] },
        { name: 'only-snis', snis: ['only.test'] },
      ] }] },
    });
  });
  after(async () => {
    await sl?.stop();
    up?.server.close();
  });

  test('"`*` alone is any name" (snis + paths beats paths alone); a TLS request without a server name matches no route with snis; a snis-only route loads and serves', async () => {
    const routeOf = async (servername, p) => {
      const mark = sl.logMark();
      const r = await httpsGet({ port, path: p, servername });
      assert.equal(r.status, 200);
      const line = await sl.waitForLog(new RegExp(`uri="${p}"`), { from: mark });
      return /route=(\S+)/.exec(line)?.[1];
    };
    assert.equal(await routeOf('anything.test', '/s/named'), 'star');
    assert.equal(await routeOf('x.y.z', '/s/named2'), 'star');
    assert.equal(await routeOf(undefined, '/s/unnamed'), 'fallback');
    assert.equal(await routeOf('only.test', '/any/path'), 'only-snis');
  });
});
