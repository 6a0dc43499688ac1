// The exact tier: looks a key up in the store and fills it, failing open. A store that errors or is slow turns
// into a miss with a rate-limited warning; a request never fails because the cache did.
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics/catalog.js';
import type { CachePolicy } from './policy.js';
import type { CacheEntry, CacheStore } from './store.js';
import { freshUntil } from './stale.js';
import { ThrottledWarning } from '../log/throttled-warning.js';

export type Lookup = (
  | { outcome: 'hit'; entry: CacheEntry }
  | { outcome: 'miss' }
  /** Found, but older than the request's max-age. */
  | { outcome: 'stale' }
  /** The store failed; treated as a miss. */
  | { outcome: 'error' }
) & {
  /** How long the lookup took. */
  ms: number;
};

export class ExactTier {
  private readonly warnings: ThrottledWarning;

  constructor(
    private readonly store: CacheStore,
    log: FastifyBaseLogger,
    private readonly maxEntryBytes: number,
    private readonly now: () => number = Date.now,
    private readonly metrics?: Metrics,
  ) {
    this.warnings = new ThrottledWarning(log, undefined, now);
  }

  /** Calls `listener` with the key of each entry the store drops on its own or on request, where the store can tell. */
  onRemoved(listener: (key: string) => void): void {
    this.store.onRemoved?.(listener);
  }

  /** `counted: false` leaves the exact tier's lookup metrics alone (the semantic tier checking a candidate's entry). */
  async lookup(key: string, policy: CachePolicy, options: { counted?: boolean } = {}): Promise<Lookup> {
    const startedAt = performance.now();
    const counted = options.counted !== false;
    let entry: CacheEntry | undefined;
    try {
      entry = await this.store.get(key);
    } catch (err) {
      this.warn(err, 'cache lookup failed; answering from the upstream');
      this.metrics?.storeError(this.store.kind, 'get');
      return this.counted(counted, { outcome: 'error', ms: performance.now() - startedAt });
    }
    const ms = performance.now() - startedAt;
    if (entry === undefined) return this.counted(counted, { outcome: 'miss', ms });
    if (policy.maxAgeS !== undefined && this.now() > freshUntil(entry, policy.maxAgeS)) return this.counted(counted, { outcome: 'stale', ms });
    return this.counted(counted, { outcome: 'hit', entry, ms });
  }

  /**
   * The entry fresh or expired while the store still keeps it, for stale-if-error after an upstream failure; not a
   * lookup in the metrics (the request already counted its own). A store that fails means no stale answer.
   */
  async stale(key: string): Promise<CacheEntry | undefined> {
    try {
      return await this.store.getStale(key);
    } catch (err) {
      this.warn(err, 'stale entry lookup failed; the upstream failure goes to the client');
      this.metrics?.storeError(this.store.kind, 'get');
      return undefined;
    }
  }

  private counted(counted: boolean, lookup: Lookup): Lookup {
    if (counted) this.metrics?.cacheLookup('exact', lookup.outcome, lookup.ms / 1000);
    return lookup;
  }

  /** Looks several keys up at once (per-input embeddings); each result fails open on its own, in the order given. */
  lookupMany(keys: readonly string[], policy: CachePolicy): Promise<Lookup[]> {
    return Promise.all(keys.map((key) => this.lookup(key, policy)));
  }

  /** Stores a JSON answer; false when it is too large or the store failed. */
  async save(key: string, body: Buffer, ttlS: number): Promise<boolean> {
    if (body.length > this.maxEntryBytes) return false;
    const storedAt = this.now();
    try {
      await this.store.set(key, { body, storedAt, expiresAt: storedAt + ttlS * 1000 });
      return true;
    } catch (err) {
      this.warn(err, 'cache store failed; the answer was served but not stored');
      this.metrics?.storeError(this.store.kind, 'set');
      return false;
    }
  }

  /** Drops an entry that turned out unusable; failures only mean it expires on its own. */
  async forget(key: string): Promise<void> {
    await this.store.delete(key).catch(() => false);
  }

  /** Drops every entry under a key prefix (a tool's cached results); failures only mean they expire on their own. */
  async forgetPrefix(prefix: string): Promise<void> {
    await this.store.deletePrefix(prefix).catch((err: unknown) => {
      this.warn(err, 'cache invalidation failed; the entries expire on their own');
      return 0;
    });
  }

  private warn(err: unknown, message: string): void {
    this.warnings.warn({ err, store: this.store.kind }, message);
  }
}
