// Kong's ssl_session_tickets, ssl_session_timeout and ssl_session_cache_size as --ssl-session-*:
// resumption checked with real TLS 1.2 and 1.3 clients against the daemon (a ticket issued or not,
// a session resumed or not, before and after the timeout, and evicted from a small cache).
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, describe, test } from 'node:test';

import { binaryMissing, freePort, runSluice, startSluice } from './lib/harness.mjs';
import { tlsFixture, withTlsSluice } from './lib/tls-helpers.mjs';

const skip = binaryMissing();
let fix, cert, key, conf;

// One handshake; resolves once the session to resume later is known (TLS 1.3 sends it after
// the handshake, in a NewSessionTicket message) with { reused, ticket, session }.
function connect(port, opts = {}) {
  return new Promise((resolve, reject) => {
    let done = false;
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
    const finish = (session) => {
      if (done) return;
      done = true;
      const r = { reused: s.isSessionReused(), ticket: s.getTLSTicket(), protocol: s.getProtocol(), session };
      s.destroy();
      resolve(r);
    };
    s.on('session', (session) => finish(session));
    s.on('secureConnect', () => {
      if (s.getProtocol() === 'TLSv1.2') finish(s.getSession());
      // TLS 1.3: wait for the ticket; a resumed connection may get none.
      else setTimeout(() => finish(undefined), 500);
    });
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('timeout')); });
    s.on('error', reject);
  });
}

const withSluice = (args, fn) => withTlsSluice(fix, args, fn);

const V12 = { maxVersion: 'TLSv1.2' };

describe('--ssl-session-tickets / -timeout / -cache-size (Kong\'s ssl_session_*)', { skip }, () => {
  before(() => {
    fix = tlsFixture('sluice-tls-sessions-');
    ({ cert, key, conf } = fix);
  });

  test('by default: TLS 1.2 gets a ticket and resumes; TLS 1.3 resumes', async () => {
    await withSluice([], async (port) => {
      const first = await connect(port, V12);
      assert.equal(first.reused, false);
      assert.ok(Buffer.isBuffer(first.ticket) && first.ticket.length > 0, 'no TLS 1.2 session ticket by default');
      assert.equal((await connect(port, { ...V12, session: first.session })).reused, true);
      const t13 = await connect(port);
      assert.equal(t13.protocol, 'TLSv1.3');
      assert.ok(t13.session, 'no TLS 1.3 ticket');
      assert.equal((await connect(port, { session: t13.session })).reused, true);
    });
  });

  test('tickets off: no TLS 1.2 ticket, yet both versions resume from the server\'s cache', async () => {
    await withSluice(['--ssl-session-tickets', 'off'], async (port) => {
      const first = await connect(port, V12);
      assert.equal(first.ticket, undefined, 'a TLS 1.2 ticket was issued with tickets off');
      assert.equal((await connect(port, { ...V12, session: first.session })).reused, true);
      const t13 = await connect(port);
      assert.ok(t13.session);
      assert.equal((await connect(port, { session: t13.session })).reused, true);
    });
  });

  test('timeout: a session resumes within it and not after it (TLS 1.2 and 1.3)', async () => {
    await withSluice(['--ssl-session-timeout', '2s'], async (port) => {
      const a12 = await connect(port, V12);
      const a13 = await connect(port);
      assert.equal((await connect(port, { ...V12, session: a12.session })).reused, true);
      assert.equal((await connect(port, { session: a13.session })).reused, true);
      await sleep(3200);
      assert.equal((await connect(port, { ...V12, session: a12.session })).reused, false, 'TLS 1.2 resumed after the timeout');
      assert.equal((await connect(port, { session: a13.session })).reused, false, 'TLS 1.3 resumed after the timeout');
    });
  });

  test('cache size: a small cache forgets its oldest session; the default keeps it', async () => {
    // Tickets off, so that resumption depends on the server's cache alone. 1k holds one session.
    const run = async (extra) => {
      let result;
      await withSluice(['--ssl-session-tickets', 'off', ...extra], async (port) => {
        const oldest = await connect(port, V12);
        let last;
        for (let i = 0; i < 5; i++) last = await connect(port, V12);
        // the last first: a miss on the oldest adds a new session, which in a one-entry cache
        // (1k) would push the last out
        const lastReused = (await connect(port, { ...V12, session: last.session })).reused;
        result = { oldest: (await connect(port, { ...V12, session: oldest.session })).reused, last: lastReused };
      });
      return result;
    };
    assert.deepEqual(await run(['--ssl-session-cache-size', '1k']), { oldest: false, last: true });
    assert.deepEqual(await run([]), { oldest: true, last: true });
  });

  test('a reload: tickets from before it still resume (TLS 1.2 and 1.3), unless it replaced the certificate; a session kept only in the cache (tickets off) gets a full handshake', async () => {
    const reloadAround = async (args, fn) => {
      const port = await freePort();
      const sl = await startSluice({
        workers: 1,
        args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', cert, '--ssl-cert-key', key, ...args],
      });
      try {
        await fn(port, () => sl.reload(`_format_version: "3.0"\n_comment: reloaded ${Date.now()}\n`));
      } finally {
        await sl.stop();
      }
    };
    await reloadAround([], async (port, reload) => {
      const before12 = await connect(port, V12);
      const before13 = await connect(port);
      assert.ok(before12.ticket, 'no TLS 1.2 ticket');
      await reload();
      assert.deepEqual([(await connect(port, { ...V12, session: before12.session })).reused,
        (await connect(port, { session: before13.session })).reused], [true, true],
      'a ticket issued before the reload was not resumed after it');
    });
    // A ticket vouches for the certificate it was made with: once a reload has replaced the
    // --ssl-cert files (a rotation), it gets a full handshake with the new certificate.
    const rot = tlsFixture('sluice-tls-sessions-rot-');
    const again = tlsFixture('sluice-tls-sessions-rot2-');
    const fingerprint = (port, opts) => new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
        const r = { reused: s.isSessionReused(), fp: s.getPeerCertificate().fingerprint256 };
        s.destroy();
        resolve(r);
      });
      s.on('error', reject);
    });
    await withTlsSluice(rot, [], async (port, sl) => {
      const t12 = await connect(port, V12);
      const t13 = await connect(port);
      const old = await fingerprint(port, V12);
      copyFileSync(again.cert, rot.cert);
      copyFileSync(again.key, rot.key);
      await sl.reload(`_format_version: "3.0"\n_comment: rotated ${Date.now()}\n`);
      for (const [v, t] of [['1.2', { ...V12, session: t12.session }], ['1.3', { session: t13.session }]]) {
        const r = await fingerprint(port, t);
        assert.equal(r.reused, false, `TLS ${v}: a ticket made under the old certificate resumed after the rotation`);
        assert.notEqual(r.fp, old.fp, `TLS ${v}: the old certificate is still served`);
      }
    });
    await reloadAround(['--ssl-session-tickets', 'off'], async (port, reload) => {
      const before12 = await connect(port, V12);
      assert.equal((await connect(port, { ...V12, session: before12.session })).reused, true);
      await reload();
      // As the README says: the new context's cache starts empty.
      const after12 = await connect(port, { ...V12, session: before12.session });
      assert.deepEqual([after12.protocol, after12.reused], ['TLSv1.2', false]);
      assert.equal((await connect(port, { ...V12, session: after12.session })).reused, true);
    });
  });

  test('ticket keys rotate every session timeout; a ticket under the retired key resumes within its life and is replaced', async () => {
    const keyName = (t) => t.subarray(0, 16).toString('hex'); // OpenSSL's ticket: key name first
    await withSluice(['--ssl-session-timeout', '3s'], async (port) => {
      const a = await connect(port, V12);
      const b = await connect(port, V12);
      assert.equal(keyName(b.ticket), keyName(a.ticket), 'two tickets a moment apart under different keys');
      // Watch for the rotation instead of guessing when the first period
      // began (start-up under ASan on a busy machine moves it): the last
      // ticket before the key changes was sealed at most one poll earlier.
      const started = Date.now();
      let late = b;
      let next = await connect(port, V12);
      while (keyName(next.ticket) === keyName(a.ticket)) {
        assert.ok(Date.now() - started < 6500, 'the ticket key did not rotate within two session timeouts');
        late = next;
        await sleep(150);
        next = await connect(port, V12);
      }
      // The first key now only opens tickets; late is well within its 3 s life.
      const resumed = await connect(port, { ...V12, session: late.session });
      assert.equal(resumed.reused, true, 'a fresh ticket under the just-retired key was not resumed');
      assert.ok(resumed.ticket, 'no new ticket after resuming under a retired key');
      assert.notEqual(keyName(resumed.ticket), keyName(a.ticket), 'the replacement ticket is still under the retired key');
      assert.equal(keyName(resumed.ticket), keyName(next.ticket), 'the replacement ticket is not under the current key');
      const fresh = await connect(port, V12);
      assert.equal(keyName(fresh.ticket), keyName(resumed.ticket));
    });
  });

  test('nginx\'s time and size syntax; bad values refused naming the flag; the environment', async () => {
    const base = ['-t', '-c', conf, '--ssl-cert', cert, '--ssl-cert-key', key];
    for (const ok of [['--ssl-session-timeout', '1h 30m'], ['--ssl-session-timeout', '300'],
      ['--ssl-session-timeout', '7d'], ['--ssl-session-cache-size', '512k'], ['--ssl-session-cache-size', '1g'],
      ['--ssl-session-tickets', 'on']]) {
      const r = await runSluice([...base, ...ok]);
      assert.equal(r.code, 0, `${ok.join(' ')}: ${r.stderr}`);
    }
    for (const [flag, bad, msg] of [
      ['--ssl-session-timeout', '8d', /--ssl-session-timeout: expected a time between 1s and 604800s/],
      ['--ssl-session-timeout', '500ms', /--ssl-session-timeout: expected a time/],
      ['--ssl-session-timeout', '0', /--ssl-session-timeout: expected a time/],
      ['--ssl-session-timeout', 'soon', /--ssl-session-timeout: expected a time/],
      ['--ssl-session-cache-size', '10x', /--ssl-session-cache-size: expected a size/],
      ['--ssl-session-cache-size', '100', /--ssl-session-cache-size: expected a size between 1k/],
      ['--ssl-session-tickets', 'no', /--ssl-session-tickets: expected on or off, got 'no'/],
    ]) {
      const r = await runSluice([...base, flag, bad]);
      assert.equal(r.code, 2, `${flag} ${bad}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
    const h = await runSluice(['-h']);
    assert.match(h.stdout, /--ssl-session-cache-size SIZE\s+memory for the session cache, ~900 sessions a MB\s+\(default 10m\)/);
    const r = await runSluice(base, { env: { SLUICE_SSL_SESSION_TIMEOUT: 'never' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /SLUICE_SSL_SESSION_TIMEOUT/);
    const port = await freePort();
    const sl = await startSluice({
      workers: 1,
      args: ['--proxy-listen', `127.0.0.1:${port} ssl`, '--ssl-cert', cert, '--ssl-cert-key', key],
      env: { SLUICE_SSL_SESSION_TICKETS: 'off' },
    });
    try {
      assert.equal((await connect(port, V12)).ticket, undefined, 'SLUICE_SSL_SESSION_TICKETS=off issued a ticket');
    } finally {
      await sl.stop();
    }
  });
});
