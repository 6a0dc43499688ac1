// The one path every cached-route request takes, top to bottom (DESIGN.md):
//   tenant ─► rate limit ─► canonical key ─► exact tier ─► semantic tier ─► join in-flight ─► upstream ─► store
// Each stage is a call into its own module. Rate limits arrive with their issue. The semantic tier answers near-repeats
// of the last user message (chat) or the prompt (completions) within an exact partition, and indexes what gets stored. Embeddings
// take the same path with one entry per input item; their misses go upstream through the embeddings batcher, which
// merges concurrent requests' misses into one call.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { markForwarded, markHit, type ForwardReason } from '../cache/cache-status.js';
import { EmbeddingsCache } from '../cache/embeddings.js';
import type { ExactTier } from '../cache/exact-tier.js';
import type { CacheEntry } from '../cache/store.js';
import type { CompletionRoute } from '../openai/assemble.js';
import type { Coalescer } from '../coalesce/singleflight.js';
import type { Probe, SemanticTier } from '../cache/semantic/semantic-tier.js';
import { upstreamRequestHeaders } from '../upstream/headers.js';
import { KeyMemo } from '../cache/key.js';
import { readPolicy, type CachePolicy } from '../cache/policy.js';
import type { TenantResolver } from '../cache/tenant.js';
import type { RecallConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/catalog.js';
import { isRecord, type JsonObject } from '../openai/wire.js';
import { sendCachedAnswer } from './cached-answer.js';
import { markFirstEvent } from './request-context.js';
import type { Forwarder, SendWhole } from './forward.js';
import type { AutoCompaction } from '../compaction/auto-compact.js';

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
  now?: () => number;
}

export class Pipeline {
  private readonly now: () => number;
  private readonly keys = new KeyMemo();
  private readonly cachedRoutes: ReadonlySet<string>;

  constructor(private readonly deps: PipelineDeps) {
    this.now = deps.now ?? Date.now;
    this.cachedRoutes = new Set(deps.cache.routes.split(',').map((r) => r.trim()));
  }

  async handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const route = CACHED_ROUTES[request.routeOptions.url as keyof typeof CACHED_ROUTES];
    const policy = readPolicy(request.headers, this.deps.cache.ttlSeconds);
    // Compaction comes first: the cache key, the semantic probe and the upstream all see the compacted conversation.
    const body = route === 'chat.completions' ? await this.deps.autoCompaction.apply(request, reply) : request.body as JsonObject;
    if (!this.cachedRoutes.has(route)) return this.forward(request, reply, 'bypass');
    if (route === 'embeddings') return policy.read || policy.write ? this.answerEmbeddings(request, reply, body, policy) : this.forward(request, reply, 'bypass');
    if (!this.cacheable(body)) return this.forward(request, reply, 'bypass');

    const tenant = this.deps.tenants.tenantOf(request.headers);
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
        const served = await this.answerFromEntry(request, reply, body, route, lookup.entry, key, undefined);
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
        const served = await this.answerFromEntry(request, reply, body, route, found.entry, found.exactKey, similarity);
        if (served !== undefined) return served.reply;
      }
    }

    // Identical requests in flight share one upstream call (no-cache and no-store ones too: they only skip the store).
    const member = { request, reply, stream: body.stream === true, includeUsage: includesUsage(body), reason, storeTtlS: policy.write ? policy.ttlS : undefined };
    const upstreamBody = upstreamBodyOf(body, request.recall.rawBody);
    const onStored = probe === undefined ? undefined : () => this.deps.semantic!.insert(probe, key, this.now() + policy.ttlS * 1000);
    return this.deps.coalescer.answer({ key, route, policy, member, onStored, call: (signal) => this.deps.forwarder.call(request, upstreamBody, signal) });
  }

  /**
   * A hit (exact, or semantic with its similarity); undefined when the entry turned out unreadable and was dropped.
   * The reply comes wrapped: a FastifyReply is a thenable, which an async function would wait on instead of return.
   */
  private async answerFromEntry(
    request: FastifyRequest, reply: FastifyReply, body: JsonObject, route: CompletionRoute, entry: CacheEntry, entryKey: string, similarity: number | undefined,
  ): Promise<{ reply: FastifyReply } | undefined> {
    try {
      const renderFrom = performance.now();
      const answer = sendCachedAnswer(reply, entry, { route, stream: body.stream === true, includeUsage: includesUsage(body), similarity }, this.now());
      request.recall.renderMs += performance.now() - renderFrom;
      request.recall.cacheOutcome = similarity === undefined ? 'HIT' : 'SEMANTIC';
      // A rendered stream is sent whole: its first event leaves now.
      if (body.stream === true) markFirstEvent(request.recall);
      this.deps.metrics.savedBy(body.model, entry.body);
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
  private async answerEmbeddings(request: FastifyRequest, reply: FastifyReply, body: JsonObject, policy: CachePolicy): Promise<FastifyReply> {
    if (!EmbeddingsCache.cacheable(body)) return this.forward(request, reply, 'bypass');
    const tenant = this.deps.tenants.tenantOf(request.headers);
    request.recall.tenantHash = shortTenant(tenant);
    const send = this.deps.embeddingsUpstream;
    const answer = await this.deps.embeddings.answer({ tenant, policy, body }, (upstreamBody) => this.deps.forwarder.exchange(request, reply, upstreamBody, send));
    if (answer.outcome === 'HIT') {
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

  private forward(request: FastifyRequest, reply: FastifyReply, reason: ForwardReason): Promise<FastifyReply> {
    markForwarded(reply, reason);
    request.recall.cacheOutcome = reason === 'bypass' ? 'BYPASS' : 'MISS';
    return this.deps.forwarder.forward(request, reply, { body: request.recall.rawBody, readJsonWhole: true });
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
