// The editor example: CE.SDK's engine with syncer's sources registered by
// the client; the list below is what engine.asset.findAssets answers, drawn
// again whenever the engine says a source was updated.
//
// Query parameters: sources=a,b (default: every source syncer serves),
// syncer=<url> (default: this origin, which serve.mjs proxies to syncer),
// token, transport=sse|nats, natsUrl=ws://….
import CreativeEngine from '@cesdk/engine';
import { syncAssetSources } from '/clients/js/index.js';

const params = new URLSearchParams(location.search);
const baseUrl = params.get('syncer') || location.origin;
const token = params.get('token') || undefined;
const status = document.getElementById('status');
const list = document.getElementById('assets');
// What the tests and the benchmark read.
const state = (window.syncerExample = { ready: false, updates: [], events: 0, errors: [], keys: [] });

async function sourceIds() {
  if (params.get('sources')) return params.get('sources').split(',');
  const res = await fetch(`${baseUrl}/sources`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`GET /sources: HTTP ${res.status}`);
  return (await res.json()).data.map((s) => s.id);
}

async function natsModule() {
  // @nats-io/nats-core ships CommonJS: a page loads an ESM bundle of it
  // (serve.mjs serves one at /vendor/nats-core.mjs when it has one).
  // An ESM bundle of a CommonJS module exports it as default.
  const m = await import('/vendor/nats-core.mjs');
  return m.wsconnect ? m : m.default;
}

async function draw(ids) {
  const items = [];
  for (const id of ids) {
    const res = await engine.asset.findAssets(id, { page: 0, perPage: 100 });
    items.push(...res.assets.map((a) => ({ ...a, sourceId: id })));
  }
  state.keys = items.map((a) => a.meta?.key ?? a.id);
  list.replaceChildren(...items.map((a) => {
    const li = document.createElement('li');
    li.dataset.key = a.meta?.key ?? a.id;
    const img = document.createElement('img');
    img.src = a.meta?.thumbUri || a.meta?.uri || '';
    img.alt = a.label || '';
    const label = document.createElement('span');
    label.textContent = a.label || a.id;
    li.append(img, label);
    return li;
  }));
  status.textContent = `${items.length} assets — drop a file into the bucket (or ./assets) and it shows here`;
}

const engine = await CreativeEngine.init({ baseURL: new URL('/vendor/@cesdk/engine/assets/', location.href).href });
try {
  const transport = params.get('transport') || 'sse';
  const ids = await sourceIds();
  const assetIds = [];
  await syncAssetSources(engine, {
    baseUrl, token, sources: ids, transport, natsUrl: params.get('natsUrl') || undefined,
    natsModule: transport === 'nats' ? await natsModule() : undefined,
    onStatus: (s) => { if (s.type === 'open') state.ready = true; },
    onError: (e) => state.errors.push(String(e.message || e)),
    onEvent: (ev) => { state.events++; state.lastSeq = ev.data.lastSeq; },
  });
  for (const id of engine.asset.findAllSources()) if (!id.startsWith('ly.img')) assetIds.push(id);
  let drawing = Promise.resolve();
  engine.asset.onAssetSourceUpdated((id) => {
    state.updates.push({ id, t: Date.now() });
    drawing = drawing.then(() => draw(assetIds)).catch((e) => state.errors.push(String(e)));
  });
  await draw(assetIds);
} catch (err) {
  status.textContent = `error: ${err.message}`;
  state.errors.push(String(err.message || err));
}
