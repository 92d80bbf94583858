// The node side of livetest's Op protocol: ask the Go test to act on the
// running syncer (put, delete, stop, start) and wait until it has.
import { createInterface } from 'node:readline';

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** op sends one request and resolves when the Go test answered it. */
export async function op(o) {
  if (o.body !== undefined) o = { ...o, body: Buffer.from(o.body).toString('base64') };
  console.log(JSON.stringify(o));
  const { value, done } = await lines.next();
  if (done || value !== 'ok') throw new Error(`op ${o.op}: the test answered ${done ? 'nothing' : value}`);
}

/** finish prints the result line and ends the process (the engine keeps it alive otherwise). */
export function finish(result) {
  // process.exit does not wait for a pipe to drain: exit once written.
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(result.ok ? 0 : 1));
}

/** offline rejects every fetch that is not to loopback: the tests run without a network. */
export function offline() {
  const real = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const url = typeof input === 'string' ? input : input.url ?? String(input);
    if (!/^(https?|wss?):\/\/127\.0\.0\.1[:/]/.test(url)) return Promise.reject(new Error('offline: ' + url));
    return real(input, init);
  };
}

/**
 * waiter: until(what, check) resolves when check() (run at once and again
 * after every nudge()) returns a truthy value; a nudge that arrives while
 * check runs is not lost.
 */
export function waiter() {
  let gen = 0;
  const wakers = new Set(); // several until()s may wait at once
  return {
    nudge() { gen++; for (const w of [...wakers]) w(); },
    async until(what, check, ms = 20000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const seen = gen;
        const v = await check();
        if (v) return v;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        if (gen !== seen) continue;
        await new Promise((resolve) => {
          const wake = () => { clearTimeout(t); wakers.delete(wake); resolve(); };
          const t = setTimeout(wake, left);
          wakers.add(wake);
        });
      }
    },
  };
}
