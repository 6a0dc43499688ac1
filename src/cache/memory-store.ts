// The embedded default store: an in-process LRU bounded by entry count and bytes, with per-entry expiry.
import type { CacheEntry, CacheStore } from './store.js';

export interface MemoryStoreLimits {
  maxEntries: number;
  maxBytes: number;
}

/** Rough per-entry overhead of the Map slot, the entry object and its key string. */
const ENTRY_OVERHEAD_BYTES = 200;

export class MemoryStore implements CacheStore {
  readonly kind = 'memory';
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used entry first.
  private readonly entries = new Map<string, CacheEntry>();
  private bytes = 0;
  evictions = 0;

  constructor(private readonly limits: MemoryStoreLimits, private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.entries.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) {
      this.bytes -= weight(key, entry);
      return undefined;
    }
    entry.hits = (entry.hits ?? 0) + 1;
    this.entries.set(key, entry);
    return entry;
  }

  async set(key: string, entry: CacheEntry): Promise<void> {
    const size = weight(key, entry);
    if (size > this.limits.maxBytes) return;
    await this.delete(key);
    this.entries.set(key, entry);
    this.bytes += size;
    this.evictUntilWithinLimits();
  }

  async delete(key: string): Promise<boolean> {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    this.entries.delete(key);
    this.bytes -= weight(key, entry);
    return true;
  }

  async deletePrefix(prefix: string): Promise<number> {
    let deleted = 0;
    for (const key of [...this.entries.keys()]) {
      if (key.startsWith(prefix) && (await this.delete(key))) deleted++;
    }
    return deleted;
  }

  async clear(): Promise<void> {
    this.entries.clear();
    this.bytes = 0;
  }

  async close(): Promise<void> {
    await this.clear();
  }

  /** Live entries, least recently used first, for a snapshot. */
  *live(): IterableIterator<[string, CacheEntry]> {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt > now) yield [key, entry];
  }

  private evictUntilWithinLimits(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) return;
      this.entries.delete(key);
      this.bytes -= weight(key, entry);
      this.evictions++;
    }
  }
}

function weight(key: string, entry: CacheEntry): number {
  return entry.body.length + key.length + ENTRY_OVERHEAD_BYTES;
}
