// Requests per minute per client, counted by @fastify/rate-limit: in Redis (its own one-key Lua script, so instances
// share the count) when Redis is configured, in process memory otherwise. Recall calls the limiter itself, to answer
// with OpenAI's headers and error shape.
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RedisConnection } from '../cache/redis-connection.js';
import type { Metrics } from '../metrics/catalog.js';
import { requestRateLimited } from '../openai/errors.js';
import { retryAfterSeconds, setLimitHeaders } from './ratelimit-headers.js';

/** Counts one request against its client's limit; rejects with 429 (type requests) past it. */
export type RequestLimiter = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

export interface RequestCounting {
  /** Undefined: counted in process memory. */
  redis: RedisConnection | undefined;
  keyPrefix: string;
  windowMs: number;
}

export async function createRequestLimiter(app: FastifyInstance, { redis, keyPrefix, windowMs }: RequestCounting, metrics: Metrics): Promise<RequestLimiter> {
  // global: false — the plugin adds no hook of its own; admission calls the limiter on the routes it covers.
  await app.register(rateLimit, {
    global: false,
    timeWindow: windowMs,
    max: (request: FastifyRequest) => request.recall.client?.limits.requestsPerMinute ?? 0,
    // The tenant HMAC, never the key; set by admission before the limiter runs.
    keyGenerator: (request: FastifyRequest) => request.recall.client?.identity ?? 'anonymous',
    redis,
    nameSpace: `recall-limits:${keyPrefix}requests:`,
    // Fail open, as the cache does: Redis down or slow lets requests through.
    skipOnError: true,
  });
  const count = app.createRateLimit();
  return async (request, reply) => {
    const state = await count(request);
    // No window (ttl 0) means the store failed and the request was let through: there is no count to show.
    if (state.isAllowed || state.ttl <= 0) return;
    setLimitHeaders(request, reply, 'requests', { limit: state.max, remaining: state.remaining, resetMs: state.ttl });
    if (!state.isExceeded) return;
    metrics.rateLimited('requests', request.routeOptions.url ?? 'unmatched');
    throw requestRateLimited(state.max, retryAfterSeconds(state.ttl));
  };
}
