// Per-request cache controls, read from headers so that SDKs set them with `defaultHeaders` and bodies stay
// OpenAI's: Cache-Control no-cache / no-store / max-age / stale-if-error, X-Recall-TTL, X-Recall-Namespace,
// X-Recall-Semantic.
import type { IncomingHttpHeaders } from 'node:http';
import { RecallError } from '../openai/errors.js';

export interface CachePolicy {
  /** Look the request up (false for `no-cache` and `no-store`). */
  read: boolean;
  /** Store the answer (false for `no-store`). */
  write: boolean;
  /** Accept only entries younger than this many seconds (`max-age=N`). */
  maxAgeS: number | undefined;
  /**
   * When the upstream fails, accept an entry at most this many seconds past its freshness (`stale-if-error=N`, or the
   * configured default; capped at the configured maximum). 0 or unset: never; always 0 for requests that do not read.
   */
  staleIfErrorS?: number | undefined;
  /** How long a stored answer lives. */
  ttlS: number;
  namespace: string;
  /** X-Recall-Semantic: `off` skips the semantic lookup, a number replaces the threshold; undefined: the default. */
  semantic?: 'off' | number | undefined;
}

export const DEFAULT_NAMESPACE = 'default';
const NAMESPACE_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_TTL_S = 365 * 24 * 3600;

/** What a request gets when its headers say nothing. */
export interface PolicyDefaults {
  ttlS: number;
  staleIfErrorS: number;
  /** The longest stale-if-error a request may ask for (the stores keep expired entries no longer). */
  staleIfErrorMaxS: number;
}

export function readPolicy(headers: IncomingHttpHeaders, defaults: PolicyDefaults): CachePolicy {
  const policy: CachePolicy = {
    read: true, write: true, maxAgeS: undefined, staleIfErrorS: defaults.staleIfErrorS, ttlS: defaults.ttlS, namespace: DEFAULT_NAMESPACE, semantic: undefined,
  };
  const cacheControl = headers['cache-control'];
  if (cacheControl !== undefined) applyCacheControl(policy, cacheControl);
  // A request that does not read the cache (no-cache, no-store) gets no stale answer either.
  policy.staleIfErrorS = policy.read ? Math.min(policy.staleIfErrorS ?? 0, defaults.staleIfErrorMaxS) : 0;
  const ttl = headers['x-recall-ttl'];
  if (ttl !== undefined) policy.ttlS = seconds(ttl, 'X-Recall-TTL', 1);
  const namespace = headers['x-recall-namespace'];
  if (namespace !== undefined) {
    if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace)) {
      throw new RecallError('invalidHeader', 'X-Recall-Namespace must be 1 to 64 characters of letters, digits and . _ : -', 'X-Recall-Namespace');
    }
    policy.namespace = namespace;
  }
  const semantic = headers['x-recall-semantic'];
  if (semantic !== undefined) policy.semantic = semanticControl(semantic);
  return policy;
}

/** `off`, `on` (the configured threshold) or a cosine similarity threshold from 0 to 1 (`0.95`). */
function semanticControl(value: string | string[]): 'off' | number | undefined {
  const text = (Array.isArray(value) ? value[0] ?? '' : value).trim().toLowerCase();
  if (text === 'off') return 'off';
  if (text === 'on') return undefined;
  if (/^(0(\.\d{1,6})?|1(\.0{1,6})?|\.\d{1,6})$/.test(text)) return Number(text);
  throw new RecallError('invalidHeader', 'X-Recall-Semantic must be off, on or a similarity threshold from 0 to 1 (e.g. 0.95).', 'X-Recall-Semantic');
}

function applyCacheControl(policy: CachePolicy, header: string): void {
  for (const directive of header.split(',')) {
    const [rawName, rawValue] = directive.split('=', 2) as [string, string | undefined];
    const name = rawName.trim().toLowerCase();
    if (name === 'no-store') {
      policy.read = false;
      policy.write = false;
    } else if (name === 'no-cache') {
      policy.read = false;
    } else if (name === 'max-age') {
      policy.maxAgeS = seconds(unquoted(rawValue), 'Cache-Control max-age', 0);
    } else if (name === 'stale-if-error') {
      policy.staleIfErrorS = seconds(unquoted(rawValue), 'Cache-Control stale-if-error', 0);
    }
    // Other directives (private, s-maxage, …) mean nothing to a cache in front of one client's API calls.
  }
}

function unquoted(value: string | undefined): string | undefined {
  return value?.trim().replace(/^"(.*)"$/, '$1');
}

function seconds(value: string | string[] | undefined, name: string, min: number): number {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,10}$/.test(text.trim()) || Number(text) < min || Number(text) > MAX_TTL_S) {
    throw new RecallError('invalidHeader', `${name} must be a whole number of seconds from ${min} to ${MAX_TTL_S}.`, name);
  }
  return Number(text);
}
