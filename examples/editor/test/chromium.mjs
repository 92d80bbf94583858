// Debian's chromium, headless and offline, driven by playwright-core; the
// example served by ../serve.mjs in this process.
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../serve.mjs';

const req = createRequire(join(process.env.TESTENV, 'package.json'));
const { chromium } = req('playwright-core');

const loopback = (url) => /^(https?|wss?):\/\/127\.0\.0\.1[:/]/.test(url) || /^(data|blob):/.test(url);

/**
 * open serves the example (proxying to syncerUrl), starts chromium with a
 * fresh profile and opens the page with query; resolves to
 * {page, outside, close}. outside lists requests that tried to leave loopback.
 */
export async function open(syncerUrl, query) {
  const server = await serve({ port: 0, syncerUrl, nodeModules: join(process.env.TESTENV, "node_modules") });
  const profile = await mkdtemp(join(tmpdir(), 'syncer-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const outside = [];
  await ctx.route((url) => !loopback(url.href), (route) => { outside.push(route.request().url()); route.abort(); });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(server.url + '?' + new URLSearchParams(query));
  await page.waitForFunction(() => window.syncerExample?.ready || window.syncerExample?.errors.length, null, { timeout: 60000 });
  const errors = await page.evaluate(() => window.syncerExample.errors);
  if (errors.length) throw new Error(`page: ${errors.join('; ')}\n${logs.slice(-30).map((l) => l.slice(0, 300)).join('\n')}`);
  return {
    page, outside, logs,
    async close() {
      await ctx.close();
      await server.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
