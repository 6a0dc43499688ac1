// When an upstream call is tried again: after a failure to connect, or an answer of 429, 502, 503 or 504. It waits
// as the upstream's Retry-After asks (or does not retry at all when that is too long), else an exponential backoff
// with jitter, up to a count of retries.
import type { IncomingHttpHeaders } from 'node:http';

export const RETRY_REASONS = ['connect_error', 'status_429', 'status_502', 'status_503', 'status_504'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

export interface RetrySettings {
  /** Retries after the first attempt; 0: never retry. */
  retries: number;
  /** Backoff before the first retry, doubled for each further one (before jitter). */
  retryBaseMs: number;
  /** Longest backoff. */
  retryMaxMs: number;
  /** Longest Retry-After honoured; an answer asking for a longer wait goes to the client as it is. */
  retryAfterMaxMs: number;
}

export interface RetryDecision {
  reason: RetryReason;
  delayMs: number;
}

const RETRIED_STATUSES: ReadonlyMap<number, RetryReason> = new Map([
  [429, 'status_429'], [502, 'status_502'], [503, 'status_503'], [504, 'status_504'],
]);

/**
 * Failures before a single byte of the request was written, so a retry cannot make the upstream do the work twice.
 * A reset or closed socket (ECONNRESET, UND_ERR_SOCKET) may come after the upstream read the request: not retried.
 */
const CONNECT_FAILURES: ReadonlySet<string> = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'UND_ERR_CONNECT_TIMEOUT',
]);

export class RetryPolicy {
  constructor(
    private readonly settings: RetrySettings,
    private readonly random: () => number = Math.random,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether to retry after the call failed without an answer; `retried` counts the retries made so far. */
  afterFailure(err: unknown, retried: number): RetryDecision | undefined {
    if (retried >= this.settings.retries) return undefined;
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code !== 'string' || !CONNECT_FAILURES.has(code)) return undefined;
    return { reason: 'connect_error', delayMs: this.backoffMs(retried) };
  }

  /** Whether to retry after an answer with this status and these headers. */
  afterAnswer(status: number, headers: IncomingHttpHeaders, retried: number): RetryDecision | undefined {
    const reason = RETRIED_STATUSES.get(status);
    if (reason === undefined || retried >= this.settings.retries) return undefined;
    const asked = retryAfterMs(headers, this.now());
    if (asked === undefined) return { reason, delayMs: this.backoffMs(retried) };
    return asked > this.settings.retryAfterMaxMs ? undefined : { reason, delayMs: asked };
  }

  /** Exponential, with "equal jitter": half of the step is fixed, half random, so retries of a burst spread out. */
  backoffMs(retried: number): number {
    const step = Math.min(this.settings.retryMaxMs, this.settings.retryBaseMs * 2 ** retried);
    return step / 2 + this.random() * (step / 2);
  }
}

/**
 * The wait an answer asks for, in ms: `retry-after-ms` (OpenAI's, and what its SDKs read first), else `retry-after`
 * in seconds or as an HTTP date. Undefined when neither is there or readable.
 */
export function retryAfterMs(headers: IncomingHttpHeaders, now: number): number | undefined {
  const ms = single(headers['retry-after-ms']);
  if (ms !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Number(ms);
  const value = single(headers['retry-after']);
  if (value === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
