// Drives the real CE.SDK engine (@cesdk/node) with IMG.LY's remote asset
// source plugin against a running syncer: findAssets lists the bucket,
// filters by query, pages, and each meta.uri downloads the right bytes.
//
// Usage: node engine.mjs <baseUrl>   (baseUrl = <syncer>/sources/<id>)
// EXPECT (env): JSON {"<key>": "<body base64>", ...}; QUERY, QUERY_KEYS.
// TESTENV (env): the testenv directory whose node_modules hold the packages
// (ES modules ignore NODE_PATH, so they are loaded from there by path).
// Prints one JSON line and exits 0 when every check passed.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const req = createRequire(join(process.env.TESTENV, 'package.json'));
const load = async (p) => (await import(pathToFileURL(p).href)).default;
const CreativeEngine = await load(req.resolve('@cesdk/node'));
const RemoteAssetSourcePlugin = await load(
  join(process.env.TESTENV, 'node_modules/@imgly/plugin-remote-asset-source-web/dist/index.mjs'),
);

const baseUrl = process.argv[2];
const expect = JSON.parse(process.env.EXPECT);
const query = process.env.QUERY;
const queryKeys = JSON.parse(process.env.QUERY_KEYS);

// Offline: the engine's telemetry call goes nowhere; the plugin and the
// checks reach only syncer and the emulator on loopback.
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = typeof input === 'string' ? input : input.url;
  if (!/^http:\/\/127\.0\.0\.1[:/]/.test(url)) return Promise.reject(new Error('offline: ' + url));
  return realFetch(input, init);
};

function fail(msg) {
  console.log(JSON.stringify({ ok: false, error: msg }));
  process.exitCode = 1;
}

const engine = await CreativeEngine.init({});
try {
  const plugin = RemoteAssetSourcePlugin({ baseUrl });
  await plugin.initialize({ engine });
  const ids = engine.asset.findAllSources();
  const id = ids.find((s) => !s.startsWith('ly.img'));
  if (!id) throw new Error('no remote source registered: ' + ids.join(','));

  const all = await engine.asset.findAssets(id, { page: 0, perPage: 100 });
  const keys = all.assets.map((a) => a.meta.key).sort();
  const want = Object.keys(expect).sort();
  if (all.total !== want.length || JSON.stringify(keys) !== JSON.stringify(want)) {
    throw new Error(`listing: total ${all.total}, keys ${keys} want ${want}`);
  }

  const q = await engine.asset.findAssets(id, { page: 0, perPage: 100, query });
  const qk = q.assets.map((a) => a.meta.key).sort();
  if (JSON.stringify(qk) !== JSON.stringify([...queryKeys].sort())) throw new Error(`query ${query}: ${qk}`);

  const paged = [];
  for (let page = 0; page < 100; page++) {
    const r = await engine.asset.findAssets(id, { page, perPage: 2 });
    paged.push(...r.assets.map((a) => a.meta.key));
    if (r.nextPage === undefined || r.nextPage === null || r.nextPage <= 0) break;
    if (r.nextPage !== page + 1) throw new Error(`page ${page}: nextPage ${r.nextPage}`);
  }
  if (JSON.stringify([...paged].sort()) !== JSON.stringify(want) || new Set(paged).size !== paged.length) {
    throw new Error(`paging: ${paged}`);
  }

  for (const a of all.assets) {
    const res = await fetch(a.meta.uri);
    const body = Buffer.from(await res.arrayBuffer()).toString('base64');
    if (res.status !== 200 || body !== expect[a.meta.key]) throw new Error(`uri of ${a.meta.key}: ${res.status}`);
  }
  console.log(JSON.stringify({ ok: true, source: id, total: all.total, query: qk.length, pages: paged.length }));
} catch (e) {
  fail(String(e && e.stack ? e.stack : e));
} finally {
  engine.dispose();
}
