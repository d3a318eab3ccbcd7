// Fake streaming LLM upstream for the time-to-first-token benchmark.
// The first write carries everything up to and including the first content
// token, so "first body byte" and "first token" are the same instant whether
// the client is direct, behind nginx or behind sluice. Later frames follow
// every FRAME_GAP_MS: a proxy that buffers instead of streaming shows up as a
// TTFT of several milliseconds, not microseconds.
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const FRAME_GAP_MS = Number(process.env.BENCH_SSE_GAP_MS || 2);
const FRAMES = 5;

function anthropicFrame(event, data) {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function anthropicStream(res) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(
    anthropicFrame('message_start', {
      type: 'message_start',
      message: {
        id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-3-5-sonnet-20241022',
        content: [], stop_reason: null, stop_sequence: null,
        usage: { input_tokens: 12, output_tokens: 1 },
      },
    }) +
      anthropicFrame('content_block_start', {
        type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' },
      }) +
      anthropicFrame('content_block_delta', {
        type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' },
      })
  );
  let n = 0;
  const timer = setInterval(() => {
    if (++n < FRAMES) {
      res.write(anthropicFrame('content_block_delta', {
        type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' more' },
      }));
      return;
    }
    clearInterval(timer);
    res.end(
      anthropicFrame('content_block_stop', { type: 'content_block_stop', index: 0 }) +
        anthropicFrame('message_delta', {
          type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null },
          usage: { output_tokens: FRAMES },
        }) +
        anthropicFrame('message_stop', { type: 'message_stop' })
    );
  }, FRAME_GAP_MS);
  res.on('close', () => clearInterval(timer));
}

function openaiChunk(delta, finish) {
  return 'data: ' + JSON.stringify({
    id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o-mini',
    choices: [{ index: 0, delta, finish_reason: finish }],
  }) + '\n\n';
}

function openaiStream(res) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(openaiChunk({ role: 'assistant', content: '' }, null) + openaiChunk({ content: 'Hello' }, null));
  let n = 0;
  const timer = setInterval(() => {
    if (++n < FRAMES) {
      res.write(openaiChunk({ content: ' more' }, null));
      return;
    }
    clearInterval(timer);
    res.end(openaiChunk({}, 'stop') + 'data: [DONE]\n\n');
  }, FRAME_GAP_MS);
  res.on('close', () => clearInterval(timer));
}

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url.startsWith('/plain')) res.end('hello from node\n'); /* control: not streamed */
    else if (req.url.startsWith('/v1/messages')) anthropicStream(res);
    else openaiStream(res);
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
