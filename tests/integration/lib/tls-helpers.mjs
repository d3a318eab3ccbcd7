// Helpers shared by the TLS listener tests: a throwaway certificate, a daemon with one ssl
// listener, and a bare handshake that reports what was negotiated.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';

import { freePort, startSluice, tempDir } from './harness.mjs';

// A self-signed certificate in dir/<name>.pem and its key in dir/<name>.key: ECDSA P-256 or
// RSA 2048 (type 'rsa'), subject CN cn, subjectAltName entries san ('DNS:a.test', 'IP:127.0.0.1').
// Returns the paths (cert, key) and the PEM texts (certText, keyText).
export function selfSigned(dir, name, { cn = name, type = 'ec', san = [] } = {}) {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  const alg = type === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const ext = san.length ? ['-addext', `subjectAltName=${san.join(',')}`] : [];
  execFileSync('openssl', ['req', '-x509', ...alg, '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', `/CN=${cn}`, ...ext], { stdio: 'ignore' });
  return { cert, key, certText: readFileSync(cert, 'utf8'), keyText: readFileSync(key, 'utf8') };
}

// A temp dir with a self-signed certificate for 127.0.0.1 (ECDSA P-256, or RSA 2048 with
// { rsa: true }) and an empty kong.yml.
export function tlsFixture(prefix, { rsa = false } = {}) {
  const dir = tempDir(prefix);
  const conf = path.join(dir, 'kong.yml');
  writeFileSync(conf, '_format_version: "3.0"\n');
  const { cert, key } = selfSigned(dir, 'cert', { cn: '127.0.0.1', type: rsa ? 'rsa' : 'ec' });
  return { dir, cert, key, conf };
}

// A server's plaintext TLS flight read from raw bytes (push each chunk the socket gives): the
// handshake messages ({type, body}) reassembled across records, the first alert's description,
// and whether a ChangeCipherSpec came, after which records are encrypted and left alone.
export function tlsFlightReader() {
  let records = Buffer.alloc(0);
  let handshake = Buffer.alloc(0);
  const flight = {
    messages: [],
    alert: null,
    ccs: false,
    push(data) {
      records = Buffer.concat([records, data]);
      while (records.length >= 5 && records.length >= 5 + records.readUInt16BE(3)) {
        const type = records[0];
        const payload = records.subarray(5, 5 + records.readUInt16BE(3));
        records = records.subarray(5 + payload.length);
        if (type === 0x14) flight.ccs = true;
        if (flight.ccs) continue;
        if (type === 0x15 && flight.alert === null) flight.alert = payload[1];
        if (type === 0x16) handshake = Buffer.concat([handshake, payload]);
      }
      while (handshake.length >= 4 && handshake.length >= 4 + handshake.readUIntBE(1, 3)) {
        const len = handshake.readUIntBE(1, 3);
        flight.messages.push({ type: handshake[0], body: handshake.subarray(4, 4 + len) });
        handshake = handshake.subarray(4 + len);
      }
    },
  };
  return flight;
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
