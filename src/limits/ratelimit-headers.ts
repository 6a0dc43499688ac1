// The headers a limited answer carries, as OpenAI writes them: `x-ratelimit-limit-requests`, `-remaining-requests`,
// `-reset-requests` (and the `-tokens` trio), the reset as a duration such as `1s`, `6m0s` or `250ms`.
import type { FastifyReply } from 'fastify';

export type LimitKind = 'requests' | 'tokens';

/** Where a client stands against one limit. */
export interface LimitState {
  limit: number;
  remaining: number;
  /** Until the window starts again. */
  resetMs: number;
}

export function setLimitHeaders(reply: FastifyReply, kind: LimitKind, state: LimitState): void {
  reply.header(`x-ratelimit-limit-${kind}`, String(state.limit));
  reply.header(`x-ratelimit-remaining-${kind}`, String(Math.max(0, state.remaining)));
  reply.header(`x-ratelimit-reset-${kind}`, resetDuration(state.resetMs));
}

/** Whole seconds to wait, at least 1: what `Retry-After` says. */
export function retryAfterSeconds(resetMs: number): number {
  return Math.max(1, Math.ceil(resetMs / 1000));
}

/** OpenAI's form of a duration: `250ms` under a second, `17s` or `1.5s` under a minute, `6m0s` above. */
export function resetDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  if (whole < 1000) return `${whole}ms`;
  if (whole < 60_000) return `${Number((whole / 1000).toFixed(3))}s`;
  const minutes = Math.floor(whole / 60_000);
  return `${minutes}m${Number(((whole - minutes * 60_000) / 1000).toFixed(3))}s`;
}
