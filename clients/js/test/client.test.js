// The pure parts of the client: the asset API query, sequence gaps, backoff,
// and the checks on the options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assetsQuery, SeqTracker, backoffDelay, syncAssetSources } from '../index.js';

test('assetsQuery maps the engine query like the IMG.LY plugin', () => {
  const q = assetsQuery({
    perPage: 10, page: 0, query: 'Katze äö', tags: ['a', 'b'], groups: [], excludeGroups: ['x'], locale: '',
    sortingOrder: 'Descending', sortKey: 'lastModified', sortActiveFirst: false, filter: [], facets: [],
    unknown: 'dropped',
  });
  const p = new URLSearchParams(q);
  assert.deepEqual(Object.fromEntries(p), {
    perPage: '10', page: '0', query: 'Katze äö', tags: 'a,b', groups: '', excludeGroups: 'x', locale: '',
    sortingOrder: 'Descending', sortKey: 'lastModified', sortActiveFirst: 'false', filter: '', facets: '',
  });
  assert.ok(q.includes('tags=a%2Cb'));
  assert.equal(assetsQuery({ page: 2, perPage: 5, query: undefined, sortKey: null, filter: { not: 'sent' } }), 'perPage=5&page=2');
});

test('SeqTracker: next, gap, duplicate, invalid', () => {
  const t = new SeqTracker();
  assert.equal(t.observe('a', 5, 7), 'first');
  assert.equal(t.observe('a', 8, 8), 'next');
  assert.equal(t.observe('a', 6, 8), 'duplicate'); // replay overlap after a reconnect
  assert.equal(t.observe('a', 11, 12), 'gap'); // 9, 10 missed
  assert.equal(t.observe('a', 13, 13), 'next');
  assert.equal(t.observe('b', 1, 1), 'first');
  assert.equal(t.lastEventId(['a', 'b', 'c']), 'a:13,b:1');
  assert.equal(t.observe('a', 'x', 3), 'invalid');
  assert.equal(t.knows('a'), false);
  assert.equal(t.observe('a', 4, 3), 'invalid');
  t.forget('b');
  assert.equal(t.lastEventId(['a', 'b']), '');
});

test('backoffDelay doubles to the cap, jittered into [cap/2, cap)', () => {
  assert.equal(backoffDelay(0, 500, 15000, () => 0), 250);
  assert.equal(backoffDelay(0, 500, 15000, () => 0.999999) < 500, true);
  assert.equal(backoffDelay(3, 500, 15000, () => 0), 2000);
  assert.equal(backoffDelay(10, 500, 15000, () => 0), 7500);
  assert.equal(backoffDelay(1000, 500, 15000, () => 1), 15000);
  const seen = new Set(Array.from({ length: 20 }, () => backoffDelay(2)));
  assert.ok(seen.size > 1, 'jittered');
});

test('bad options are refused naming the option', async () => {
  const engine = { asset: { addSource() {}, removeSource() {}, assetSourceContentsChanged() {} } };
  await assert.rejects(syncAssetSources({}, {}), /engine must be a CE.SDK engine/);
  await assert.rejects(syncAssetSources(engine, { sources: ['a'] }), /baseUrl/);
  await assert.rejects(syncAssetSources(engine, { baseUrl: 'http://x', sources: [] }), /sources/);
  await assert.rejects(syncAssetSources(engine, { baseUrl: 'http://x', sources: ['a'], transport: 'ws' }), /transport must be/);
  await assert.rejects(syncAssetSources(engine, { baseUrl: 'http://x', sources: ['a'], transport: 'nats' }), /natsUrl/);
});
