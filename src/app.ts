// Builds a Recall server from a config: creates its parts, wires them into Fastify, and closes them on close.
// No logic lives here; each part is a module of its own.
import { Coalescer } from './coalesce/singleflight.js';
import { RemoteFlights } from './coalesce/remote-flights.js';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { DestinationStream } from 'pino';
import { adminRoutes } from './admin/admin-routes.js';
import { dashboardRoutes } from './admin/dashboard.js';
import { healthRoutes } from './admin/health.js';
import { EmbeddingsCache } from './cache/embeddings.js';
import { ExactTier } from './cache/exact-tier.js';
import { openCacheStore } from './cache/open-store.js';
import { TenantResolver } from './cache/tenant.js';
import type { RecallConfig } from './config/schema.js';
import { createLogger } from './log/logger.js';
import { Metrics } from './metrics/catalog.js';
import { DEFAULT_PRICES, PriceTable, parsePriceOverrides } from './metrics/prices.js';
import { metricsRoutes } from './metrics/routes.js';
import { registerRequestLog } from './log/request-log.js';
import { RecallError, fromFrameworkError } from './openai/errors.js';
import { registerBodyLimit } from './proxy/body-limit.js';
import { clientErrorHandler } from './proxy/client-error.js';
import { requestValidatorCompiler } from './proxy/request-validation.js';
import { Forwarder } from './proxy/forward.js';
import { Pipeline } from './proxy/pipeline.js';
import { registerRequestContext } from './proxy/request-context.js';
import { proxyRoutes } from './proxy/routes.js';
import { compactRoutes } from './compaction/compact-route.js';
import { Compactor } from './compaction/compactor.js';
import { AutoCompaction } from './compaction/auto-compact.js';
import { Summarizer } from './compaction/summary.js';
import { UpstreamClient } from './upstream/client.js';
import { EmbeddingsBatcher } from './upstream/embeddings-batcher.js';
import { LocalEmbedder } from './cache/semantic/local-embedder.js';
import { SemanticTier } from './cache/semantic/semantic-tier.js';
import { UpstreamEmbedder } from './cache/semantic/upstream-embedder.js';
import { VectorIndex } from './cache/semantic/vector-index.js';
import { RedisFeed } from './cache/semantic/redis-feed.js';
import { admissionNeeded, registerAdmission } from './limits/admission.js';
import { ClientKeys, LIMIT_WINDOW_MS } from './limits/client-keys.js';
import { createRequestLimiter } from './limits/request-limit.js';
import { MemoryBudgetStore, RedisBudgetStore, TokenBudget } from './limits/token-budget.js';
import { ToolInvoker } from './tools/invoke.js';
import { ToolResultCache } from './tools/result-cache.js';
import { toolRoutes } from './tools/routes.js';
import { ToolBatch } from './tools/tool-batch.js';

export interface AppDeps {
  /** Where log lines go (stdout by default); tests pass a stream to read them. */
  logDestination?: DestinationStream;
  /** The window rate limits and token budgets are counted over; one minute. Tests shorten it to see a window end. */
  limitWindowMs?: number;
}

export async function buildApp(config: RecallConfig, deps: AppDeps = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: createLogger(config.log.level, deps.logDestination) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.bodyLimitBytes,
    http: { maxHeaderSize: config.server.maxHeaderBytes },
    clientErrorHandler: clientErrorHandler(config.server.maxHeaderBytes),
    // What the router rejects before routing (a path it cannot decode) answers in OpenAI's shape too.
    frameworkErrors: (err, _request, reply) => {
      const answer = fromFrameworkError(err);
      void (reply as FastifyReply).code(answer.status).send(answer.toBody());
    },
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });

  const { store, figures, redis, snapshot, tenantSecret } = await openCacheStore(config, app.log);
  const overrides = config.metrics.prices === undefined ? {} : parsePriceOverrides(config.metrics.prices);
  const metrics = new Metrics(new PriceTable({ ...DEFAULT_PRICES, ...overrides }), figures);
  if (redis !== undefined) metrics.watchRedis(() => redis.status() === 'ready');
  if (redis?.near !== undefined) metrics.watchNearCache(redis.near);
  const upstream = new UpstreamClient(config.upstream, metrics);
  const forwarder = new Forwarder(upstream, config.upstream);
  const exact = new ExactTier(store, app.log, config.cache.maxEntryBytes, Date.now, metrics);
  const tenants = new TenantResolver(config.cache.scope, tenantSecret);
  const embeddings = new EmbeddingsCache(exact);
  const { batchWindowMs, batchMaxInputs, batchMaxTokens } = config.embeddings;
  const batcher = batchWindowMs > 0 ? new EmbeddingsBatcher(forwarder.sendWhole, { windowMs: batchWindowMs, maxInputs: batchMaxInputs, maxTokens: batchMaxTokens }, metrics) : undefined;
  const embeddingsUpstream = batcher?.send ?? forwarder.sendWhole;
  const remoteFlights = redis === undefined ? undefined : new RemoteFlights(redis.connection, config.redis.keyPrefix, config.coalesce.lockTtlMs);
  const coalescer = new Coalescer({ exact, metrics, log: app.log, settings: config.coalesce, upstream: config.upstream, remote: remoteFlights });
  const semanticIndex = config.semantic.enabled ? new VectorIndex(config.semantic.dimensions, config.semantic.maxVectors) : undefined;
  if (semanticIndex !== undefined) metrics.watchSemanticIndex({ vectors: () => semanticIndex.size, bytes: () => semanticIndex.bytes() });
  const embedder = config.semantic.embedder === 'upstream'
    ? new UpstreamEmbedder(embeddingsUpstream, config.semantic.upstreamModel, config.semantic.dimensions)
    : new LocalEmbedder(config.semantic.dimensions);
  // With Redis, vectors are shared: each instance builds its index from the stream and follows it.
  const semanticFeed = semanticIndex === undefined || redis === undefined ? undefined
    : new RedisFeed(redis.connection, config.redis.keyPrefix, semanticIndex, config.semantic.maxVectors, metrics, app.log);
  semanticFeed?.start();
  const semantic = semanticIndex === undefined ? undefined
    : new SemanticTier({ exact, index: semanticIndex, embedder, metrics, log: app.log, settings: config.semantic, shared: semanticFeed });
  semantic?.start();
  const clientKeys = new ClientKeys(config.auth, config.limits);
  const limitWindowMs = deps.limitWindowMs ?? LIMIT_WINDOW_MS;
  const budget = !clientKeys.limited.tokensPerMinute ? undefined : new TokenBudget({
    store: redis === undefined ? new MemoryBudgetStore(limitWindowMs) : new RedisBudgetStore(redis.connection, config.redis.keyPrefix, limitWindowMs),
    metrics, log: app.log, hitsSpend: config.limits.hitsSpendTokens,
  });
  const compactor = new Compactor(new Summarizer(exact, forwarder.sendWhole, config.compaction), config.compaction, metrics);
  const pipeline = new Pipeline({ forwarder, tenants, exact, coalescer, embeddings, embeddingsUpstream, semantic, metrics, cache: config.cache, budget,
    autoCompaction: new AutoCompaction(compactor, tenants, config.compaction, config.upstream.apiKey), upstreamApiKey: config.upstream.apiKey });
  const toolInvoker = new ToolInvoker();
  const toolBatch = new ToolBatch(config.tools, toolInvoker, new ToolResultCache(exact), metrics);

  let shuttingDown = false;
  let closeIdle: NodeJS.Timeout | undefined;
  app.addHook('preClose', (done) => {
    shuttingDown = true;
    // A keep-alive connection whose last response ends during shutdown would hold the close open until the grace
    // period ends; it is closed as soon as it goes idle. A timer rather than an onResponse hook: every hook costs
    // on the hit path.
    closeIdle = setInterval(() => app.server.closeIdleConnections(), 25);
    closeIdle.unref();
    done();
  });
  app.addHook('onClose', async () => {
    clearInterval(closeIdle);
    batcher?.close();
    await snapshot?.stop(tenantSecret);
    await remoteFlights?.close();
    semantic?.close();
    await semanticFeed?.close();
    semanticIndex?.clear();
    await store.close();
    await upstream.close();
    await toolInvoker.close();
  });

  registerRequestContext(app);
  registerRequestLog(app, metrics, {
    slowRequestMs: config.log.slowRequestMs,
    refusal: () => shuttingDown ? new RecallError('shuttingDown', 'Recall is shutting down and takes no new requests; retry on another instance.') : undefined,
  });
  registerBodyLimit(app, config.server.bodyLimitBytes);
  app.setValidatorCompiler(requestValidatorCompiler({ maxStringChars: config.server.maxStringChars, maxJsonDepth: config.server.maxJsonDepth }));

  app.setErrorHandler((err: FastifyError | RecallError, request, reply) => {
    const answer = err instanceof RecallError ? err : fromFrameworkError(err);
    if (answer.status >= 500) request.log.error({ err: answer.cause ?? err }, answer.message);
    if (answer.retryAfterS !== undefined) reply.header('retry-after', String(answer.retryAfterS));
    return reply.code(answer.status).send(answer.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const answer = new RecallError('unknownRoute', `Invalid URL (${request.method} ${request.url.split('?')[0]})`);
    return reply.code(answer.status).send(answer.toBody());
  });

  if (admissionNeeded(clientKeys, config.auth)) {
    const requests = clientKeys.limited.requestsPerMinute ? await createRequestLimiter(app, { redis: redis?.connection, keyPrefix: config.redis.keyPrefix, windowMs: limitWindowMs }, metrics) : undefined;
    registerAdmission(app, { tenants, keys: clientKeys, auth: config.auth, requests });
  }
  await app.register(healthRoutes, { upstream, redis, isShuttingDown: () => shuttingDown });
  await app.register(metricsRoutes, { metrics, storeKind: store.kind });
  await app.register(dashboardRoutes);
  if (config.admin.token !== undefined) await app.register(adminRoutes, { token: config.admin.token, store, purgeVectors: semantic && ((scope) => semantic.purge(scope)) });
  await app.register(compactRoutes, { compactor, tenants, upstreamApiKey: config.upstream.apiKey, maxMessages: config.server.maxMessages });
  await app.register(toolRoutes, { batch: toolBatch });
  await app.register(proxyRoutes, { pipeline, forwarder, bodyLimitBytes: config.server.bodyLimitBytes, maxMessages: config.server.maxMessages });
  return app;
}
