// A reply that has no body (a 204, a 304, an answer to HEAD) must end at
// its head even when a body filter has something to say at the end of the
// stream: ai-proxy's "stream ended before it was complete" event written
// after a 204 head would be read by the client as the start of the next
// response on the connection.
//
//   SLUICE_BIN=build/sluice node --test tests/integration/no-body-replies.test.mjs
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { binaryMissing, rawRequest, startSluice } from './lib/harness.mjs';
import { aiRoute } from './lib/ai-helpers.mjs';

describe('no-body replies through a body filter', { skip: binaryMissing() }, () => {
  let prov, sl;
  before(async () => {
    prov = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const status = Number(req.url.slice(1));
        res.writeHead(status, { 'content-type': 'text/event-stream' });
        res.end();
      });
    });
    await new Promise((r) => prov.listen(0, '127.0.0.1', r));
    const up = `http://127.0.0.1:${prov.address().port}`;
    const route = (status) => aiRoute(`r${status}`, `/r${status}`, {
      route_type: 'llm/v1/chat', model: { provider: 'openai', name: 'm', options: { upstream_url: `${up}/${status}` } },
    });
    sl = await startSluice({ workers: 1, config: { services: [{ name: 'ai', url: up, routes: [route(204), route(304)] }] } });
  });
  after(async () => {
    await sl?.stop();
    prov?.closeAllConnections();
    prov?.close();
  });

  for (const status of [204, 304]) {
    test(`a streamed ${status} ends at its head`, async () => {
      const body = JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'hi' }] });
      // Two requests on one connection: what follows the first head must be
      // the second response, nothing else.
      const one = `POST /r${status} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const raw = (await rawRequest({
        port: sl.proxyPort, data: one + one.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'),
      })).toString('latin1');
      const heads = raw.split(/(?=HTTP\/1\.1 )/);
      assert.equal(heads.length, 2, `two responses: ${JSON.stringify(raw)}`);
      for (const h of heads) {
        assert.match(h, new RegExp(`^HTTP/1\\.1 ${status} `));
        assert.ok(h.endsWith('\r\n\r\n'), `nothing after the head: ${JSON.stringify(h)}`);
      }
    });
  }
});
