// The headers a limited answer carries, as OpenAI writes them: `x-ratelimit-limit-requests`, `-remaining-requests`,
// `-reset-requests` (and the `-tokens` trio), the reset as a duration such as `1s`, `6m0s` or `250ms`.
import type { FastifyReply, FastifyRequest } from 'fastify';

export type LimitKind = 'requests' | 'tokens';

/** Where a client stands against one limit. */
export interface LimitState {
  limit: number;
  remaining: number;
  /** Until the window starts again. */
  resetMs: number;
}

/** Sets a limit's headers on the answer, and keeps them for `keepLimitHeaders`. */
export function setLimitHeaders(request: FastifyRequest, reply: FastifyReply, kind: LimitKind, state: LimitState): void {
  const headers = request.recall.limitHeaders ??= {};
  headers[`x-ratelimit-limit-${kind}`] = String(state.limit);
  headers[`x-ratelimit-remaining-${kind}`] = String(Math.max(0, state.remaining));
  headers[`x-ratelimit-reset-${kind}`] = resetDuration(state.resetMs);
  reply.headers(headers);
}

/**
 * Before an answer goes out (onSend): Recall's limit headers win over the upstream's, whose answer headers are copied
 * after them, since Recall's are the limits this client is held to. An upstream 429 keeps its own: they explain it.
 */
export function keepLimitHeaders(request: FastifyRequest, reply: FastifyReply): void {
  const headers = request.recall.limitHeaders;
  if (headers !== undefined && reply.statusCode !== 429) reply.headers(headers);
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
