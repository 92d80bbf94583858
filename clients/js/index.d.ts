// Types of syncer's JavaScript client (index.js). No build step: the
// module is plain ESM; these types are for editors and TypeScript users.

/** What the client tells onStatus. */
export type SyncStatus =
  | { type: 'open'; transport: 'sse' | 'nats' }
  | { type: 'closed' }
  | { type: 'reconnecting'; in?: number }
  | { type: 'refresh'; reason: 'connect' | 'reconnect' | 'reset' | 'bad-event' }
  | { type: 'gap' | 'invalid'; sourceId: string; firstSeq: number; lastSeq: number };

/** The CloudEvent syncer publishes per batch of changes of one source. */
export interface ContentsChangedEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  data: {
    sourceId: string;
    firstSeq: number;
    lastSeq: number;
    changes: Array<{ seq: number; op: 'added' | 'modified' | 'deleted'; key: string; [k: string]: unknown }>;
    [k: string]: unknown;
  };
}

export interface SyncOptions {
  /** syncer's HTTP listener, e.g. 'http://127.0.0.1:8080' (or '<url>/t/<token>' for a path token). */
  baseUrl: string;
  /** syncer source ids. */
  sources: string[];
  /** Bearer token sent as Authorization on every request (asset API and SSE). */
  token?: string;
  /** 'sse' (default): GET /events on syncer. 'nats': NATS WebSocket at natsUrl. */
  transport?: 'sse' | 'nats';
  /** ws:// or wss:// URL of the NATS WebSocket listener (transport 'nats'). */
  natsUrl?: string;
  /** Extra options for wsconnect (user/pass, token, authenticator...). */
  natsOptions?: Record<string, unknown>;
  /** The @nats-io/nats-core module, for pages without an import map or a bundler (default: a dynamic import). */
  natsModule?: { wsconnect: (opts: Record<string, unknown>) => Promise<unknown> };
  /** Subject prefix of the events (default 'syncer.changed'). */
  subjectPrefix?: string;
  /** Reconnect backoff in ms (default 500 doubling to 15000, jittered). */
  backoff?: { initial?: number; max?: number };
  /** An SSE stream silent (no event, no heartbeat) this long is reopened (default 45000 ms). */
  idleTimeout?: number;
  /** Each event applied (after the engine was told). */
  onEvent?: (event: ContentsChangedEvent) => void;
  /** Connection state changes and refreshes. */
  onStatus?: (status: SyncStatus) => void;
  /** Errors the client recovers from by itself (it keeps reconnecting). */
  onError?: (error: Error) => void;
}

/**
 * Registers each source in the engine (engine.asset.addSource, id = the
 * manifest id) and calls engine.asset.assetSourceContentsChanged on each
 * event. Rejects when a manifest cannot be read; resolves to stop(), which
 * removes the sources, connections and timers it added.
 */
export function syncAssetSources(
  engine: { asset: { addSource(s: unknown): void; removeSource(id: string): void; assetSourceContentsChanged(id: string): void } },
  options: SyncOptions,
): Promise<() => Promise<void>>;

/** The asset API query string for an engine query (arrays comma-joined). */
export function assetsQuery(query?: Record<string, unknown>): string;

/** Per-source sequence tracking: is an event the next one, a gap, or a replayed duplicate? */
export class SeqTracker {
  observe(sourceId: string, firstSeq: number, lastSeq: number): 'first' | 'next' | 'gap' | 'duplicate' | 'invalid';
  knows(sourceId: string): boolean;
  forget(sourceId: string): void;
  set(sourceId: string, lastSeq: number): void;
  lastEventId(sourceIds: string[]): string;
}

/** Reconnect wait for attempt n: doubling from initial to max, jittered into [cap/2, cap). */
export function backoffDelay(attempt: number, initial?: number, max?: number, rand?: () => number): number;

/** The event-stream parser (WHATWG "interpreting an event stream"). */
export class SSEParser {
  constructor(onEvent: (ev: { event: string; data: string; id: string }) => void, onComment?: (text: string) => void);
  lastEventId: string;
  retry: number | undefined;
  push(chunk: string): void;
}

/** Reads one SSE response with fetch until it ends, the signal aborts or it is idle for idleTimeout ms. */
export function readSSE(
  url: string,
  options: {
    headers?: Record<string, string>;
    signal: AbortSignal;
    idleTimeout: number;
    onOpen?: () => void;
    onEvent: (ev: { event: string; data: string; id: string }) => void;
  },
): Promise<void>;
