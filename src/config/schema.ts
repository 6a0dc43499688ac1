// The one table of Recall's settings: YAML path, environment variable, type, default and meaning.
// The loader, the example YAML and the README table are all checked against this table.
import { parseClientKeys, parseLimitGroups, type ClientKeySpec, type LimitGroup } from '../limits/limit-settings.js';
import { parsePriceOverrides } from '../metrics/prices.js';
import { parseToolRegistry, type ToolSpec } from '../tools/registry.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** The typed configuration object that `buildApp` receives. Built once by `loadConfig`. */
export interface RecallConfig {
  server: {
    host: string;
    port: number;
    bodyLimitBytes: number;
    /** Largest request head (request line and headers); a larger one is answered 431. */
    maxHeaderBytes: number;
    /** Input limits checked by the request schemas, before any cache or upstream work. */
    maxMessages: number;
    maxStringChars: number;
    maxJsonDepth: number;
    shutdownGraceMs: number;
  };
  upstream: {
    url: string;
    apiKey: string | undefined;
    connections: number;
    connectTimeoutMs: number;
    headersTimeoutMs: number;
    bodyTimeoutMs: number;
    keepAliveTimeoutMs: number;
    probeTtlMs: number;
    /** Most upstream calls at once; 0: no cap. */
    maxConcurrent: number;
    queueMax: number;
    queueTimeoutMs: number;
    retries: number;
    retryBaseMs: number;
    retryMaxMs: number;
    retryAfterMaxMs: number;
  };
  cache: {
    ttlSeconds: number;
    /** Comma-separated cached routes: chat.completions, completions, embeddings. */
    routes: string;
    scope: 'tenant' | 'shared';
    tenantSecret: string | undefined;
    maxEntryBytes: number;
    cacheMultipleChoices: boolean;
    cacheNonzeroTemperature: boolean;
    /** Grace for requests without stale-if-error; 0: off. */
    staleIfErrorSeconds: number;
    /** Longest stale-if-error a request may ask for, and how long stores keep expired entries. */
    staleIfErrorMaxSeconds: number;
    memory: { maxEntries: number; maxBytes: number; persistPath: string | undefined; persistIntervalS: number };
  };
  coalesce: {
    enabled: boolean;
    maxFollowers: number;
    maxReplayBytes: number;
    lockTtlMs: number;
    waitMs: number;
  };
  embeddings: {
    /** 0: no batching; each request's misses go upstream on their own. */
    batchWindowMs: number;
    batchMaxInputs: number;
    batchMaxTokens: number;
  };
  semantic: {
    enabled: boolean;
    /** Cosine similarity from which a candidate may be served. */
    threshold: number;
    embedder: 'local' | 'upstream';
    dimensions: number;
    upstreamModel: string;
    maxVectors: number;
    maxTurns: number;
    sweepIntervalMs: number;
  };
  compaction: {
    summaryModel: string;
    summaryPrompt: string;
    preserveRecent: number;
    /** Regular expressions, one a line; a message whose text matches one survives every strategy. */
    pinnedPatterns: string | undefined;
    hybridSummaryRatio: number;
    summaryTtlSeconds: number;
    autoStrategy: 'truncation' | 'summary' | 'hybrid';
    autoReserveTokens: number;
    defaultContextTokens: number;
  };
  admin: {
    token: string | undefined;
  };
  auth: {
    /** passthrough: the client's key goes upstream. proxy_keys: only `keys` are accepted; Recall uses upstream.apiKey. */
    mode: 'passthrough' | 'proxy_keys';
    /** Client keys Recall knows, by hash, with their limits; empty when none are configured. */
    keys: readonly ClientKeySpec[];
  };
  limits: {
    /** Default per key; 0: no limit. */
    requestsPerMinute: number;
    tokensPerMinute: number;
    /** Cache hits spend the token budget (their stored usage), like upstream calls. */
    hitsSpendTokens: boolean;
    groups: readonly LimitGroup[];
  };
  tools: {
    /** Empty when none are configured: every call then names an unknown tool. */
    registry: readonly ToolSpec[];
    maxConcurrency: number;
    batchTimeoutMs: number;
    maxCalls: number;
  };
  metrics: {
    prices: string | undefined;
  };
  redis: {
    url: string | undefined;
    /** Seeds of a Redis Cluster; at most one of url, cluster and sentinels is set. */
    cluster: readonly HostPort[] | undefined;
    sentinels: readonly HostPort[] | undefined;
    /** The master group the sentinels watch (`sentinel monitor <name> …`). */
    sentinelName: string | undefined;
    /** For Cluster nodes and the master found through Sentinel; a `url` carries its own. */
    password: string | undefined;
    keyPrefix: string;
    commandTimeoutMs: number;
    connectTimeoutMs: number;
    /** Entries of the near cache (read lately, dropped when Redis says they changed); 0: no near cache. */
    nearCacheMaxEntries: number;
    nearCacheMaxBytes: number;
  };
  log: {
    level: LogLevel;
    /** 0: no slow-request warnings. */
    slowRequestMs: number;
  };
}

/** One Redis node's address, as `host:port` in the config. */
export interface HostPort {
  host: string;
  port: number;
}

interface SettingBase {
  /** Dotted YAML path, e.g. `upstream.connect_timeout_ms`. */
  yaml: string;
  /** Path of the value in `RecallConfig`, e.g. `upstream.connectTimeoutMs`. */
  field: string;
  env?: string;
  doc: string;
  /** Never printed back in an error message. */
  secret?: boolean;
}

export type Setting =
  | (SettingBase & { type: 'integer'; default: number; min: number; max: number })
  | (SettingBase & { type: 'number'; default: number; min: number; max: number })
  | (SettingBase & { type: 'string'; default: string | undefined; check?: (value: string) => string | undefined })
  | (SettingBase & { type: 'boolean'; default: boolean })
  | (SettingBase & { type: 'url'; default: string | undefined; protocols?: readonly string[] })
  | (SettingBase & { type: 'enum'; default: string; values: readonly string[] })
  /** `host:port` addresses: comma-separated in the environment, a YAML list or one such string in the file. */
  | (SettingBase & { type: 'hosts'; default: undefined })
  /** YAML only: a list of structured items, validated by `parse`, which throws naming the path of a bad value. */
  | (SettingBase & { type: 'list'; default: undefined; parse: (value: unknown, path: string, env: Environment) => unknown });

export type Environment = Readonly<Record<string, string | undefined>>;

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

const MB = 1024 * 1024;

/** Chosen with `npm run eval:semantic` on test/fixtures/semantic-pairs.json: false hits ≤ 1% with the local embedder. */
export const DEFAULT_SEMANTIC_THRESHOLD = 0.86;

export const CACHEABLE_ROUTES = ['chat.completions', 'completions', 'embeddings'] as const;

function cachedRoutesProblem(value: string): string | undefined {
  const unknown = value.split(',').map((r) => r.trim()).filter((r) => r !== '' && !(CACHEABLE_ROUTES as readonly string[]).includes(r));
  return unknown.length === 0 ? undefined : `a comma-separated list of ${CACHEABLE_ROUTES.join(', ')} (not ${unknown.join(', ')})`;
}

/** The compaction summary prompt's default; the summary cache keys on a hash of whichever prompt is configured. */
export const DEFAULT_SUMMARY_PROMPT =
  'Summarise the conversation below for the assistant that will continue it. Keep every fact, decision, name, number, ' +
  'open question and tool result it may need; drop pleasantries. If it starts with an earlier summary, merge that ' +
  'summary with what follows. Answer with the summary only.';

function pinnedPatternsProblem(value: string): string | undefined {
  for (const line of value.split('\n')) {
    if (line.trim() === '') continue;
    try {
      new RegExp(line);
    } catch (err) {
      return `regular expressions, one a line (${(err as Error).message})`;
    }
  }
  return undefined;
}

function priceTableProblem(value: string): string | undefined {
  try {
    parsePriceOverrides(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export const SETTINGS: readonly Setting[] = [
  { yaml: 'server.host', field: 'server.host', env: 'RECALL_HOST', type: 'string', default: '127.0.0.1',
    doc: 'Listen address. Use 0.0.0.0 to accept connections from other machines.' },
  { yaml: 'server.port', field: 'server.port', env: 'RECALL_PORT', type: 'integer', default: 8080, min: 0, max: 65535,
    doc: 'Listen port (0 picks a free one).' },
  { yaml: 'server.body_limit_bytes', field: 'server.bodyLimitBytes', type: 'integer', default: 10 * MB, min: 1024, max: 1024 * MB,
    doc: 'Largest request body accepted; larger uploads are read, dropped and answered with 413.' },
  { yaml: 'server.max_header_bytes', field: 'server.maxHeaderBytes', type: 'integer', default: 32 * 1024, min: 1024, max: 1024 * 1024,
    doc: 'Largest request head (request line and all headers); a larger one is answered 431 `request_header_fields_too_large` and the connection closed.' },
  { yaml: 'server.max_messages', field: 'server.maxMessages', type: 'integer', default: 100_000, min: 1, max: 10_000_000,
    doc: 'Most entries in `messages` of a chat completion or a /recall/compact request; more is answered 400 naming `messages`.' },
  { yaml: 'server.max_string_chars', field: 'server.maxStringChars', type: 'integer', default: 10 * MB, min: 1024, max: 1024 * MB,
    doc: 'Longest string (in UTF-16 code units) anywhere in a JSON request body, object keys included; a longer one is answered 400 naming the field.' },
  { yaml: 'server.max_json_depth', field: 'server.maxJsonDepth', type: 'integer', default: 128, min: 8, max: 1_000,
    doc: 'Deepest nesting of objects and arrays in a JSON request body; deeper is answered 400 naming where it went too deep.' },
  { yaml: 'server.shutdown_grace_ms', field: 'server.shutdownGraceMs', type: 'integer', default: 10_000, min: 0, max: 600_000,
    doc: 'On SIGTERM/SIGINT, how long in-flight requests and streams may take to finish before connections are closed.' },
  { yaml: 'upstream.url', field: 'upstream.url', env: 'RECALL_UPSTREAM_URL', type: 'url', default: 'https://api.openai.com/v1',
    doc: 'Base URL of the OpenAI-compatible upstream, including /v1.' },
  { yaml: 'upstream.api_key', field: 'upstream.apiKey', env: 'RECALL_UPSTREAM_API_KEY', type: 'string', default: undefined, secret: true,
    doc: 'Key sent upstream as `Authorization: Bearer …` when the client sends no key of its own; with auth.mode proxy_keys, on every call.' },
  { yaml: 'upstream.connections', field: 'upstream.connections', type: 'integer', default: 256, min: 1, max: 65_536,
    doc: 'Most keep-alive connections to the upstream at once.' },
  { yaml: 'upstream.connect_timeout_ms', field: 'upstream.connectTimeoutMs', type: 'integer', default: 10_000, min: 1, max: 600_000,
    doc: 'Time to open a TCP/TLS connection to the upstream before answering 504.' },
  { yaml: 'upstream.headers_timeout_ms', field: 'upstream.headersTimeoutMs', type: 'integer', default: 600_000, min: 1, max: 3_600_000,
    doc: "Time to wait for the upstream's response headers before answering 504 (non-streaming answers arrive whole)." },
  { yaml: 'upstream.body_timeout_ms', field: 'upstream.bodyTimeoutMs', type: 'integer', default: 300_000, min: 1, max: 3_600_000,
    doc: 'Longest silence between two pieces of an upstream response body before it is abandoned.' },
  { yaml: 'upstream.keep_alive_timeout_ms', field: 'upstream.keepAliveTimeoutMs', type: 'integer', default: 60_000, min: 1, max: 3_600_000,
    doc: 'How long an idle upstream connection is kept open.' },
  { yaml: 'upstream.probe_ttl_ms', field: 'upstream.probeTtlMs', type: 'integer', default: 5_000, min: 0, max: 600_000,
    doc: 'How long /readyz reuses the result of its upstream reachability probe.' },
  { yaml: 'upstream.max_concurrent', field: 'upstream.maxConcurrent', type: 'integer', default: 0, min: 0, max: 65_536,
    doc: 'Most upstream calls at once (a stream holds its slot until it ends); more wait in the priority queue. 0: no cap. Keep it at or below upstream.connections.' },
  { yaml: 'upstream.queue_max', field: 'upstream.queueMax', type: 'integer', default: 1000, min: 0, max: 1_000_000,
    doc: 'Most calls waiting for a slot when upstream.max_concurrent is reached; one more is answered 503 upstream_queue_full at once.' },
  { yaml: 'upstream.queue_timeout_ms', field: 'upstream.queueTimeoutMs', type: 'integer', default: 30_000, min: 1, max: 3_600_000,
    doc: 'Longest wait for a slot before answering 503 upstream_queue_timeout.' },
  { yaml: 'upstream.retries', field: 'upstream.retries', type: 'integer', default: 2, min: 0, max: 10,
    doc: 'Retries after a failure to connect or a 429, 502, 503 or 504 answer, before anything reached the client; 0: none.' },
  { yaml: 'upstream.retry_base_ms', field: 'upstream.retryBaseMs', type: 'integer', default: 500, min: 1, max: 60_000,
    doc: 'Backoff before the first retry, doubled for each further one, with jitter (when the answer has no Retry-After).' },
  { yaml: 'upstream.retry_max_ms', field: 'upstream.retryMaxMs', type: 'integer', default: 8_000, min: 1, max: 600_000,
    doc: 'Longest backoff between two attempts.' },
  { yaml: 'upstream.retry_after_max_ms', field: 'upstream.retryAfterMaxMs', type: 'integer', default: 10_000, min: 0, max: 600_000,
    doc: 'Longest Retry-After honoured; an answer asking for a longer wait goes to the client as it is, without retry.' },
  { yaml: 'cache.ttl_seconds', field: 'cache.ttlSeconds', env: 'RECALL_CACHE_TTL', type: 'integer', default: 86_400, min: 1, max: 31_536_000,
    doc: 'How long a stored answer lives, in seconds, unless the request sets X-Recall-TTL.' },
  { yaml: 'cache.routes', field: 'cache.routes', type: 'string', default: 'chat.completions,completions,embeddings', check: cachedRoutesProblem,
    doc: 'Which routes are cached (comma-separated: chat.completions, completions, embeddings); the others are forwarded uncached (BYPASS).' },
  { yaml: 'cache.scope', field: 'cache.scope', type: 'enum', default: 'tenant', values: ['tenant', 'shared'],
    doc: 'tenant: each API key has its own partition (an HMAC of the key). shared: every client reads and fills one partition.' },
  { yaml: 'cache.tenant_secret', field: 'cache.tenantSecret', type: 'string', default: undefined, secret: true,
    doc: 'Secret of the HMAC that turns API keys into partitions; unset: a random one per process (fine for the in-memory store).' },
  { yaml: 'cache.max_entry_bytes', field: 'cache.maxEntryBytes', type: 'integer', default: 1024 * 1024, min: 1024, max: 64 * MB,
    doc: 'Answers larger than this are served but not stored.' },
  { yaml: 'cache.cache_multiple_choices', field: 'cache.cacheMultipleChoices', type: 'boolean', default: true,
    doc: 'Cache requests with n > 1 (a repeat then gets the same set of choices).' },
  { yaml: 'cache.cache_nonzero_temperature', field: 'cache.cacheNonzeroTemperature', type: 'boolean', default: true,
    doc: 'Cache requests sampled with temperature > 0 (a repeat then gets the same sample, not a new one).' },
  { yaml: 'cache.stale_if_error_seconds', field: 'cache.staleIfErrorSeconds', type: 'integer', default: 0, min: 0, max: 31_536_000,
    doc: 'When the upstream fails (500, 502, 503, 504, unreachable, timed out), answer from an entry expired at most this long ago (X-Recall-Cache: STALE), for requests without their own `Cache-Control: stale-if-error=N`; 0: off. Capped at cache.stale_if_error_max_seconds.' },
  { yaml: 'cache.stale_if_error_max_seconds', field: 'cache.staleIfErrorMaxSeconds', type: 'integer', default: 3_600, min: 0, max: 31_536_000,
    doc: 'How long the stores keep an entry past its expiry (never served as fresh) so that stale-if-error can use it, and the longest `stale-if-error=N` a request gets; 0: expired entries go at once and stale-if-error is off.' },
  { yaml: 'cache.memory.max_entries', field: 'cache.memory.maxEntries', type: 'integer', default: 50_000, min: 1, max: 100_000_000,
    doc: 'Most entries the in-memory store keeps; the least recently used go first.' },
  { yaml: 'cache.memory.max_bytes', field: 'cache.memory.maxBytes', type: 'integer', default: 256 * MB, min: 1024 * 1024, max: 1024 * 1024 * MB,
    doc: 'Most bytes the in-memory store keeps; the least recently used go first.' },
  { yaml: 'cache.memory.persist_path', field: 'cache.memory.persistPath', type: 'string', default: undefined,
    doc: 'File the in-memory store is saved to (atomically, every persist_interval_s and on shutdown) and loaded from at start; unset: not saved.' },
  { yaml: 'cache.memory.persist_interval_s', field: 'cache.memory.persistIntervalS', type: 'integer', default: 60, min: 1, max: 86_400,
    doc: 'How often the in-memory store is saved to persist_path.' },
  { yaml: 'coalesce.enabled', field: 'coalesce.enabled', type: 'boolean', default: true,
    doc: 'Identical requests in flight share one upstream call (answered with X-Recall-Cache: COALESCED).' },
  { yaml: 'coalesce.max_followers', field: 'coalesce.maxFollowers', type: 'integer', default: 10_000, min: 1, max: 1_000_000,
    doc: 'Most requests that may join one upstream call; more identical requests go upstream on their own.' },
  { yaml: 'coalesce.max_replay_bytes', field: 'coalesce.maxReplayBytes', type: 'integer', default: 4 * MB, min: 0, max: 1024 * MB,
    doc: 'Stream events kept per call for streaming requests that join late; past it, streaming requests no longer join that call.' },
  { yaml: 'coalesce.lock_ttl_ms', field: 'coalesce.lockTtlMs', type: 'integer', default: 10_000, min: 100, max: 600_000,
    doc: 'With Redis: lifetime of the per-key lock the leading instance refreshes while its call lasts; a crashed leader\'s lock expires after it.' },
  { yaml: 'coalesce.wait_ms', field: 'coalesce.waitMs', type: 'integer', default: 60_000, min: 0, max: 3_600_000,
    doc: 'With Redis: how long a request waits for an identical call led by another instance before it goes upstream itself.' },
  { yaml: 'embeddings.batch_window_ms', field: 'embeddings.batchWindowMs', type: 'integer', default: 5, min: 0, max: 1_000,
    doc: 'How long the cache misses of concurrent /v1/embeddings requests that can share an upstream call are gathered before they are sent as one call; 0 turns batching off. X-Recall-Priority: high sends at once.' },
  { yaml: 'embeddings.batch_max_inputs', field: 'embeddings.batchMaxInputs', type: 'integer', default: 256, min: 1, max: 2_048,
    doc: 'Most inputs in one batched upstream call (OpenAI allows 2048); a full batch is sent at once.' },
  { yaml: 'embeddings.batch_max_tokens', field: 'embeddings.batchMaxTokens', type: 'integer', default: 300_000, min: 1, max: 10_000_000,
    doc: 'Most tokens in one batched upstream call (OpenAI allows 300,000), estimated generously as UTF-8 bytes / 2 per text input.' },
  { yaml: 'semantic.enabled', field: 'semantic.enabled', env: 'RECALL_SEMANTIC', type: 'boolean', default: true,
    doc: 'Answer near-repeats of a chat or completions request from the cache (X-Recall-Cache: SEMANTIC); only the last user message (the prompt of a completion) is compared, everything else must match exactly. on/off in the environment.' },
  { yaml: 'semantic.threshold', field: 'semantic.threshold', env: 'RECALL_SEMANTIC_THRESHOLD', type: 'number', default: DEFAULT_SEMANTIC_THRESHOLD, min: 0.5, max: 1,
    doc: 'Cosine similarity of the last user messages from which a candidate may be served (guards still apply); X-Recall-Semantic overrides it per request. The default keeps false hits at or below 1% on the labelled set (docs/SEMANTIC.md).' },
  { yaml: 'semantic.embedder', field: 'semantic.embedder', env: 'RECALL_EMBEDDER', type: 'enum', default: 'local', values: ['local', 'upstream'],
    doc: "local: built-in hashed word and character n-gram features, offline. upstream: the upstream's /v1/embeddings with semantic.upstream_model, through the embeddings batcher." },
  { yaml: 'semantic.dimensions', field: 'semantic.dimensions', type: 'integer', default: 512, min: 16, max: 4096,
    doc: 'Length of the local embedder\'s vectors (more: fewer hash collisions, more memory and search time).' },
  { yaml: 'semantic.upstream_model', field: 'semantic.upstreamModel', type: 'string', default: 'text-embedding-3-small',
    doc: 'Model of the upstream embedder.' },
  { yaml: 'semantic.max_vectors', field: 'semantic.maxVectors', type: 'integer', default: 50_000, min: 1, max: 100_000_000,
    doc: 'Most vectors the semantic index keeps (and, with Redis, about how many records the shared stream keeps); past it the oldest go first. Besides, a vector leaves with its entry: evicted, expired or purged (docs/SEMANTIC.md).' },
  { yaml: 'semantic.max_turns', field: 'semantic.maxTurns', type: 'integer', default: 3, min: 1, max: 1000,
    doc: 'Conversations with more messages than this (system and developer messages not counted) skip the semantic tier.' },
  { yaml: 'semantic.sweep_interval_ms', field: 'semantic.sweepIntervalMs', type: 'integer', default: 10_000, min: 50, max: 3_600_000,
    doc: 'How often the vectors of expired entries are swept out of the semantic index and, with Redis, their records trimmed from the shared stream.' },
  { yaml: 'compaction.summary_model', field: 'compaction.summaryModel', type: 'string', default: 'gpt-4o-mini',
    doc: 'Model the upstream summarises older messages with (summary and hybrid strategies).' },
  { yaml: 'compaction.summary_prompt', field: 'compaction.summaryPrompt', type: 'string', default: DEFAULT_SUMMARY_PROMPT,
    doc: 'System prompt of the summary call; changing it changes the summary cache key.' },
  { yaml: 'compaction.preserve_recent', field: 'compaction.preserveRecent', type: 'integer', default: 4, min: 0, max: 10_000,
    doc: 'Newest messages kept verbatim by the summary strategy when the request gives no preserve_recent (widened to keep a tool call with its results).' },
  { yaml: 'compaction.pinned_patterns', field: 'compaction.pinnedPatterns', type: 'string', default: undefined, check: pinnedPatternsProblem,
    doc: 'Regular expressions, one a line; a message whose text matches one is kept by every strategy.' },
  { yaml: 'compaction.hybrid_summary_ratio', field: 'compaction.hybridSummaryRatio', type: 'number', default: 1.5, min: 1, max: 1000,
    doc: 'hybrid runs truncation while the conversation is at most this many times target_tokens, summary above.' },
  { yaml: 'compaction.summary_ttl_seconds', field: 'compaction.summaryTtlSeconds', type: 'integer', default: 604_800, min: 1, max: 31_536_000,
    doc: 'How long a cached summary lives.' },
  { yaml: 'compaction.auto_strategy', field: 'compaction.autoStrategy', type: 'enum', default: 'hybrid', values: ['truncation', 'summary', 'hybrid'],
    doc: 'Strategy of auto-compaction (X-Recall-Compact: auto on /v1/chat/completions).' },
  { yaml: 'compaction.auto_reserve_tokens', field: 'compaction.autoReserveTokens', type: 'integer', default: 4096, min: 0, max: 1_000_000,
    doc: "Auto-compaction without target=N aims at the model's context window minus the request's max_completion_tokens (or max_tokens), or minus this when it sets neither." },
  { yaml: 'compaction.default_context_tokens', field: 'compaction.defaultContextTokens', type: 'integer', default: 128_000, min: 1_000, max: 10_000_000,
    doc: 'Context window assumed for a model Recall does not know, for auto-compaction without target=N.' },
  { yaml: 'admin.token', field: 'admin.token', env: 'RECALL_ADMIN_TOKEN', type: 'string', default: undefined, secret: true,
    doc: 'Bearer token for /recall/admin/*; unset: those routes answer 404.' },
  { yaml: 'auth.mode', field: 'auth.mode', type: 'enum', default: 'passthrough', values: ['passthrough', 'proxy_keys'],
    doc: 'passthrough: the client\'s API key goes upstream. proxy_keys: only keys listed in auth.keys are accepted (others get 401) and Recall calls the upstream with upstream.api_key.' },
  { yaml: 'auth.keys', field: 'auth.keys', type: 'list', default: undefined, parse: (value, path) => parseClientKeys(value, path),
    doc: 'YAML only: client keys Recall knows, a list of {name, hash, group, requests_per_minute, tokens_per_minute}; hash is `sha256:<hex>` of the key (`npm run hash-key`). Their limits apply in both modes; in proxy_keys they are the only keys accepted.' },
  { yaml: 'limits.requests_per_minute', field: 'limits.requestsPerMinute', type: 'integer', default: 0, min: 0, max: 1_000_000_000,
    doc: 'Requests per minute per API key (tenant) on /v1/*, /recall/compact and /recall/tools/batch, unless its key or group sets its own; 0: no limit.' },
  { yaml: 'limits.tokens_per_minute', field: 'limits.tokensPerMinute', type: 'integer', default: 0, min: 0, max: 1_000_000_000,
    doc: 'Upstream tokens per minute per API key on the cached routes (estimated before the call, corrected with its usage), unless its key or group sets its own; 0: no budget.' },
  { yaml: 'limits.hits_spend_tokens', field: 'limits.hitsSpendTokens', type: 'boolean', default: false,
    doc: 'Cache hits and coalesced requests spend the token budget too (their stored usage); off: only calls that reach the upstream spend.' },
  { yaml: 'limits.groups', field: 'limits.groups', type: 'list', default: undefined, parse: (value, path) => parseLimitGroups(value, path),
    doc: 'YAML only: key groups, a list of {name, requests_per_minute, tokens_per_minute}, that auth.keys entries name with group.' },
  { yaml: 'tools.registry', field: 'tools.registry', type: 'list', default: undefined, parse: (value, path, env) => parseToolRegistry(value, env, path),
    doc: 'YAML only: the HTTP tools POST /recall/tools/batch may call, a list of {name, url, method, headers, timeout_ms, access, cache_ttl_s, affects} (see Tool batching); header values may hold ${VAR} references to environment variables. Unset: no tools.' },
  { yaml: 'tools.max_concurrency', field: 'tools.maxConcurrency', type: 'integer', default: 8, min: 1, max: 256,
    doc: 'Most tool calls of one batch running at once, and the default of a request\'s max_concurrency (which may only lower it).' },
  { yaml: 'tools.batch_timeout_ms', field: 'tools.batchTimeoutMs', type: 'integer', default: 60_000, min: 1, max: 3_600_000,
    doc: 'Deadline of a whole batch: calls still running are aborted and calls not started are skipped.' },
  { yaml: 'tools.max_calls', field: 'tools.maxCalls', type: 'integer', default: 128, min: 1, max: 10_000,
    doc: 'Most calls in one batch; a larger batch is answered 400.' },
  { yaml: 'redis.url', field: 'redis.url', env: 'RECALL_REDIS_URL', type: 'url', default: undefined, protocols: ['redis:', 'rediss:'], secret: true,
    doc: 'Redis for the exact tier, shared by every instance (`redis://…` or `rediss://…`); unset: the in-memory store.' },
  { yaml: 'redis.cluster', field: 'redis.cluster', env: 'RECALL_REDIS_CLUSTER', type: 'hosts', default: undefined,
    doc: 'Redis Cluster instead of `redis.url`: `host:port` seeds (any few nodes; the rest are discovered). Unset: no Cluster.' },
  { yaml: 'redis.sentinels', field: 'redis.sentinels', env: 'RECALL_REDIS_SENTINELS', type: 'hosts', default: undefined,
    doc: 'Redis Sentinel instead of `redis.url`: `host:port` of the sentinels, which name the current master (needs `redis.sentinel_name`).' },
  { yaml: 'redis.sentinel_name', field: 'redis.sentinelName', env: 'RECALL_REDIS_SENTINEL_NAME', type: 'string', default: undefined,
    doc: 'With `redis.sentinels`: the name of the master group the sentinels monitor.' },
  { yaml: 'redis.password', field: 'redis.password', env: 'RECALL_REDIS_PASSWORD', type: 'string', default: undefined, secret: true,
    doc: 'With `redis.cluster` or `redis.sentinels`: the password (`requirepass`) of the Redis nodes; a `redis.url` carries its own.' },
  { yaml: 'redis.key_prefix', field: 'redis.keyPrefix', type: 'string', default: 'recall:',
    doc: 'Prefix of every key Recall writes to Redis; purge-all only deletes keys under it.' },
  { yaml: 'redis.command_timeout_ms', field: 'redis.commandTimeoutMs', type: 'integer', default: 10, min: 1, max: 10_000,
    doc: 'Lookup budget: a Redis command slower than this fails open (the request goes upstream); a reply that arrived in time but was read late because Recall itself was busy still counts.' },
  { yaml: 'redis.connect_timeout_ms', field: 'redis.connectTimeoutMs', type: 'integer', default: 2_000, min: 1, max: 60_000,
    doc: 'Time to open a connection to Redis; Recall keeps serving (from the upstream) while it reconnects.' },
  { yaml: 'redis.near_cache_max_entries', field: 'redis.nearCacheMaxEntries', type: 'integer', default: 10_000, min: 0, max: 10_000_000,
    doc: 'Near cache: most entries each instance keeps of those it read from Redis lately, answering repeats without a round trip; Redis tells it (client tracking) the moment one changes, and while it cannot, the near cache is emptied and unused. 0: off. Not with `redis.cluster`.' },
  { yaml: 'redis.near_cache_max_bytes', field: 'redis.nearCacheMaxBytes', type: 'integer', default: 64 * MB, min: 1024 * 1024, max: 64 * 1024 * MB,
    doc: 'Most bytes the near cache keeps; the least recently used go first.' },
  { yaml: 'metrics.prices', field: 'metrics.prices', type: 'string', default: undefined, check: priceTableProblem,
    doc: 'Extra or changed prices for savings figures: `model=input/output,…` in USD per million tokens (e.g. `my-model=1/2`); built-in OpenAI list prices otherwise.' },
  { yaml: 'log.level', field: 'log.level', env: 'RECALL_LOG_LEVEL', type: 'enum', default: 'info', values: LOG_LEVELS,
    doc: 'pino log level.' },
  { yaml: 'log.slow_request_ms', field: 'log.slowRequestMs', type: 'integer', default: 10_000, min: 0, max: 3_600_000,
    doc: 'A request taking at least this long is logged at `warn` (`msg: "slow request"`) with where its time went (queue, lookup per tier, upstream, Recall); 0: never.' },
];

/** Environment variable that names the YAML file; read by the loader, not a setting itself. */
export const CONFIG_FILE_ENV = 'RECALL_CONFIG';
