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

/** A key listed in `auth.keys`, with the limits that apply to it. */
export interface KnownKey {
  name: string;
  limits: ClientLimits;
}

export class ClientKeys {
  private readonly byHash: ReadonlyMap<string, KnownKey>;
  /** What a client whose key is not listed (or who sends none) is held to. */
  readonly defaults: ClientLimits;
  /** Does any client have a limit of this kind? Without one, its stage is not installed at all. */
  readonly limited: Readonly<Record<keyof ClientLimits, boolean>>;
  // A SHA-256 per request is avoidable: clients reuse a handful of keys. Process memory only, like the tenant memo.
  private readonly memo = new BoundedMemo<KnownKey | null>(10_000);

  /** Each key's limits are settled here, once: its own, else its group's, else the default. */
  constructor(auth: RecallConfig['auth'], limits: RecallConfig['limits']) {
    const groups = new Map<string, MinuteLimits>(limits.groups.map((group) => [group.name, group]));
    const defaults = { requestsPerMinute: limits.requestsPerMinute, tokensPerMinute: limits.tokensPerMinute };
    const limitsOf = (key: ClientKeySpec): ClientLimits => {
      const group = key.group === undefined ? undefined : groups.get(key.group);
      return {
        requestsPerMinute: key.requestsPerMinute ?? group?.requestsPerMinute ?? defaults.requestsPerMinute,
        tokensPerMinute: key.tokensPerMinute ?? group?.tokensPerMinute ?? defaults.tokensPerMinute,
      };
    };
    this.byHash = new Map(auth.keys.map((key) => [key.hash, { name: key.name, limits: limitsOf(key) }]));
    this.defaults = defaults;
    const all = [defaults, ...[...this.byHash.values()].map((key) => key.limits)];
    this.limited = {
      requestsPerMinute: all.some((l) => l.requestsPerMinute > 0),
      tokensPerMinute: all.some((l) => l.tokensPerMinute > 0),
    };
  }

  /** The configured key this credential is, if any. */
  find(credential: string | undefined): KnownKey | undefined {
    if (credential === undefined || this.byHash.size === 0) return undefined;
    let found = this.memo.get(credential);
    if (found === undefined) {
      found = this.byHash.get(hashClientKey(credential)) ?? null;
      this.memo.set(credential, found);
    }
    return found ?? undefined;
  }
}
