// Server-Sent Events over fetch: the parser of the WHATWG "event stream"
// format and a reader that feeds it from a streaming fetch body. fetch, not
// EventSource: the same code runs in browsers and in Node 22 (which has no
// EventSource), and it can send the Authorization and Last-Event-ID headers.

/**
 * SSEParser turns chunks of text into events, as the HTML standard's
 * "interpreting an event stream" says: lines end in CRLF, LF or CR; a line
 * starting with ':' is a comment; `field: value` (one space after the colon
 * dropped); an empty line dispatches. One deviation: an event with an event
 * type but no data is dispatched too (a `reset` needs no payload).
 */
export class SSEParser {
  /** @param {(ev: {event: string, data: string, id: string}) => void} onEvent
   *  @param {(text: string) => void} [onComment] */
  constructor(onEvent, onComment) {
    this.onEvent = onEvent;
    this.onComment = onComment || (() => {});
    this.buf = '';
    this.data = [];
    this.event = '';
    this.lastEventId = '';
    this.retry = undefined;
    this.sawCR = false; // the previous chunk ended in CR: a following LF belongs to it
  }

  /** @param {string} chunk */
  push(chunk) {
    if (this.sawCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.sawCR = false;
    this.buf += chunk;
    let start = 0;
    for (;;) {
      const i = indexOfEOL(this.buf, start);
      if (i < 0) break;
      const ch = this.buf[i];
      if (ch === '\r' && i + 1 === this.buf.length) {
        // CR at the end of what we have: the line is complete, but an LF
        // in the next chunk is part of the same line ending.
        this.line(this.buf.slice(start, i));
        start = i + 1;
        this.sawCR = true;
        break;
      }
      this.line(this.buf.slice(start, i));
      start = i + (ch === '\r' && this.buf[i + 1] === '\n' ? 2 : 1);
    }
    this.buf = this.buf.slice(start);
  }

  /** @param {string} line */
  line(line) {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return this.onComment(line.slice(1).replace(/^ /, ''));
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
    switch (field) {
      case 'data': this.data.push(value); break;
      case 'event': this.event = value; break;
      case 'id': if (!value.includes('\0')) this.lastEventId = value; break;
      case 'retry': if (/^\d+$/.test(value)) this.retry = Number(value); break;
      default: // unknown fields are ignored
    }
  }

  dispatch() {
    const data = this.data.join('\n');
    const event = this.event;
    this.data = [];
    this.event = '';
    if (data === '' && event === '') return;
    this.onEvent({ event: event || 'message', data, id: this.lastEventId });
  }
}

function indexOfEOL(s, from) {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10 || c === 13) return i;
  }
  return -1;
}

/**
 * readSSE fetches url and feeds its body to a parser until the body ends,
 * the signal aborts, or nothing (not even a heartbeat) arrives for
 * idleTimeout ms. Resolves when the stream ended; rejects on an HTTP error
 * (err.status set) or a network error.
 * @param {string} url
 * @param {{headers?: Record<string,string>, signal: AbortSignal, idleTimeout: number,
 *   onOpen?: () => void, onEvent: (ev: {event: string, data: string, id: string}) => void}} o
 */
export async function readSSE(url, o) {
  const ctl = new AbortController();
  const abort = () => ctl.abort(o.signal.reason);
  if (o.signal.aborted) abort();
  o.signal.addEventListener('abort', abort, { once: true });
  let idle;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => ctl.abort(new Error(`no data for ${o.idleTimeout} ms`)), o.idleTimeout);
  };
  try {
    arm();
    const res = await fetch(url, {
      headers: { Accept: 'text/event-stream', ...o.headers },
      cache: 'no-store',
      signal: ctl.signal,
    });
    if (!res.ok) {
      const body = await res.text().catch(() => '');
      const err = new Error(`GET ${redact(url)}: HTTP ${res.status} ${body.trim().slice(0, 200)}`);
      err.status = res.status;
      throw err;
    }
    const ct = res.headers.get('content-type') || '';
    if (!ct.startsWith('text/event-stream')) {
      throw new Error(`GET ${redact(url)}: content-type ${JSON.stringify(ct)}, want text/event-stream`);
    }
    o.onOpen?.();
    const parser = new SSEParser(o.onEvent);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      arm();
      const { value, done } = await reader.read();
      if (done) return;
      parser.push(value);
    }
  } finally {
    clearTimeout(idle);
    o.signal.removeEventListener('abort', abort);
    ctl.abort(); // releases the connection whichever way we left
  }
}

/** redact hides a token carried in the path (/t/<token>/...) in messages. */
export function redact(url) {
  return String(url).replace(/\/t\/[^/]+\//, '/t/***/');
}
