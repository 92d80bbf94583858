// The event-stream parser against the cases of the HTML standard's
// "interpreting an event stream", and readSSE against a real HTTP server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { SSEParser, readSSE } from '../sse.js';

function parse(...chunks) {
  const out = [];
  const comments = [];
  const p = new SSEParser((e) => out.push(e), (c) => comments.push(c));
  for (const c of chunks) p.push(c);
  return { out, comments, p };
}

test('fields, multi-line data, id and comments', () => {
  const { out, comments, p } = parse(
    ': ping\n',
    'event: contents-changed\nid: cloud:42\ndata: {"a":\ndata:1}\n\n',
    'data:x\n\n',
  );
  assert.deepEqual(comments, ['ping']);
  assert.deepEqual(out, [
    { event: 'contents-changed', data: '{"a":\n1}', id: 'cloud:42' },
    { event: 'message', data: 'x', id: 'cloud:42' }, // the id persists, the type does not
  ]);
  assert.equal(p.lastEventId, 'cloud:42');
});

test('CRLF, CR and LF line endings, split anywhere', () => {
  const text = 'event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n';
  const whole = parse(text).out;
  assert.deepEqual(whole.map((e) => e.event + e.data), ['a1', 'b2', 'c3']);
  for (let i = 1; i < text.length; i++) {
    assert.deepEqual(parse(text.slice(0, i), text.slice(i)).out, whole, `split at ${i}`);
  }
  // One character per chunk: a CR at a chunk's end followed by LF is one line ending.
  assert.deepEqual(parse(...text).out, whole);
});

test('only the first space after the colon goes; no colon means empty value', () => {
  const { out } = parse('data:  two\ndata\n\n');
  assert.equal(out[0].data, ' two\n');
});

test('event without data is dispatched (reset); nothing at all is not', () => {
  const { out } = parse('event: reset\n\n', '\n\n', 'id: 7\n\n');
  assert.deepEqual(out, [{ event: 'reset', data: '', id: '' }]);
});

test('retry, unknown fields and ids with NUL', () => {
  const { out, p } = parse('retry: 1500\nfoo: bar\nid: a\0b\ndata: d\n\nretry: x\n');
  assert.equal(p.retry, 1500);
  assert.deepEqual(out, [{ event: 'message', data: 'd', id: '' }]);
});

test('an incomplete event at the end is not dispatched', () => {
  assert.deepEqual(parse('data: half').out, []);
});

function server(t, handler) {
  return new Promise((resolve) => {
    const srv = createServer(handler);
    srv.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${srv.address().port}`));
    t.after(() => { srv.closeAllConnections(); srv.close(); });
  });
}

test('readSSE sends headers, parses the stream, ends with the body', async (t) => {
  let seen;
  const url = await server(t, (req, res) => {
    seen = req.headers;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(': ping\n\n');
    res.end('event: contents-changed\nid: 3\ndata: {}\n\n');
  });
  const got = [];
  let opened = false;
  await readSSE(url + '/events', {
    headers: { Authorization: 'Bearer s3cr3t', 'Last-Event-ID': 'a:2' },
    signal: new AbortController().signal, idleTimeout: 5000,
    onOpen: () => { opened = true; }, onEvent: (e) => got.push(e),
  });
  assert.ok(opened);
  assert.equal(seen.authorization, 'Bearer s3cr3t');
  assert.equal(seen['last-event-id'], 'a:2');
  assert.deepEqual(got, [{ event: 'contents-changed', data: '{}', id: '3' }]);
});

test('readSSE: HTTP errors carry the status, a path token is redacted', async (t) => {
  const url = await server(t, (req, res) => { res.writeHead(401); res.end('{"error":"unauthorized"}'); });
  await assert.rejects(
    readSSE(url + '/t/s3cr3t/events', { signal: new AbortController().signal, idleTimeout: 5000, onEvent() {} }),
    (err) => err.status === 401 && !err.message.includes('s3cr3t') && err.message.includes('/t/***/'),
  );
});

test('readSSE gives up on a silent stream after idleTimeout', async (t) => {
  const url = await server(t, (req, res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.flushHeaders(); });
  await assert.rejects(
    readSSE(url, { signal: new AbortController().signal, idleTimeout: 200, onEvent() {} }),
    /no data for 200 ms/,
  );
});

test('readSSE stops when its signal aborts', async (t) => {
  const url = await server(t, (req, res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write(': hi\n\n'); });
  const ctl = new AbortController();
  const p = readSSE(url, { signal: ctl.signal, idleTimeout: 60000, onOpen: () => ctl.abort(new Error('bye')), onEvent() {} });
  await assert.rejects(p, /bye/);
});
