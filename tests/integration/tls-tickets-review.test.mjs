// Review of the process-wide session ticket keys (src/tls_tickets.c) and of sessions bound to the
// name and the certificates that served them (src/tls.c, client_hello_cb): keys over time with a
// short --ssl-session-timeout (a ticket sealed at the end of a key's period, one past its life),
// rotation under hundreds of parallel handshakes on four workers with reloads in between (ASan
// and Release), forged and garbled tickets in hand-written ClientHellos and in Node's sessions,
// reloads (unchanged, a rotated RSA or ECDSA half of a pair, an entity's cert_alt, the "*" entry,
// a refused reload), names A / B / none, --ssl-session-tickets off, and whether a retired key is
// really wiped from the process (read from /proc/PID/mem). tls-sessions.test.mjs has the basics;
// nothing here repeats it.
//
//   SLUICE_BIN=/work/main/build-asan/sluice node --test integration/tls-tickets-review.test.mjs
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, openSync, readFileSync, readSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { RELEASE_WRAP, binaryMissing, freePort, releaseMissing, startSluice, tempDir } from './lib/harness.mjs';
import { selfSigned, tlsFlightReader } from './lib/tls-helpers.mjs';

const skip = binaryMissing();

// --- certificates -------------------------------------------------------------------------------

let dir;
const pem = {}; // name -> { cert, key } paths and texts

// A self-signed certificate (CN = name) for 127.0.0.1 and a few test names.
function makeCert(name, type) {
  pem[name] = selfSigned(dir, name, { type, san: ['IP:127.0.0.1', 'DNS:a.test', 'DNS:b.test', 'DNS:c.test'] });
}

// A copy of a pair under new paths: what --ssl-cert points at, so that a test can rotate it.
function copyPair(from, to) {
  const cert = path.join(dir, `${to}.pem`);
  const key = path.join(dir, `${to}.key`);
  copyFileSync(pem[from].cert, cert);
  copyFileSync(pem[from].key, key);
  return { cert, key };
}

const ENTITY_A = '6a1e5b2c-0000-4000-8000-00000000000a';
const ENTITY_STAR = '6a1e5b2c-0000-4000-8000-00000000000f';
const cfg = (certificates, comment = '') => ({ _comment: `${comment} ${Date.now()} ${Math.random()}`, certificates });
const entity = (id, p, snis, alt) => ({
  id, cert: pem[p].certText, key: pem[p].keyText, snis,
  ...(alt ? { cert_alt: pem[alt].certText, key_alt: pem[alt].keyText } : {}),
});

// A daemon with one ssl listener: { sl, port }.
async function tlsDaemon({ args = [], config, workers = 1, wrap } = {}) {
  const port = await freePort();
  const sl = await startSluice({ workers, config, wrap, args: ['--proxy-listen', `127.0.0.1:${port} ssl`, ...args] });
  return { sl, port };
}

// --- Node clients --------------------------------------------------------------------------------

// One handshake; resolves once the session to resume later is known (TLS 1.3 sends it after the
// handshake, TLS 1.2 during it) with { reused, ticket, protocol, cn, session }.
function connect(port, opts = {}) {
  return new Promise((resolve, reject) => {
    let r = null;
    let session;
    let done = false;
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
    const finish = () => {
      if (done) return;
      done = true;
      const ticket = s.getTLSTicket() ?? r.ticket;
      s.destroy();
      resolve({ ...r, ticket, session: session ?? r.session });
    };
    s.on('session', (x) => {
      session = x;
      if (r) finish();
    });
    s.on('secureConnect', () => {
      r = {
        reused: s.isSessionReused(), protocol: s.getProtocol(), cn: s.getPeerCertificate()?.subject?.CN,
        ticket: s.getTLSTicket(), session: s.getProtocol() === 'TLSv1.2' ? s.getSession() : undefined,
      };
      if (session || r.protocol === 'TLSv1.2') finish();
      else setTimeout(finish, 500); // a resumed TLS 1.3 connection may get none
    });
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('timeout')); });
    s.on('error', reject);
  });
}

const V12 = { maxVersion: 'TLSv1.2' };
const V13 = { minVersion: 'TLSv1.3' };
const ECDSA12 = { ...V12, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' };
const RSA12 = { ...V12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' };
const ECDSA13 = { ...V13, sigalgs: 'ecdsa_secp256r1_sha256' };
const RSA13 = { ...V13, sigalgs: 'rsa_pss_rsae_sha256' };
// OpenSSL's ticket (RFC 5077 4's recommended layout): key name (16), IV (16), ciphertext, HMAC (32).
const keyName = (ticket) => ticket.subarray(0, 16).toString('hex');

// --- TLS 1.2 ClientHellos written by hand ---------------------------------------------------------

const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);
const ext = (type, body) => Buffer.concat([u16(type), u16(body.length), body]);

// A TLS 1.2 ClientHello offering `ticket` in a session_ticket extension (RFC 5077 3.2; null: no
// extension), with the extensions a resumption of a Node/OpenSSL session needs (extended master
// secret, RFC 7627 5.3) and the suites OpenSSL would pick. Split into records of 16000 bytes, so a
// huge ticket makes a ClientHello over several records, as a client may send it.
function hello12({ sni = null, ticket = null } = {}) {
  const exts = [];
  if (sni != null) {
    const n = Buffer.from(sni, 'latin1');
    exts.push(ext(0x0000, Buffer.concat([u16(n.length + 3), Buffer.from([0]), u16(n.length), n])));
  }
  exts.push(ext(0x000a, Buffer.concat([u16(4), u16(0x001d), u16(0x0017)]))); // x25519, secp256r1
  exts.push(ext(0x000b, Buffer.from([1, 0])));
  exts.push(ext(0x000d, Buffer.concat([u16(8), u16(0x0403), u16(0x0804), u16(0x0401), u16(0x0503)])));
  exts.push(ext(0x0017, Buffer.alloc(0))); // extended_master_secret
  exts.push(ext(0xff01, Buffer.from([0]))); // renegotiation_info
  if (ticket) exts.push(ext(0x0023, ticket));
  const e = Buffer.concat(exts);
  const suites = [0xc02b, 0xc02c, 0xc02f, 0xc030, 0xcca9, 0xcca8];
  const sessionId = randomBytes(32); // RFC 5077 3.4: how a client tells a resumption
  const body = Buffer.concat([Buffer.from([3, 3]), randomBytes(32), Buffer.from([sessionId.length]), sessionId,
    u16(suites.length * 2), ...suites.map(u16), Buffer.from([1, 0]), u16(e.length), e]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const records = [];
  for (let i = 0; i < hs.length; i += 16000) {
    const c = hs.subarray(i, i + 16000);
    records.push(Buffer.concat([Buffer.from([0x16, 3, 1]), u16(c.length), c]));
  }
  return Buffer.concat(records);
}

// Sends a ClientHello and reads the server's plaintext flight up to ServerHelloDone (a full
// handshake), a ChangeCipherSpec (an abbreviated one: a resumption), an alert or the close.
// { kind: 'full' | 'resumed' | 'alert' | 'closed' | 'timeout', messages: [type], alert,
//   serverHelloExts: [type], newTicket }.
function sendHello(port, bytes) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const flight = tlsFlightReader();
    const finish = (why) => {
      clearTimeout(timer);
      s.destroy();
      const { messages, alert, ccs } = flight;
      const types = messages.map((m) => m.type);
      const sh = messages.find((m) => m.type === 2);
      const nst = messages.find((m) => m.type === 4);
      let kind = why;
      if (alert !== null) kind = 'alert';
      else if (types.includes(11) && types.includes(14)) kind = 'full';
      else if (ccs && types.includes(2) && !types.includes(11)) kind = 'resumed';
      resolve({
        kind, messages: types, alert, serverHelloExts: sh ? serverHelloExts(sh.body) : null,
        newTicket: nst ? nst.body.subarray(6, 6 + nst.body.readUInt16BE(4)) : null,
      });
    };
    const timer = setTimeout(() => finish('timeout'), 4000);
    s.on('error', () => {});
    s.on('close', () => finish('closed'));
    s.on('data', (d) => {
      flight.push(d);
      if (flight.alert !== null || flight.ccs || flight.messages.some((m) => m.type === 14)) finish('done');
    });
  });
}

// The extension types of a TLS 1.2 ServerHello body.
function serverHelloExts(b) {
  let i = 2 + 32;
  i += 1 + b[i]; // session id
  i += 3; // cipher suite, compression
  const out = [];
  if (i + 2 > b.length) return out;
  const end = i + 2 + b.readUInt16BE(i);
  for (i += 2; i + 4 <= end; i += 4 + b.readUInt16BE(i + 2)) out.push(b.readUInt16BE(i));
  return out;
}

// --- the process's memory -------------------------------------------------------------------------

// Whether `needle` is in the static data of the sluice process (its executable's writable
// mappings and the anonymous .bss right after them), where tls_tickets.c's ring lives. null when
// /proc/PID/mem cannot be read here.
function staticDataHas(pid, needle) {
  let exe;
  let maps;
  let fd;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
    maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean).map((l) => {
      const f = l.split(/\s+/);
      const [a, b] = f[0].split('-').map((x) => BigInt(`0x${x}`));
      return { a, b, perms: f[1], file: f[5] ?? '' };
    });
    fd = openSync(`/proc/${pid}/mem`, 'r');
  } catch {
    return null;
  }
  try {
    let found = false;
    let readable = 0;
    for (let i = 0; i < maps.length; i++) {
      const m = maps[i];
      const bss = m.file === '' && i > 0 && maps[i - 1].file === exe && maps[i - 1].b === m.a;
      if (!m.perms.startsWith('rw') || (m.file !== exe && !bss)) continue;
      const len = Number(m.b - m.a);
      const buf = Buffer.alloc(len);
      try {
        readSync(fd, buf, 0, len, m.a);
        readable++;
      } catch {
        continue;
      }
      if (buf.indexOf(needle) >= 0) found = true;
    }
    return readable ? found : null;
  } finally {
    closeSync(fd);
  }
}

// --------------------------------------------------------------------------------------------------

describe('TLS session ticket keys: rotation, reloads, hostile tickets, certificates', { skip }, () => {
  before(() => {
    dir = tempDir('sluice-tls-tickets-');
    makeCert('ec1', 'ec');
    makeCert('ec2', 'ec');
    makeCert('ec3', 'ec');
    makeCert('rsa1', 'rsa');
    makeCert('rsa2', 'rsa');
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  // --- keys over time ---

  test('the last tickets of a key\'s period (TLS 1.2 and 1.3) resume after the rotation, renewed under the next key; past their timeout a full handshake that serves', async () => {
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key, '--ssl-session-timeout', '2s'] });
    try {
      // Tickets every ~100 ms until the key changes: the last ones under the first key were
      // sealed at most that long before its period ended.
      const first = await connect(port, V12);
      let last12 = first;
      let last13 = await connect(port, V13);
      let next;
      const deadline = Date.now() + 4000;
      while (Date.now() < deadline) {
        const t12 = await connect(port, V12);
        if (keyName(t12.ticket) !== keyName(first.ticket)) {
          next = t12;
          break;
        }
        last12 = t12;
        const t13 = await connect(port, { ...V13 });
        if (t13.ticket && keyName(t13.ticket) === keyName(first.ticket)) last13 = t13;
        await sleep(60);
      }
      assert.ok(next, 'the ticket key did not change within two periods of 2 s');
      assert.equal(keyName(last13.ticket), keyName(first.ticket));
      await sleep(1000); // the first key now only opens tickets; last12 is ~1.1 s old (timeout 2 s)
      const r12 = await connect(port, { ...V12, session: last12.session });
      assert.equal(r12.reused, true, 'a TLS 1.2 ticket sealed at the end of its key\'s period did not resume within its timeout');
      assert.ok(r12.ticket, 'no renewed ticket after resuming under the retired key');
      assert.equal(keyName(r12.ticket), keyName(next.ticket), 'the renewed ticket is not under the current key');
      const r13 = await connect(port, { ...V13, session: last13.session });
      assert.equal(r13.reused, true, 'a TLS 1.3 ticket sealed at the end of its key\'s period did not resume within its timeout');
      assert.equal(keyName(r13.ticket), keyName(next.ticket), 'the TLS 1.3 ticket after the resumption is not under the current key');
      // timeout + 1 s: OpenSSL counts a session's age in whole seconds, so only past that is a
      // ticket sure to be expired; the first key is gone too (more than two periods).
      await sleep(2300);
      for (const [v, t] of [['1.2', { ...V12, session: last12.session }], ['1.3', { ...V13, session: last13.session }]]) {
        const r = await connect(port, t);
        assert.deepEqual({ reused: r.reused, cn: r.cn }, { reused: false, cn: 'ec1' }, `TLS ${v}: an expired ticket`);
      }
    } finally {
      await sl.stop();
    }
  });

  for (const [label, wrap] of [['SLUICE_BIN', undefined], ['Release', RELEASE_WRAP]]) {
    test(`four workers, 1 s keys, ~1000 parallel handshakes (fresh and resumed, TLS 1.2 and 1.3) across rotations and two reloads: none fails (${label})`, { skip: wrap && releaseMissing }, async () => {
      const { sl, port } = await tlsDaemon({
        workers: 4, wrap,
        args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key, '--ssl-session-timeout', '1s'],
      });
      try {
        const one = (opts) => connect(port, opts).then((r) => r, (e) => ({ error: e.message }));
        let s12 = [];
        let s13 = [];
        let total = 0;
        let reused = 0;
        const errors = [];
        const keys = new Set();
        for (let round = 0; round < 5; round++) {
          if (round === 2 || round === 4) sl.signal('SIGHUP'); // a reload while handshakes are under way
          const batch = [];
          for (let i = 0; i < 200; i++) {
            const k = i % 4;
            if (k === 0) batch.push(one(V12));
            else if (k === 1) batch.push(one(V13));
            else if (k === 2 && s12.length) batch.push(one({ ...V12, session: s12[i % s12.length] }));
            else if (k === 3 && s13.length) batch.push(one({ ...V13, session: s13[i % s13.length] }));
            else batch.push(one(V12));
          }
          const rs = await Promise.all(batch);
          const n12 = [];
          const n13 = [];
          for (const r of rs) {
            total++;
            if (r.error) {
              errors.push(r.error);
              continue;
            }
            if (r.reused) reused++;
            if (r.ticket) keys.add(keyName(r.ticket));
            if (r.session) (r.protocol === 'TLSv1.2' ? n12 : n13).push(r.session);
          }
          if (n12.length) s12 = n12;
          if (n13.length) s13 = n13;
          await sleep(300);
        }
        assert.deepEqual(errors, [], `${label}: ${errors.length} of ${total} handshakes failed`);
        assert.ok(reused > 100, `${label}: only ${reused} of ${total} handshakes resumed`);
        assert.ok(keys.size >= 2, `${label}: the key never rotated (1 s timeout, ${keys.size} key)`);
        await sl.waitForLog(/config reloaded/);
      } finally {
        await sl.stop(); // exit 0 and no sanitizer report
      }
    });
  }

  // --- hostile tickets ---

  test('forged and garbled TLS 1.2 tickets (random, flipped key name / IV / ciphertext / MAC, truncated, 64 KB): a full handshake each; the genuine one still resumes', async () => {
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key] });
    try {
      const genuine = (await connect(port, V12)).ticket;
      assert.ok(genuine && genuine.length > 64);
      assert.equal((await sendHello(port, hello12({ ticket: genuine }))).kind, 'resumed', 'the genuine ticket (the control)');
      const flip = (i) => {
        const t = Buffer.from(genuine);
        t[i] ^= 0x01;
        return t;
      };
      const forged = {
        random: randomBytes(genuine.length),
        'random short': randomBytes(7),
        'flipped key name': flip(0),
        'flipped IV': flip(16),
        'flipped ciphertext': flip(40),
        'flipped MAC': flip(genuine.length - 1),
        'truncated to the key name': genuine.subarray(0, 16),
        'truncated to name + IV': genuine.subarray(0, 32),
        'truncated by one byte': genuine.subarray(0, genuine.length - 1),
        'one byte more': Buffer.concat([genuine, Buffer.from([0])]),
        'key name + IV, then junk': Buffer.concat([genuine.subarray(0, 32), randomBytes(96)]),
        'the genuine one then 60 KB': Buffer.concat([genuine, randomBytes(60000)]),
        '65000 random bytes': randomBytes(65000),
      };
      for (const [what, ticket] of Object.entries(forged)) {
        const r = await sendHello(port, hello12({ ticket }));
        assert.equal(r.kind, 'full', `${what}: ${JSON.stringify({ messages: r.messages, alert: r.alert })}`);
        assert.ok(r.serverHelloExts.includes(0x0023), `${what}: no new ticket announced in the full handshake`);
      }
      assert.equal((await sendHello(port, hello12({ ticket: genuine }))).kind, 'resumed', 'the genuine ticket after the forgeries');
      assert.equal((await connect(port, V12)).cn, 'ec1');
    } finally {
      await sl.stop(); // no sanitizer report
    }
  });

  test('a TLS 1.3 ticket with a flipped bit (key name, IV, ciphertext, MAC) in the PSK identity: a full handshake, never an error', async () => {
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key] });
    try {
      const t = await connect(port, V13);
      assert.ok(t.session && t.ticket, 'no TLS 1.3 ticket');
      const at = t.session.indexOf(t.ticket);
      assert.ok(at > 0, 'the ticket is not in the session\'s DER');
      assert.equal((await connect(port, { ...V13, session: t.session })).reused, true, 'the genuine session (the control)');
      for (const [what, i] of [['key name', 3], ['IV', 20], ['ciphertext', 60], ['MAC', t.ticket.length - 2]]) {
        const bad = Buffer.from(t.session);
        bad[at + i] ^= 0x80;
        const r = await connect(port, { ...V13, session: bad });
        assert.deepEqual({ protocol: r.protocol, reused: r.reused, cn: r.cn }, { protocol: 'TLSv1.3', reused: false, cn: 'ec1' }, what);
      }
    } finally {
      await sl.stop();
    }
  });

  test('a ticket of another sluice process (same certificate, same settings) gets a full handshake: its keys are its own', async () => {
    const one = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key] });
    const two = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key] });
    try {
      const t12 = await connect(one.port, V12);
      const t13 = await connect(one.port, V13);
      assert.equal((await sendHello(one.port, hello12({ ticket: t12.ticket }))).kind, 'resumed', 'the control');
      assert.equal((await sendHello(two.port, hello12({ ticket: t12.ticket }))).kind, 'full');
      assert.equal((await connect(two.port, { ...V13, session: t13.session })).reused, false);
      assert.notEqual(keyName((await connect(two.port, V12)).ticket), keyName(t12.ticket));
    } finally {
      await one.sl.stop();
      await two.sl.stop();
    }
  });

  // --- reloads ---

  test('an RSA + ECDSA --ssl-cert pair: tickets survive a reload that kept both; rotating only the RSA half stops the ECDSA tickets as well, and the names it serves', async () => {
    const rsa = copyPair('rsa1', 'dflt-rsa');
    const ec = copyPair('ec1', 'dflt-ec');
    const { sl, port } = await tlsDaemon({
      args: ['--ssl-cert', `${rsa.cert},${ec.cert}`, '--ssl-cert-key', `${rsa.key},${ec.key}`],
      config: cfg([entity(ENTITY_A, 'ec2', ['a.test'])]),
    });
    try {
      const kinds = {
        'ECDSA 1.2, no name': ECDSA12, 'RSA 1.2, no name': RSA12, 'ECDSA 1.3, no name': ECDSA13, 'RSA 1.3, no name': RSA13,
        'ECDSA 1.2, c.test (served by --ssl-cert)': { ...ECDSA12, servername: 'c.test' },
        'ECDSA 1.3, c.test (served by --ssl-cert)': { ...ECDSA13, servername: 'c.test' },
        'a.test 1.2 (an entity)': { ...V12, servername: 'a.test' }, 'a.test 1.3 (an entity)': { ...V13, servername: 'a.test' },
      };
      const sessions = {};
      for (const [k, o] of Object.entries(kinds)) {
        const r = await connect(port, o);
        assert.equal(r.cn, k.startsWith('a.test') ? 'ec2' : k.startsWith('RSA') ? 'rsa1' : 'ec1', k);
        sessions[k] = r.session;
      }
      await sl.reload(cfg([entity(ENTITY_A, 'ec2', ['a.test'])], 'unchanged'));
      for (const [k, o] of Object.entries(kinds)) {
        const r = await connect(port, { ...o, session: sessions[k] });
        assert.equal(r.reused, true, `${k}: not resumed after a reload that changed no certificate`);
        if (r.session) sessions[k] = r.session;
      }
      copyFileSync(pem.rsa2.cert, rsa.cert); // the RSA half only
      copyFileSync(pem.rsa2.key, rsa.key);
      await sl.reload(cfg([entity(ENTITY_A, 'ec2', ['a.test'])], 'rsa rotated'));
      for (const [k, o] of Object.entries(kinds)) {
        const r = await connect(port, { ...o, session: sessions[k] });
        // (a resumed TLS 1.2 connection has no peer certificate to show in Node)
        const expect = k.startsWith('a.test') ? { reused: true }
          : { reused: false, cn: k.startsWith('RSA') ? 'rsa2' : 'ec1' };
        assert.deepEqual({ reused: r.reused, ...(r.reused ? {} : { cn: r.cn }) }, expect, `${k} after the RSA half of --ssl-cert was rotated`);
      }
    } finally {
      await sl.stop();
    }
  });

  test('a kong.yml entity with cert_alt: its tickets survive an unrelated change, not one of its cert_alt; a name moved from --ssl-cert to the "*" entry with another certificate', async () => {
    const base = (alt, star) => cfg([entity(ENTITY_A, 'ec2', ['a.test'], alt), ...(star ? [entity(ENTITY_STAR, star, ['*'])] : [])]);
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key], config: base('rsa1') });
    try {
      const kinds = {
        'a.test ECDSA 1.2': { ...ECDSA12, servername: 'a.test' }, 'a.test ECDSA 1.3': { ...ECDSA13, servername: 'a.test' },
        'c.test 1.2': { ...V12, servername: 'c.test' }, 'c.test 1.3': { ...V13, servername: 'c.test' },
        'no name 1.2': V12, 'no name 1.3': V13,
      };
      const sessions = {};
      for (const [k, o] of Object.entries(kinds)) sessions[k] = (await connect(port, o)).session;
      // Unrelated: a "*" entry with the very certificate --ssl-cert has: every ticket resumes
      // (c.test now served by "*", the same certificate).
      await sl.reload(base('rsa1', 'ec1'));
      for (const [k, o] of Object.entries(kinds)) {
        const r = await connect(port, { ...o, session: sessions[k] });
        assert.equal(r.reused, true, `${k}: not resumed after a reload that changed no certificate`);
        if (r.session) sessions[k] = r.session;
      }
      // a.test's cert_alt (RSA) replaced, its ECDSA cert kept; "*" now another certificate.
      await sl.reload(base('rsa2', 'ec3'));
      for (const [k, o] of Object.entries(kinds)) {
        const r = await connect(port, { ...o, session: sessions[k] });
        const expect = k.startsWith('a.test') ? { reused: false, cn: 'ec2' }
          : k.startsWith('c.test') ? { reused: false, cn: 'ec3' } : { reused: true };
        assert.deepEqual({ reused: r.reused, ...(r.reused ? {} : { cn: r.cn }) }, expect, k);
      }
    } finally {
      await sl.stop();
    }
  });

  test('no --ssl-cert: a client without a name is served by the "*" entry; its tickets survive a reload until the "*" certificate changes', async () => {
    const { sl, port } = await tlsDaemon({ config: cfg([entity(ENTITY_STAR, 'ec1', ['*'])]) });
    try {
      const s12 = await connect(port, V12);
      const s13 = await connect(port, V13);
      assert.equal(s12.cn, 'ec1');
      await sl.reload(cfg([entity(ENTITY_STAR, 'ec1', ['*']), entity(ENTITY_A, 'ec2', ['a.test'])]));
      assert.equal((await connect(port, { ...V12, session: s12.session })).reused, true);
      const again = await connect(port, { ...V13, session: s13.session });
      assert.equal(again.reused, true);
      await sl.reload(cfg([entity(ENTITY_STAR, 'ec3', ['*'])]));
      for (const [v, o] of [['1.2', { ...V12, session: s12.session }], ['1.3', { ...V13, session: again.session ?? s13.session }]]) {
        const r = await connect(port, o);
        assert.deepEqual({ reused: r.reused, cn: r.cn }, { reused: false, cn: 'ec3' }, `TLS ${v}`);
      }
    } finally {
      await sl.stop();
    }
  });

  test('a refused reload (the --ssl-cert file no longer a certificate) keeps the old certificate and its tickets; tickets issued after it resume; the file restored, they still do', async () => {
    const p = copyPair('ec1', 'refused');
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', p.cert, '--ssl-cert-key', p.key] });
    try {
      const before12 = await connect(port, V12);
      const before13 = await connect(port, V13);
      writeFileSync(p.cert, '-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n');
      const mark = sl.logMark();
      sl.writeConfig(cfg([], 'refused'));
      sl.signal('SIGHUP');
      await sl.waitForLog(/reload refused/, { from: mark });
      const r12 = await connect(port, { ...V12, session: before12.session });
      const r13 = await connect(port, { ...V13, session: before13.session });
      assert.deepEqual([r12.reused, r13.reused], [true, true], 'after the refused reload');
      const after12 = await connect(port, V12);
      assert.deepEqual([after12.reused, after12.cn], [false, 'ec1'], 'the old certificate is served');
      assert.equal((await connect(port, { ...V12, session: after12.session })).reused, true);
      copyFileSync(pem.ec1.cert, p.cert);
      await sl.reload(cfg([], 'restored'));
      assert.equal((await connect(port, { ...V12, session: before12.session })).reused, true, 'a ticket from before, the same certificate back');
      assert.equal((await connect(port, { ...V12, session: after12.session })).reused, true);
    } finally {
      await sl.stop();
    }
  });

  test('names: a session of a.test never resumes as b.test (one entity serves both) nor without a name, across a reload and a key rotation; A.TEST is a.test', async () => {
    const config = () => cfg([entity(ENTITY_A, 'ec2', ['a.test', 'b.test'])]);
    const { sl, port } = await tlsDaemon({
      args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key, '--ssl-session-timeout', '2s'], config: config(),
    });
    try {
      const A12 = { ...V12, servername: 'a.test' };
      const A13 = { ...V13, servername: 'a.test' };
      const a12 = await connect(port, A12);
      const a13 = await connect(port, A13);
      const c12 = await connect(port, { ...V12, servername: 'c.test' }); // served by --ssl-cert
      const n12 = await connect(port, V12); // no name
      const offers = (ticket, names) => Promise.all(names.map((sni) => sendHello(port, hello12({ sni, ticket })).then((r) => r.kind)));
      assert.deepEqual(await offers(a12.ticket, ['a.test', 'A.TEST', 'b.test', null]), ['resumed', 'resumed', 'full', 'full'], 'a.test\'s ticket');
      assert.deepEqual(await offers(c12.ticket, ['c.test', null, 'a.test']), ['resumed', 'full', 'full'], 'c.test\'s ticket (--ssl-cert)');
      assert.deepEqual(await offers(n12.ticket, [null, 'c.test']), ['resumed', 'full'], 'the no-name ticket');
      assert.equal((await connect(port, { ...V13, servername: 'b.test', session: a13.session })).reused, false, 'TLS 1.3: a.test as b.test');
      assert.equal((await connect(port, { ...V13, session: a13.session })).reused, false, 'TLS 1.3: a.test without a name');
      await sl.reload(config());
      // a.test tickets every ~60 ms until the key changes: the last ones under the old key are
      // young, and that key now only opens tickets.
      let last12 = a12;
      let last13 = a13;
      let next;
      const deadline = Date.now() + 4500;
      while (Date.now() < deadline) {
        const t12 = await connect(port, A12);
        if (keyName(t12.ticket) !== keyName(a12.ticket)) {
          next = t12;
          break;
        }
        last12 = t12;
        const t13 = await connect(port, A13);
        if (t13.ticket && keyName(t13.ticket) === keyName(a12.ticket)) last13 = t13;
        await sleep(60);
      }
      assert.ok(next, 'no rotation');
      assert.deepEqual(await offers(last12.ticket, ['b.test', null, 'c.test']), ['full', 'full', 'full'], 'after a reload and a rotation');
      assert.equal((await connect(port, { ...V13, servername: 'b.test', session: last13.session })).reused, false);
      assert.equal((await connect(port, { ...V13, session: last13.session })).reused, false);
      const r = await sendHello(port, hello12({ sni: 'a.test', ticket: last12.ticket }));
      assert.equal(r.kind, 'resumed', 'a.test\'s ticket under the retired key, as a.test');
      assert.ok(r.newTicket, 'no renewed ticket');
      assert.equal(keyName(r.newTicket), keyName(next.ticket));
      assert.equal((await connect(port, { ...A13, session: last13.session })).reused, true);
    } finally {
      await sl.stop();
    }
  });

  // --- tickets off ---

  test('--ssl-session-tickets off: no ticket announced even to a client that asks (TLS 1.2), TLS 1.3 identities are cache ids, and no TLS 1.3 session outlives a reload', async () => {
    const on = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key] });
    let onTicket;
    try {
      const r = await sendHello(on.port, hello12({ ticket: Buffer.alloc(0) }));
      assert.ok(r.serverHelloExts.includes(0x0023), 'the control: tickets on announce one');
      onTicket = (await connect(on.port, V12)).ticket;
      const t13 = await connect(on.port, V13);
      assert.ok(t13.ticket.length > 100, `the control: a TLS 1.3 ticket of ${t13.ticket.length} bytes with tickets on`);
    } finally {
      await on.sl.stop();
    }
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key, '--ssl-session-tickets', 'off'] });
    try {
      for (const [what, ticket] of [['an empty session_ticket', Buffer.alloc(0)], ['another process\'s ticket', onTicket], ['random bytes', randomBytes(160)]]) {
        const r = await sendHello(port, hello12({ ticket }));
        assert.equal(r.kind, 'full', what);
        assert.equal(r.serverHelloExts.includes(0x0023), false, `${what}: a session_ticket extension in the ServerHello with tickets off`);
      }
      const t13 = await connect(port, V13);
      assert.ok(t13.ticket, 'no TLS 1.3 session');
      assert.equal(t13.ticket.length, 32, 'a TLS 1.3 identity that is not a session id (OpenSSL\'s stateful ticket)');
      assert.equal((await connect(port, { ...V13, session: t13.session })).reused, true, 'from the cache');
      await sl.reload(cfg([], 'tickets off'));
      const r = await connect(port, { ...V13, session: t13.session });
      assert.deepEqual({ protocol: r.protocol, reused: r.reused }, { protocol: 'TLSv1.3', reused: false });
    } finally {
      await sl.stop();
    }
  });

  // --- the keys in memory ---

  // README (--ssl-session-tickets): "a key seals tickets for one period and opens them for one
  // more, then is wiped". Read in the process's static data, where the ring lives: the key's
  // name (the first 16 bytes of each ticket it sealed) stands beside its AES and HMAC keys.
  test('a key is wiped once its two periods are over, with handshakes going on', async () => {
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key, '--ssl-session-timeout', '1s'] });
    try {
      const t = await connect(port, V12);
      const name = Buffer.from(t.ticket.subarray(0, 16));
      const present = staticDataHas(sl.pid, name);
      if (present === null) return; // /proc/PID/mem not readable here
      assert.equal(present, true, 'the control: the current key is found in the static data');
      await sleep(2300); // two periods of 1 s, and a margin
      const later = await connect(port, V12); // a handshake: the ring rotates
      assert.notEqual(keyName(later.ticket), keyName(t.ticket));
      assert.equal((await connect(port, { ...V12, session: t.session })).reused, false, 'the dead key still opens its ticket');
      assert.equal(staticDataHas(sl.pid, name), false, 'the key, dead for 0.3 s, is still in the process\'s memory');
    } finally {
      await sl.stop();
    }
  });

  test('a key is wiped once its two periods are over, on an idle server too', async () => {
    const { sl, port } = await tlsDaemon({ args: ['--ssl-cert', pem.ec1.cert, '--ssl-cert-key', pem.ec1.key, '--ssl-session-timeout', '1s'] });
    try {
      const t = await connect(port, V12);
      const name = Buffer.from(t.ticket.subarray(0, 16));
      const present = staticDataHas(sl.pid, name);
      if (present === null) return;
      assert.equal(present, true, 'the control: the current key is found in the static data');
      await sleep(3300); // three periods, no handshake
      assert.equal(staticDataHas(sl.pid, name), false, 'a key dead for over a second is still in the idle process\'s memory');
    } finally {
      await sl.stop();
    }
  });
});
