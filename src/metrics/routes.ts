// GET /metrics (Prometheus text) and GET /recall/stats (the same figures as JSON, for people, scripts and the
// dashboard: since start, and over the last minute and 15 minutes).
import type { FastifyInstance } from 'fastify';
import type { Metrics } from './catalog.js';

export interface MetricsRouteDeps {
  metrics: Metrics;
  storeKind: string;
}

export async function metricsRoutes(app: FastifyInstance, deps: MetricsRouteDeps): Promise<void> {
  const { metrics } = deps;
  app.get('/metrics', async (_request, reply) => reply.header('content-type', metrics.contentType()).send(await metrics.text()));

  app.get('/recall/stats', async () => {
    const outcomes = metrics.totalsBy('requests', 'cache');
    const lookups = metrics.totalsBy('lookups', 'result');
    const hits = outcomes.HIT ?? 0;
    const sinceStart = metrics.recent.window('since_start');
    const lookedUp = Object.values(lookups).reduce((a, b) => a + b, 0);
    const tokens = metrics.totalsBy('tokensSaved', 'kind');
    const cost = metrics.totalsBy('costSaved', 'model');
    const limited = metrics.totalsBy('rateLimitedRequests', 'limit');
    const index = metrics.semanticIndexNow();
    return {
      since: new Date(metrics.startedAt).toISOString(),
      store: deps.storeKind,
      uptime_s: sinceStart.seconds,
      requests: { hit: hits, stale: outcomes.STALE ?? 0, miss: outcomes.MISS ?? 0, coalesced: outcomes.COALESCED ?? 0, bypass: outcomes.BYPASS ?? 0, other: outcomes.none ?? 0 },
      // Share of cacheable requests answered from a cache: (HIT, SEMANTIC, STALE) over those plus MISS and COALESCED.
      hit_rate: sinceStart.hit_rate,
      lookups: { total: lookedUp, hit: lookups.hit ?? 0, miss: lookups.miss ?? 0, stale: lookups.stale ?? 0, error: lookups.error ?? 0 },
      saved: {
        prompt_tokens: tokens.prompt ?? 0,
        completion_tokens: tokens.completion ?? 0,
        cost_usd: Math.round(Object.values(cost).reduce((a, b) => a + b, 0) * 1e6) / 1e6,
        cost_usd_by_model: cost,
      },
      // Requests Recall answered 429 itself since start, by the limit they hit.
      rate_limited: { requests: limited.requests ?? 0, tokens: limited.tokens ?? 0 },
      // The semantic index of this process (null when the tier is off): its size, memory per vector, lookup results.
      semantic: index === undefined ? null : {
        vectors: index.vectors,
        index_bytes: index.bytes,
        bytes_per_vector: index.vectors === 0 ? null : Math.round(index.bytes / index.vectors),
        lookups: metrics.totalsBy('semanticLookups', 'result'),
      },
      windows: { '1m': metrics.recent.window('1m'), '15m': metrics.recent.window('15m'), since_start: sinceStart },
      timeline: metrics.recent.timeline(),
    };
  });
}
