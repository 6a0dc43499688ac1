// The semantic tier: after an exact miss, a request whose last user message (chat) or prompt string (completions) is
// close enough to one already answered in the same partition is answered with that entry. The partition (tenant,
// namespace, route, and the canonical body without that message: model, every parameter, tools, response format,
// system prompt, earlier turns) must match exactly; only the message is compared by vector, and the guards must pass.
// A candidate is served only if its exact entry is still there; vectors leave with their entries (evicted, expired,
// purged). Every failure (embedder, index, store) fails open: a miss.
import { ThrottledWarning } from '../../log/throttled-warning.js';
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../../metrics/catalog.js';
import { isRecord, type JsonObject } from '../../openai/wire.js';
import type { ExactTier } from '../exact-tier.js';
import { canonicalBody, KEY_VERSION } from '../key.js';
import { BoundedMemo, FrozenBodyMemo } from '../bounded-memo.js';
import type { CachePolicy } from '../policy.js';
import type { CompletionRoute } from '../../openai/assemble.js';
import type { CacheEntry, PurgeScope } from '../store.js';
import type { EmbedContext, Embedder } from './embedder.js';
import { factsOf, failedGuard, type PromptFacts } from './guards.js';
import type { VectorIndex, VectorMeta } from './vector-index.js';

/** Where inserts and purges go besides the local index: the Redis feed, shared with other instances. */
export interface SharedVectors {
  publish(vector: Float32Array, meta: VectorMeta): void;
  /** Resolves once the purge is recorded for the other instances (rejects when it could not be). */
  publishPurge(scope: PurgeScope): Promise<void>;
  /** Drops what no instance needs any more (records of expired entries) from the shared feed. */
  trim(now: number): void;
}

export interface SemanticSettings {
  threshold: number;
  maxTurns: number;
  /** How often vectors of expired entries are swept out of the index (and the shared feed trimmed). */
  sweepIntervalMs: number;
}

export interface SemanticTierDeps {
  exact: ExactTier;
  index: VectorIndex;
  embedder: Embedder;
  metrics: Metrics;
  log: FastifyBaseLogger;
  settings: SemanticSettings;
  shared?: SharedVectors | undefined;
  now?: () => number;
}

/** A request the tier can work with: its partition and last user message, and that message's vector (embedding). */
export interface Probe {
  partition: string;
  text: string;
  facts: PromptFacts;
  /** Undefined when the embedder failed (already counted and logged). */
  vector: Promise<Float32Array | undefined>;
}

export type SemanticLookup =
  | { outcome: 'hit'; entry: CacheEntry; similarity: number; exactKey: string }
  | { outcome: 'miss' };

export interface ProbeParts {
  route: CompletionRoute;
  tenant: string;
  namespace: string;
  body: JsonObject;
}

const PARTITION_VERSION = `${KEY_VERSION}/semantic-v1`;
/**
 * Longest wait for a request's embedding (the upstream embedder is a network call): past it the lookup fails open,
 * and the insert of a stored answer goes on in the background instead of holding the answer back.
 */
const EMBED_BUDGET_MS = 2_000;
const LATE = Symbol('late');
/**
 * Guard facts remembered by text: a stored message is compared again whenever it is a candidate for a later request
 * (a prompt with many near-repeats is a candidate for each), and its facts cost tens of µs. Only texts up to
 * FACTS_MEMO_MAX_CHARS are remembered, so the memo stays within a few MB.
 */
const FACTS_MEMO_ENTRIES = 1_024;
const FACTS_MEMO_MAX_CHARS = 2_000;
/** Roles that set up a conversation rather than take a turn in it. */
const SETUP_ROLES = new Set(['system', 'developer']);

export class SemanticTier {
  private readonly now: () => number;
  private readonly warnings: ThrottledWarning;
  private sweeper: NodeJS.Timeout | undefined;
  /** Probes of repeated (frozen) bodies, by route, tenant and namespace: embedding and guard facts cost tens of µs. */
  private readonly repeated = new FrozenBodyMemo<Probe>();
  private readonly facts = new BoundedMemo<PromptFacts>(FACTS_MEMO_ENTRIES);

  constructor(private readonly deps: SemanticTierDeps) {
    this.now = deps.now ?? Date.now;
    this.warnings = new ThrottledWarning(deps.log, undefined, this.now);
    // An entry that leaves the exact tier takes its vector along (where the store can tell: the memory store).
    deps.exact.onRemoved((key) => deps.index.removeKey(key));
  }

  /** Starts sweeping out the vectors of expired entries every `sweepIntervalMs`. */
  start(): void {
    this.sweeper ??= setInterval(() => this.sweep(), this.deps.settings.sweepIntervalMs);
    this.sweeper.unref();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Drops the vectors of expired entries (their entries are never served anyway) and trims the shared feed. */
  private sweep(): void {
    const now = this.now();
    this.deps.index.removeExpired(now);
    this.deps.shared?.trim(now);
  }

  /**
   * An operator's purge: the vectors of the purged entries leave this instance's index now, and the purge is
   * recorded for the other instances (which apply it within about a second). Rejects when it could not be recorded.
   */
  async purge(scope: PurgeScope): Promise<void> {
    this.deps.index.purge(scope);
    await this.deps.shared?.publishPurge(scope);
  }

  /** The embedder calls the upstream: probes need the client's credentials. */
  get embedsUpstream(): boolean {
    return this.deps.embedder.name === 'upstream';
  }

  get threshold(): number {
    return this.deps.settings.threshold;
  }

  /**
   * The probe of a request, with its embedding started; undefined when the tier does not apply. Chat: the last message
   * must be the user's and hold only text, and the conversation be no longer than `max_turns`. Completions: the
   * prompt must be one string (arrays and token prompts skip), and `echo` off (the answer would repeat the stored
   * prompt, not the request's).
   */
  probe(parts: ProbeParts, context?: EmbedContext): Probe | undefined {
    // A repeated body is the same deep-frozen object (proxy/json-body.ts): its probe is computed once. Not with the
    // upstream embedder, whose call carries this request's credentials (and which caches embeddings itself).
    if (!Object.isFrozen(parts.body) || this.embedsUpstream) return this.newProbe(parts, context);
    const scope = `${parts.route}\0${parts.tenant}\0${parts.namespace}`;
    const known = this.repeated.get(parts.body, scope);
    if (known !== undefined) return known;
    const probe = this.newProbe(parts, context);
    if (probe !== undefined) this.repeated.set(parts.body, scope, probe);
    return probe;
  }

  private newProbe(parts: ProbeParts, context: EmbedContext | undefined): Probe | undefined {
    const found = parts.route === 'chat.completions' ? this.lastUserMessage(parts.body) : promptOf(parts.body);
    if (found === undefined) return this.skip();
    const partition = createHash('sha256').update(PARTITION_VERSION).update('\0').update(parts.route).update('\0')
      .update(parts.tenant).update('\0').update(parts.namespace).update('\0')
      .update(canonicalBody(parts.route, found.rest)).digest('base64');
    const vector = this.deps.embedder.embed([found.text], context).then(
      (vectors) => vectors[0],
      (err: unknown) => {
        this.fail('embed', err, 'semantic embedder failed; the request goes on without the semantic tier');
        return undefined;
      },
    );
    return { partition, text: found.text, facts: this.factsOf(found.text), vector };
  }

  private factsOf(text: string): PromptFacts {
    if (text.length > FACTS_MEMO_MAX_CHARS) return factsOf(text);
    let facts = this.facts.get(text);
    if (facts === undefined) this.facts.set(text, (facts = factsOf(text)));
    return facts;
  }

  /** A chat request's last user message, and the body without it (the rest of the partition). */
  private lastUserMessage(body: JsonObject): ComparedText | undefined {
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0) return undefined;
    const turns = messages.filter((m) => !(isRecord(m) && typeof m.role === 'string' && SETUP_ROLES.has(m.role))).length;
    if (turns > this.deps.settings.maxTurns) return undefined;
    const last = messages[messages.length - 1];
    if (!isRecord(last) || last.role !== 'user') return undefined;
    const text = textOf(last.content);
    if (text === undefined || text.trim() === '') return undefined;
    return { text, rest: { ...body, messages: messages.slice(0, -1) } };
  }

  /** The best candidate of the probe's partition at or above `threshold` that passes the guards and is still stored. */
  async lookup(probe: Probe, policy: CachePolicy, threshold: number): Promise<SemanticLookup> {
    const { index, exact, metrics } = this.deps;
    const vector = await withinBudget(probe.vector);
    if (vector === LATE) this.fail('embed', new Error(`no embedding within ${EMBED_BUDGET_MS} ms`), 'semantic embedder too slow; the request goes on without the semantic tier');
    if (vector === undefined || vector === LATE) return this.result('error');
    let candidates;
    try {
      candidates = index.search(probe.partition, vector, threshold);
    } catch (err) {
      this.fail('index', err, 'semantic index search failed; the request goes on without the semantic tier');
      return this.result('error');
    }
    let result: 'miss' | 'guarded' | 'expired' = 'miss';
    for (const candidate of candidates) {
      const guard = failedGuard(probe.facts, this.factsOf(candidate.meta.text));
      if (guard !== undefined) {
        metrics.semanticGuardRejection(guard);
        if (result === 'miss') result = 'guarded';
        continue;
      }
      const found = await exact.lookup(candidate.meta.exactKey, policy, { counted: false });
      if (found.outcome === 'hit') {
        metrics.semanticLookup('hit');
        metrics.semanticSimilarity(candidate.similarity);
        return { outcome: 'hit', entry: found.entry, similarity: candidate.similarity, exactKey: candidate.meta.exactKey };
      }
      // Expired or purged: never served, and its vector goes now. Too old for this request's max-age: kept.
      if (found.outcome === 'miss') {
        index.remove(candidate.label);
        result = 'expired';
      }
      if (found.outcome === 'error') return this.result('error');
    }
    return this.result(result);
  }

  /**
   * Indexes the probe's message for the entry just stored under `exactKey`, to expire with it at `expiresAt`
   * (and publishes it to other instances).
   */
  async insert(probe: Probe, exactKey: string, expiresAt: number): Promise<void> {
    const meta: VectorMeta = { partition: probe.partition, exactKey, text: probe.text, expiresAt };
    const vector = await withinBudget(probe.vector);
    if (vector === LATE) {
      void probe.vector.then((late) => late !== undefined && this.add(late, meta));
      return;
    }
    if (vector !== undefined) this.add(vector, meta);
  }

  private add(vector: Float32Array, meta: VectorMeta): void {
    try {
      this.deps.index.add(vector, meta);
    } catch (err) {
      this.fail('index', err, 'semantic index insert failed; the entry is served by the exact tier only');
      return;
    }
    this.deps.shared?.publish(vector, meta);
  }

  private skip(): undefined {
    this.deps.metrics.semanticLookup('skipped');
    return undefined;
  }

  private result(result: 'miss' | 'guarded' | 'expired' | 'error'): SemanticLookup {
    this.deps.metrics.semanticLookup(result);
    return { outcome: 'miss' };
  }

  private fail(stage: 'embed' | 'index', err: unknown, message: string): void {
    this.deps.metrics.semanticError(stage);
    this.warnings.warn({ err, stage }, message);
  }
}

/** The promise's value, or LATE when it takes longer than EMBED_BUDGET_MS. */
async function withinBudget<T>(promise: Promise<T>): Promise<T | typeof LATE> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof LATE>((resolve) => {
    timer = setTimeout(() => resolve(LATE), EMBED_BUDGET_MS);
    timer.unref();
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The compared text of a request, and its body without that text: the rest of the partition. */
interface ComparedText {
  text: string;
  rest: JsonObject;
}

/** A completions request's prompt when it is one string of text, and `echo` is off. */
function promptOf(body: JsonObject): ComparedText | undefined {
  const { prompt, ...rest } = body;
  if (typeof prompt !== 'string' || prompt.trim() === '' || body.echo === true) return undefined;
  return { text: prompt, rest };
}

/** The text of a message's content: a string, or text parts joined; undefined when it holds anything but text. */
function textOf(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  const texts: string[] = [];
  for (const part of content) {
    if (!isRecord(part) || part.type !== 'text' || typeof part.text !== 'string') return undefined;
    texts.push(part.text);
  }
  return texts.join('\n');
}
