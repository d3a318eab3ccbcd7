// Graceful stop: SIGTERM stops accepting, lets the in-flight request finish
// with its 200, then the process exits 0; SIGINT too; --drain-timeout bounds
// the wait for a request that never ends.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { assertCleanExit, binaryMissing, request, sleep, startSluice } from './lib/harness.mjs';

describe('graceful stop', { skip: binaryMissing() }, () => {
  let fake;
  const cfg = () => ({ services: [{ name: 'up', url: fake.url, routes: [{ name: 'up', paths: ['/up'] }] }] });
  before(async () => {
    fake = await startFake();
  });
  after(() => fake?.close());

  test('SIGTERM drains an in-flight slow request, then exits 0', async () => {
    const sl = await startSluice({ config: cfg() });
    try {
      const t0 = Date.now();
      const slow = request({ port: sl.proxyPort, path: '/up/delay?ms=1500&drain=1', timeoutMs: 15000 });
      await fake.waitFor((r) => r.query.drain === '1', 5000);
      sl.signal('SIGTERM');
      await sleep(300);
      // No longer accepting: a new connection is refused or not answered.
      const late = await request({ port: sl.proxyPort, path: '/up/echo', timeoutMs: 2000 }).then((r) => r.status, (e) => e.code || e.message);
      assert.notEqual(late, 200, 'a request sent after SIGTERM must not be served');
      const r = await slow;
      assert.equal(r.status, 200);
      assert.equal(r.json().query.drain, '1');
      const st = await sl.waitExit(10000);
      assert.ok(Date.now() - t0 >= 1400, 'exited before the in-flight request was done');
      assertCleanExit(st, sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('SIGUSR1 and SIGUSR2 are logged and ignored (their default action would kill without a drain)', async () => {
    const sl = await startSluice({ config: cfg() });
    try {
      for (const sig of ['SIGUSR1', 'SIGUSR2']) {
        const mark = sl.logMark();
        sl.signal(sig);
        await sl.waitForLog(new RegExp(`received ${sig}: ignored`), { from: mark });
      }
      assert.equal((await request({ port: sl.proxyPort, path: '/up/echo' })).status, 200);
      sl.signal('SIGTERM');
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('SIGINT exits 0', async () => {
    const sl = await startSluice({ config: cfg() });
    try {
      assert.equal((await request({ port: sl.proxyPort, path: '/up/echo' })).status, 200);
      sl.signal('SIGINT');
      assertCleanExit(await sl.waitExit(10000), sl.stderr());
    } finally {
      await sl.kill();
    }
  });

  test('SIGTERM and SIGUSR1 sent again and again while stopping: still exit 0, pid file removed (8 stops)', async () => {
    for (let i = 0; i < 8; i++) {
      const pidFile = join(tmpdir(), `sluice-term-${process.pid}-${i}.pid`);
      const sl = await startSluice({ config: cfg(), args: ['--pid-file', pidFile] });
      try {
        assert.equal((await request({ port: sl.proxyPort, path: '/up/echo' })).status, 200);
        // The way an impatient operator or a supervisor loop does it: until the process is gone.
        // SIGUSR1 too (a logrotate's): its default action would kill as well.
        for (let n = 0; sl.exitStatus === undefined; n++) {
          try { process.kill(sl.pid, n % 2 ? 'SIGUSR1' : 'SIGTERM'); } catch { break; }
          await new Promise(setImmediate);
        }
        assertCleanExit(await sl.waitExit(10000), sl.stderr());
        assert.equal(existsSync(pidFile), false, 'the pid file is removed');
      } finally {
        await sl.kill();
        rmSync(pidFile, { force: true });
      }
    }
  });

  test('--drain-timeout bounds the wait for a request that never ends', async () => {
    const sl = await startSluice({ config: cfg(), args: ['--drain-timeout', '1'] });
    try {
      const hung = request({ port: sl.proxyPort, path: '/up/hang?drain_timeout=1', timeoutMs: 15000 }).catch((e) => e);
      await fake.waitFor((r) => r.query.drain_timeout === '1', 5000);
      const t0 = Date.now();
      sl.signal('SIGTERM');
      const st = await sl.waitExit(8000);
      const took = Date.now() - t0;
      assert.ok(took >= 900 && took < 5000, `exit ${took} ms after SIGTERM with --drain-timeout 1`);
      assertCleanExit(st, sl.stderr());
      await hung;
      await fake.waitFor((r) => r.query.drain_timeout === '1' && r.state === 'aborted', 3000);
    } finally {
      await sl.kill();
    }
  });
});
