// Turns the raw rows of run.sh into the markdown report: medians over rounds,
// every sluice figure next to nginx's (or its own baseline's) from the same run.
// Usage: node report.js RUNS.tsv MEM.tsv TTFT.tsv NOTES.txt MICRO.txt MACHINE VERSIONS
'use strict';
const fs = require('fs');

const [runsFile, memFile, ttftFile, notesFile, microFile, machine, versions] = process.argv.slice(2);
const rows = (f) =>
  fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => l.split(/\t| /));

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toString() : 'n/a');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

// runs[scenario][c][target][round] = {rps, p50, p99, mean, cpu, errors}
const runs = {};
for (const [round, scen, c, target, rps, p50, p99, mean, cpu, sockerr, non2xx] of rows(runsFile)) {
  const r = { rps: +rps, p50: +p50, p99: +p99, mean: +mean, cpu: +cpu, errors: +sockerr + +non2xx };
  (((runs[scen] ||= {})[c] ||= {})[target] ||= {})[round] = r;
}
const get = (s, c, t) => (runs[s] && runs[s][c] && runs[s][c][t]) || {};
const rounds = (s, c, t) => Object.keys(get(s, c, t));
const med = (s, c, t, k) => median(Object.values(get(s, c, t)).map((r) => r[k]));
// Median over rounds of a per-round quantity computed from two targets of the same round.
const pairMed = (s, c, a, b, fn) =>
  median(rounds(s, c, a).filter((r) => get(s, c, b)[r]).map((r) => fn(get(s, c, a)[r], get(s, c, b)[r])));
const errs = (s, c, t) => Object.values(get(s, c, t)).reduce((n, r) => n + r.errors, 0);

const out = [];
out.push(`Run: ${machine}.`, '', `Versions: ${versions}.`, '');
out.push(
  'sluice: `--workers 1 --log-level warn` (no access log); nginx: `worker_processes 1`, `access_log off`, ' +
    '`proxy_http_version 1.1`, upstream `keepalive 64`. Upstream: a second nginx returning fixed bodies. ' +
    'All on 127.0.0.1; wrk -t1 at c=1, -t2 at c=32. Figures are medians over rounds; ratios are taken per ' +
    'round (same minute, same noise) and then the median. CPU µs/req is the proxy\'s on-CPU time ' +
    '(all threads, from /proc/PID/task/*/schedstat) divided by the requests served.',
  ''
);

const label = {
  plain: 'plain GET proxy',
  tls: 'plain GET proxy, client over TLS 1.3 (keep-alive)',
  ai: 'ai-proxy (OpenAI → Anthropic) vs nginx plain POST',
};
if (runs.plain || runs.tls || runs.ai) { // absent with BENCH_ONLY=ttft
  out.push('## Throughput and latency, sluice vs nginx', '');
  out.push(
    '| scenario | c | req/s sluice | req/s nginx | ratio | p50 µs sluice / nginx | p99 µs sluice / nginx | CPU µs/req sluice / nginx | errors |'
  );
  out.push('|---|---|---|---|---|---|---|---|---|');
  for (const s of ['plain', 'tls', 'ai']) {
    if (!runs[s]) continue;
    for (const c of ['1', '32']) {
      if (!runs[s][c]) continue;
      out.push(
        `| ${label[s]} | ${c} | ${f0(med(s, c, 'sluice', 'rps'))} | ${f0(med(s, c, 'nginx', 'rps'))} | ` +
          `**${f2(pairMed(s, c, 'sluice', 'nginx', (a, b) => a.rps / b.rps))}** | ` +
          `${f0(med(s, c, 'sluice', 'p50'))} / ${f0(med(s, c, 'nginx', 'p50'))} | ` +
          `${f0(med(s, c, 'sluice', 'p99'))} / ${f0(med(s, c, 'nginx', 'p99'))} | ` +
          `${f1(med(s, c, 'sluice', 'cpu'))} / ${f1(med(s, c, 'nginx', 'cpu'))} | ` +
          `${errs(s, c, 'sluice')} / ${errs(s, c, 'nginx')} |`
      );
    }
  }
  out.push('');

  out.push('## Latency added over going direct, c=1 (p50 through the proxy − p50 direct, same round)', '');
  out.push('| scenario | direct p50 µs | added by sluice µs | added by nginx µs | ratio sluice/nginx |');
  out.push('|---|---|---|---|---|');
  for (const s of ['plain', 'tls', 'ai']) {
    if (!runs[s] || !runs[s]['1'] || !runs[s]['1'].direct) continue;
    const addS = pairMed(s, '1', 'sluice', 'direct', (a, d) => a.p50 - d.p50);
    const addN = pairMed(s, '1', 'nginx', 'direct', (a, d) => a.p50 - d.p50);
    out.push(
      `| ${label[s]} | ${f0(med(s, '1', 'direct', 'p50'))} | ${f0(addS)} | ${f0(addN)} | **${f2(addS / addN)}** |`
    );
  }
  out.push('');
}

if (runs.prompt) {
  out.push('## Prompt plugins: ai-prompt-guard (10 deny patterns) + ai-prompt-decorator, 4 KB prompt', '');
  out.push('Same body, same sluice, route with the two plugins vs route without them.', '');
  out.push(
    '| c | req/s without / with | ratio | p50 µs without / with | CPU µs/req without / with | CPU µs/req added | p50 µs added | errors |'
  );
  out.push('|---|---|---|---|---|---|---|---|');
  for (const c of ['1', '32']) {
    if (!runs.prompt[c]) continue;
    out.push(
      `| ${c} | ${f0(med('prompt', c, 'base', 'rps'))} / ${f0(med('prompt', c, 'plugins', 'rps'))} | ` +
        `${f2(pairMed('prompt', c, 'plugins', 'base', (a, b) => a.rps / b.rps))} | ` +
        `${f0(med('prompt', c, 'base', 'p50'))} / ${f0(med('prompt', c, 'plugins', 'p50'))} | ` +
        `${f1(med('prompt', c, 'base', 'cpu'))} / ${f1(med('prompt', c, 'plugins', 'cpu'))} | ` +
        `**${f1(pairMed('prompt', c, 'plugins', 'base', (a, b) => a.cpu - b.cpu))}** | ` +
        `${f0(pairMed('prompt', c, 'plugins', 'base', (a, b) => a.p50 - b.p50))} | ` +
        `${errs('prompt', c, 'base')} / ${errs('prompt', c, 'plugins')} |`
    );
  }
  out.push('');
}

const micro = fs.readFileSync(microFile, 'utf8').split('\n');
const microOps = micro.filter((l) => l.startsWith('MICRO_OP\t')).map((l) => l.split('\t'));
if (microOps.length) {
  const head = micro.find((l) => l.startsWith('MICRO ')) || '';
  out.push('## Prompt plugins in process (bench/micro_prompt.c, same 10 patterns and 4 KB prompt)', '');
  out.push(`\`${head.replace(/^MICRO /, '')}\`: median batch, fastest batch and 90th percentile batch, µs per request.`, '');
  out.push('| operation | median µs | min µs | p90 µs |');
  out.push('|---|---|---|---|');
  for (const [, name, medUs, minUs, p90Us] of microOps) {
    const bold = name === 'guard + decorator';
    out.push(`| ${bold ? '**' + name + '**' : name} | ${bold ? '**' + medUs + '**' : medUs} | ${minUs} | ${p90Us} |`);
  }
  out.push('');
}

const ttft = {};
for (const [path, target, p50, p90] of rows(ttftFile)) {
  ((ttft[path] ||= {})[target] ||= []).push({ p50: +p50, p90: +p90 });
}
// kind: 'sse' (Node upstream, frames 2 ms apart) or 'sse-static' (nginx
// serving the whole stream at once: the proxy's own cost, without the Node
// server's wake-up in each sample).
const ttftTable = (kind, title) => {
  const t = ttft[kind];
  if (!t) return;
  out.push(title, '');
  // Added = p50 through the path minus p50 direct in the same round (runs
  // alternate within a round), then the median over rounds, as the ratios.
  out.push('| path | p50 µs | p90 µs | p50 added over direct µs (median of rounds) | added per round µs |');
  out.push('|---|---|---|---|---|');
  const direct = t.direct || [];
  const line = (name, xs) => {
    const p50 = median(xs.map((x) => x.p50));
    const added = xs.map((x, i) => (direct[i] ? x.p50 - direct[i].p50 : NaN)).filter((v) => !Number.isNaN(v));
    const isDirect = name === 'direct';
    out.push(`| ${name} | ${f0(p50)} | ${f0(median(xs.map((x) => x.p90)))} | ${isDirect ? '—' : '**' + f0(median(added)) + '**'} | ${isDirect ? '—' : added.map(f0).join(', ')} |`);
  };
  if (t.direct) line('direct', t.direct);
  if (t.nginx) line('nginx (proxy_buffering off)', t.nginx);
  if (t.sluice) line('sluice passthrough', t.sluice);
  const ai = ttft[kind === 'sse' ? 'ai-sse' : 'ai-sse-static'];
  if (ai && ai.sluice) line('sluice ai-proxy (Anthropic stream → OpenAI chunks)', ai.sluice);
  out.push('');
};
ttftTable('sse', '## Streaming: time to first byte (= first token) of an SSE reply, sequential requests (Node upstream, frames 2 ms apart)');
ttftTable('sse-static', '## Streaming: time to first byte, upstream nginx serving the whole event stream at once (the proxy\'s own cost)');

const mem = {};
for (const [who, phase, kb] of rows(memFile)) ((mem[who] ||= {})[phase] ||= []).push(+kb);
out.push('## Memory (VmRSS; nginx = master + worker)', '');
out.push('| | idle MB | under load (max, c=32) MB | after load MB |');
out.push('|---|---|---|---|');
for (const who of ['sluice', 'nginx']) {
  const m = mem[who] || {};
  const mb = (xs, fn) => (xs && xs.length ? (fn(...xs) / 1024).toFixed(1) : 'n/a');
  out.push(`| ${who} | ${mb(m.idle, Math.max)} | ${mb(m.load, Math.max)} | ${mb(m['after-load'], Math.max)} |`);
}
out.push('');

const notes = fs.readFileSync(notesFile, 'utf8').split('\n').filter(Boolean);
if (notes.length) {
  out.push('## Notes from this run', '');
  for (const n of [...new Set(notes)]) out.push(`- ${n}`);
  out.push('');
}
process.stdout.write(out.join('\n'));
