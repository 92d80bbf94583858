// The client with the real CE.SDK engine (@cesdk/node) against a running
// syncer (driven by clients/js/js_test.go over livetest's Op protocol):
// upload → onAssetSourceUpdated → findAssets lists it and meta.uri gives its
// bytes; overwrite → changed; delete → gone; syncer stopped, a file added
// while it is down, started again → the client reconnects and catches up;
// stop() removes the source.
//
// Env: BASE_URL, SOURCE, TOKEN, TRANSPORT (sse|nats), NATS_URL, TESTENV.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { op, finish, offline, waiter } from '../../../internal/livetest/ops.mjs';
import { syncAssetSources } from '../index.js';

const env = process.env;
const req = createRequire(join(env.TESTENV, 'package.json'));
const CreativeEngine = (await import(pathToFileURL(req.resolve('@cesdk/node')).href)).default;
offline();

const source = env.SOURCE;
const statuses = [];
const errors = [];
const w = waiter();
let opened = 0;
let events = 0;
let updates = 0;
let updatesAtEvent = 0; // onAssetSourceUpdated calls seen when the last event arrived
const seqs = [];
const engine = await CreativeEngine.init({});
const result = { ok: false, transport: env.TRANSPORT };
try {
  const stop = await syncAssetSources(engine, {
    baseUrl: env.BASE_URL, sources: [source], token: env.TOKEN, transport: env.TRANSPORT,
    natsUrl: env.NATS_URL,
    // ES modules ignore NODE_PATH: hand the client the package from testenv.
    natsModule: env.TRANSPORT === 'nats' ? await import(pathToFileURL(req.resolve('@nats-io/nats-core')).href) : undefined,
    backoff: { initial: 100, max: 1000 },
    onStatus: (s) => { statuses.push(s.type); if (s.type === 'open') opened++; w.nudge(); },
    onError: (e) => errors.push(String(e.message || e)),
    onEvent: (ev) => { events++; updatesAtEvent = updates; seqs.push(`${ev.data.firstSeq}-${ev.data.lastSeq}`); },
  });
  const id = engine.asset.findAllSources().find((s) => s === source);
  if (!id) throw new Error(`source ${source} not registered: ${engine.asset.findAllSources()}`);
  engine.asset.onAssetSourceUpdated((sid) => { if (sid === id) { updates++; w.nudge(); } });
  await w.until('the live connection', () => opened > 0);

  const list = async () => (await engine.asset.findAssets(id, { page: 0, perPage: 100 })).assets;
  const find = async (key) => (await list()).find((a) => a.meta.key === key);
  const bytesOf = async (a) => Buffer.from(await (await fetch(a.meta.uri)).arrayBuffer()).toString();
  // Each step does something, then waits for an event, an
  // onAssetSourceUpdated after it, and a findAssets that shows the change:
  // the engine re-queries only because the client told it to (the connect
  // refresh does not count). The counters are read before the action: the
  // event may well arrive before the test has answered the op.
  const step = async (what, action, check) => {
    const fromEvents = events;
    let fromUpdates = Infinity;
    const began = Date.now();
    if (action) await op(action);
    const v = await w.until(what, async () => {
      if (events > fromEvents && fromUpdates === Infinity) fromUpdates = updatesAtEvent;
      return updates > fromUpdates && check();
    });
    console.error(`${what}: ${Date.now() - began} ms`); // in the test's output when it fails
    return v;
  };
  const put = (key, body) => ({ op: 'put', bucket: source, key, body, contentType: 'image/png' });

  const a1 = await step('the upload', put('photos/cat.png', 'cat v1'), () => find('photos/cat.png'));
  if ((await bytesOf(a1)) !== 'cat v1') throw new Error('meta.uri of the upload: wrong bytes');

  const a2 = await step('the overwrite', put('photos/cat.png', 'cat version 2'), async () => {
    const a = await find('photos/cat.png');
    return a && (await bytesOf(a)) === 'cat version 2' && a;
  });
  if (a2.id !== a1.id) throw new Error(`asset id changed on overwrite: ${a1.id} → ${a2.id}`);

  await step('the delete', { op: 'delete', bucket: source, key: 'photos/cat.png' }, async () => !(await find('photos/cat.png')));

  // syncer goes away; a file lands while it is down; it comes back.
  const openedBefore = opened;
  const catchUp = step('the catch-up after the restart', null, () => find('down/while-down.png'));
  catchUp.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
  const t0 = Date.now();
  const mark = (what) => console.error(`${what}: +${Date.now() - t0} ms`);
  await op({ op: 'stop' });
  mark('syncer stopped');
  await op(put('down/while-down.png', 'missed'));
  await op({ op: 'start' });
  mark('syncer started');
  if (env.TRANSPORT === 'sse') await w.until('the reconnect', () => opened > openedBefore);
  mark('reconnected');
  await catchUp;

  await step('an upload after the restart', put('photos/after.png', 'after'), () => find('photos/after.png'));

  let began = Date.now();
  await stop();
  console.error(`stop(): ${Date.now() - began} ms`);
  if (engine.asset.findAllSources().includes(id)) throw new Error('stop() left the source registered');
  Object.assign(result, { ok: true, updates, events, seqs, statuses: [...new Set(statuses)], errors: errors.length });
} catch (err) {
  Object.assign(result, { error: String(err.stack || err), statuses, errors });
} finally {
  engine.dispose();
}
finish(result);
