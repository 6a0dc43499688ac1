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
  get(key: string): Promise<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** Deletes every entry whose key starts with `prefix` (a namespace purge); returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  clear(): Promise<void>;
  close(): Promise<void>;
}
