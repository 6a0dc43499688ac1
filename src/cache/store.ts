// The interface every exact-tier store implements (memory, or Redis: standalone, Cluster or Sentinel), and the entry it holds.

/** One cached answer and when it was stored. */
export interface CacheEntry {
  /** A completion: the JSON answer as served to a non-streaming request. An embeddings input: its own small format. */
  body: Buffer;
  /** Epoch milliseconds. */
  storedAt: number;
  /** Epoch milliseconds. */
  expiresAt: number;
  /** How often it was served, where the store counts it (best effort). */
  hits?: number;
}

export interface CacheStore {
  readonly kind: 'memory' | 'redis';
  /** The entry while it is fresh (before `expiresAt`); an expired one is never returned here. */
  get(key: string): Promise<CacheEntry | undefined>;
  /**
   * The entry fresh or expired, as long as the store still keeps it (an expired entry is kept for the store's
   * `keepExpiredMs`, for stale-if-error); counts no hit. Only an upstream failure reads this.
   */
  getStale(key: string): Promise<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** Deletes every entry whose key starts with `prefix` (a namespace purge); returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  clear(): Promise<void>;
  /**
   * Where the store knows when entries leave (the memory store: LRU eviction, expiry found on read, delete, purge), it
   * tells `listener` each key. Redis expires and evicts on its own, unseen: it has no such hook.
   */
  onRemoved?(listener: (key: string) => void): void;
  close(): Promise<void>;
}

/** What an operator purges: one entry, a namespace, or everything. */
export type PurgeScope = { key: string } | { namespace: string } | { all: true };
