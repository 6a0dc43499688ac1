// Answers a request from a cache entry in the form it asks for: the stored JSON as it is, or a stream rendered
// from it that the SDKs reassemble to exactly the stored text and tool calls. Hits, semantic hits and stale answers
// (stale-if-error) all leave through here.
import type { FastifyReply } from 'fastify';
import { markHit, markSemantic, markStale } from '../cache/cache-status.js';
import { freshnessLeftS, type StaleIfError } from '../cache/stale.js';
import type { CacheEntry } from '../cache/store.js';
import type { CompletionRoute } from '../openai/assemble.js';
import { renderCompletionStream } from '../openai/render.js';

export interface HitRequest {
  route: CompletionRoute;
  stream: boolean;
  includeUsage: boolean;
  /** Set when the semantic tier found the entry: the similarity of the two last user messages. */
  similarity?: number | undefined;
  /** Set when the entry stands in for a failed upstream call: that failure's status and what the request accepts. */
  stale?: { failedStatus: number; accepts: StaleIfError } | undefined;
}

/** Renders the entry for this request; throws when the stored entry cannot be read (the caller treats it as a miss). */
export function sendCachedAnswer(reply: FastifyReply, entry: CacheEntry, request: HitRequest, now: number): FastifyReply {
  const body = request.stream ? renderCompletionStream(request.route, entry.body, request.includeUsage) : entry.body;
  const ageS = Math.max(0, Math.floor((now - entry.storedAt) / 1000));
  const ttlS = Math.max(0, Math.ceil((entry.expiresAt - now) / 1000));
  if (request.stale !== undefined) markStale(reply, ageS, freshnessLeftS(entry, request.stale.accepts.maxAgeS, now), request.stale.failedStatus);
  else if (request.similarity === undefined) markHit(reply, ageS, ttlS);
  else markSemantic(reply, ageS, ttlS, request.similarity);
  if (!request.stream) return reply.code(200).header('content-type', 'application/json').send(body);
  return reply.code(200).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache').send(body);
}
