// Time to first body byte of a streamed reply, over one keep-alive connection,
// requests one after another. Prints "TTFT n=.. p50_us=.. p90_us=.. mean_us=..".
// Usage: node ttft.js URL BODY_FILE N
'use strict';
const http = require('http');
const fs = require('fs');

const [url, bodyFile, nArg] = process.argv.slice(2);
const body = fs.readFileSync(bodyFile);
const n = Number(nArg || 200);
const warmup = 20;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const u = new URL(url);

function once() {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let first = null;
    let text = '';
    const req = http.request(
      {
        agent, host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.on('data', (d) => {
          if (first === null) first = process.hrtime.bigint();
          text += d;
        });
        res.on('end', () => {
          if (res.statusCode !== 200 || !/data:/.test(text)) {
            reject(new Error(`status ${res.statusCode}: ${text.slice(0, 200)}`));
          } else {
            resolve(Number(first - t0) / 1000);
          }
        });
      }
    );
    req.on('error', reject);
    req.end(body);
  });
}

(async () => {
  const samples = [];
  for (let i = 0; i < warmup + n; i++) {
    const us = await once();
    if (i >= warmup) samples.push(us);
  }
  samples.sort((a, b) => a - b);
  const pct = (p) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))];
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  console.log(`TTFT n=${n} p50_us=${pct(50).toFixed(1)} p90_us=${pct(90).toFixed(1)} mean_us=${mean.toFixed(1)}`);
  agent.destroy();
})().catch((e) => {
  console.error(`ttft: ${e.message}`);
  process.exit(1);
});
