// syncer's JavaScript client: registers syncer sources as CE.SDK asset
// sources and tells the engine when they change, over Server-Sent Events
// (default) or NATS WebSocket. ESM, no build step, browsers and Node 22.
import { readSSE, redact } from './sse.js';

export { SSEParser, readSSE } from './sse.js';

const QUERY_KEYS = ['perPage', 'page', 'query', 'tags', 'groups', 'excludeGroups', 'locale', 'sortingOrder',
  'sortKey', 'sortActiveFirst', 'filter', 'facets'];

/**
 * assetsQuery maps the engine's AssetQueryData to the asset API's query
 * string the way IMG.LY's remote asset source plugin does: arrays
 * comma-joined, booleans and numbers as text; keys left undefined (or
 * holding something that is neither) are not sent.
 * @param {Record<string, unknown>} q
 */
export function assetsQuery(q = {}) {
  const p = new URLSearchParams();
  for (const k of QUERY_KEYS) {
    const v = q[k];
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) p.set(k, v.join(','));
    else if (['string', 'number', 'boolean'].includes(typeof v)) p.set(k, String(v));
  }
  return p.toString();
}

/**
 * SeqTracker remembers the last sequence number seen per source and tells
 * whether an event continues it. syncer's sequence numbers are contiguous
 * per source, so firstSeq != last + 1 means events were missed.
 */
export class SeqTracker {
  constructor() { this.last = new Map(); }

  /**
   * @returns {'first'|'next'|'gap'|'duplicate'|'invalid'}
   */
  observe(sourceId, firstSeq, lastSeq) {
    if (!Number.isSafeInteger(firstSeq) || !Number.isSafeInteger(lastSeq) || firstSeq > lastSeq || firstSeq < 1) {
      this.last.delete(sourceId);
      return 'invalid';
    }
    const prev = this.last.get(sourceId);
    if (prev !== undefined && lastSeq <= prev) return 'duplicate'; // a replay overlapping what we had
    this.last.set(sourceId, lastSeq);
    if (prev === undefined) return 'first';
    return firstSeq === prev + 1 ? 'next' : 'gap';
  }

  knows(sourceId) { return this.last.has(sourceId); }

  /** set takes lastSeq as the position (after a reset). */
  set(sourceId, lastSeq) { this.last.set(sourceId, lastSeq); }

  forget(sourceId) { this.last.delete(sourceId); }

  /** The multi-source Last-Event-ID: `<sourceId>:<lastSeq>` comma-joined, for the sources we know. */
  lastEventId(sourceIds) {
    return sourceIds.filter((id) => this.last.has(id)).map((id) => `${id}:${this.last.get(id)}`).join(',');
  }
}

/**
 * backoffDelay is the wait before reconnect attempt n (0-based): doubling
 * from initial up to max, jittered into [cap/2, cap) so that many editors
 * dropped at once by a restart do not come back in lockstep.
 */
export function backoffDelay(attempt, initial = 500, max = 15000, rand = Math.random) {
  const cap = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return cap / 2 + rand() * (cap / 2);
}

function validate(engine, o) {
  if (!engine || !engine.asset || typeof engine.asset.addSource !== 'function') {
    throw new TypeError('syncAssetSources: engine must be a CE.SDK engine (engine.asset.addSource missing)');
  }
  if (!o || typeof o.baseUrl !== 'string' || !/^https?:\/\//.test(o.baseUrl)) {
    throw new TypeError('syncAssetSources: baseUrl must be an http(s) URL of syncer\'s HTTP listener');
  }
  if (!Array.isArray(o.sources) || o.sources.length === 0 || o.sources.some((s) => typeof s !== 'string' || !s)) {
    throw new TypeError('syncAssetSources: sources must be a non-empty array of syncer source ids');
  }
  const transport = o.transport ?? 'sse';
  if (transport !== 'sse' && transport !== 'nats') {
    throw new TypeError(`syncAssetSources: transport must be 'sse' or 'nats', not ${JSON.stringify(transport)}`);
  }
  if (transport === 'nats' && (typeof o.natsUrl !== 'string' || !o.natsUrl)) {
    throw new TypeError("syncAssetSources: transport 'nats' needs natsUrl (ws:// or wss://)");
  }
  return { ...o, transport, baseUrl: o.baseUrl.replace(/\/+$/, '') };
}

async function getJSON(url, headers, signal) {
  const res = await fetch(url, { headers, signal });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  if (!res.ok) {
    const why = body && body.error ? body.error : text.trim().slice(0, 200);
    const err = new Error(`GET ${redact(url)}: HTTP ${res.status}${why ? ': ' + why : ''}`);
    err.status = res.status;
    throw err;
  }
  if (!body || typeof body !== 'object' || !('data' in body)) throw new Error(`GET ${redact(url)}: answer without data`);
  return body.data;
}

/**
 * syncAssetSources registers each syncer source in the engine as an asset
 * source backed by syncer's asset API and keeps it current: one
 * engine.asset.assetSourceContentsChanged(<manifest id>) per event.
 * Resolves once every source is registered (the live connection opens in
 * the background: see onStatus); the function it resolves to removes all
 * it added.
 * @param {any} engine
 * @param {import('./index.js').SyncOptions} options
 * @returns {Promise<() => Promise<void>>}
 */
export async function syncAssetSources(engine, options) {
  const o = validate(engine, options);
  const headers = o.token ? { Authorization: `Bearer ${o.token}` } : {};
  const ctl = new AbortController();
  const s = {
    o, engine, headers, signal: ctl.signal, stopped: false, added: [], timers: new Set(),
    assetIds: new Map(), tracker: new SeqTracker(), nc: null,
    onError: o.onError || (() => {}), onStatus: o.onStatus || (() => {}),
  };
  const manifests = await Promise.all(o.sources.map((id) =>
    getJSON(`${o.baseUrl}/sources/${encodeURIComponent(id)}`, headers, ctl.signal)));
  try {
    o.sources.forEach((id, i) => {
      const m = manifests[i];
      const assetId = typeof m.id === 'string' && m.id ? m.id : id;
      engine.asset.addSource(assetSource(s, id, assetId, m));
      s.added.push(assetId);
      s.assetIds.set(id, assetId);
    });
  } catch (err) {
    for (const a of s.added) engine.asset.removeSource(a);
    throw err;
  }
  const running = (o.transport === 'nats' ? runNATS(s) : runSSE(s)).catch((err) => s.onError(err));
  return async function stop() {
    if (s.stopped) return;
    s.stopped = true;
    ctl.abort(new Error('stopped'));
    for (const t of s.timers) clearTimeout(t);
    s.timers.clear();
    // NATS: closing the connection ends its status loop; a connect still
    // under way closes itself when it sees stopped.
    if (s.nc) await s.nc.close().catch(() => {});
    if (o.transport === 'sse' || s.nc) await running;
    for (const a of s.added) {
      try { engine.asset.removeSource(a); } catch { /* already gone: the app removed it */ }
    }
  };
}

function assetSource(s, sourceId, assetId, manifest) {
  const base = `${s.o.baseUrl}/sources/${encodeURIComponent(sourceId)}/assets`;
  const src = {
    id: assetId,
    findAssets: (q) => getJSON(`${base}?${assetsQuery(q)}`, s.headers, s.signal),
    getSupportedMimeTypes: () => manifest.supportedMimeTypes || [],
  };
  if (manifest.credits) src.credits = manifest.credits;
  if (manifest.license) src.license = manifest.license;
  return src;
}

// changed tells the engine; after stop() it does nothing.
function changed(s, sourceId) {
  const id = s.assetIds.get(sourceId);
  if (s.stopped || id === undefined) return;
  try {
    s.engine.asset.assetSourceContentsChanged(id);
  } catch (err) {
    s.onError(err); // the app removed the source itself
  }
}

function refreshAll(s, why, only) {
  for (const id of s.o.sources) {
    if (only && !only(id)) continue;
    s.tracker.forget(id);
    changed(s, id);
  }
  s.onStatus({ type: 'refresh', reason: why });
}

// handleEvent applies one CloudEvent (the JSON syncer publishes).
function handleEvent(s, json) {
  let ev;
  try { ev = JSON.parse(json); } catch (err) {
    s.onError(new Error(`event is not JSON: ${err.message}`));
    return refreshAll(s, 'bad-event');
  }
  const d = ev && ev.data;
  if (!d || typeof d.sourceId !== 'string' || !s.assetIds.has(d.sourceId)) return;
  const r = s.tracker.observe(d.sourceId, d.firstSeq, d.lastSeq);
  if (r === 'duplicate') return;
  if (r === 'gap' || r === 'invalid') s.onStatus({ type: r, sourceId: d.sourceId, firstSeq: d.firstSeq, lastSeq: d.lastSeq });
  // One refresh per event; after a gap the same call re-queries everything.
  changed(s, d.sourceId);
  s.o.onEvent?.(ev);
}

function sleep(s, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(() => { s.timers.delete(t); resolve(); }, ms);
    s.timers.add(t);
    s.signal.addEventListener('abort', () => { clearTimeout(t); s.timers.delete(t); resolve(); }, { once: true });
  });
}

async function runSSE(s) {
  const ids = s.o.sources;
  const url = `${s.o.baseUrl}/events?sources=${ids.map(encodeURIComponent).join(',')}`;
  const b = s.o.backoff || {};
  for (let attempt = 0; !s.stopped;) {
    const h = { ...s.headers };
    const last = s.tracker.lastEventId(ids);
    if (last) h['Last-Event-ID'] = last;
    try {
      await readSSE(url, {
        headers: h, signal: s.signal, idleTimeout: s.o.idleTimeout ?? 45000,
        onOpen: () => {
          attempt = 0;
          s.onStatus({ type: 'open', transport: 'sse' });
          // What changed while we had no connection and cannot be replayed
          // (a source we never had an event for): refresh it.
          refreshAll(s, 'connect', (id) => !s.tracker.knows(id));
        },
        onEvent: (e) => onSSE(s, e),
      });
      if (!s.stopped) s.onStatus({ type: 'closed' });
    } catch (err) {
      if (s.stopped) return;
      s.onError(err);
    }
    if (s.stopped) return;
    const wait = backoffDelay(attempt++, b.initial, b.max);
    s.onStatus({ type: 'reconnecting', in: wait });
    await sleep(s, wait);
  }
}

function onSSE(s, e) {
  if (e.event === 'contents-changed') return handleEvent(s, e.data);
  if (e.event === 'reset') {
    // The stream no longer holds what we missed: refresh the sources it
    // names (all when it names none), and forget their sequence.
    // syncer sends {"sourceId", "lastSeq"}: the stream's position to go on from.
    let named;
    try { named = JSON.parse(e.data || '{}'); } catch { named = {}; }
    const id = typeof named.sourceId === 'string' ? named.sourceId : undefined;
    refreshAll(s, 'reset', id ? (x) => x === id : undefined);
    if (id && Number.isSafeInteger(named.lastSeq) && named.lastSeq > 0) s.tracker.set(id, named.lastSeq);
  }
}

async function runNATS(s) {
  let mod = s.o.natsModule;
  if (!mod) {
    try {
      mod = await import('@nats-io/nats-core');
    } catch (err) {
      throw new Error(`transport 'nats' needs the @nats-io/nats-core package (or options.natsModule): ${err.message}`);
    }
  }
  let nc;
  try {
    nc = await mod.wsconnect({
      servers: s.o.natsUrl, maxReconnectAttempts: -1, waitOnFirstConnect: true,
      reconnectTimeWait: 500, reconnectJitter: 500, ...s.o.natsOptions,
    });
  } catch (err) {
    throw new Error(`nats ${s.o.natsUrl}: ${err.message}`);
  }
  if (s.stopped) return void (await nc.close().catch(() => {}));
  s.nc = nc;
  const prefix = s.o.subjectPrefix || 'syncer.changed';
  for (const id of s.o.sources) {
    nc.subscribe(`${prefix}.${id}`, {
      callback: (err, msg) => (err ? s.onError(err) : handleEvent(s, msg.string())),
    });
  }
  await nc.flush();
  s.onStatus({ type: 'open', transport: 'nats' });
  refreshAll(s, 'connect');
  for await (const st of nc.status()) {
    if (st.type === 'disconnect') s.onStatus({ type: 'reconnecting' });
    if (st.type === 'reconnect') {
      // Core subscriptions miss what was published while disconnected.
      s.onStatus({ type: 'open', transport: 'nats' });
      refreshAll(s, 'reconnect');
    }
  }
}
