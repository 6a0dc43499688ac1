// The near cache in front of Redis: entries this instance read lately, kept in its memory and dropped as soon as Redis
// says they changed, so that a repeated hit costs no round trip. Redis tracks the keys a dedicated reader connection
// reads (CLIENT TRACKING, Redis 6+) and, when one is written, deleted, expired or evicted (by any instance), sends its
// name on `__redis__:invalidate` to a subscriber connection. While either connection is down, invalidations can be
// lost: the near cache is emptied and not used until both are back and tracking is on again.
//
// A read and an invalidation of the same key travel on different connections, so an invalidation can overtake the
// reply of a read that Redis answered before the change. Each read therefore leaves a token under its key; an
// invalidation (or a reset) takes the token away, and a reply whose token is gone is served but not kept.
// Standalone Redis and Sentinel only: on a Cluster each node would need its own pair of connections.
import type { Redis } from 'ioredis';
import { MemoryStore } from './memory-store.js';
import type { CacheEntry } from './store.js';

export interface NearCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

/** What /metrics reports of the near cache. */
export interface NearCacheFigures {
  active(): boolean;
  entries(): number;
  bytes(): number;
  hits(): number;
  invalidations(): number;
}

const INVALIDATIONS = '__redis__:invalidate';
/** Setting up tracking is not on a request's path: it may take longer than a lookup's budget. */
const SETUP_TIMEOUT_MS = 2_000;

export class NearCache implements NearCacheFigures {
  private readonly held: MemoryStore;
  /** Reads in flight, by key: the token of the latest one; gone when the key was invalidated meanwhile. */
  private readonly reads = new Map<string, object>();
  /**
   * Keys read once lately and not kept. Only a key's second read is tracked and kept: with 100k entries read at random,
   * tracking every read cost Redis 12.6–16.2 µs of CPU per lookup against 8.3–9.7 µs untracked, and the near cache
   * churned without answering (docs/BENCHMARKS.md, "The near cache at random keys"). Emptied when it reaches the near
   * cache's size.
   */
  private readonly seen = new Set<string>();
  private readonly seenLimit: number;
  private tracking = false;
  /** Bumped by every reset: a tracking setup that began before it does not switch the near cache on. */
  private epoch = 0;
  /** The subscriber's client id while it is subscribed; bumped session on each of its disconnects. */
  private listenerId: number | undefined;
  private listenerSession = 0;
  private hitCount = 0;
  private invalidationCount = 0;

  /**
   * `reader` reads entries and is tracked: a connection of its own, so that no other command is tracked. `subscriber`
   * receives the invalidations over RESP2, whose pub/sub messages ioredis hands on (it drops RESP3's push frames).
   */
  constructor(
    private readonly reader: Redis,
    private readonly subscriber: Redis,
    private readonly keyPrefix: string,
    private readonly decode: (value: Buffer) => CacheEntry,
    limits: NearCacheLimits,
    /** Told when tracking could not be set up on a live connection (an old Redis, an ACL): the near cache stays off. */
    private readonly onSetupFailed: (err: unknown) => void = () => undefined,
  ) {
    this.held = new MemoryStore(limits);
    this.seenLimit = limits.maxEntries;
    reader.on('ready', () => void this.track());
    subscriber.on('ready', () => void this.listen());
    for (const connection of [reader, subscriber]) {
      connection.on('close', () => this.reset(connection));
      connection.on('error', () => this.reset(connection));
    }
    subscriber.on('messageBuffer', (channel: Buffer, keys: Buffer[] | null) => {
      if (channel.toString() === INVALIDATIONS) this.invalidated(keys);
    });
  }

  /** True while invalidations reach this instance: only then may `read` answer from memory. */
  active(): boolean {
    return this.tracking;
  }

  /**
   * The entry under `key`: from memory when this instance read it since it last changed; otherwise from Redis, with
   * `readUntracked` the first time the key comes by (it may never come again), and through the tracked reader the
   * next time (then kept). Rejects as the Redis read does (the caller fails open). Call only while `active()`.
   */
  async read(key: string, readUntracked: (key: string) => Promise<CacheEntry | undefined>): Promise<CacheEntry | undefined> {
    const kept = this.held.fresh(key);
    if (kept !== undefined) {
      this.hitCount++;
      return kept;
    }
    if (!this.seen.delete(key)) {
      if (this.seen.size >= this.seenLimit) this.seen.clear();
      this.seen.add(key);
      return readUntracked(key);
    }
    const token = {};
    this.reads.set(key, token);
    let value: Buffer | null;
    let current = false;
    try {
      value = await this.reader.getBuffer(this.keyPrefix + key);
    } finally {
      // Still ours: no invalidation or reset came in between, and no later read of the key took over.
      current = this.reads.get(key) === token;
      if (current) this.reads.delete(key);
    }
    if (value === null) return undefined;
    const entry = this.decode(value);
    if (current && this.tracking) void this.held.set(key, entry);
    return entry;
  }

  /** This instance changed or removed the entry itself: its copy goes now, before Redis's message arrives. */
  forget(key: string): void {
    this.reads.delete(key);
    void this.held.delete(key);
  }

  forgetPrefix(prefix: string): void {
    for (const key of this.reads.keys()) if (key.startsWith(prefix)) this.reads.delete(key);
    void this.held.deletePrefix(prefix);
  }

  forgetAll(): void {
    this.reads.clear();
    void this.held.clear();
  }

  async close(): Promise<void> {
    this.subscriber.disconnect();
    await this.reader.quit().catch(() => this.reader.disconnect());
    this.reset(this.subscriber);
  }

  entries(): number {
    return this.held.size;
  }

  bytes(): number {
    return this.held.sizeBytes;
  }

  hits(): number {
    return this.hitCount;
  }

  invalidations(): number {
    return this.invalidationCount;
  }

  /** Keys Redis says changed; null: the whole database was flushed. */
  private invalidated(keys: Buffer[] | null): void {
    if (keys === null) {
      this.forgetAll();
      return;
    }
    for (const raw of keys) {
      const name = raw.toString();
      if (!name.startsWith(this.keyPrefix)) continue;
      this.invalidationCount++;
      this.forget(name.slice(this.keyPrefix.length));
    }
  }

  /** A connection dropped: what is held may have changed unseen, until tracking is set up again. */
  private reset(connection: Redis): void {
    this.epoch++;
    this.tracking = false;
    if (connection === this.subscriber) {
      this.listenerId = undefined;
      this.listenerSession++;
    }
    this.forgetAll();
  }

  /** The subscriber (re)connected: it subscribes, then the reader is tracked towards it. */
  private async listen(): Promise<void> {
    const session = this.listenerSession;
    let id: number;
    try {
      // CLIENT ID before SUBSCRIBE: a subscribed RESP2 connection takes no other command.
      id = await withTimeout(this.subscriber.client('ID'));
      await withTimeout(this.subscriber.subscribe(INVALIDATIONS));
    } catch (err) {
      // Its next 'ready' tries again; until then entries are read from Redis every time.
      if (session === this.listenerSession) this.onSetupFailed(err);
      return;
    }
    if (session !== this.listenerSession) return;
    this.listenerId = id;
    await this.track();
  }

  /** Once the subscriber listens and the reader is up: the reader's reads are tracked towards the subscriber. */
  private async track(): Promise<void> {
    const id = this.listenerId;
    if (this.tracking || id === undefined || this.reader.status !== 'ready') return;
    const epoch = this.epoch;
    try {
      // OFF first: the reader may still point at the subscriber's previous connection.
      await withTimeout(this.reader.client('TRACKING', 'OFF'));
      await withTimeout(this.reader.client('TRACKING', 'ON', 'REDIRECT', id));
    } catch (err) {
      if (epoch === this.epoch) this.onSetupFailed(err);
      return;
    }
    if (epoch !== this.epoch) return;
    this.forgetAll();
    this.tracking = true;
  }
}

function withTimeout<T>(command: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('near cache setup timed out')), SETUP_TIMEOUT_MS);
    command.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
