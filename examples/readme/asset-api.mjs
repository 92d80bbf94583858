// The README's "Asset API" snippet, run: README.md shows the lines from
// `import RemoteAssetSourcePlugin` to `// on each syncer event` verbatim
// (examples/readme_test.go checks that, and runs this file with @cesdk/node
// against a running syncer with a source media that holds
// photos/readme.png and wants a token). Like live-editors.mjs it runs as a
// file at the repository's root, beside node_modules/.
//
// Env: SYNCER_URL, SYNCER_TOKEN; TESTENV (livetest's).
import { finish, offline } from './internal/livetest/ops.mjs';
import CreativeEngine from '@cesdk/node';

offline(); // the tests run without a network
const engine = await CreativeEngine.init({});
const token = process.env.SYNCER_TOKEN;

import RemoteAssetSourcePlugin from '@imgly/plugin-remote-asset-source-web';
const syncer = process.env.SYNCER_URL ?? 'https://syncer.example.com';
// The plugin takes only a baseUrl, so the token travels in the path.
const plugin = RemoteAssetSourcePlugin({ baseUrl: `${syncer}/t/${token}/sources/media` });
await plugin.initialize({ engine });   // in CE.SDK's editor: await cesdk.addPlugin(plugin)
// on each syncer event of the source: engine.asset.assetSourceContentsChanged('media')

const result = { ok: false };
try {
  const { assets, total } = await engine.asset.findAssets('media', { page: 0, perPage: 10 });
  const a = assets.find((x) => x.meta.key === 'photos/readme.png');
  if (!a || total !== 1) throw new Error(`findAssets('media'): total ${total}, keys ${assets.map((x) => x.meta.key)}`);
  const res = await fetch(a.meta.uri);
  const body = await res.text();
  if (res.status !== 200 || body !== 'readme bytes') throw new Error(`meta.uri: HTTP ${res.status}, ${JSON.stringify(body.slice(0, 80))}`);
  Object.assign(result, { ok: true, total });
} catch (err) {
  result.error = String(err.stack || err);
} finally {
  engine.dispose();
}
finish(result);
