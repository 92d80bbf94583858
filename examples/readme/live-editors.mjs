// The README's "Live editors" snippet, run: README.md shows the lines from
// `import CreativeEngine` to `// … later` verbatim (examples/readme_test.go
// checks that, and runs this file with @cesdk/node against a running syncer
// with a source cloud-images). The test runs a copy placed as a file at the
// repository's root would be, beside clients/, internal/ and node_modules/,
// so the snippet's imports are the ones a reader at the root would write.
// Then an upload must reach the engine and stop() must undo everything.
//
// Env: SYNCER_URL, SYNCER_TOKEN (the snippet's); TESTENV (livetest's).
import { op, finish, offline, waiter } from './internal/livetest/ops.mjs';

offline(); // the tests run without a network: the engine's telemetry goes nowhere

import CreativeEngine from '@cesdk/node';                   // in a browser: '@cesdk/engine'
import { syncAssetSources } from './clients/js/index.js';

const engine = await CreativeEngine.init({});
const stop = await syncAssetSources(engine, {
  baseUrl: process.env.SYNCER_URL ?? 'http://127.0.0.1:8080',   // syncer's HTTP listener
  sources: ['cloud-images'],                                    // syncer source ids
  token: process.env.SYNCER_TOKEN,                              // optional bearer token (sent as Authorization)
  transport: 'sse',                                             // 'sse' (default) | 'nats' (with natsUrl: 'ws://…')
});
// The engine lists the bucket (engine.asset.findAssets('cloud-images', …)) and hears of every change:
engine.asset.onAssetSourceUpdated((id) => console.error(`${id} changed`));
// … later: await stop();  removes the sources, the connection and its timers

const result = { ok: false };
try {
  const w = waiter();
  let updates = 0;
  engine.asset.onAssetSourceUpdated((id) => { if (id === 'cloud-images') { updates++; w.nudge(); } });
  const keys = async () => (await engine.asset.findAssets('cloud-images', { page: 0, perPage: 100 })).assets.map((a) => a.meta.key);
  const before = updates;
  await op({ op: 'put', bucket: 'cloud-images', key: 'readme/hello.png', body: 'hello', contentType: 'image/png' });
  // An update after the upload that lists it: the event's, or the connect
  // refresh's when the stream opened after the upload's event went out.
  await w.until('onAssetSourceUpdated listing the upload', async () => updates > before && (await keys()).includes('readme/hello.png'));
  await stop();
  if (engine.asset.findAllSources().includes('cloud-images')) throw new Error('stop() left the source registered');
  Object.assign(result, { ok: true, updates });
} catch (err) {
  result.error = String(err.stack || err);
} finally {
  engine.dispose();
}
finish(result);
