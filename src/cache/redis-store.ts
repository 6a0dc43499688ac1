// The shared exact-tier store: entries in Redis (standalone, Cluster or Sentinel) under one key prefix, expired by Redis
// itself, failing fast. Every command takes one key, so entries spread over a Cluster's slots; only purges touch many.
// Value format measured by loadtest/redis-format.ts (1 KB / 20 KB bodies): binary header + body encodes+decodes in 0.35 / 1.7 µs
// vs 3.9 / 38 µs for JSON+base64, is 14–16% smaller and gave 1.3–3.3× JSON's GETs/s; a hash (+PEXPIRE in MULTI) 0.65–0.8× binary's.
import type { Redis } from 'ioredis';
import { NearCache, type NearCacheLimits } from './near-cache.js';
import { isCluster, openRedisConnection, scanKeys, type RedisConnection, type RedisTarget } from './redis-connection.js';
import type { CacheEntry, CacheStore } from './store.js';

/** What /readyz reports: `connecting` until the first connection is up, `down` from a failure until the next success. */
export type RedisState = 'connecting' | 'ready' | 'down';

export interface RedisStoreOptions {
  /** Which Redis: a standalone server, a Cluster or one found through Sentinel; default `url` as a standalone server. */
  target?: RedisTarget;
  /** Shorthand for a standalone target: `redis://` or `rediss://`, credentials included; default `redis://127.0.0.1:6379`. */
  url?: string;
  /** Every key this store writes starts with it (e.g. `recall:`); `clear()` removes exactly these keys. */
  keyPrefix: string;
  /** A command without a reply by then fails, and the caller answers from the upstream. */
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  /** Longest pause between reconnect attempts; default 1000 ms. */
  reconnectMaxDelayMs?: number;
  /** How long Redis keeps an entry past its expiry (PEXPIRE = TTL + this), never served as fresh, for stale-if-error; default 0. */
  keepExpiredMs?: number;
  /** The clock expiry is computed against; Redis itself expires on its own clock. */
  now?: () => number;
  /**
   * Entries read lately kept in this process, dropped when Redis says they changed (near-cache.ts); undefined or
   * `maxEntries` 0: none. Not on a Cluster.
   */
  nearCache?: NearCacheLimits | undefined;
  /** Told why the near cache could not start (it then stays off and every lookup reads Redis). */
  onNearCacheProblem?: (err: unknown) => void;
}

/** A value under this store's prefix that is not an entry it wrote: another writer, or a format it does not know. */
export class RedisEntryFormatError extends Error {
  override readonly name = 'RedisEntryFormatError';
}

/** Bump when the layout changes; a reader meets an unknown version as a format error (a miss), never as garbage. */
const FORMAT_VERSION = 1;
/** [1 byte version][8 bytes storedAt, float64 BE][8 bytes expiresAt, float64 BE][body]; a float64 holds epoch ms exactly. */
const HEADER_BYTES = 17;
const SCAN_BATCH = 500;
const DEFAULT_RECONNECT_MAX_DELAY_MS = 1_000;

function encodeEntry(entry: CacheEntry): Buffer {
  const value = Buffer.allocUnsafe(HEADER_BYTES + entry.body.length);
  value[0] = FORMAT_VERSION;
  value.writeDoubleBE(entry.storedAt, 1);
  value.writeDoubleBE(entry.expiresAt, 9);
  entry.body.copy(value, HEADER_BYTES);
  return value;
}

function decodeEntry(value: Buffer): CacheEntry {
  if (value.length < HEADER_BYTES) throw new RedisEntryFormatError(`entry of ${value.length} bytes is shorter than its header`);
  if (value[0] !== FORMAT_VERSION) throw new RedisEntryFormatError(`entry format version ${value[0]} is not ${FORMAT_VERSION}`);
  const storedAt = value.readDoubleBE(1);
  const expiresAt = value.readDoubleBE(9);
  if (!Number.isFinite(storedAt) || !Number.isFinite(expiresAt)) throw new RedisEntryFormatError('entry times are not finite');
  return { body: value.subarray(HEADER_BYTES), storedAt, expiresAt };
}

/** SCAN MATCH treats `* ? [ ] \` as glob syntax; a namespace may contain any of them. */
function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Hits are not counted (`entry.hits` stays undefined): a guarded counter on the hit path halved GETs/s in
 * loadtest/redis-format.ts, and hit rates come from the metrics instead.
 */
export class RedisStore implements CacheStore {
  readonly kind = 'redis';
  private readonly redis: RedisConnection;
  private readonly keyPrefix: string;
  private readonly now: () => number;
  private readonly keepExpiredMs: number;
  private state: RedisState = 'connecting';
  /** Undefined when off, and on a Cluster. */
  readonly near: NearCache | undefined;

  constructor(options: RedisStoreOptions) {
    // An empty prefix would make clear() a FLUSHDB of someone else's data.
    if (options.keyPrefix === '') throw new Error('RedisStore needs a non-empty keyPrefix');
    this.keyPrefix = options.keyPrefix;
    this.now = options.now ?? Date.now;
    this.keepExpiredMs = options.keepExpiredMs ?? 0;
    this.redis = openRedisConnection(options.target ?? { kind: 'standalone', url: options.url ?? 'redis://127.0.0.1:6379' }, {
      commandTimeoutMs: options.commandTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS,
    });
    this.redis.on('ready', () => { this.state = 'ready'; });
    this.redis.on('close', () => { this.state = 'down'; });
    // Without a listener ioredis prints every failed reconnect; the exact tier already warns, rate-limited, per failed call.
    this.redis.on('error', () => { this.state = 'down'; });
    const near = options.nearCache;
    if (near !== undefined && near.maxEntries > 0 && !isCluster(this.redis)) this.near = this.openNearCache(this.redis, near, options.onNearCacheProblem);
  }

  /** Two more connections: the tracked reader (with the first one's fail-fast options) and the invalidations' subscriber. */
  private openNearCache(redis: Redis, limits: NearCacheLimits, onProblem: ((err: unknown) => void) | undefined): NearCache {
    const reader = redis.duplicate({ connectionName: 'recall-near-cache' });
    const subscriber = redis.duplicate({
      connectionName: 'recall-near-cache-invalidations', protocol: 2, autoResubscribe: false, enableOfflineQueue: true,
      enableAutoPipelining: false, commandTimeout: undefined, maxRetriesPerRequest: null,
    });
    return new NearCache(reader, subscriber, this.keyPrefix, decodeEntry, limits, onProblem);
  }

  /** The connection, for the other features that share this Redis (semantic feed, coalescing locks, rate limits). */
  get connection(): RedisConnection {
    return this.redis;
  }

  status(): RedisState {
    return this.state;
  }

  /** Resolves true once connected, false after `timeoutMs`; commands sent before that fail (open) rather than wait. */
  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.state === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      this.redis.once('ready', onReady);
    });
  }

  /**
   * A value every instance must agree on (the tenant HMAC secret): the first instance's candidate wins, stored once
   * with SET NX; later instances read it back. Its key lies outside the entries' prefix, so that no purge (of all,
   * or of a namespace with the same name) can delete it from under the running instances.
   */
  async sharedValue(name: string, candidate: string): Promise<string> {
    const key = `recall-meta:${this.keyPrefix}${name}`;
    await this.redis.set(key, candidate, 'NX');
    return (await this.redis.get(key)) ?? candidate;
  }

  /**
   * Writes the agreed value back (SET NX) whenever the connection becomes ready again: a Redis restarted without
   * persistence has lost it, and instances started after that must still find the one the running ones use.
   */
  keepShared(name: string, value: string): void {
    this.redis.on('ready', () => {
      this.redis.set(`recall-meta:${this.keyPrefix}${name}`, value, 'NX').catch(() => undefined);
    });
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    const entry = this.near?.active() === true ? await this.near.read(key, this.readEntry) : await this.read(key);
    // Redis expires on its own clock, a little after expiresAt; the entry's own time is the one that counts.
    return entry === undefined || entry.expiresAt <= this.now() ? undefined : entry;
  }

  async getStale(key: string): Promise<CacheEntry | undefined> {
    const entry = await this.read(key);
    return entry === undefined || entry.expiresAt + this.keepExpiredMs <= this.now() ? undefined : entry;
  }

  private readonly readEntry = (key: string): Promise<CacheEntry | undefined> => this.read(key);

  private async read(key: string): Promise<CacheEntry | undefined> {
    const value = await this.redis.getBuffer(this.keyPrefix + key);
    return value === null ? undefined : decodeEntry(value);
  }

  async set(key: string, entry: CacheEntry): Promise<void> {
    // Redis keeps the value past the entry's own expiry for stale-if-error; the value carries expiresAt for get().
    const ttlMs = Math.ceil(entry.expiresAt + this.keepExpiredMs - this.now());
    // Every entry expires; a key without a TTL would stay in a shared Redis for good.
    if (!Number.isFinite(ttlMs)) throw new RangeError(`entry expiresAt must be a finite time, got ${entry.expiresAt}`);
    const redisKey = this.keyPrefix + key;
    // Expired past the time expired entries are kept: store nothing, but the older entry it replaces must go all the same.
    if (ttlMs <= 0) {
      await this.redis.unlink(redisKey);
    } else {
      await this.redis.set(redisKey, encodeEntry(entry), 'PX', ttlMs);
    }
    this.near?.forget(key);
  }

  async delete(key: string): Promise<boolean> {
    const deleted = (await this.redis.unlink(this.keyPrefix + key)) > 0;
    this.near?.forget(key);
    return deleted;
  }

  async deletePrefix(prefix: string): Promise<number> {
    const deleted = await this.unlinkMatching(`${escapeGlob(this.keyPrefix + prefix)}*`);
    this.near?.forgetPrefix(prefix);
    return deleted;
  }

  async clear(): Promise<void> {
    await this.unlinkMatching(`${escapeGlob(this.keyPrefix)}*`);
    this.near?.forgetAll();
  }

  async close(): Promise<void> {
    await this.near?.close();
    if (this.redis.status === 'end') return;
    if (this.redis.status === 'ready') {
      try {
        await this.redis.quit();
        return;
      } catch {
        // Not answered within commandTimeout: drop the connection instead.
      }
    }
    this.redis.disconnect();
  }

  /**
   * UNLINKs every key matching `pattern` (found by scanKeys), off Redis's main thread: a batch at once on one server;
   * key by key (pipelined on the node's own connection) on a Cluster, where the keys of one batch lie in different
   * slots and a multi-key UNLINK would fail with CROSSSLOT.
   */
  private async unlinkMatching(pattern: string): Promise<number> {
    const perKey = isCluster(this.redis);
    let deleted = 0;
    for await (const { server, keys } of scanKeys(this.redis, pattern, SCAN_BATCH)) {
      if (!perKey) deleted += await server.unlink(...keys);
      else for (const count of await Promise.all(keys.map((key) => server.unlink(key)))) deleted += count;
    }
    return deleted;
  }
}
