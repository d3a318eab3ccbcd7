// Out of file descriptors. accept() then fails with EMFILE and the pending
// connection stays queued, so a level-triggered listener that simply tried
// again would wake the loop at once, forever: a core at 100 % and a log line
// per try (2.5 million lines in 3 s before the fix). sluice rests the
// listener for 100 ms instead, logs one line a second, and serves what
// waited in the backlog once descriptors are free again; the admin listener
// (libevent's evconnlistener) does the same.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, cpuTicks, request, service, sleep, startSluice, waitFor } from './lib/harness.mjs';

const NOFILE = 64;

// Opens n TCP connections and resolves once all are established (the kernel
// completes the handshake into the listen backlog whether or not sluice has
// accepted them).
function openIdle(port, n) {
  const socks = [];
  return Promise.all(
    Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve());
      s.on('error', reject);
      socks.push(s);
    })),
  ).then(() => socks);
}

describe('descriptor exhaustion', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({
      nofile: NOFILE,
      workers: 1,
      config: { services: [service('up', fake.url, [{ name: 'up', paths: ['/up'] }])] },
    });
  });
  after(async () => {
    await sl?.stop();
    await fake?.close();
  });

  test('past the limit: no busy loop, one line a second, and what waited is served afterwards', async () => {
    const mark = sl.logMark();
    const idle = [];
    try {
      await exhausted(mark, idle);
    } finally {
      for (const s of idle) s.destroy();
    }
  });

  async function exhausted(mark, idle) {
    idle.push(...await openIdle(sl.proxyPort, 2 * NOFILE));
    idle.push(...await openIdle(sl.adminPort, 8));
    await sl.waitForLog(/\[w0\] accept: Too many open files/, { from: mark });

    // Two seconds with connections still waiting on both listeners.
    const quiet = sl.logMark();
    const t0 = cpuTicks(sl.pid);
    await sleep(2000);
    const ticks = cpuTicks(sl.pid) - t0;
    assert.ok(ticks < 40, `sluice used ${ticks} clock ticks of CPU in 2 s while out of descriptors`);
    const acceptLines = sl.lines.slice(quiet).filter((l) => /accept/.test(l));
    assert.ok(acceptLines.length <= 6, `${acceptLines.length} accept lines in 2 s:\n${acceptLines.slice(0, 10).join('\n')}`);
    assert.ok(sl.lines.slice(mark).some((l) => /warn \[w0\] accept: Too many open files: not accepting for 100 ms \(\d+ connections open on this worker/.test(l)),
      'the worker says it pauses');
    assert.ok(acceptLines.some((l) => /\[w0\] accept: .*earlier pauses not logged/.test(l)), acceptLines.join('\n'));
    assert.ok(sl.lines.slice(mark).some((l) => /\[main\] admin accept: Too many open files: not accepting for 100 ms/.test(l)),
      'the admin listener paused too');

    // A request made now waits in the backlog, then is served.
    const pending = request({ port: sl.proxyPort, path: '/up/after-exhaustion', timeoutMs: 10000 });
    await sleep(300);
    for (const s of idle.splice(0)) s.destroy();
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    await waitFor(() => fake.requests.some((q) => q.path.endsWith('/after-exhaustion')));
    const st = await sl.status();
    assert.equal(st.workers, 1);
  }

  test('the process is still healthy afterwards: many requests, clean stop', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => request({ port: sl.proxyPort, path: `/up/again-${i}` })));
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
  });
});
