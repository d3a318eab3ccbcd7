// A fake Redis server for tests that need Redis to misbehave (slow, wrong
// or no answers, refused AUTH): it speaks RESP on a real socket, records
// every command and lets the test answer each one. Tests of the happy path
// use a real redis-server instead.
import net from 'node:net';

// One RESP command (an array of bulk strings) from the front of buf, or null.
export function parseCommand(buf) {
  let pos = 0;
  const line = () => {
    const end = buf.indexOf('\r\n', pos);
    if (end < 0) return null;
    const s = buf.toString('latin1', pos, end);
    pos = end + 2;
    return s;
  };
  const head = line();
  if (head === null) return null;
  if (head[0] !== '*') throw new Error(`fake redis: unexpected ${head}`);
  const n = Number(head.slice(1));
  const args = [];
  for (let i = 0; i < n; i++) {
    const l = line();
    if (l === null) return null;
    const len = Number(l.slice(1));
    if (buf.length < pos + len + 2) return null;
    args.push(buf.toString('utf8', pos, pos + len));
    pos += len + 2;
  }
  return { args, used: pos };
}

// A reply to the check script: nothing at its limit, every counter at 0.
export const evalOk = (args) => {
  const n = Number(args[2]);
  return `*${n + 1}\r\n` + ':0\r\n'.repeat(n + 1);
};

// handler(args, sock, connIndex, cmdIndex) answers each command: it writes
// on sock itself (now, later or never). Every command is recorded.
export async function startFakeRedis(handler) {
  const commands = [];
  const sockets = new Set();
  let connCount = 0;
  const server = net.createServer((sock) => {
    const connIndex = connCount++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const c = parseCommand(buf);
        if (!c) break;
        buf = buf.subarray(c.used);
        commands.push({ conn: connIndex, args: c.args });
        handler(c.args, sock, connIndex, commands.length - 1);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    commands,
    get connections() {
      return connCount;
    },
    evals: () => commands.filter((c) => c.args[0] === 'EVAL'),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
