// syncAssetSources' own logic against a scripted HTTP server speaking
// syncer's wire format (the real server and engine: clients/js/js_test.go):
// one contentsChanged per event, duplicates of a replay skipped, a gap
// reported, a reset refreshes and moves the position, a reconnect sends the
// multi-source Last-Event-ID, stop() removes what it added.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { syncAssetSources } from '../index.js';

const ce = (sourceId, firstSeq, lastSeq) => JSON.stringify({ specversion: '1.0', data: { sourceId, firstSeq, lastSeq, changes: [] } });
const frame = (event, id, data) => `event: ${event}\nid: ${id}\ndata: ${data}\n\n`;

// A recording stand-in for the engine: the calls the client makes.
function recorder() {
  const calls = [];
  const sources = new Map();
  let wake = () => {};
  const push = calls.push.bind(calls);
  calls.push = (...v) => { const n = push(...v); wake(); return n; };
  return {
    calls, sources,
    // took(n) resolves with the first n calls (removed) once they are made.
    took: (n) => new Promise((resolve) => {
      const check = () => { if (calls.length >= n) { wake = () => {}; resolve(calls.splice(0, n)); } };
      wake = check;
      check();
    }),
    asset: {
      addSource: (s) => { sources.set(s.id, s); calls.push(`add ${s.id}`); },
      removeSource: (id) => { sources.delete(id); calls.push(`remove ${id}`); },
      assetSourceContentsChanged: (id) => calls.push(`changed ${id}`),
    },
  };
}

test('events, duplicates, gaps, reset, reconnect with Last-Event-ID, stop', async (t) => {
  const streams = []; // each connection's request headers
  let next; // resolves when the client (re)connects
  const srv = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.headers.authorization !== 'Bearer tok') return void res.writeHead(401).end('{"error":"no"}');
    if (url.pathname === '/sources/a') return void res.end(JSON.stringify({ data: { id: 'asset-a', supportedMimeTypes: ['image/png'] } }));
    if (url.pathname === '/sources/b') return void res.end(JSON.stringify({ data: { id: 'b' } }));
    if (url.pathname === '/sources/a/assets') {
      return void res.end(JSON.stringify({ data: { assets: [], currentPage: 0, total: 0, query: url.search } }));
    }
    if (url.pathname === '/events' && url.searchParams.get('sources') === 'a,b') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      streams.push({ headers: req.headers, res });
      next?.();
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => { srv.closeAllConnections(); srv.close(); });
  const connected = (n) => new Promise((r) => { next = () => { if (streams.length >= n) r(); }; next(); });

  const engine = recorder();
  const statuses = [];
  let onEvent;
  const stop = await syncAssetSources(engine, {
    baseUrl: `http://127.0.0.1:${srv.address().port}/`, sources: ['a', 'b'], token: 'tok',
    backoff: { initial: 10, max: 20 },
    onStatus: (s) => statuses.push(s),
    onEvent: () => onEvent?.(),
  });
  t.after(stop);
  const applied = () => new Promise((r) => { onEvent = r; });
  assert.deepEqual(engine.calls.splice(0), ['add asset-a', 'add b']);
  assert.deepEqual(await engine.sources.get('asset-a').getSupportedMimeTypes(), ['image/png']);
  const page = await engine.sources.get('asset-a').findAssets({ page: 1, perPage: 5, tags: ['x', 'y'] });
  assert.equal(page.query, '?perPage=5&page=1&tags=x%2Cy');

  await connected(1);
  assert.equal(streams[0].headers['last-event-id'], undefined);
  assert.deepEqual(await engine.took(2), ['changed asset-a', 'changed b']); // the refresh on connect

  const s0 = streams[0].res;
  let done = applied();
  s0.write(frame('contents-changed', 'a:3', ce('a', 1, 3)));
  await done;
  done = applied();
  s0.write(frame('contents-changed', 'a:3', ce('a', 2, 3))); // a duplicate: skipped
  s0.write(frame('contents-changed', 'b:9', ce('b', 9, 9)));
  await done;
  done = applied();
  s0.write(frame('contents-changed', 'a:7', ce('a', 6, 7))); // 4, 5 missed
  await done;
  assert.deepEqual(engine.calls.splice(0), ['changed asset-a', 'changed b', 'changed asset-a']);
  assert.ok(statuses.some((s) => s.type === 'gap' && s.sourceId === 'a' && s.firstSeq === 6));

  // syncer drops the stream: the client comes back with where it is.
  s0.end();
  await connected(2);
  assert.equal(streams[1].headers['last-event-id'], 'a:7,b:9');
  assert.equal(streams[1].headers.authorization, 'Bearer tok');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(engine.calls.splice(0), [], 'both positions known: nothing to refresh on reconnect');

  // A reset for b: refreshed, and its position is the one the reset names.
  streams[1].res.write(frame('reset', 'b:20', '{"sourceId":"b","lastSeq":20,"after":9}'));
  assert.deepEqual(await engine.took(1), ['changed b']);
  streams[1].res.end();
  await connected(3);
  assert.equal(streams[2].headers['last-event-id'], 'a:7,b:20');

  await stop();
  assert.deepEqual(engine.calls.splice(0), ['remove asset-a', 'remove b']);
  assert.equal(engine.sources.size, 0);
  s0.destroy();
});

test('a manifest that cannot be read rejects, naming it, and adds nothing', async (t) => {
  const srv = createServer((req, res) => {
    if (req.url === '/sources/a') return void res.end('{"data":{"id":"a"}}');
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"unknown source"}');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const engine = recorder();
  await assert.rejects(
    syncAssetSources(engine, { baseUrl: `http://127.0.0.1:${srv.address().port}`, sources: ['a', 'nope'] }),
    /GET http:\/\/127\.0\.0\.1:\d+\/sources\/nope: HTTP 404: unknown source/,
  );
  assert.equal(engine.calls.length, 0);
});
