// The editor example in a real browser (run by examples/editor_test.go over
// livetest's Op protocol): an upload to the bucket appears in the page, a
// delete disappears, through the client and CE.SDK's engine.
// Env: SYNCER_URL, SOURCE, TRANSPORT (sse|nats), NATS_URL, TESTENV.
import { op, finish } from '../../../internal/livetest/ops.mjs';
import { open } from './chromium.mjs';

const source = process.env.SOURCE;
let b;
const result = { ok: false };
try {
  const transport = process.env.TRANSPORT || 'sse';
  b = await open(process.env.SYNCER_URL, transport === 'nats'
    ? { sources: source, transport, natsUrl: process.env.NATS_URL }
    : { sources: source });
  const { page } = b;
  const shown = (key) => page.waitForSelector(`#assets li[data-key="${key}"]`, { timeout: 30000 });
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

  // Two files that stay: deleting the only files of a local source would be
  // a scan emptying it, which the mass-deletion guard holds.
  for (const k of ['photos/keep-1.png', 'photos/keep-2.png']) {
    await op({ op: 'put', bucket: source, key: k, body: png, contentType: 'image/png' });
  }
  await shown('photos/keep-2.png');
  await op({ op: 'put', bucket: source, key: 'photos/hello.png', body: png, contentType: 'image/png' });
  await shown('photos/hello.png');
  // The thumbnail is the object itself, fetched by the browser from the URL syncer gave.
  await page.waitForFunction(() => document.querySelector('#assets li[data-key="photos/hello.png"] img')?.naturalWidth === 1,
    null, { timeout: 30000 });

  await op({ op: 'delete', bucket: source, key: 'photos/hello.png' });
  await page.waitForSelector('#assets li[data-key="photos/hello.png"]', { state: 'detached', timeout: 30000 });

  const updates = await page.evaluate(() => window.syncerExample.updates.length);
  // Without a license key the engine posts usage telemetry to IMG.LY; it is
  // blocked (and ignored by the engine). Anything else leaving loopback fails.
  const telemetry = b.outside.filter((u) => u.startsWith('https://api.img.ly/event'));
  const other = b.outside.filter((u) => !telemetry.includes(u));
  if (other.length) throw new Error(`requests left loopback: ${other.join(', ')}`);
  Object.assign(result, { ok: true, updates, blockedTelemetry: telemetry.length });
} catch (err) {
  Object.assign(result, { error: String(err.stack || err).slice(0, 4000), logs: b?.logs.slice(-30).map((l) => l.slice(0, 300)) });
} finally {
  await b?.close();
}
finish(result);
