// systemd's notify protocol (Type=notify): READY=1 once serving, RELOADING=1
// with MONOTONIC_USEC then READY=1 around a reload (also a refused one),
// STOPPING=1 on SIGTERM. A small Python listener stands in for systemd's
// notify socket (an AF_UNIX datagram socket, which Node cannot open).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';

import { binaryMissing, sleep, startSluice, tempDir } from './lib/harness.mjs';

const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data = s.recv(4096).decode()
    print(data.replace("\\n", "|"), flush=True)
`;

function startListener(sockPath) {
  const py = spawn('python3', ['-c', LISTENER, sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages = [];
  const rl = createInterface({ input: py.stdout });
  let ready;
  const listening = new Promise((r) => (ready = r));
  rl.on('line', (l) => (l === 'listening' ? ready() : messages.push(l)));
  return { py, messages, listening };
}

async function waitFor(messages, pred, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const i = messages.findIndex(pred);
    if (i >= 0) return messages[i];
    await sleep(20);
  }
  throw new Error(`no matching notification; got ${JSON.stringify(messages)}`);
}

test('READY, RELOADING (with MONOTONIC_USEC) + READY, STOPPING through NOTIFY_SOCKET', { skip: binaryMissing() }, async () => {
  const sockPath = path.join(tempDir('sluice-notify-'), 'notify.sock');
  const l = startListener(sockPath);
  try {
    await l.listening;
    const config = { services: [{ name: 's', url: 'http://127.0.0.1:9', routes: [{ name: 'r', paths: ['/'] }] }] };
    const sl = await startSluice({ config, env: { NOTIFY_SOCKET: sockPath } });
    await waitFor(l.messages, (m) => m === 'READY=1');

    l.messages.length = 0;
    await sl.reload({ ...config, services: [{ ...config.services[0], routes: [{ name: 'r2', paths: ['/x'] }] }] });
    const reloading = await waitFor(l.messages, (m) => m.startsWith('RELOADING=1'));
    assert.match(reloading, /^RELOADING=1\|MONOTONIC_USEC=\d+$/);
    const usec = Number(reloading.split('=').pop());
    assert.ok(usec > 0);
    await waitFor(l.messages, (m) => m === 'READY=1');
    assert.ok(l.messages.indexOf('READY=1') > l.messages.indexOf(reloading), 'READY=1 after RELOADING=1');

    // A refused reload still ends with READY=1: the old config serves on.
    l.messages.length = 0;
    sl.writeConfig('_format_version: "3.0"\nservices: [oops\n');
    sl.signal('SIGHUP');
    await waitFor(l.messages, (m) => m.startsWith('RELOADING=1'));
    await waitFor(l.messages, (m) => m === 'READY=1');

    l.messages.length = 0;
    await sl.stop();
    await waitFor(l.messages, (m) => m === 'STOPPING=1');
  } finally {
    l.py.kill();
  }
});
