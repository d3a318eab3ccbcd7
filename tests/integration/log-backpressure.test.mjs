// A stderr that does not keep up (journald busy, a pipe nobody reads) must
// not stop the proxy: the event loops hand their lines to a writer thread
// (src/log.c), which may block; past 4 MiB waiting, lines are dropped,
// counted, and the count is logged once stderr drains. Before, each worker
// wrote its access lines itself and froze as soon as the pipe was full.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startFake } from '../fake/server.mjs';
import { binaryMissing, request, service, startSluice } from './lib/harness.mjs';

const LONG = 'q'.repeat(8000); // each access line carries the ~8 KB URI
const REQUESTS = 800; // ~6.5 MB of access lines: more than the 4 MiB queue

async function inBatches(n, width, fn) {
  const out = [];
  for (let i = 0; i < n; i += width) {
    out.push(...await Promise.all(Array.from({ length: Math.min(width, n - i) }, (_, k) => fn(i + k))));
  }
  return out;
}

describe('log lines when stderr does not keep up', { skip: binaryMissing() }, () => {
  let fake;
  let sl;
  before(async () => {
    fake = await startFake();
    sl = await startSluice({ workers: 1, config: { services: [service('up', fake.url, [{ name: 'up', paths: ['/up'] }])] } });
  });
  after(async () => {
    sl?.proc.stderr.resume();
    await sl?.stop();
    await fake?.close();
  });

  test('requests are served while nobody reads stderr; the lost lines are counted afterwards', async () => {
    const mark = sl.logMark();
    sl.proc.stderr.pause(); // the pipe (64 KiB) fills after a few lines
    const answers = await inBatches(REQUESTS, 8, (i) => request({ port: sl.proxyPort, path: `/up/${i}?${LONG}`, timeoutMs: 10000 }));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
    assert.ok(fake.requests.length >= REQUESTS, `${fake.requests.length} requests reached the upstream`);

    sl.proc.stderr.resume();
    const line = await sl.waitForLog(/warn \[log\] (\d+) log lines dropped: stderr did not keep up/, { from: mark, timeoutMs: 20000 });
    const lost = Number(/\[log\] (\d+) log lines/.exec(line)[1]);
    // Whole lines only: a cut one would not match up to its last field.
    const kept = sl.lines.slice(mark).filter((l) => /^\S+Z info \[w0\] request_id=[0-9a-f]{32} .* uri="\/up\/\d+\?q{8000}" status=200 .* upstream_latency_ms=[0-9.]+$/.test(l));
    // Every request has its line or is in the count; kept lines are whole.
    assert.ok(lost > 0 && lost < REQUESTS, `lost ${lost}`);
    assert.ok(kept.length + lost >= REQUESTS, `${kept.length} kept + ${lost} lost < ${REQUESTS}`);

    // And logging goes on normally afterwards.
    const after = sl.logMark();
    const r = await request({ port: sl.proxyPort, path: '/up/after' });
    assert.equal(r.status, 200);
    await sl.waitForLog(/uri="\/up\/after" status=200/, { from: after });
  });
});
