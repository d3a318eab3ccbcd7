// The plain upstream: what the proxy tests need from a backend.
//   /echo (and any unknown path)  JSON of what was received
//   /bytes?n=N                    N deterministic bytes, Content-Length
//   /chunked?n=&size=&delay=      chunked reply, `delay` ms between chunks
//   /status/NNN, /delay?ms=N, /hang, /reset, /garbage, /close
// Bodies that the client cannot see whole carry x-fake-sha256 so tests can
// compare what arrived with what was sent.
import { json } from './emit.mjs';
import { sha256Hex } from './text.mjs';

export function plainError(status, message) {
  return json(status, { message: message || `fake upstream status ${status}` });
}

// Byte i of every generated body: a pattern that catches reordering and loss.
export function patternBytes(n, offset = 0) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = ((i + offset) * 31 + 7) & 255;
  return b;
}

function intParam(q, name, def, max) {
  const v = Number(q.get(name));
  if (q.get(name) === null || !Number.isFinite(v) || v < 0) return def;
  return Math.min(Math.floor(v), max);
}

export function echoBody(ctx) {
  return {
    method: ctx.method,
    url: ctx.url,
    path: ctx.path,
    query: Object.fromEntries(ctx.query),
    headers: ctx.headers,
    rawHeaders: ctx.rawHeaders,
    bodyLength: ctx.body.length,
    bodySha256: sha256Hex(ctx.body),
    body: ctx.body.length <= 65536 ? ctx.body.toString('utf8') : null,
    remoteAddress: ctx.remoteAddress,
    httpVersion: ctx.httpVersion,
  };
}

const MAX_BYTES = 256 * 1024 * 1024;

// Returns a plan, or null when the behaviour took the socket over itself.
export function plain(ctx) {
  const { path, query } = ctx;
  if (path === '/bytes') {
    const body = patternBytes(intParam(query, 'n', 1024, MAX_BYTES));
    return { status: 200, headers: { 'content-type': 'application/octet-stream', 'x-fake-sha256': sha256Hex(body) }, body };
  }
  if (path === '/chunked') {
    const n = intParam(query, 'n', 5, 100000);
    const size = intParam(query, 'size', 16, 16 * 1024 * 1024);
    const frames = [];
    for (let i = 0; i < n; i++) frames.push(patternBytes(size, i * size));
    return {
      status: 200,
      headers: { 'content-type': 'application/octet-stream', 'x-fake-sha256': sha256Hex(Buffer.concat(frames)), 'x-fake-total-bytes': String(n * size) },
      frames,
      frameDelayMs: intParam(query, 'delay', 0, 600000),
    };
  }
  const st = /^\/status\/(\d{3})$/.exec(path);
  if (st) {
    const status = Number(st[1]);
    if (status === 204 || status === 304 || status < 200) return { status, headers: {}, body: '' };
    return json(status, { status });
  }
  if (path === '/delay') {
    ctx.faults.delayMs = intParam(query, 'ms', 1000, 600000);
    return json(200, echoBody(ctx));
  }
  if (path === '/hang') {
    ctx.faults.hang = true;
    return json(200, {});
  }
  if (path === '/reset') {
    // Headers promise 1000 bytes; 100 arrive, then a TCP reset.
    ctx.faults.resetAfterBytes = 100;
    return { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: patternBytes(1000) };
  }
  if (path === '/garbage') {
    ctx.socket.end('\u0000\u0001\u0002 this is not HTTP at all \r\n\r\n');
    return null;
  }
  if (path === '/close') {
    ctx.socket.destroy();
    return null;
  }
  return json(200, echoBody(ctx));
}
