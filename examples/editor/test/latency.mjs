// Bucket PUT (S3 emulator, webhook notification) → onAssetSourceUpdated in
// the browser, over the transport TRANSPORT: N uploads (default 100)
// spaced SPACING_MS (default 1000) apart, then one burst of BURST uploads
// (default 100) put one after the other, and, with BURST_SENDERS (e.g. 16),
// another from that many concurrent senders, counting the events each cost.
// Run by examples/editor_test.go (TestBrowserLatency); prints per-upload
// times for it to set against its own NATS subscriber's.
// Env: SYNCER_URL, SOURCE, TRANSPORT, NATS_URL, N, SPACING_MS, BURST, BURST_SENDERS, TESTENV.
import { op, finish } from '../../../internal/livetest/ops.mjs';
import { open } from './chromium.mjs';

const env = process.env;
const n = Number(env.N || 100);
const spacing = Number(env.SPACING_MS || 1000);
const burst = Number(env.BURST || 100);
const senders = Number(env.BURST_SENDERS || 0);
const source = env.SOURCE;
let b;
const result = { ok: false, transport: env.TRANSPORT };
try {
  const q = { sources: source, syncer: env.SYNCER_URL }; // straight to syncer (CORS), no proxy in the path
  if (env.TRANSPORT === 'nats') Object.assign(q, { transport: 'nats', natsUrl: env.NATS_URL });
  b = await open(env.SYNCER_URL, q);
  const { page } = b;
  const count = () => page.evaluate(() => window.syncerExample.updates.length);
  // Let the connect refresh settle: its update must not count for the first upload.
  await page.waitForFunction(() => window.syncerExample.updates.length > 0, null, { timeout: 30000 });
  const uploads = [];
  for (let i = 0; i < n; i++) {
    const before = await count();
    const key = `bench/${env.TRANSPORT}-${String(i).padStart(4, '0')}.png`;
    const t0 = Date.now();
    await op({ op: 'put', bucket: source, key, body: `upload ${i}`, contentType: 'image/png' });
    const t1 = await page.evaluate(async (before) => {
      const s = window.syncerExample;
      const deadline = Date.now() + 30000;
      while (s.updates.length <= before) {
        if (Date.now() > deadline) throw new Error('no onAssetSourceUpdated within 30 s');
        await new Promise((r) => setTimeout(r, 1)); // reading what the listener recorded, not timing
      }
      return s.updates[before].t;
    }, before);
    uploads.push({ key, t0, browser: t1 - t0 });
    const wait = t0 + spacing - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // the spacing the benchmark asks for
  }
  // Sequence numbers: the n uploads are 1..n, each burst the next `burst`.
  let lastSeq = n;
  const eventsOf = async (o) => {
    const before = await page.evaluate(() => window.syncerExample.events);
    const t0 = Date.now();
    await op(o);
    const ms = Date.now() - t0; // the senders' time for the whole burst
    lastSeq += o.n;
    await page.waitForFunction((seq) => window.syncerExample.lastSeq >= seq, lastSeq, { timeout: 60000 });
    return { events: (await page.evaluate(() => window.syncerExample.events)) - before, ms };
  };
  const sequential = await eventsOf({ op: 'burst', bucket: source, key: `burst/${env.TRANSPORT}`, n: burst });
  const concurrent = senders > 1
    ? await eventsOf({ op: 'burst', bucket: source, key: `burst16/${env.TRANSPORT}`, n: burst, senders })
    : undefined;
  Object.assign(result, { ok: true, uploads, burst, sequential, senders, concurrent });
} catch (err) {
  Object.assign(result, { error: String(err.stack || err).slice(0, 4000), logs: b?.logs.slice(-30).map((l) => l.slice(0, 300)) });
} finally {
  await b?.close();
}
finish(result);
