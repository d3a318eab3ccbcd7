// Helpers shared by the TLS listener tests: a throwaway certificate, a daemon with one ssl
// listener, and a bare handshake that reports what was negotiated.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';

import { freePort, startSluice, tempDir } from './harness.mjs';

// A temp dir with a self-signed certificate for 127.0.0.1 (ECDSA P-256, or RSA 2048 with
// { rsa: true }) and an empty kong.yml.
export function tlsFixture(prefix, { rsa = false } = {}) {
  const dir = tempDir(prefix);
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const conf = path.join(dir, 'kong.yml');
  writeFileSync(conf, '_format_version: "3.0"\n');
  const keyArgs = rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync('openssl', ['req', '-x509', ...keyArgs, '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  return { dir, cert, key, conf };
}

// The negotiated protocol and cipher, or the error code.
export function handshake(port, opts) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
      const r = { protocol: s.getProtocol(), cipher: s.getCipher().name };
      s.end();
      resolve(r);
    });
    s.setTimeout(5000, () => { s.destroy(); resolve({ error: 'timeout' }); });
    s.on('error', (e) => resolve({ error: e.code || e.message }));
  });
}

// Runs fn(port, sl) against a one-worker daemon with an ssl listener on fix's certificate.
export async function withTlsSluice(fix, args, fn, { env } = {}) {
  const port = await freePort();
  const sl = await startSluice({
    workers: 1,
    env,
    args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', fix.cert, '--ssl-cert-key', fix.key, ...args],
  });
  try {
    await fn(port, sl);
  } finally {
    await sl.stop();
  }
}
