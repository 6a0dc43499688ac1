// Token budgets: upstream tokens per minute per client. A request's tokens are estimated before its upstream call
// (gpt-tokenizer, as compaction counts them, plus the completion it may ask for) and reserved atomically against the
// client's window — one key per client in Redis, updated by one Lua script, so instances share it (and it works on a
// Redis Cluster) — then corrected with the upstream's `usage` once the answer is in.
import { ThrottledWarning } from '../log/throttled-warning.js';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { RedisConnection } from '../cache/redis-connection.js';
import { loadEncodings, TokenCounter } from '../compaction/tokens.js';
import type { Metrics } from '../metrics/catalog.js';
import { tokenBudgetExceeded } from '../openai/errors.js';
import { usageOf } from '../openai/usage.js';
import { isRecord, type JsonObject } from '../openai/wire.js';
import { retryAfterSeconds, setLimitHeaders } from './ratelimit-headers.js';

/** Where a client's window stands after a reservation. */
export interface BudgetAnswer {
  allowed: boolean;
  /** Tokens spent in the window, this reservation included when allowed. */
  used: number;
  resetMs: number;
}

/** The shared state behind budgets: one counter per client that lives for one window. */
export interface BudgetStore {
  /** Adds `tokens` to the client's window unless that takes it past `limit`; atomic. */
  reserve(identity: string, tokens: number, limit: number): Promise<BudgetAnswer>;
  /** Corrects the window by `delta` tokens (negative: give back), never below 0; nothing when the window is gone. */
  adjust(identity: string, delta: number): Promise<void>;
}

export interface TokenBudgetDeps {
  store: BudgetStore;
  metrics: Metrics;
  log: FastifyBaseLogger;
  /** limits.hits_spend_tokens: every request reserves on arrival and hits spend their stored usage. */
  hitsSpend: boolean;
}

export class TokenBudget {
  /** While the store fails, every request would log a warning: one per interval. */
  private readonly warnings: ThrottledWarning;

  constructor(readonly deps: TokenBudgetDeps) {
    this.warnings = new ThrottledWarning(deps.log);
    // Every request is counted: the tokenizer's tables load at start, not during the first client's request.
    loadEncodings();
  }

  storeFailed(err: unknown, what: string): void {
    this.warnings.warn({ err }, what);
  }

  /** One request's spend; undefined when its client has no token budget (or limits are off). */
  spendFor(request: FastifyRequest, reply: FastifyReply, body: JsonObject): Spend | undefined {
    const client = request.recall.client;
    if (client === undefined || client.limits.tokensPerMinute <= 0) return undefined;
    return new Spend(this, request, reply, body, client.identity, client.limits.tokensPerMinute);
  }
}

/**
 * What one request spends. `reserve` runs once, where the request's tokens start to cost: on its upstream call (hits
 * and followers of an identical call never call it), or on arrival with hits_spend_tokens. `settle` corrects it.
 */
export class Spend {
  private reserved: number | undefined;
  private reserving: Promise<void> | undefined;

  private readonly deps: TokenBudgetDeps;

  constructor(
    private readonly budget: TokenBudget,
    private readonly request: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly body: JsonObject,
    private readonly identity: string,
    private readonly limit: number,
  ) {
    this.deps = budget.deps;
  }

  get onArrival(): boolean {
    return this.deps.hitsSpend;
  }

  /** Reserves the estimate; rejects with 429 (type tokens) when the window has no room for it. */
  reserve(): Promise<void> {
    this.reserving ??= this.take();
    return this.reserving;
  }

  /**
   * Corrects the reservation with the answer's usage: a body carrying usage replaces the estimate with it, no answer
   * (the call failed) gives the estimate back, an answer without usage keeps it. Never rejects.
   */
  settle = (answer: Buffer | undefined): void => {
    const reserved = this.reserved;
    if (reserved === undefined) return;
    this.reserved = undefined;
    const usage = answer === undefined ? undefined : usageOf(answer);
    const spent = answer === undefined ? 0 : usage === undefined ? reserved : usage.promptTokens + usage.completionTokens;
    if (spent === reserved) return;
    this.deps.store.adjust(this.identity, spent - reserved).catch((err: unknown) => this.budget.storeFailed(err, 'token budget correction failed; the estimate stands'));
  };

  private async take(): Promise<void> {
    const tokens = estimateTokens(this.request.routeOptions.url, this.body);
    let answer: BudgetAnswer;
    try {
      answer = await this.deps.store.reserve(this.identity, tokens, this.limit);
    } catch (err) {
      // Fail open, as the cache does: a budget that cannot be read lets the request through.
      this.budget.storeFailed(err, 'token budget unavailable; requests are let through');
      return;
    }
    setLimitHeaders(this.request, this.reply, 'tokens', { limit: this.limit, remaining: this.limit - answer.used, resetMs: answer.resetMs });
    if (!answer.allowed) {
      this.deps.metrics.rateLimited('tokens', this.request.routeOptions.url ?? 'unmatched');
      throw tokenBudgetExceeded(this.limit, answer.used, tokens, retryAfterSeconds(answer.resetMs));
    }
    this.reserved = tokens;
  }
}

/**
 * Tokens a request may cost before its answer is known: its prompt counted as OpenAI bills it, plus the completion
 * it allows itself (max_completion_tokens or max_tokens, per choice); what it really cost replaces this afterwards.
 */
export function estimateTokens(route: string | undefined, body: JsonObject): number {
  const counter = new TokenCounter(typeof body.model === 'string' ? body.model : '');
  let prompt = 0;
  if (route === '/v1/chat/completions') {
    prompt = Array.isArray(body.messages) ? counter.conversation(body.messages.filter(isRecord)) : 0;
  } else if (route === '/v1/completions') {
    prompt = texts(body.prompt, counter);
  } else if (route === '/v1/embeddings') {
    return texts(body.input, counter);
  }
  const completion = positive(body.max_completion_tokens) ?? positive(body.max_tokens) ?? 0;
  return prompt + completion * (positive(body.n) ?? 1);
}

/** A string, a list of strings, a token array or a list of token arrays. */
function texts(value: unknown, counter: TokenCounter): number {
  if (typeof value === 'string') return counter.text(value);
  if (!Array.isArray(value)) return 0;
  let total = 0;
  for (const item of value) {
    if (typeof item === 'string') total += counter.text(item);
    else if (typeof item === 'number') total += 1;
    else if (Array.isArray(item)) total += item.length;
  }
  return total;
}

function positive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

/** In one process: a counter per client, dropped once its window is over. */
export class MemoryBudgetStore implements BudgetStore {
  private readonly windows = new Map<string, { used: number; resetAt: number }>();

  constructor(private readonly windowMs: number, private readonly now: () => number = Date.now, private readonly maxClients = 100_000) {}

  reserve(identity: string, tokens: number, limit: number): Promise<BudgetAnswer> {
    const now = this.now();
    let window = this.windows.get(identity);
    if (window === undefined || window.resetAt <= now) {
      if (this.windows.size >= this.maxClients) this.dropEnded(now);
      window = { used: 0, resetAt: now + this.windowMs };
      this.windows.set(identity, window);
    }
    const allowed = window.used + tokens <= limit;
    if (allowed) window.used += tokens;
    return Promise.resolve({ allowed, used: window.used, resetMs: window.resetAt - now });
  }

  adjust(identity: string, delta: number): Promise<void> {
    const window = this.windows.get(identity);
    if (window !== undefined && window.resetAt > this.now()) window.used = Math.max(0, window.used + delta);
    return Promise.resolve();
  }

  private dropEnded(now: number): void {
    for (const [identity, window] of this.windows) if (window.resetAt <= now) this.windows.delete(identity);
    // Every client is in its window: forgetting them all errs on the side of letting requests through.
    if (this.windows.size >= this.maxClients) this.windows.clear();
  }
}

/**
 * KEYS[1]: the client's counter. ARGV: tokens, limit, window ms; a limit of -1 adjusts by `tokens` instead (kept ≥ 0,
 * only while the window lives). Returns {allowed, used, reset ms}.
 */
const BUDGET_SCRIPT = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
local tokens = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit < 0 then
  if ttl <= 0 then return {1, 0, 0} end
  used = math.max(0, used + tokens)
  redis.call('SET', KEYS[1], used, 'PX', ttl)
  return {1, used, ttl}
end
if ttl <= 0 then
  used = 0
  ttl = tonumber(ARGV[3])
end
if used + tokens > limit then return {0, used, ttl} end
redis.call('SET', KEYS[1], used + tokens, 'PX', ttl)
return {1, used + tokens, ttl}
`;

/** The script as a command of the connection: ioredis sends it by its SHA and loads it on NOSCRIPT. */
const BUDGET_COMMAND = 'recallTokenBudget';

type BudgetCommand = (key: string, tokens: number, limit: number, windowMs: number) => Promise<unknown>;

/** Shared by every instance on one Redis (standalone or Cluster: the script touches one key). */
export class RedisBudgetStore implements BudgetStore {
  private readonly command: BudgetCommand;

  constructor(redis: RedisConnection, private readonly keyPrefix: string, private readonly windowMs: number) {
    // Defined on the shared connection, as @fastify/rate-limit defines its own there (a Cluster sends each key's call
    // to the node that holds it).
    redis.defineCommand(BUDGET_COMMAND, { numberOfKeys: 1, lua: BUDGET_SCRIPT });
    const defined = (redis as unknown as Record<string, BudgetCommand>)[BUDGET_COMMAND]!;
    this.command = defined.bind(redis);
  }

  async reserve(identity: string, tokens: number, limit: number): Promise<BudgetAnswer> {
    const [allowed, used, resetMs] = await this.run(identity, tokens, limit);
    return { allowed: allowed === 1, used, resetMs };
  }

  async adjust(identity: string, delta: number): Promise<void> {
    await this.run(identity, delta, -1);
  }

  private async run(identity: string, tokens: number, limit: number): Promise<[number, number, number]> {
    const key = `recall-limits:${this.keyPrefix}tokens:${identity}`;
    const result = await this.command(key, tokens, limit, this.windowMs);
    // The wire boundary: the script returns three integers.
    const [allowed, used, resetMs] = result as [number, number, number];
    return [Number(allowed), Number(used), Number(resetMs)];
  }
}
