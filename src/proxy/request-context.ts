// What Recall knows about one request while it crosses the proxy; read by the request log line.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { LimitedClient } from '../limits/client-keys.js';
import type { Spend } from '../limits/token-budget.js';
import type { Priority } from '../upstream/priority.js';

export interface RequestContext {
  /** performance.now() when the request arrived. */
  startedAt: number;
  /** The body bytes exactly as the client sent them (JSON routes only). */
  rawBody: Buffer | undefined;
  /** Time spent on the upstream call, from sending to the last byte of its answer. */
  upstreamMs: number | undefined;
  /** HIT, MISS or BYPASS (later tiers add SEMANTIC, COALESCED, STALE); undefined when no cache was involved. */
  cacheOutcome: string | undefined;
  /** X-Recall-Priority, read (and validated) once by the proxied routes; orders the request's upstream calls. */
  priority: Priority;
  /** Time its upstream calls waited for a slot in the upstream queue (part of upstreamMs). */
  queueMs: number;
  /** Time each cache tier's lookup took, by tier; undefined until a tier is looked up. */
  lookupMs: Record<string, number> | undefined;
  /** Time spent rendering a stored completion into the answer's form (an event stream, or JSON as stored). */
  renderMs: number;
  /** For a streamed answer: ms from arrival to its first event. */
  firstEventMs: number | undefined;
  /** The first characters of the tenant (itself an HMAC of the API key), for logs; set by the cached routes. */
  tenantHash: string | undefined;
  /** Similarity of the entry a semantic hit served. */
  similarity: number | undefined;
  /** The name of the proxy-issued key the request was admitted with (`auth.mode: proxy_keys`); never the key. */
  proxyKey: string | undefined;
  /** Set by admission when limits are configured: whose limits apply, and which. */
  client: LimitedClient | undefined;
  /** What the request spends of its client's token budget; undefined when the client has none. */
  spend: Spend | undefined;
  /** Recall's x-ratelimit-* headers for this answer, once a limit was counted. */
  limitHeaders: Record<string, string> | undefined;
  /**
   * The registered route pattern, set by the proxied routes' handlers, which know it: Fastify's `routeOptions` getter
   * builds a new object of a dozen fields on every read. See `routeOf`.
   */
  route: string | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    recall: RequestContext;
  }
}

/** Declares `request.recall`; each request gets its own context from `newRequestContext` when it arrives. */
export function registerRequestContext(app: FastifyInstance): void {
  app.decorateRequest('recall', null as unknown as RequestContext);
}

export function newRequestContext(): RequestContext {
  return {
    startedAt: performance.now(), rawBody: undefined, upstreamMs: undefined, cacheOutcome: undefined, priority: 'normal', queueMs: 0, renderMs: 0,
    lookupMs: undefined, firstEventMs: undefined, tenantHash: undefined, similarity: undefined, proxyKey: undefined, client: undefined, spend: undefined, limitHeaders: undefined,
    route: undefined,
  };
}

/** The request's registered route pattern (`/v1/chat/completions`, `/v1/*`…); 'unmatched' for a 404. */
export function routeOf(request: FastifyRequest): string {
  return request.recall?.route ?? request.routeOptions.url ?? 'unmatched';
}

/** Marks the first event of a streamed answer; later calls keep the first. */
export function markFirstEvent(context: RequestContext): void {
  context.firstEventMs ??= performance.now() - context.startedAt;
}
