// Writes a response "plan" to the client while applying the fault injection
// the request asked for. Every behaviour (plain upstream or provider) builds
// a plan; the faults are applied here, in one place, the same way for all:
//
//   plan = { status, headers, body }            one body, Content-Length
//        | { status, headers, frames, frameDelayMs }  chunked, frame by frame
//
// Faults (request header, or query parameter with _ instead of -):
//   x-fake-delay-ms: N          wait N ms before the response headers
//   x-fake-hang: 1              never answer
//   x-fake-close: 1             close the connection without answering
//   x-fake-garbage: 1           a 200 whose body is not JSON
//   x-fake-reset-after-bytes: N send headers and N body bytes, then reset the TCP connection
//   x-fake-split: N | a,b,c | odd   re-cut the body into pieces of these sizes
//   x-fake-frame-delay-ms: N    wait N ms between frames/pieces
import { setTimeout as sleep } from 'node:timers/promises';

const ODD_SPLIT = [1, 7, 3, 13, 2, 29, 5];

function faultValue(req, query, name) {
  const h = req.headers[name];
  if (h !== undefined) return String(h);
  const q = query.get(name.replace(/-/g, '_'));
  return q === null ? undefined : q;
}

function intOrNull(v) {
  if (v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : null;
}

function truthy(v) {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

export function parseFaults(req, query) {
  const split = faultValue(req, query, 'x-fake-split');
  let splitSizes = null;
  if (split !== undefined) {
    if (split === 'odd' || split === '') splitSizes = ODD_SPLIT;
    else {
      const sizes = split.split(',').map((s) => Number(s.trim())).filter((n) => Number.isFinite(n) && n > 0);
      splitSizes = sizes.length ? sizes.map(Math.floor) : ODD_SPLIT;
    }
  }
  const status = intOrNull(faultValue(req, query, 'x-fake-status'));
  return {
    status: status !== null && status >= 100 && status <= 999 ? status : null,
    delayMs: intOrNull(faultValue(req, query, 'x-fake-delay-ms')),
    hang: truthy(faultValue(req, query, 'x-fake-hang')),
    close: truthy(faultValue(req, query, 'x-fake-close')),
    garbage: truthy(faultValue(req, query, 'x-fake-garbage')),
    resetAfterBytes: intOrNull(faultValue(req, query, 'x-fake-reset-after-bytes')),
    splitSizes,
    frameDelayMs: intOrNull(faultValue(req, query, 'x-fake-frame-delay-ms')),
  };
}

// Resets the TCP connection (RST when the platform allows it).
export function resetSocket(socket) {
  if (!socket || socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

function toBuf(x) {
  return Buffer.isBuffer(x) ? x : Buffer.from(typeof x === 'string' ? x : JSON.stringify(x));
}

function resplit(pieces, sizes) {
  const all = Buffer.concat(pieces.map(toBuf));
  const out = [];
  let off = 0;
  let i = 0;
  while (off < all.length) {
    const n = sizes[i++ % sizes.length];
    out.push(all.subarray(off, off + n));
    off += n;
  }
  return out;
}

// Resolves once buf is handed to the kernel, so a slow reader downstream
// slows the fake down too (and res.fakeRecord.bytesFlushed shows how far it got).
function writeAsync(res, buf) {
  return new Promise((resolve) => {
    if (res.destroyed || res.writableEnded) return resolve(false);
    res.write(buf, (err) => {
      if (!err && res.fakeRecord) res.fakeRecord.bytesFlushed += buf.length;
      resolve(!err);
    });
  });
}

// Sends plan with faults applied. `gone()` tells whether the client left.
export async function emit(req, res, plan, faults) {
  const gone = () => res.destroyed || res.socket?.destroyed || res.writableEnded;
  if (faults.delayMs) await sleep(faults.delayMs);
  if (gone()) return;
  if (faults.hang) return; // the server's close() destroys the socket
  if (faults.close) {
    req.socket.destroy();
    return;
  }
  if (faults.garbage) {
    const ct = plan.headers?.['content-type'] || 'application/json';
    plan = { status: 200, headers: { 'content-type': ct }, body: '<html>this is not JSON {{{ \u0000\u0001 garbage' };
  }
  let pieces = plan.frames ? plan.frames.map(toBuf) : [toBuf(plan.body ?? '')];
  const chunked = !!plan.frames || !!faults.splitSizes;
  if (faults.splitSizes) pieces = resplit(pieces, faults.splitSizes);
  const headers = { ...(plan.headers || {}) };
  const total = pieces.reduce((n, p) => n + p.length, 0);
  if (!chunked) headers['content-length'] = String(total);
  res.writeHead(plan.status || 200, headers);
  if (chunked) res.flushHeaders();
  const frameDelay = faults.frameDelayMs ?? plan.frameDelayMs ?? 0;
  let sent = 0;
  for (let i = 0; i < pieces.length; i++) {
    if (gone()) return;
    if (i > 0 && frameDelay) await sleep(frameDelay);
    if (gone()) return;
    let piece = pieces[i];
    if (faults.resetAfterBytes !== null && sent + piece.length >= faults.resetAfterBytes) {
      piece = piece.subarray(0, faults.resetAfterBytes - sent);
      if (piece.length) await writeAsync(res, piece);
      res.fakeReset = true;
      await sleep(20); // let the bytes leave before the RST
      resetSocket(res.socket);
      return;
    }
    if (piece.length) await writeAsync(res, piece);
    sent += piece.length;
  }
  if (faults.resetAfterBytes !== null) {
    res.fakeReset = true;
    resetSocket(res.socket);
    return;
  }
  if (!gone()) res.end();
}

export function json(status, obj, extraHeaders = {}) {
  return { status, headers: { 'content-type': 'application/json', ...extraHeaders }, body: JSON.stringify(obj) };
}

// A Server-Sent Events frame; `event` is omitted for OpenAI-style streams.
export function sseFrame(data, event) {
  const payload = typeof data === 'string' ? data : JSON.stringify(data);
  return (event ? `event: ${event}\n` : '') + `data: ${payload}\n\n`;
}

export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
