// The upstream's Content-Length, as the client gets it (RFC 9112 6.3). The
// client side frames its answer by the Content-Length it is handed, so an
// upstream's "Transfer-Encoding: chunked" + "Content-Length: 100" used to
// reach the client as a 100-byte promise with a 2-byte body (the client
// then waited for bytes that never came, or read the next reply as body),
// and two different lengths were both forwarded. Now: next to
// Transfer-Encoding the length goes; repeats of one length are forwarded
// once; lengths that differ or are not numbers are a 502.
//
// The upstream is a raw TCP server writing exact bytes (Node's own HTTP
// server would never send these). The client is Node's http module, whose
// parser refuses duplicate or malformed Content-Length itself.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { assertErrorBody, binaryMissing, rawRequest, request, service, startSluice } from './lib/harness.mjs';

const REPLIES = {
  '/te-and-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  '/cl-twice': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok',
  '/cl-list': 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok',
  '/cl-zero-padded': 'HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nok',
  '/cl-differ': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
  '/cl-list-differ': 'HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok',
  '/cl-not-a-number': 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok',
  '/cl-negative': 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok',
  '/plain': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain',
  '/huge-head': `HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(150 * 1024)}\r\nContent-Length: 2\r\n\r\nok`,
  '/no-content': 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-After: 1\r\n\r\n',
  '/folded': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: a\r\n b\r\n\tc: d\r\nX-After: 1\r\n\r\nok',
  '/bad-lines': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX Space: 1\r\nX-Ctl: a\x01b\r\nX-Cr: a\rb\r\nX(paren): 1\r\nX-Good: yes\r\n\r\nok',
};

function startRawUpstream() {
  const server = net.createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const [method, target] = head.split(' ');
        const path = target.replace(/^\/up/, '');
        if (method === 'HEAD') sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
        else sock.write(REPLIES[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      }
    });
    sock.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// One raw upstream and one sluice routing /up to it, for a describe block;
// sl() is the running sluice once its before hook has run.
function rawSetup() {
  let up, sl;
  before(async () => {
    up = await startRawUpstream();
    sl = await startSluice({ workers: 1, config: { services: [service('raw', `http://127.0.0.1:${up.address().port}`, [{ name: 'raw', paths: ['/up'], strip_path: false }])] } });
  });
  after(async () => {
    await sl?.stop();
    await new Promise((r) => up?.close(r));
  });
  return { sl: () => sl };
}

describe('the upstream\'s Content-Length, as the client gets it', { skip: binaryMissing() }, () => {
  const { sl: get } = rawSetup();
  let sl;
  before(() => (sl = get()));

  test('chunked + Content-Length: the length is dropped, and the connection stays usable', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await request({ port: sl.proxyPort, path: '/up/te-and-cl', agent, timeoutMs: 3000 });
      assert.equal(a.status, 200);
      assert.equal(a.text, 'ok');
      assert.equal(a.headers['content-length'], undefined);
      // The same connection: a desynchronised one would give garbage or hang.
      const b = await request({ port: sl.proxyPort, path: '/up/plain', agent, timeoutMs: 3000 });
      assert.equal(b.status, 200);
      assert.equal(b.text, 'plain');
    } finally {
      agent.destroy();
    }
  });

  for (const path of ['/cl-twice', '/cl-list', '/cl-zero-padded']) {
    test(`${path}: one length, said once`, async () => {
      const r = await request({ port: sl.proxyPort, path: `/up${path}`, timeoutMs: 3000 });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '2');
      assert.equal(r.text, 'ok');
    });
  }

  // libcurl refuses a negative length itself ("Weird server reply").
  const refused = { '/cl-differ': /conflicting or invalid Content-Length/, '/cl-list-differ': /conflicting or invalid Content-Length/,
    '/cl-not-a-number': /conflicting or invalid Content-Length/, '/cl-negative': /Weird server reply/ };
  for (const [path, why] of Object.entries(refused)) {
    test(`${path}: 502, the reply is not forwarded`, async () => {
      const mark = sl.logMark();
      const r = await request({ port: sl.proxyPort, path: `/up${path}`, timeoutMs: 3000 });
      const j = assertErrorBody(r, 502, new RegExp(`^An invalid response was received from the upstream server: ${why.source}$`));
      const line = await sl.waitForLog(new RegExp(`request_id=${j.request_id}`), { from: mark });
      if (path !== '/cl-negative') assert.match(line, /status=502 upstream_status=200 /);
    });
  }

  test('a response head over libcurl\'s limit: 502 that says so (libcurl reports "Out of memory")', async () => {
    const r = await request({ port: sl.proxyPort, path: '/up/huge-head', timeoutMs: 3000 });
    assertErrorBody(r, 502, /^An invalid response was received from the upstream server: response head too large$/);
    const next = await request({ port: sl.proxyPort, path: '/up/plain', timeoutMs: 3000 });
    assert.equal(next.text, 'plain');
  });

  test('a 204 goes on without the Content-Length its upstream gave it (RFC 9110 8.6)', async () => {
    const raw = (await rawRequest({ port: sl.proxyPort, data: 'GET /up/no-content HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' })).toString('latin1');
    assert.match(raw, /^HTTP\/1\.1 204 /);
    assert.doesNotMatch(raw, /content-length/i);
    assert.match(raw, /\r\nX-After: 1\r\n/);
  });

  test('HEAD: the length of the body a GET would get is forwarded, with no body', async () => {
    const r = await request({ port: sl.proxyPort, method: 'HEAD', path: '/up/plain', timeoutMs: 3000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '100');
    assert.equal(r.text, '');
  });
});

// Header lines libcurl hands over as they came: the proxy must not pass on
// what would make the client's head malformed, nor cut a folded value.
describe('the upstream\'s header lines', { skip: binaryMissing() }, () => {
  const { sl: get } = rawSetup();
  let sl;
  before(() => (sl = get()));

  test('obs-fold: the continuation lines join the value with a space (RFC 9112 5.2)', async () => {
    const r = await request({ port: sl.proxyPort, path: '/up/folded', timeoutMs: 3000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-folded'], 'a b c: d');
    assert.equal(r.headers['x-after'], '1');
    assert.equal(r.text, 'ok');
  });

  test('a line whose name is not a token or whose value has a control byte is dropped, the rest kept', async () => {
    const raw = (await rawRequest({ port: sl.proxyPort, data: 'GET /up/bad-lines HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' })).toString('latin1');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n')).split('\r\n');
    assert.match(head[0], /^HTTP\/1\.1 200 /);
    for (const l of head.slice(1)) assert.match(l, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+: [\t\x20-\x7e]*$/, `malformed line ${JSON.stringify(l)}`);
    assert.ok(head.includes('X-Good: yes'), head.join('\n'));
    assert.ok(!head.some((l) => /^(X Space|X-Ctl|X-Cr|X\(paren\))/i.test(l)), head.join('\n'));
    assert.ok(raw.endsWith('\r\n\r\nok'), JSON.stringify(raw.slice(-20)));
  });
});
