// One log line per request: route, status, durations and the cache outcome; Fastify's own pair of lines is off.
// The line is written when the response closes, so a client that leaves early is logged too, as status 499.
import type { FastifyInstance, FastifyRequest } from 'fastify';

const CLIENT_CLOSED = 499;

export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    const response = reply.raw;
    response.once('close', () => logRequest(request, response.writableFinished ? response.statusCode : CLIENT_CLOSED));
    done();
  });
}

function logRequest(request: FastifyRequest, status: number): void {
  const context = request.recall;
  request.log.info(
    {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      path: request.url,
      status,
      duration_ms: context === null ? null : round(performance.now() - context.startedAt),
      upstream_ms: context?.upstreamMs === undefined ? null : round(context.upstreamMs),
      cache: context?.cacheOutcome ?? null,
    },
    'request',
  );
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
