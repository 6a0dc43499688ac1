// The response headers that tell a client what the cache did: X-Recall-Cache and RFC 9211's Cache-Status
// (`recall; hit; ttl=…`, `recall; fwd=miss; stored`, …), plus Age on answers from an entry.
import type { FastifyReply } from 'fastify';

/**
 * Why a request went forward (RFC 9211 `fwd`): not found, the request forbade reading, found too old, only part of
 * it was cached (embeddings inputs), not cacheable.
 */
export type ForwardReason = 'miss' | 'request' | 'stale' | 'partial' | 'bypass';

const CACHE_NAME = 'recall';

export function markHit(reply: FastifyReply, ageS: number, ttlS: number): void {
  reply.header('x-recall-cache', 'HIT');
  reply.header('cache-status', `${CACHE_NAME}; hit; ttl=${ttlS}`);
  reply.header('age', String(ageS));
}

/**
 * Headers of an answer served by the semantic tier: another request's entry whose last user message was close enough
 * (`similarity`, cosine) and passed the guards. Cache-Status says so in its detail.
 */
export function markSemantic(reply: FastifyReply, ageS: number, ttlS: number, similarity: number): void {
  const shown = similarity.toFixed(4);
  reply.header('x-recall-cache', 'SEMANTIC');
  reply.header('x-recall-similarity', shown);
  reply.header('cache-status', `${CACHE_NAME}; hit; ttl=${ttlS}; detail="semantic similarity=${shown}"`);
  reply.header('age', String(ageS));
}

/**
 * Headers of an answer served from an expired entry because the upstream failed (RFC 5861 stale-if-error). In RFC 9211
 * terms the request went forward because the entry was stale (`fwd=stale`), the next hop answered `fwd-status` (the
 * upstream's 5xx, or the 502/504 Recall would have sent when no answer came), and `ttl` is negative: how long ago the
 * entry stopped being fresh. Not a `hit`: RFC 9211 keeps that for answers that were not forwarded.
 */
export function markStale(reply: FastifyReply, ageS: number, ttlS: number, failedStatus: number): void {
  reply.header('x-recall-cache', 'STALE');
  reply.header('cache-status', `${CACHE_NAME}; fwd=stale; fwd-status=${failedStatus}; ttl=${ttlS}; detail=stale-if-error`);
  reply.header('age', String(ageS));
}

/** Headers of an answer that comes from the upstream; `stored` only when known before the answer is sent. */
export function markForwarded(reply: FastifyReply, reason: ForwardReason, stored = false, detail?: string): void {
  reply.header('x-recall-cache', reason === 'bypass' ? 'BYPASS' : 'MISS');
  let status = `${CACHE_NAME}; fwd=${reason}`;
  if (stored) status += '; stored';
  if (detail !== undefined) status += `; detail=${detail}`;
  reply.header('cache-status', status);
}

/** Headers of an answer that came from an identical request's upstream call, joined while it was in flight. */
export function markCoalesced(reply: FastifyReply, reason: ForwardReason, stored = false): void {
  reply.header('x-recall-cache', 'COALESCED');
  reply.header('cache-status', `${CACHE_NAME}; fwd=${reason}${stored ? '; stored' : ''}; detail=coalesced`);
}
