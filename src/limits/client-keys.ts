// The client keys Recall knows (`auth.keys`), found by the SHA-256 of the key a request presents, and the limits that
// apply to a client: its key's own, else its group's, else the defaults (`limits.*`).
import { BoundedMemo } from '../cache/bounded-memo.js';
import type { RecallConfig } from '../config/schema.js';
import { hashClientKey, type ClientKeySpec, type MinuteLimits } from './limit-settings.js';

/** Limits are per minute, like OpenAI's RPM and TPM. */
export const LIMIT_WINDOW_MS = 60_000;

/** Per-minute limits in force for one client; 0: none of that kind. */
export interface ClientLimits {
  requestsPerMinute: number;
  tokensPerMinute: number;
}

/** Who a request's limits are kept under, and what they are; set on the request context by admission. */
export interface LimitedClient {
  /** The tenant HMAC of its key (whatever the cache scope): the key under which its counters live. */
  identity: string;
  limits: ClientLimits;
}

export class ClientKeys {
  private readonly byHash: ReadonlyMap<string, ClientKeySpec>;
  private readonly groups: ReadonlyMap<string, MinuteLimits>;
  private readonly defaults: ClientLimits;
  // A SHA-256 per request is avoidable: clients reuse a handful of keys. Process memory only, like the tenant memo.
  private readonly memo = new BoundedMemo<ClientKeySpec | null>(10_000);

  constructor(auth: RecallConfig['auth'], limits: RecallConfig['limits']) {
    this.byHash = new Map(auth.keys.map((key) => [key.hash, key]));
    this.groups = new Map(limits.groups.map((group) => [group.name, group]));
    this.defaults = { requestsPerMinute: limits.requestsPerMinute, tokensPerMinute: limits.tokensPerMinute };
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The configured key this credential is, if any. */
  find(credential: string | undefined): ClientKeySpec | undefined {
    if (credential === undefined || this.byHash.size === 0) return undefined;
    let found = this.memo.get(credential);
    if (found === undefined) {
      found = this.byHash.get(hashClientKey(credential)) ?? null;
      this.memo.set(credential, found);
    }
    return found ?? undefined;
  }

  /** A key's own limit wins, then its group's, then the default; an unknown key has the defaults. */
  limitsOf(key: ClientKeySpec | undefined): ClientLimits {
    const group = key?.group === undefined ? undefined : this.groups.get(key.group);
    return {
      requestsPerMinute: key?.requestsPerMinute ?? group?.requestsPerMinute ?? this.defaults.requestsPerMinute,
      tokensPerMinute: key?.tokensPerMinute ?? group?.tokensPerMinute ?? this.defaults.tokensPerMinute,
    };
  }

  /** Does any client have a limit of this kind? Without one, its stage is not installed at all. */
  anyLimit(kind: keyof ClientLimits): boolean {
    if (this.defaults[kind] > 0) return true;
    for (const group of this.groups.values()) if ((group[kind] ?? 0) > 0) return true;
    for (const key of this.byHash.values()) if ((key[kind] ?? 0) > 0) return true;
    return false;
  }
}
