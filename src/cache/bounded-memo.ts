// A small bounded map for hot-path memos (API key → tenant, raw body → cache key): when full it starts over, which
// is cheaper than LRU bookkeeping and, for memos, only costs a recomputation.

export class BoundedMemo<V> {
  private readonly values = new Map<string, V>();

  constructor(private readonly maxEntries: number) {}

  get(key: string): V | undefined {
    return this.values.get(key);
  }

  set(key: string, value: V): void {
    if (this.values.size >= this.maxEntries) this.values.clear();
    this.values.set(key, value);
  }
}
