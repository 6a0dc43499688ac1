// The embedded default store: an in-process LRU bounded by entry count and bytes, with per-entry expiry.
import type { CacheEntry, CacheStore } from './store.js';

export interface MemoryStoreLimits {
  maxEntries: number;
  maxBytes: number;
  /** How long an entry is kept past its expiry, never served as fresh, for stale-if-error; default 0. */
  keepExpiredMs?: number;
}

/** Rough per-entry overhead of the Map slot, the list node, the entry object and its key string. */
const ENTRY_OVERHEAD_BYTES = 200;

interface Node {
  key: string;
  entry: CacheEntry;
  weight: number;
  older: Node | undefined;
  newer: Node | undefined;
}

/**
 * Recency is a doubly linked list beside the Map, so that every operation is O(1). (Re-inserting into the Map to
 * mark recency and evicting its first key left deleted slots that each eviction had to skip: at the entry limit,
 * that scan was 5 % of a miss's CPU.)
 */
export class MemoryStore implements CacheStore {
  readonly kind = 'memory';
  private readonly nodes = new Map<string, Node>();
  private oldest: Node | undefined;
  private newest: Node | undefined;
  private bytes = 0;
  private readonly keepExpiredMs: number;
  /** Told the key of every entry that leaves (evicted, expired, deleted, purged); not of one replaced by a newer one. */
  private removed: ((key: string) => void) | undefined;
  evictions = 0;

  constructor(private readonly limits: MemoryStoreLimits, private readonly now: () => number = Date.now) {
    this.keepExpiredMs = limits.keepExpiredMs ?? 0;
  }

  /** One listener (the exact tier's): the semantic index drops an entry's vector when the entry leaves. */
  onRemoved(listener: (key: string) => void): void {
    this.removed = listener;
  }

  get size(): number {
    return this.nodes.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    return this.fresh(key);
  }

  /** `get` without the promise: the near cache (near-cache.ts) answers from it synchronously. */
  fresh(key: string): CacheEntry | undefined {
    const now = this.now();
    const node = this.kept(key, now);
    if (node === undefined || node.entry.expiresAt <= now) return undefined;
    this.unlink(node);
    this.append(node);
    node.entry.hits = (node.entry.hits ?? 0) + 1;
    return node.entry;
  }

  async getStale(key: string): Promise<CacheEntry | undefined> {
    return this.kept(key, this.now())?.entry;
  }

  /** The node of a key, unless it has expired beyond the time expired entries are kept (then it goes). */
  private kept(key: string, now: number): Node | undefined {
    const node = this.nodes.get(key);
    if (node === undefined) return undefined;
    if (node.entry.expiresAt + this.keepExpiredMs > now) return node;
    this.remove(node);
    return undefined;
  }

  async set(key: string, entry: CacheEntry): Promise<void> {
    const weight = entry.body.length + key.length + ENTRY_OVERHEAD_BYTES;
    if (weight > this.limits.maxBytes) return;
    const previous = this.nodes.get(key);
    // Replaced, not gone: the key still has an entry.
    if (previous !== undefined) this.remove(previous, false);
    const node: Node = { key, entry, weight, older: undefined, newer: undefined };
    this.nodes.set(key, node);
    this.append(node);
    this.bytes += weight;
    while (this.oldest !== undefined && (this.nodes.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes)) {
      this.remove(this.oldest);
      this.evictions++;
    }
  }

  async delete(key: string): Promise<boolean> {
    const node = this.nodes.get(key);
    if (node === undefined) return false;
    this.remove(node);
    return true;
  }

  async deletePrefix(prefix: string): Promise<number> {
    let deleted = 0;
    // Deleting the entry just visited is safe while iterating a Map: no copy needed.
    for (const node of this.nodes.values()) {
      if (!node.key.startsWith(prefix)) continue;
      this.remove(node);
      deleted++;
    }
    return deleted;
  }

  async clear(): Promise<void> {
    if (this.removed !== undefined) for (const key of this.nodes.keys()) this.removed(key);
    this.nodes.clear();
    this.oldest = undefined;
    this.newest = undefined;
    this.bytes = 0;
  }

  async close(): Promise<void> {
    await this.clear();
  }

  /** Live entries, least recently used first, for a snapshot. */
  *live(): IterableIterator<[string, CacheEntry]> {
    const now = this.now();
    for (let node = this.oldest; node !== undefined; node = node.newer) {
      if (node.entry.expiresAt > now) yield [node.key, node.entry];
    }
  }

  private remove(node: Node, notify = true): void {
    this.nodes.delete(node.key);
    this.unlink(node);
    this.bytes -= node.weight;
    if (notify) this.removed?.(node.key);
  }

  private append(node: Node): void {
    node.older = this.newest;
    node.newer = undefined;
    if (this.newest !== undefined) this.newest.newer = node;
    this.newest = node;
    this.oldest ??= node;
  }

  private unlink(node: Node): void {
    if (node.older !== undefined) node.older.newer = node.newer;
    else this.oldest = node.newer;
    if (node.newer !== undefined) node.newer.older = node.older;
    else this.newest = node.older;
    node.older = undefined;
    node.newer = undefined;
  }
}
