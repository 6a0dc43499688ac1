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

/** Most scopes remembered for one body: a body many tenants send has its later scopes computed, not remembered. */
const MAX_SCOPES_PER_BODY = 64;

/**
 * Values computed from a frozen (repeated, see proxy/json-body.ts) body, by the body's identity and a scope (route,
 * tenant, namespace): the body cannot change, and its values go when it is collected.
 */
export class FrozenBodyMemo<V> {
  private readonly byBody = new WeakMap<object, Map<string, V>>();

  get(body: object, scope: string): V | undefined {
    return this.byBody.get(body)?.get(scope);
  }

  set(body: object, scope: string, value: V): void {
    let values = this.byBody.get(body);
    if (values === undefined) this.byBody.set(body, (values = new Map()));
    if (values.size < MAX_SCOPES_PER_BODY) values.set(scope, value);
  }
}
