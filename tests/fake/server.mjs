#!/usr/bin/env node
// The fake upstream and fake LLM providers, in one HTTP server.
//
//   node tests/fake/server.mjs --port 0 --print-port [--host 127.0.0.1] [--no-auth]
//     prints the bound port on stdout's first line, serves until SIGTERM/SIGINT.
//   import { startFake } from './server.mjs'
//     const fake = await startFake({ port: 0 }); ... fake.requests ...; await fake.close();
//
// Every request (but /__requests itself) is recorded: method, path, query,
// headers, body, and whether the connection ended normally ('finished'),
// was closed by the client ('aborted') or was reset by the fake ('reset').
//   GET /__requests     the records as JSON      DELETE /__requests   forget them
// Paths are dispatched to a provider (openai, azure, anthropic, ollama,
// llama2) or to the plain upstream (plain.mjs); fault injection is in emit.mjs.
// A path prefix /noauth skips the provider's API-key check (for
// OpenAI-compatible servers that have none) and, like those servers, the
// OpenAI fake's refusal of request fields api.openai.com does not know.
import http from 'node:http';
import { fileURLToPath } from 'node:url';

import { emit, parseFaults } from './emit.mjs';
import { plain, plainError } from './plain.mjs';
import { anthropic } from './providers/anthropic.mjs';
import { llama2 } from './providers/llama2.mjs';
import { ollama } from './providers/ollama.mjs';
import { azure, openai } from './providers/openai.mjs';
import { sha256Hex } from './text.mjs';

const PROVIDERS = [openai, azure, anthropic, ollama, llama2];
const MAX_RECORDED_TEXT = 1024 * 1024;

function readBody(req) {
  return new Promise((resolve) => {
    const parts = [];
    let complete = false;
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      complete = true;
      resolve({ body: Buffer.concat(parts), complete });
    });
    req.on('close', () => resolve({ body: Buffer.concat(parts), complete }));
    req.on('error', () => resolve({ body: Buffer.concat(parts), complete: false }));
  });
}

// What GET /__requests shows of a record (the body as text when small).
function publicRecord(r) {
  const { bodyBuffer, ...rest } = r;
  return rest;
}

export async function startFake({ port = 0, host = '127.0.0.1', requireAuth = true } = {}) {
  const requests = [];
  const waiters = new Set();
  let nextId = 1;

  const notify = () => {
    for (const w of waiters) w();
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://fake');
    if (url.pathname === '/__requests') {
      if (req.method === 'DELETE') requests.length = 0;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.method === 'DELETE' ? [] : requests.map(publicRecord)));
      return;
    }
    const { body, complete } = await readBody(req);
    let path = url.pathname;
    let auth = requireAuth;
    let compat = false;
    if (path === '/noauth' || path.startsWith('/noauth/')) {
      path = path.slice('/noauth'.length) || '/';
      auth = false;
      compat = true;
    }
    let parsed;
    let jsonError = null;
    if (body.length) {
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch (e) {
        jsonError = e.message;
      }
    }
    const record = {
      id: nextId++,
      method: req.method,
      url: req.url,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { ...req.headers },
      rawHeaders: req.rawHeaders,
      httpVersion: req.httpVersion,
      remotePort: req.socket.remotePort, // which upstream connection carried it
      body: body.length <= MAX_RECORDED_TEXT ? body.toString('utf8') : null,
      bodyLength: body.length,
      bodySha256: sha256Hex(body),
      bodyComplete: complete,
      json: parsed === undefined ? null : parsed,
      receivedAt: Date.now(),
      state: 'open',
      closedAt: null,
      bytesFlushed: 0, // body bytes written so far (live)
    };
    Object.defineProperty(record, 'bodyBuffer', { value: body, enumerable: false });
    requests.push(record);
    const finish = () => {
      if (record.state !== 'open') return;
      record.state = res.fakeReset ? 'reset' : res.writableFinished ? 'finished' : 'aborted';
      record.closedAt = Date.now();
      notify();
    };
    res.fakeRecord = record;
    res.on('close', finish);
    notify();
    if (!complete) {
      finish();
      return;
    }

    const ctx = {
      req, method: req.method, url: req.url, path, query: url.searchParams, headers: req.headers,
      rawHeaders: req.rawHeaders, httpVersion: req.httpVersion, body, json: parsed, jsonError,
      requireAuth: auth, compat, socket: req.socket, remoteAddress: req.socket.remoteAddress,
      faults: parseFaults(req, url.searchParams),
    };
    const provider = PROVIDERS.find((p) => p.match(path));
    let plan;
    try {
      if (ctx.faults.status !== null) plan = (provider ? provider.error : plainError)(ctx.faults.status);
      else plan = provider ? provider.handle(ctx) : plain(ctx);
    } catch (e) {
      plan = (provider ? provider.error : plainError)(500, `fake server bug: ${e.stack}`);
    }
    if (plan) await emit(req, res, plan, ctx.faults);
  });
  server.keepAliveTimeout = 30000;
  server.headersTimeout = 60000;
  server.requestTimeout = 0;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = server.address().port;

  return {
    port: bound,
    host,
    url: `http://${host}:${bound}`,
    server,
    requests,
    clearRequests() {
      requests.length = 0;
    },
    // Resolves with the first record matching pred, waiting up to timeoutMs.
    waitFor(pred, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const r = requests.find(pred);
          if (r) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(r);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`fake upstream: no matching request within ${timeoutMs} ms (have ${requests.length}: ${requests.map((r) => `${r.method} ${r.url} ${r.state}`).join(', ')})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function main(argv) {
  let port = 0;
  let host = '127.0.0.1';
  let printPort = false;
  let requireAuth = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') port = Number(argv[++i]);
    else if (a === '--host') host = argv[++i];
    else if (a === '--print-port') printPort = true;
    else if (a === '--no-auth') requireAuth = false;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: server.mjs [--port N] [--host ADDR] [--print-port] [--no-auth]\n');
      return;
    } else {
      process.stderr.write(`server.mjs: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  const fake = await startFake({ port, host, requireAuth });
  if (printPort) process.stdout.write(`${fake.port}\n`);
  else process.stderr.write(`fake upstream listening on ${fake.url}\n`);
  const stop = async () => {
    await fake.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  });
}
