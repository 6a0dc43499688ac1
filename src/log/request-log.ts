// One log line per request: route, status, durations and the cache outcome; Fastify's own pair of lines is off.
import type { FastifyInstance } from 'fastify';

export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    const aborted = !reply.raw.writableFinished;
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        path: request.url,
        status: aborted ? 499 : reply.statusCode,
        duration_ms: round(reply.elapsedTime),
        upstream_ms: request.recall?.upstreamMs === undefined ? null : round(request.recall.upstreamMs),
        cache: request.recall?.cacheOutcome ?? null,
        ...(aborted ? { client_aborted: true } : {}),
      },
      'request',
    );
    done();
  });
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
