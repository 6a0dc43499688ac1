// Serving stale on upstream failure (RFC 5861 stale-if-error): which failures allow it, how long the stores keep
// expired entries for it, and whether one entry may stand in for one request.
import type { CacheEntry } from './store.js';

/** What a request accepts: an entry at most `graceS` past its freshness (its expiry, or its max-age if it set one). */
export interface StaleIfError {
  graceS: number;
  maxAgeS: number | undefined;
}

/**
 * RFC 5861 §4: an error is "any situation that would result in a 500, 502, 503 or 504". The upstream's own answers
 * with those statuses count, and so do failures without an answer (unreachable: 502, timed out: 504). A 4xx (429
 * included) is the upstream's verdict on this client's request, not a failure, and passes through.
 */
const ERROR_STATUSES: ReadonlySet<number> = new Set([500, 502, 503, 504]);

export function allowsStale(status: number): boolean {
  return ERROR_STATUSES.has(status);
}

/** Until when (epoch ms) the entry counts as fresh for a request: its expiry, or sooner under the request's max-age. */
export function freshUntil(entry: CacheEntry, maxAgeS: number | undefined): number {
  return maxAgeS === undefined ? entry.expiresAt : Math.min(entry.expiresAt, entry.storedAt + maxAgeS * 1000);
}

/** Seconds of freshness left (negative once stale), as Cache-Status `ttl` shows it. */
export function freshnessLeftS(entry: CacheEntry, maxAgeS: number | undefined, now: number): number {
  return Math.floor((freshUntil(entry, maxAgeS) - now) / 1000);
}

/** May this entry answer the request in place of an upstream failure? */
export function withinGrace(entry: CacheEntry, accepts: StaleIfError, now: number): boolean {
  return now - freshUntil(entry, accepts.maxAgeS) <= accepts.graceS * 1000;
}
