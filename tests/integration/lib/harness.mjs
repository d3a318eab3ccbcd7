// Integration test harness: runs the real build/sluice on free loopback
// ports against a kong.yml written to a temp dir, and gives tests bounded
// HTTP helpers. Every wait has a timeout so a daemon bug fails a test
// instead of hanging the suite.
//
//   const sl = await startSluice({ config: {...} | 'yaml text' });
//   const r = await request({ port: sl.proxyPort, path: '/x' });
//   const { code } = await sl.stop();   // SIGTERM, asserts exit 0 and no sanitizer report
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SLUICE_BIN = process.env.SLUICE_BIN || path.join(REPO, 'build/sluice');
export const HEX32 = /^[0-9a-f]{32}$/;

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export function binaryMissing() {
  return existsSync(SLUICE_BIN) ? false : `sluice binary not found at ${SLUICE_BIN} (build it, or set SLUICE_BIN)`;
}

// The Release build, for what ASan would distort (RSS, timing under load) or to run a test against
// the binary users run. RELEASE_WRAP, as startSluice's wrap, execs it in place of SLUICE_BIN (same
// pid, same arguments).
export const RELEASE_BIN = path.join(REPO, 'build/sluice');
export const releaseMissing = existsSync(RELEASE_BIN) ? false : `Release binary not found at ${RELEASE_BIN}`;
export const RELEASE_WRAP = ['sh', '-c', 'shift; exec "$0" "$@"', RELEASE_BIN];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Listens on a free loopback port: a small upstream a test writes itself.
// Resolves with { url, port, close() } (close also drops keep-alive sockets).
export function listenLocal(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    port: server.address().port,
    close: () => new Promise((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  })));
}

// A raw HTTP/1.1 upstream that records each request line (a body framed by
// Content-Length is skipped) into `lines` and answers 200 "ok". onRequest(sock,
// n), if given, returning false drops the connection instead of answering (n:
// requests already answered on it). Listen with listenLocal(server).
export function requestLineRecorder({ lines = [], onRequest } = {}) {
  const server = net.createServer((s) => {
    let n = 0;
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) break; // the body is still coming
        lines.push(head.slice(0, head.indexOf('\r\n')));
        buf = buf.slice(end + 4 + len);
        if (onRequest && onRequest(s, n) === false) {
          s.destroy();
          return;
        }
        n++;
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
    s.on('error', () => {});
  });
  return { server, lines };
}

// Polls pred every 10 ms: true once it holds, false after ms.
export async function waitFor(pred, ms = 5000) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) return false;
    await sleep(10);
  }
  return true;
}

// A port the kernel just handed out and released: free unless raced.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A port nothing listens on (for connect-refused tests).
export const closedPort = freePort;

const YAML_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function yamlScalar(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return JSON.stringify(v); // empty or nested-in-sequence collections: flow style
  return String(v);
}

function isBlock(v) {
  return v && typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
}

function yamlLines(v, ind) {
  const out = [];
  if (Array.isArray(v)) {
    for (const e of v) {
      if (isBlock(e) && !Array.isArray(e)) {
        const inner = yamlLines(e, ind + '  ');
        inner[0] = ind + '- ' + inner[0].slice(ind.length + 2);
        out.push(...inner);
      } else out.push(`${ind}- ${yamlScalar(e)}`);
    }
  } else {
    for (const [k, val] of Object.entries(v)) {
      const key = YAML_KEY.test(k) ? k : JSON.stringify(k);
      if (isBlock(val)) {
        out.push(`${ind}${key}:`);
        out.push(...yamlLines(val, ind + '  '));
      } else out.push(`${ind}${key}: ${yamlScalar(val)}`);
    }
  }
  return out;
}

// Block-style YAML for a plain object (strings double-quoted, JSON escapes).
export function toYaml(obj) {
  return yamlLines(obj, '').join('\n') + '\n';
}

export function configText(config) {
  return typeof config === 'string' ? config : toYaml({ _format_version: '3.0', ...config });
}

const SANITIZER = /(ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer)/;

// The first sanitizer report lines in a stderr text, or null.
export function sanitizerReport(text) {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => SANITIZER.test(l));
  return i < 0 ? null : lines.slice(i, i + 40).join('\n');
}

// Runs sluice to completion (for -t, -V, -h): {code, signal, stdout, stderr}.
export function runSluice(args, { env = {}, timeoutMs = 15000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(SLUICE_BIN, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`sluice ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(p);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// CPU time (user + system, in clock ticks) a process has used so far.
export function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

export function tempDir(prefix = 'sluice-test-') {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

// Starts sluice and waits until GET /status answers. Options:
//   config      object (top-level kong.yml keys) or YAML text
//   args        extra command-line arguments
//   env         extra environment
//   workers     --workers (default 2)
// nofile: the process's descriptor limit (RLIMIT_NOFILE, soft and hard), set
// by util-linux's prlimit; wrap: any other command prefix that execs sluice
// (same pid), e.g. ['taskset', '-c', '0']. workers: null passes no --workers.
export async function startSluice({ config, args = [], env = {}, workers = 2, readyTimeoutMs = 20000, nofile, wrap = [] } = {}) {
  if (nofile) wrap = ['prlimit', `--nofile=${nofile}:${nofile}`, '--', ...wrap];
  const missing = binaryMissing();
  if (missing) throw new Error(missing);
  const dir = tempDir();
  const configPath = path.join(dir, 'kong.yml');
  writeFileSync(configPath, configText(config ?? { services: [] }));
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const sl = new Sluice({ dir, configPath, proxyPort, adminPort, args, env, workers, wrap });
    try {
      await sl.waitReady(readyTimeoutMs);
      return sl;
    } catch (e) {
      lastError = e;
      await sl.kill();
      // Only a lost race for a port is worth another try.
      if (!/address already in use|EADDRINUSE|bind/i.test(sl.stderr())) break;
    }
  }
  throw lastError;
}

export class Sluice {
  constructor({ dir, configPath, proxyPort, adminPort, args, env, workers, wrap = [] }) {
    Object.assign(this, { dir, configPath, proxyPort, adminPort });
    this.proxyUrl = `http://127.0.0.1:${proxyPort}`;
    this.adminUrl = `http://127.0.0.1:${adminPort}`;
    this.lines = [];
    this.logWaiters = new Set();
    this.argv = ['-c', configPath, '--proxy-listen', `127.0.0.1:${proxyPort}`, '--admin-listen', `127.0.0.1:${adminPort}`,
      ...(workers == null ? [] : ['--workers', String(workers)]), ...args];
    const [cmd, ...argv] = [...wrap, SLUICE_BIN, ...this.argv];
    this.proc = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.proc);
    let partial = '';
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => {
      partial += d;
      const parts = partial.split('\n');
      partial = parts.pop();
      for (const l of parts) this.lines.push(l);
      for (const w of this.logWaiters) w();
      if (process.env.SLUICE_TEST_VERBOSE) process.stderr.write(d);
    });
    this.proc.stdout.resume();
    this.exited = new Promise((resolve) => {
      this.proc.on('close', (code, signal) => {
        if (partial) this.lines.push(partial);
        partial = '';
        live.delete(this.proc);
        this.exitStatus = { code, signal };
        for (const w of this.logWaiters) w();
        resolve(this.exitStatus);
      });
    });
  }

  get pid() {
    return this.proc.pid;
  }

  stderr() {
    return this.lines.join('\n');
  }

  // An index into the log: waitForLog(re, {from: mark}) only looks after it.
  logMark() {
    return this.lines.length;
  }

  // Waits for a stderr line matching re; returns the line.
  waitForLog(re, { from = 0, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.lines.length; i++) {
          if (re.test(this.lines[i])) {
            done();
            return resolve(this.lines[i]);
          }
        }
        if (this.exitStatus) {
          done();
          reject(new Error(`sluice exited (${JSON.stringify(this.exitStatus)}) before logging ${re}; stderr:\n${this.stderr()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no log line matching ${re} within ${timeoutMs} ms; stderr since mark:\n${this.lines.slice(from).join('\n')}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.logWaiters.delete(check);
      };
      this.logWaiters.add(check);
      check();
    });
  }

  async waitReady(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exitStatus) throw new Error(`sluice exited during startup (${JSON.stringify(this.exitStatus)}); stderr:\n${this.stderr()}`);
      try {
        const r = await request({ port: this.adminPort, path: '/status', timeoutMs: 1000 });
        if (r.status === 200) {
          this.lastStatus = r.json();
          return this.lastStatus;
        }
      } catch {
        /* not listening yet */
      }
      await sleep(50);
    }
    throw new Error(`sluice not ready within ${timeoutMs} ms; stderr:\n${this.stderr()}`);
  }

  async status() {
    const r = await request({ port: this.adminPort, path: '/status' });
    assert.equal(r.status, 200, `GET /status: ${r.status} ${r.text}`);
    return r.json();
  }

  signal(sig) {
    this.proc.kill(sig);
  }

  writeConfig(config) {
    writeFileSync(this.configPath, configText(config));
  }

  // Writes the new config, sends SIGHUP and waits until /status shows a new
  // config hash. Returns the new /status.
  async reload(config, { timeoutMs = 10000 } = {}) {
    const before = (await this.status()).config.sha256;
    if (config !== undefined) this.writeConfig(config);
    this.signal('SIGHUP');
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const st = await this.status();
      if (st.config.sha256 !== before) return st;
      await sleep(25);
    }
    throw new Error(`config sha256 still ${before} ${timeoutMs} ms after SIGHUP; stderr:\n${this.stderr()}`);
  }

  waitExit(timeoutMs = 15000) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`sluice did not exit within ${timeoutMs} ms; stderr:\n${this.stderr()}`)), timeoutMs);
    });
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
  }

  // Graceful stop: SIGTERM, then the exit must be 0 with no sanitizer report.
  async stop({ timeoutMs = 15000 } = {}) {
    if (!this.exitStatus) this.signal('SIGTERM');
    let st;
    try {
      st = await this.waitExit(timeoutMs);
    } finally {
      await this.kill();
      rmSync(this.dir, { recursive: true, force: true });
    }
    assertCleanExit(st, this.stderr());
    return st;
  }

  async kill() {
    if (!this.exitStatus) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

export function assertCleanExit(st, stderr) {
  const report = sanitizerReport(stderr);
  assert.equal(report, null, `sanitizer report in sluice's stderr:\n${report}`);
  assert.deepEqual(st, { code: 0, signal: null }, `sluice exit status; stderr tail:\n${stderr.split('\n').slice(-30).join('\n')}`);
}

// One HTTP request on a fresh connection, bounded by timeoutMs.
// Resolves {status, headers, rawHeaders, body (Buffer), text, json()}.
export function request({ port, host = '127.0.0.1', method = 'GET', path: p = '/', headers = {}, body, timeoutMs = 10000, agent = false, setHost } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { host, port, method, path: p, headers: { ...headers }, agent, setHost };
    if (body !== undefined && opts.headers['content-length'] === undefined && opts.headers['transfer-encoding'] === undefined) {
      opts.headers['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request(opts, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        clearTimeout(timer);
        const buf = Buffer.concat(parts);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: buf,
          text: buf.toString('utf8'),
          json() {
            return JSON.parse(buf.toString('utf8'));
          },
        });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      res.on('aborted', () => {
        clearTimeout(timer);
        reject(Object.assign(new Error('response aborted'), { code: 'ECONNRESET', partial: Buffer.concat(parts), status: res.statusCode }));
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${p} timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

// Sends raw bytes on a TCP connection and returns everything read until the
// peer closes (or timeoutMs). For requests Node's client would not send.
export function rawRequest({ port, host = '127.0.0.1', data, timeoutMs = 10000, endAfter } = {}) {
  return new Promise((resolve, reject) => {
    const parts = [];
    const s = net.connect(port, host, () => s.write(data));
    const timer = setTimeout(() => {
      s.destroy();
      if (endAfter && Buffer.concat(parts).includes(endAfter)) resolve(Buffer.concat(parts));
      else reject(new Error(`raw request timed out after ${timeoutMs} ms; got: ${Buffer.concat(parts).toString('latin1').slice(0, 500)}`));
    }, timeoutMs);
    s.on('data', (d) => {
      parts.push(d);
      if (endAfter && Buffer.concat(parts).includes(endAfter)) {
        clearTimeout(timer);
        s.destroy();
        resolve(Buffer.concat(parts));
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      if (parts.length) resolve(Buffer.concat(parts));
      else reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
  });
}

// The 5xx/4xx JSON error the daemon must produce: {"message", "request_id"}.
export function assertErrorBody(r, status, messageRe) {
  assert.equal(r.status, status, `status (body: ${r.text.slice(0, 300)})`);
  assert.match(String(r.headers['content-type']), /application\/json/, 'error content-type');
  const j = r.json();
  assert.equal(typeof j.message, 'string', `message in ${r.text}`);
  if (messageRe) assert.match(j.message, messageRe);
  assert.match(String(j.request_id), HEX32, `request_id in ${r.text}`);
  if (r.headers['x-sluice-request-id'] !== undefined) {
    assert.equal(j.request_id, r.headers['x-sluice-request-id'], 'body request_id = X-Sluice-Request-Id');
  }
  return j;
}

// A service pointing at a fake upstream with one route.
export function service(name, url, routes, extra = {}) {
  return { name, url, ...extra, routes };
}
