// The one path every cached-route request takes, top to bottom (DESIGN.md):
//   tenant ─► rate limit ─► canonical key ─► exact tier ─► semantic tier ─► join in-flight ─► upstream ─► store
// Each stage is a call into its own module. The rate limit box is admission (src/limits/admission.ts), a hook that
// runs before this handler: proxy-issued keys and requests per minute. Token budgets are spent here, where a request
// goes upstream (a hit or a follower of an identical call spends nothing, unless limits.hits_spend_tokens says so),
// and corrected with the answer's usage. The semantic tier answers near-repeats of the last user message (chat) or
// the prompt (completions) within an exact partition, and indexes what gets stored. Embeddings
// take the same path with one entry per input item; their misses go upstream through the embeddings batcher, which
// merges concurrent requests' misses into one call. When the upstream call fails (5xx, unreachable, timed out), the
// in-flight join answers each request that accepts it from the key's expired entry (stale-if-error).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { markForwarded, markHit, type ForwardReason } from '../cache/cache-status.js';
import { EmbeddingsCache } from '../cache/embeddings.js';
import type { ExactTier } from '../cache/exact-tier.js';
import type { CacheEntry } from '../cache/store.js';
import type { CompletionRoute } from '../openai/assemble.js';
import type { Coalescer } from '../coalesce/singleflight.js';
import type { FlightSignal } from '../coalesce/flight.js';
import type { Probe, SemanticTier } from '../cache/semantic/semantic-tier.js';
import { upstreamRequestHeaders } from '../upstream/headers.js';
import { KeyMemo } from '../cache/key.js';
import { readPolicy, type CachePolicy, type PolicyDefaults } from '../cache/policy.js';
import type { TenantResolver } from '../cache/tenant.js';
import type { RecallConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/catalog.js';
import { isRecord, type JsonObject } from '../openai/wire.js';
import { sendCachedAnswer } from './cached-answer.js';
import { markFirstEvent, routeOf } from './request-context.js';
import type { Forwarder, SendWhole } from './forward.js';
import type { AutoCompaction } from '../compaction/auto-compact.js';
import type { Spend, TokenBudget } from '../limits/token-budget.js';

/** The routes whose answers Recall caches, by their path. */
export const CACHED_ROUTES = {
  '/v1/chat/completions': 'chat.completions',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
} as const;

export type CachedRoute = (typeof CACHED_ROUTES)[keyof typeof CACHED_ROUTES];

export interface PipelineDeps {
  forwarder: Forwarder;
  tenants: TenantResolver;
  exact: ExactTier;
  coalescer: Coalescer;
  embeddings: EmbeddingsCache;
  /** Undefined when `semantic.enabled` is off. */
  semantic: SemanticTier | undefined;
  /** How embeddings misses go upstream: through the batcher, or straight (`Forwarder.sendWhole`) when it is off. */
  embeddingsUpstream: SendWhole;
  metrics: Metrics;
  cache: RecallConfig['cache'];
  /** X-Recall-Compact: auto on chat completions, before the key is computed. */
  autoCompaction: AutoCompaction;
  /** Sent upstream when the client sends no key (the upstream embedder's calls too). */
  upstreamApiKey: string | undefined;
  /** Undefined when no client has a tokens-per-minute budget. */
  budget: TokenBudget | undefined;
  now?: () => number;
}

export class Pipeline {
  private readonly now: () => number;
  private readonly keys = new KeyMemo();
  private readonly cachedRoutes: ReadonlySet<string>;
  private readonly policyDefaults: PolicyDefaults;

  constructor(private readonly deps: PipelineDeps) {
    this.now = deps.now ?? Date.now;
    const { ttlSeconds, staleIfErrorSeconds, staleIfErrorMaxSeconds } = deps.cache;
    this.policyDefaults = { ttlS: ttlSeconds, staleIfErrorS: staleIfErrorSeconds, staleIfErrorMaxS: staleIfErrorMaxSeconds };
    this.cachedRoutes = new Set(deps.cache.routes.split(',').map((r) => r.trim()));
  }

  async handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const route = CACHED_ROUTES[routeOf(request) as keyof typeof CACHED_ROUTES];
    const policy = readPolicy(request.headers, this.policyDefaults);
    // Compaction comes first: the cache key, the semantic probe and the upstream all see the compacted conversation.
    const body = route === 'chat.completions' ? await this.deps.autoCompaction.apply(request, reply) : request.body as JsonObject;
    const spend = this.deps.budget?.spendFor(request, reply, body);
    request.recall.spend = spend;
    if (spend?.onArrival) await spend.reserve();
    if (!this.cachedRoutes.has(route)) return this.forward(request, reply, route, 'bypass', spend);
    if (route === 'embeddings') return policy.read || policy.write ? this.answerEmbeddings(request, reply, body, policy, spend) : this.forward(request, reply, route, 'bypass', spend);
    if (!this.cacheable(body)) return this.forward(request, reply, route, 'bypass', spend);

    const tenant = this.deps.tenants.tenantOf(request);
    request.recall.tenantHash = shortTenant(tenant);
    const key = this.keys.keyFor({ route, tenant, namespace: policy.namespace, body }, request.recall.rawBody);
    // The key is a hash (the tenant inside it is an HMAC): safe to show, and what an operator purges by.
    reply.header('x-recall-key', key);

    // no-store neither reads nor stores (BYPASS), but still joins an identical request in flight.
    let reason: ForwardReason = policy.write ? 'request' : 'bypass';
    if (policy.read) {
      const lookup = await this.deps.exact.lookup(key, policy);
      (request.recall.lookupMs ??= {}).exact = lookup.ms;
      if (lookup.outcome === 'hit') {
        const served = await this.answerFromEntry(request, reply, body, route, lookup.entry, key, undefined, spend);
        if (served !== undefined) return served.reply;
      }
      reason = lookup.outcome === 'stale' ? 'stale' : 'miss';
    }

    // Semantic tier: a near-repeat of the last user message in the same partition. Its probe (partition and vector)
    // is kept to index this request's answer once stored. Skipped when an identical request is in flight: joining it
    // gets the exact answer (and a near-repeat lookup would only delay the join).
    const probe = policy.write && !this.deps.coalescer.inFlightFor(key) ? this.semanticProbe(request, route, tenant, policy, body) : undefined;
    if (probe !== undefined && policy.read && policy.semantic !== 'off') {
      const found = await this.deps.semantic!.lookup(probe, policy, policy.semantic ?? this.deps.semantic!.threshold);
      if (found.outcome === 'hit') {
        // Its own key: the identical request's entry, stored while this one was looking; an exact hit.
        const similarity = found.exactKey === key ? undefined : found.similarity;
        const served = await this.answerFromEntry(request, reply, body, route, found.entry, found.exactKey, similarity, spend);
        if (served !== undefined) return served.reply;
      }
    }

    // Identical requests in flight share one upstream call (no-cache and no-store ones too: they only skip the store).
    // If that call fails, each member that accepts it (stale-if-error) is answered from the expired entry instead.
    const staleIfError = policy.staleIfErrorS ? { graceS: policy.staleIfErrorS, maxAgeS: policy.maxAgeS } : undefined;
    const member = { request, reply, stream: body.stream === true, includeUsage: includesUsage(body), reason, storeTtlS: policy.write ? policy.ttlS : undefined, staleIfError };
    const upstreamBody = upstreamBodyOf(body, request.recall.rawBody);
    const onStored = probe === undefined ? undefined : () => this.deps.semantic!.insert(probe, key, this.now() + policy.ttlS * 1000);
    // Only the request that makes the call reserves here; the flight settles every member's spend with its answer.
    const call = async (signal: FlightSignal) => {
      await spend?.reserve();
      return this.deps.forwarder.call(request, upstreamBody, signal);
    };
    return this.deps.coalescer.answer({ key, route, policy, member, onStored, call });
  }

  /**
   * A hit (exact, or semantic with its similarity); undefined when the entry turned out unreadable and was dropped.
   * The reply comes wrapped: a FastifyReply is a thenable, which an async function would wait on instead of return.
   * A hit that reserved tokens on arrival (limits.hits_spend_tokens) spends the usage its entry carries.
   */
  private async answerFromEntry(
    request: FastifyRequest, reply: FastifyReply, body: JsonObject, route: CompletionRoute, entry: CacheEntry, entryKey: string, similarity: number | undefined,
    spend: Spend | undefined,
  ): Promise<{ reply: FastifyReply } | undefined> {
    try {
      const renderFrom = performance.now();
      const answer = sendCachedAnswer(reply, entry, { route, stream: body.stream === true, includeUsage: includesUsage(body), similarity }, this.now());
      request.recall.renderMs += performance.now() - renderFrom;
      request.recall.cacheOutcome = similarity === undefined ? 'HIT' : 'SEMANTIC';
      // A rendered stream is sent whole: its first event leaves now.
      if (body.stream === true) markFirstEvent(request.recall);
      this.deps.metrics.savedBy(body.model, entry.body);
      spend?.settle(entry.body);
      return { reply: answer };
    } catch (err) {
      request.log.warn({ err }, 'unreadable cache entry dropped; answering from the upstream');
      await this.deps.exact.forget(entryKey);
      return undefined;
    }
  }

  /** The semantic tier's view of a request that may store (undefined when the tier is off or does not apply). */
  private semanticProbe(request: FastifyRequest, route: CompletionRoute, tenant: string, policy: CachePolicy, body: JsonObject): Probe | undefined {
    const semantic = this.deps.semantic;
    if (semantic === undefined) return undefined;
    // The upstream embedder embeds with the client's credentials and priority, as its own request would go upstream.
    const context = !semantic.embedsUpstream ? undefined
      : { headers: upstreamRequestHeaders(request.headers, { fallbackApiKey: this.deps.upstreamApiKey, keepContentLength: false, identityEncoding: true }), priority: request.recall.priority };
    return semantic.probe({ route, tenant, namespace: policy.namespace, body }, context);
  }

  /** Embeddings are cached per input: only the inputs not cached go upstream, batched with other requests' misses. */
  private async answerEmbeddings(request: FastifyRequest, reply: FastifyReply, body: JsonObject, policy: CachePolicy, spend: Spend | undefined): Promise<FastifyReply> {
    if (!EmbeddingsCache.cacheable(body)) return this.forward(request, reply, 'embeddings', 'bypass', spend);
    const tenant = this.deps.tenants.tenantOf(request);
    request.recall.tenantHash = shortTenant(tenant);
    const send = this.deps.embeddingsUpstream;
    const answer = await this.deps.embeddings.answer({ tenant, policy, body }, async (upstreamBody) => {
      await spend?.reserve();
      const missed = await this.deps.forwarder.exchange(request, reply, upstreamBody, send);
      spend?.settle(missed.status >= 200 && missed.status < 300 ? missed.body : undefined);
      return missed;
    });
    if (answer.outcome === 'HIT') {
      // A whole hit: nothing went upstream (with hits_spend_tokens, its stored usage is what it spends).
      spend?.settle(answer.body);
      markHit(reply, answer.ageS ?? 0, answer.ttlS ?? 0);
      request.recall.cacheOutcome = 'HIT';
      this.deps.metrics.savedBy(body.model, answer.body);
    } else {
      const reason = answer.outcome === 'PARTIAL' ? 'partial' : policy.read ? 'miss' : 'request';
      markForwarded(reply, reason, answer.storedInputs > 0, answer.outcome === 'PARTIAL' ? `cached-${answer.cachedInputs}-of-${answer.totalInputs}` : undefined);
      request.recall.cacheOutcome = 'MISS';
    }
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  }

  /** Uncached. A JSON answer corrects what it spent; a streamed one keeps the estimate (it is relayed, not assembled). */
  private async forward(request: FastifyRequest, reply: FastifyReply, route: CachedRoute, reason: ForwardReason, spend: Spend | undefined): Promise<FastifyReply> {
    await spend?.reserve();
    markForwarded(reply, reason);
    request.recall.cacheOutcome = reason === 'bypass' ? 'BYPASS' : 'MISS';
    const completionRoute = route === 'embeddings' ? undefined : route;
    return this.deps.forwarder.forward(request, reply, { body: request.recall.rawBody, readJsonWhole: true, completionRoute });
  }

  /** Requests whose repeat should get a fresh sample are forwarded uncached when the config says so. */
  private cacheable(body: JsonObject): boolean {
    if (!this.deps.cache.cacheMultipleChoices && typeof body.n === 'number' && body.n > 1) return false;
    // OpenAI samples at temperature 1 when none is given.
    const temperature = typeof body.temperature === 'number' ? body.temperature : 1;
    if (!this.deps.cache.cacheNonzeroTemperature && temperature > 0) return false;
    return true;
  }
}

/**
 * The body sent upstream: as the client wrote it, except that a stream always asks for the usage chunk, so that the
 * entry it fills carries usage whichever form filled it (each client still gets the chunk only if it asked).
 */
function upstreamBodyOf(body: JsonObject, raw: Buffer | undefined): Buffer {
  if (raw !== undefined && (body.stream !== true || includesUsage(body))) return raw;
  const withUsage = { ...body, stream_options: { ...(isRecord(body.stream_options) ? body.stream_options : {}), include_usage: true } };
  return Buffer.from(JSON.stringify(withUsage));
}

/** Enough of the tenant (an HMAC of the API key, never the key) to tell tenants apart in logs. */
function shortTenant(tenant: string): string {
  return tenant.slice(0, 12);
}

function includesUsage(body: JsonObject): boolean {
  return isRecord(body.stream_options) && body.stream_options.include_usage === true;
}
