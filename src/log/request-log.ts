// One log line and one set of request metrics per request: route, status, durations and the cache outcome;
// Fastify's own pair of lines is off. Both are written when the response closes, so a client that leaves early is
// counted too, as status 499.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Metrics } from '../metrics/catalog.js';
import { newRequestContext } from '../proxy/request-context.js';

const CLIENT_CLOSED = 499;

/** Starts each request's context and its observation in one hook: every hook costs on the hit path. */
export function registerRequestLog(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onRequest', (request, reply, done) => {
    request.recall = newRequestContext();
    const response = reply.raw;
    response.once('close', () => observeRequest(request, response.writableFinished ? response.statusCode : CLIENT_CLOSED, metrics));
    done();
  });
}

function observeRequest(request: FastifyRequest, status: number, metrics: Metrics): void {
  const context = request.recall;
  const route = request.routeOptions.url ?? 'unmatched';
  const durationMs = context === null ? undefined : performance.now() - context.startedAt;
  if (durationMs !== undefined) metrics.observeRequest(route, status, context?.cacheOutcome, durationMs, context?.upstreamMs);
  request.log.info(
    {
      method: request.method,
      route,
      path: request.url,
      status,
      duration_ms: durationMs === undefined ? null : round(durationMs),
      upstream_ms: context?.upstreamMs === undefined ? null : round(context.upstreamMs),
      cache: context?.cacheOutcome ?? null,
    },
    'request',
  );
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
