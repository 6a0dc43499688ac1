// The one catalog of Recall's Prometheus metrics (prefix `recall_`), on a registry owned by the app. Label values
// are bounded: routes as registered, status codes, cache outcomes, tiers, and models mapped to the price table.
import { usageOf } from '../openai/usage.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamObserver } from '../upstream/client.js';
import { PRIORITIES, type Priority } from '../upstream/priority.js';
import { RETRY_REASONS, type RetryReason } from '../upstream/retry.js';
import type { BatchTrigger } from '../upstream/embeddings-batcher.js';
import { GUARD_NAMES, type GuardName } from '../cache/semantic/guards.js';
import type { PriceTable } from './prices.js';
import type { NearCacheFigures } from '../cache/near-cache.js';
import { RecentStats } from './recent.js';
import { HotCounter, HotHistogram, type CounterSeries, type HistogramSeries } from './hot-series.js';

export type LookupResult = 'hit' | 'miss' | 'stale' | 'error';
export type CacheTier = 'exact';

/**
 * Codes of failed upstream calls: the HTTP statuses below, other 4xx/5xx by class, and failures without an answer
 * (`unreachable`, `timeout`, `broken_response`: the answer broke off).
 */
const UPSTREAM_ERROR_STATUSES = [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504] as const;
export const UPSTREAM_ERROR_CODES = [...UPSTREAM_ERROR_STATUSES.map((s) => `status_${s}`), 'status_4xx', 'status_5xx', 'unreachable', 'timeout', 'broken_response'] as const;
export type UpstreamErrorCode = (typeof UPSTREAM_ERROR_CODES)[number];
const KNOWN_ERROR_STATUSES: ReadonlySet<number> = new Set(UPSTREAM_ERROR_STATUSES);

/** prom-client's default Node metrics that break Prometheus naming (gauges ending in `_total`); promtool rejects them. */
const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * What a semantic lookup came to: hit; miss (no vector of the partition close enough); guarded (the close ones failed
 * a guard); expired (the close ones' entries were gone); error (embedder, index or store failed: fail open); skipped
 * (the request was not eligible: last message not a user's text, or too many turns).
 */
export type SemanticResult = 'hit' | 'miss' | 'guarded' | 'expired' | 'error' | 'skipped';
const SEMANTIC_RESULTS: readonly SemanticResult[] = ['hit', 'miss', 'guarded', 'expired', 'error', 'skipped'];

/** Figures of the semantic index read at scrape time. */
export interface SemanticIndexFigures {
  vectors(): number;
  bytes(): number;
}

/** Similarity of served semantic hits: fine-grained near the thresholds people use (0.8–1). */
const SIMILARITY_BUCKETS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1];

/** Store figures read at scrape time. */
export interface StoreFigures {
  kind: string;
  entries(): number | undefined;
  bytes(): number | undefined;
  evictions(): number | undefined;
}

/** Inputs or requests per batched upstream call: powers of two up to OpenAI's 2048 inputs per request. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Cache lookups take microseconds in memory, a round trip or a timeout with Redis. */
const LOOKUP_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Recall's own share of a request: far below the upstream's. */
const OVERHEAD_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Waits in the upstream queue run from nothing (a free slot) to upstream.queue_timeout_ms. */
const QUEUE_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Labelled children resolved once per label combination: resolving labels is most of what a labelled inc() costs on
 * the hit path. Label values are bounded (see above), so the memo is too.
 */
class SeriesMemo<T> {
  private readonly series = new Map<string, T>();

  get(key: string, make: () => T): T {
    let found = this.series.get(key);
    if (found === undefined) {
      found = make();
      this.series.set(key, found);
    }
    return found;
  }
}

export class Metrics implements UpstreamObserver {
  readonly registry = new Registry();
  readonly startedAt = Date.now();
  /** The same figures over recent windows, for /recall/stats and the dashboard. */
  readonly recent = new RecentStats();
  private inFlightRequests = 0;

  private readonly requests = new HotCounter({
    name: 'recall_requests_total', help: 'Requests answered, by route, HTTP status and cache outcome (HIT, SEMANTIC, STALE: an expired entry in place of an upstream failure, MISS, COALESCED, BYPASS, none).',
    labelNames: ['route', 'status', 'cache'] as const, registry: this.registry,
  });
  private readonly requestDuration = new HotHistogram({
    name: 'recall_request_duration_seconds', help: 'Time from request arrival to the last byte of the answer, by route and cache outcome.',
    labelNames: ['route', 'cache'] as const, buckets: LATENCY_BUCKETS, registry: this.registry,
  });
  private readonly upstreamDuration = new HotHistogram({
    name: 'recall_upstream_duration_seconds', help: 'Time spent on the upstream call, to its last byte, by route (queue wait and retries included).',
    labelNames: ['route'] as const, buckets: LATENCY_BUCKETS, registry: this.registry,
  });
  private readonly firstToken = new HotHistogram({
    name: 'recall_stream_first_token_seconds', help: 'Time from request arrival to the first event of a streamed answer (hits rendered from the cache and relayed misses), by route and cache outcome.',
    labelNames: ['route', 'cache'] as const, buckets: LATENCY_BUCKETS, registry: this.registry,
  });
  private readonly overhead = new HotHistogram({
    name: 'recall_overhead_seconds', help: 'Recall\'s own time per proxied request: total minus the upstream call (queue wait and retries count as upstream); coalesced followers are left out.',
    labelNames: ['route', 'cache'] as const, buckets: OVERHEAD_BUCKETS, registry: this.registry,
  });
  private readonly upstreamErrors = new Counter({
    name: 'recall_upstream_errors_total', help: 'Upstream calls that failed, each attempt counted (retried ones too), by code: status_NNN, status_4xx/5xx for other statuses, unreachable, timeout, broken_response.',
    labelNames: ['code'] as const, registers: [this.registry],
  });
  private readonly lookupDuration = new HotHistogram({
    name: 'recall_cache_lookup_duration_seconds', help: 'Time a cache lookup took, by tier and result.',
    labelNames: ['tier', 'result'] as const, buckets: LOOKUP_BUCKETS, registry: this.registry,
  });
  private readonly lookups = new HotCounter({
    name: 'recall_cache_lookups_total', help: 'Cache lookups by tier and result (hit, miss, stale: older than max-age, error: the store failed and the request went upstream).',
    labelNames: ['tier', 'result'] as const, registry: this.registry,
  });
  private readonly storeErrors = new Counter({
    name: 'recall_cache_store_errors_total', help: 'Failed cache operations by store and operation; each one failed open.',
    labelNames: ['store', 'operation'] as const, registers: [this.registry],
  });
  private readonly tokensSaved = new HotCounter({
    name: 'recall_tokens_saved_total', help: 'Tokens a cache hit did not spend upstream, by model and kind (prompt, completion).',
    labelNames: ['model', 'kind'] as const, registry: this.registry,
  });
  private readonly costSaved = new HotCounter({
    name: 'recall_cost_saved_usd_total', help: 'Money a cache hit did not spend upstream, in USD at the configured list prices, by model.',
    labelNames: ['model'] as const, registry: this.registry,
  });

  private readonly coalescedRequests = new Counter({
    name: 'recall_coalesced_requests_total', help: 'Requests answered by joining an identical request already in flight (here or on another instance), by route.',
    labelNames: ['route'] as const, registers: [this.registry],
  });
  private readonly rateLimitedRequests = new HotCounter({
    name: 'recall_rate_limited_requests_total', help: 'Requests answered 429 by Recall\'s own limits, by limit (requests: limits.requests_per_minute, tokens: the token budget) and route.',
    labelNames: ['limit', 'route'] as const, registry: this.registry,
  });
  private readonly queueDepth = new Gauge({
    name: 'recall_upstream_queue_depth', help: 'Upstream calls waiting for a slot (upstream.max_concurrent), by priority.',
    labelNames: ['priority'] as const, registers: [this.registry],
  });
  private readonly queueWait = new Histogram({
    name: 'recall_upstream_queue_wait_seconds', help: 'Time an upstream call waited for a slot before it was sent (0 when one was free), by priority.',
    labelNames: ['priority'] as const, buckets: QUEUE_WAIT_BUCKETS, registers: [this.registry],
  });
  private readonly queueRejections = new Counter({
    name: 'recall_upstream_queue_rejections_total', help: 'Requests answered 503 by the upstream queue, by reason (full, timeout).',
    labelNames: ['reason'] as const, registers: [this.registry],
  });
  private readonly retries = new Counter({
    name: 'recall_upstream_retries_total', help: 'Upstream calls sent again, by reason (connect_error, status_429, status_502, status_503, status_504).',
    labelNames: ['reason'] as const, registers: [this.registry],
  });
  private readonly queueWaitByPriority = new SeriesMemo<{ observe(value: number): void }>();
  private readonly batchInputs = new Histogram({
    name: 'recall_embeddings_batch_inputs', help: 'Inputs per upstream /v1/embeddings call made by the batcher (merged from several requests or not).',
    buckets: BATCH_BUCKETS, registers: [this.registry],
  });
  private readonly batchRequests = new Histogram({
    name: 'recall_embeddings_batch_requests', help: 'Requests whose cache misses one upstream /v1/embeddings call carried.',
    buckets: BATCH_BUCKETS, registers: [this.registry],
  });
  private readonly batches = new Counter({
    name: 'recall_embeddings_batches_total', help: 'Upstream /v1/embeddings calls made by the batcher, by trigger: window, full, priority, oversize (one request over the limits), shutdown, split (a batch refused as a whole, sent again per request).',
    labelNames: ['trigger'] as const, registers: [this.registry],
  });
  private readonly batchGathering = new Gauge({
    name: 'recall_embeddings_batch_gathering_inputs', help: 'Inputs gathered in embeddings batches that have not been sent yet.',
    registers: [this.registry],
  });

  private readonly savingSeries = new SeriesMemo<Record<'prompt' | 'completion' | 'usd', CounterSeries>>();
  private readonly requestSeries = new SeriesMemo<{ count: CounterSeries; duration: HistogramSeries; overhead: HistogramSeries }>();
  private readonly lookupSeries = new SeriesMemo<{ count: CounterSeries; duration: HistogramSeries }>();
  private readonly toolCallDuration = new Histogram({
    name: 'recall_tool_call_duration_seconds', help: 'Time a tool call of POST /recall/tools/batch took, by configured tool and status (ok, error, timeout, skipped; cached results are ok).',
    labelNames: ['tool', 'status'] as const, buckets: LATENCY_BUCKETS, registers: [this.registry],
  });
  private readonly toolBatchSize = new Histogram({
    name: 'recall_tool_batch_calls', help: 'Calls per tool batch.',
    buckets: BATCH_BUCKETS, registers: [this.registry],
  });
  private readonly toolBatchConcurrency = new Histogram({
    name: 'recall_tool_batch_concurrency', help: 'Most calls of one tool batch that ran at once.',
    buckets: BATCH_BUCKETS, registers: [this.registry],
  });
  private readonly semanticLookups = new HotCounter({
    name: 'recall_semantic_lookups_total', help: 'Semantic tier lookups after an exact miss, by result (hit, miss, guarded, expired, error, skipped).',
    labelNames: ['result'] as const, registry: this.registry,
  });
  private readonly semanticSimilarities = new Histogram({
    name: 'recall_semantic_similarity', help: 'Cosine similarity of the last user messages of served semantic hits.',
    buckets: SIMILARITY_BUCKETS, registers: [this.registry],
  });
  private readonly semanticGuards = new Counter({
    name: 'recall_semantic_guard_rejections_total', help: 'Semantic candidates above the threshold refused by a guard, by guard.',
    labelNames: ['guard'] as const, registers: [this.registry],
  });
  private readonly semanticErrors = new Counter({
    name: 'recall_semantic_errors_total', help: 'Semantic tier failures, each one failed open, by stage (embed, index, feed).',
    labelNames: ['stage'] as const, registers: [this.registry],
  });
  private readonly compactions = new Counter({
    name: 'recall_compactions_total', help: 'Conversations compacted (POST /recall/compact and X-Recall-Compact: auto), by strategy that ran (none, truncation, summary) and where the summary came from (hit: cache or an identical call in flight, incremental, miss, none).',
    labelNames: ['strategy', 'summary'] as const, registers: [this.registry],
  });
  private readonly compactionTokensRemoved = new Counter({
    name: 'recall_compaction_tokens_removed_total', help: 'Prompt tokens compaction removed (tokens before minus tokens after), by strategy.',
    labelNames: ['strategy'] as const, registers: [this.registry],
  });
  private semanticIndex: SemanticIndexFigures | undefined;


  constructor(private readonly prices: PriceTable, store: StoreFigures) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry });
    for (const name of MISNAMED_DEFAULT_METRICS) registry.removeSingleMetric(name);
    // Read at scrape time: the request hook only adds and subtracts a number.
    const metrics = this;
    new Gauge({ name: 'recall_requests_in_flight', help: 'Requests received and not yet answered (every route).', registers: [registry],
      collect() { this.set(metrics.inFlightRequests); } });
    for (const code of UPSTREAM_ERROR_CODES) this.upstreamErrors.inc({ code }, 0);
    // Every series of the upstream queue and retries exists from the start, so rates and alerts see zeros, not gaps.
    for (const priority of PRIORITIES) this.queueDepth.set({ priority }, 0);
    for (const reason of RETRY_REASONS) this.retries.inc({ reason }, 0);
    for (const reason of ['full', 'timeout'] as const) this.queueRejections.inc({ reason }, 0);
    for (const result of SEMANTIC_RESULTS) this.semanticLookups.labels(result);
    for (const guard of GUARD_NAMES) this.semanticGuards.inc({ guard }, 0);
    for (const stage of ['embed', 'index', 'feed'] as const) this.semanticErrors.inc({ stage }, 0);
    const semantic = () => this.semanticIndex;
    new Gauge({ name: 'recall_semantic_vectors', help: 'Vectors held by the semantic index of this process.', registers: [registry],
      collect() { this.set(semantic()?.vectors() ?? 0); } });
    new Gauge({ name: 'recall_semantic_index_bytes', help: 'Memory held by the semantic index of this process, estimated (vectors, graph links, metadata); divide by recall_semantic_vectors for bytes per entry.', registers: [registry],
      collect() { this.set(semantic()?.bytes() ?? 0); } });
    new Gauge({ name: 'recall_cache_entries', help: 'Entries held by the cache store (where it can tell).', labelNames: ['store'] as const, registers: [registry],
      collect() { const n = store.entries(); if (n !== undefined) this.set({ store: store.kind }, n); } });
    new Gauge({ name: 'recall_cache_bytes', help: 'Bytes held by the cache store (where it can tell).', labelNames: ['store'] as const, registers: [registry],
      collect() { const n = store.bytes(); if (n !== undefined) this.set({ store: store.kind }, n); } });
    new Gauge({ name: 'recall_cache_evictions', help: 'Entries evicted to stay within the store limits since start (where the store can tell).', labelNames: ['store'] as const, registers: [registry],
      collect() { const n = store.evictions(); if (n !== undefined) this.set({ store: store.kind }, n); } });
  }

  /** Reports whether Redis is connected, as `recall_redis_up` (only registered when Recall uses Redis). */
  watchRedis(isUp: () => boolean): void {
    new Gauge({ name: 'recall_redis_up', help: '1 when the connection to Redis is ready, 0 when it is down or reconnecting.', registers: [this.registry],
      collect() { this.set(isUp() ? 1 : 0); } });
  }

  /** The near cache's figures (only registered when Recall has one: Redis, not a Cluster, near_cache_max_entries > 0). */
  watchNearCache(near: NearCacheFigures): void {
    const registers = [this.registry];
    new Gauge({ name: 'recall_near_cache_active', help: '1 while Redis tells this instance which entries change (client tracking) and the near cache answers; 0 while it cannot (it is then empty).', registers,
      collect() { this.set(near.active() ? 1 : 0); } });
    new Gauge({ name: 'recall_near_cache_entries', help: 'Entries the near cache holds.', registers, collect() { this.set(near.entries()); } });
    new Gauge({ name: 'recall_near_cache_bytes', help: 'Bytes the near cache holds.', registers, collect() { this.set(near.bytes()); } });
    new Counter({ name: 'recall_near_cache_hits_total', help: 'Exact-tier lookups answered by the near cache without a Redis round trip (they count as hits in recall_cache_lookups_total too).', registers,
      collect() { this.reset(); this.inc(near.hits()); } });
    new Counter({ name: 'recall_near_cache_invalidations_total', help: 'Entries dropped from the near cache because Redis said they changed (written, deleted, expired or evicted by any instance).', registers,
      collect() { this.reset(); this.inc(near.invalidations()); } });
  }

  requestStarted(): void {
    this.inFlightRequests++;
  }

  requestEnded(): void {
    this.inFlightRequests--;
  }

  /** A streamed answer sent its first event `ms` after the request arrived. */
  firstEvent(route: string, cache: string | undefined, ms: number): void {
    this.firstToken.labels(route, cache ?? 'none').observe(ms / 1000);
  }

  observeRequest(route: string, status: number, cache: string | undefined, durationMs: number, upstreamMs: number | undefined): void {
    const outcome = cache ?? 'none';
    const children = this.requestSeries.get(`${route} ${status} ${outcome}`, () => ({
      count: this.requests.labels(route, String(status), outcome),
      duration: this.requestDuration.labels(route, outcome),
      overhead: this.overhead.labels(route, outcome),
    }));
    children.count.inc();
    children.duration.observe(durationMs / 1000);
    if (upstreamMs !== undefined) this.upstreamDuration.labels(route).observe(upstreamMs / 1000);
    if (cache === undefined) return;
    // A follower's time is the leader's upstream call: not Recall's overhead.
    if (cache !== 'COALESCED') children.overhead.observe(Math.max(0, durationMs - (upstreamMs ?? 0)) / 1000);
    this.recent.request(cache, durationMs);
  }

  cacheLookup(tier: CacheTier, result: LookupResult, seconds: number): void {
    const children = this.lookupSeries.get(`${tier} ${result}`, () => ({ count: this.lookups.labels(tier, result), duration: this.lookupDuration.labels(tier, result) }));
    children.count.inc();
    children.duration.observe(seconds);
    this.recent.lookup(tier, result === 'hit');
  }

  /** An upstream attempt answered this HTTP status (>= 400), or failed without an answer. */
  upstreamError(failure: number | 'unreachable' | 'timeout' | 'broken_response'): void {
    const code = typeof failure === 'string' ? failure
      : KNOWN_ERROR_STATUSES.has(failure) ? `status_${failure}` : failure >= 500 ? 'status_5xx' : 'status_4xx';
    this.upstreamErrors.inc({ code });
    this.recent.upstreamError(code);
  }

  /** Gives the index gauges their source (the semantic tier is built after the catalog). */
  watchSemanticIndex(figures: SemanticIndexFigures): void {
    this.semanticIndex = figures;
  }

  /** The semantic index's size now, for /recall/stats; undefined when the tier is off. */
  semanticIndexNow(): { vectors: number; bytes: number } | undefined {
    return this.semanticIndex === undefined ? undefined : { vectors: this.semanticIndex.vectors(), bytes: this.semanticIndex.bytes() };
  }

  compaction(strategy: 'none' | 'truncation' | 'summary', summary: 'hit' | 'incremental' | 'miss' | 'none', tokensRemoved: number): void {
    this.compactions.inc({ strategy, summary });
    if (tokensRemoved > 0) this.compactionTokensRemoved.inc({ strategy }, tokensRemoved);
  }

  semanticLookup(result: SemanticResult): void {
    this.semanticLookups.labels(result).inc();
  }

  semanticSimilarity(similarity: number): void {
    this.semanticSimilarities.observe(similarity);
  }

  semanticGuardRejection(guard: GuardName): void {
    this.semanticGuards.inc({ guard });
  }

  semanticError(stage: 'embed' | 'index' | 'feed'): void {
    this.semanticErrors.inc({ stage });
  }

  coalesced(route: string): void {
    this.coalescedRequests.inc({ route });
  }

  /** `route` is a registered route pattern (bounded); never a tenant. */
  rateLimited(limit: 'requests' | 'tokens', route: string): void {
    this.rateLimitedRequests.labels(limit, route).inc();
  }

  storeError(store: string, operation: 'get' | 'set' | 'delete'): void {
    this.storeErrors.inc({ store, operation });
  }

  /**
   * An answer served without its own upstream call (a hit, a coalesced request) saved the tokens of its stored usage
   * (read once per buffer: the memory store hands out the same buffer on every hit of an entry).
   */
  savedBy(model: unknown, answer: Buffer): void {
    const usage = usageOf(answer);
    if (usage !== undefined) this.saved(typeof model === 'string' ? model : 'unknown', usage.promptTokens, usage.completionTokens);
  }

  /** A hit saved these tokens of `model`. */
  private saved(model: string, promptTokens: number, completionTokens: number): void {
    const label = this.prices.modelLabel(model);
    const series = this.savingSeries.get(label, () => ({
      prompt: this.tokensSaved.labels(label, 'prompt'), completion: this.tokensSaved.labels(label, 'completion'), usd: this.costSaved.labels(label),
    }));
    if (promptTokens > 0) series.prompt.inc(promptTokens);
    if (completionTokens > 0) series.completion.inc(completionTokens);
    const usd = this.prices.cost(label, promptTokens, completionTokens);
    if (usd > 0) series.usd.inc(usd);
    this.recent.saved(promptTokens, completionTokens, usd);
  }

  upstreamQueueDepth(priority: Priority, depth: number): void {
    this.queueDepth.set({ priority }, depth);
  }

  upstreamQueueWait(priority: Priority, seconds: number): void {
    const series = this.queueWaitByPriority.get(priority, () => this.queueWait.labels(priority));
    series.observe(seconds);
  }

  upstreamQueueRejected(reason: 'full' | 'timeout'): void {
    this.queueRejections.inc({ reason });
  }

  upstreamRetry(reason: RetryReason): void {
    this.retries.inc({ reason });
  }

  embeddingsBatchSent(inputs: number, requests: number, trigger: BatchTrigger): void {
    this.batchInputs.observe(inputs);
    this.batchRequests.observe(requests);
    this.batches.inc({ trigger });
  }

  embeddingsGathering(inputs: number): void {
    this.batchGathering.set(inputs);
  }

  /** `tool` is a configured tool's name: bounded by the registry. */
  toolCall(tool: string, status: 'ok' | 'error' | 'timeout' | 'skipped', seconds: number): void {
    this.toolCallDuration.observe({ tool, status }, seconds);
  }

  toolBatch(calls: number, concurrencyUsed: number): void {
    this.toolBatchSize.observe(calls);
    this.toolBatchConcurrency.observe(concurrencyUsed);
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Sums of a counter's values grouped by one label, for /recall/stats. */
  totalsBy(metric: 'requests' | 'lookups' | 'tokensSaved' | 'costSaved' | 'rateLimitedRequests' | 'semanticLookups', label: string): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const value of this[metric].get().values) {
      const key = String(value.labels[label] ?? '');
      totals[key] = (totals[key] ?? 0) + value.value;
    }
    return totals;
  }

  contentType(): string {
    return this.registry.contentType;
  }
}
