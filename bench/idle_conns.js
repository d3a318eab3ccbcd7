// Memory per idle keep-alive client connection, plain and TLS, of a proxy already running.
//
//   node bench/idle_conns.js PID PORT tls|plain N [PATH]
//
// Opens N connections to 127.0.0.1:PORT, sends one GET PATH on each (so each has been through a
// whole exchange, and a TLS one through its handshake), keeps them open and idle, then prints the
// process's VmRSS (its children's too: nginx's worker) before and after, and the difference per
// connection. Run it against sluice and nginx on the same machine (bench/idle_conns.sh does).
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const [pid, port, mode, nArg, reqPath = '/hello'] = process.argv.slice(2);
const n = Number(nArg);

function rssKiB(p) {
  let total = 0;
  const kids = (() => {
    try {
      return readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  })();
  for (const q of [p, ...kids]) total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${q}/status`, 'utf8'))[1]);
  return total;
}

function open() {
  return new Promise((resolve, reject) => {
    const s = mode === 'tls'
      ? tls.connect({ host: '127.0.0.1', port: Number(port), rejectUnauthorized: false })
      : net.connect(Number(port), '127.0.0.1');
    s.once(mode === 'tls' ? 'secureConnect' : 'connect', () => s.write(`GET ${reqPath} HTTP/1.1\r\nHost: bench\r\n\r\n`));
    let got = '';
    s.on('data', (d) => {
      got += d;
      const m = /content-length: (\d+)\r\n/i.exec(got);
      const head = got.indexOf('\r\n\r\n');
      if (m && head >= 0 && got.length >= head + 4 + Number(m[1])) resolve(s);
    });
    s.on('error', reject);
  });
}

const before = rssKiB(pid);
const socks = [];
for (let i = 0; i < n; i += 50) {
  socks.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, open))));
}
await new Promise((r) => setTimeout(r, 500));
const after = rssKiB(pid);
console.log(`IDLE mode=${mode} n=${n} rss_before_kib=${before} rss_after_kib=${after} per_conn_kib=${((after - before) / n).toFixed(2)}`);
for (const s of socks) s.destroy();
