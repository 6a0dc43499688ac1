// Liveness and readiness: /healthz says the process serves HTTP; /readyz says it can do useful work (the upstream
// answers, by a cheap cached probe) and is not shutting down. Redis state is reported without taking Recall out.
import type { FastifyInstance } from 'fastify';
import type { RedisStore } from '../cache/redis-store.js';
import type { UpstreamClient } from '../upstream/client.js';

export interface HealthDeps {
  upstream: UpstreamClient;
  /** Reported, but never what makes Recall unready: without Redis it still serves, from the upstream. */
  redis: RedisStore | undefined;
  isShuttingDown: () => boolean;
}

export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    if (deps.isShuttingDown()) return reply.code(503).send({ status: 'shutting_down', checks: {} });
    const upstream = await deps.upstream.reachable();
    const ready = upstream.ok;
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not_ready',
      checks: {
        upstream: { ok: upstream.ok, detail: upstream.detail, latency_ms: Math.round(upstream.latencyMs), checked_at: upstream.checkedAt },
        ...(deps.redis === undefined ? {} : { redis: { ok: deps.redis.status() === 'ready', status: deps.redis.status() } }),
      },
    });
  });
}
