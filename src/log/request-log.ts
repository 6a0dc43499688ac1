// One log line and one set of request metrics per request: route, status, durations, the cache outcome and where
// the time went; Fastify's own pair of lines is off. Both are written when the response closes, so a client that
// leaves early is counted too, as status 499. A request slower than `log.slow_request_ms` is logged at warn.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics/catalog.js';
import { requestLineWriter, scrubSecrets } from './logger.js';
import { newRequestContext, routeOf, type RequestContext } from '../proxy/request-context.js';

const CLIENT_CLOSED = 499;

export interface RequestLogSettings {
  /** Requests at least this slow are logged at warn with their time breakdown; 0: never. */
  slowRequestMs: number;
  /**
   * Undefined while new requests are welcome; during shutdown, the error each new request is refused with. It is
   * checked here, in the one hook every request passes anyway: every hook costs on the hit path.
   */
  refusal(): Error | undefined;
}

/** Starts each request's context and its observation in one hook (which also refuses requests during shutdown). */
export function registerRequestLog(app: FastifyInstance, metrics: Metrics, settings: RequestLogSettings): void {
  const writeLine = requestLineWriter(app.log as Logger);
  app.addHook('onRequest', (request, reply, done) => {
    request.recall = newRequestContext();
    metrics.requestStarted();
    const response = reply.raw;
    response.once('close', () => {
      metrics.requestEnded();
      observeRequest(request, response.writableFinished ? response.statusCode : CLIENT_CLOSED, metrics, settings, writeLine);
    });
    const refusal = settings.refusal();
    if (refusal === undefined) return done();
    reply.header('connection', 'close');
    done(refusal);
  });
}

function observeRequest(
  request: FastifyRequest, status: number, metrics: Metrics, settings: RequestLogSettings, writeLine: ReturnType<typeof requestLineWriter>,
): void {
  const context = request.recall;
  const route = routeOf(request);
  const durationMs = context === null ? undefined : performance.now() - context.startedAt;
  if (durationMs !== undefined) {
    metrics.observeRequest(route, status, context.cacheOutcome, durationMs, context.upstreamMs);
    if (context.firstEventMs !== undefined) metrics.firstEvent(route, context.cacheOutcome, context.firstEventMs);
  }
  if (settings.slowRequestMs > 0 && durationMs !== undefined && durationMs >= settings.slowRequestMs) {
    const line = lineFields(request, route, status, durationMs);
    request.log.warn({ ...line, slow_request_ms: settings.slowRequestMs, breakdown: breakdown(context, durationMs) }, 'slow request');
  } else if (writeLine !== undefined) {
    // Every request writes this line: it is written as JSON text directly (the same line pino would write).
    writeLine(`"reqId":${JSON.stringify(request.id)},${JSON.stringify(lineFields(request, route, status, durationMs)).slice(1, -1)}`);
  }
}

/** The request line's fields; the path is the client's and may carry a key in its query, so it is scrubbed. */
function lineFields(request: FastifyRequest, route: string, status: number, durationMs: number | undefined): Record<string, unknown> {
  const context = request.recall;
  return {
    method: request.method,
    route,
    path: scrubSecrets(request.url),
    status,
    duration_ms: durationMs === undefined ? null : round(durationMs),
    upstream_ms: context?.upstreamMs === undefined ? null : round(context.upstreamMs),
    cache: context?.cacheOutcome ?? null,
    coalesced: context?.cacheOutcome === 'COALESCED',
    tenant: context?.tenantHash ?? null,
    ...(context?.similarity === undefined ? {} : { similarity: context.similarity }),
    ...(context?.firstEventMs === undefined ? {} : { first_event_ms: round(context.firstEventMs) }),
  };
}

/** Where a request's time went: queue wait, each tier's lookup, the upstream call itself, rendering, and the rest. */
function breakdown(context: RequestContext, durationMs: number): Record<string, unknown> {
  const lookups = context.lookupMs ?? {};
  const lookupTotal = Object.values(lookups).reduce((a, b) => a + b, 0);
  const upstream = context.upstreamMs === undefined ? 0 : Math.max(0, context.upstreamMs - context.queueMs);
  const queue = context.upstreamMs === undefined ? 0 : context.queueMs;
  return {
    queue_ms: round(queue),
    lookup_ms: Object.fromEntries(Object.entries(lookups).map(([tier, ms]) => [tier, round(ms)])),
    upstream_ms: round(upstream),
    render_ms: round(context.renderMs),
    // Parsing, keys and writing to the client; for a coalesced follower also the wait for the leader.
    recall_ms: round(Math.max(0, durationMs - queue - upstream - lookupTotal - context.renderMs)),
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
