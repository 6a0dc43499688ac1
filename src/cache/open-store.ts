// Chooses and opens the exact tier's store from the config: Redis when one is configured (a URL, Cluster seeds or
// sentinels), otherwise the in-memory store
// (with its snapshot file when configured), and settles the tenant HMAC secret that partitions must share.
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { RecallConfig } from '../config/schema.js';
import type { StoreFigures } from '../metrics/catalog.js';
import { MemorySnapshot } from './memory-snapshot.js';
import { MemoryStore } from './memory-store.js';
import { redisTarget } from './redis-connection.js';
import { RedisStore } from './redis-store.js';
import type { CacheStore } from './store.js';

export interface OpenedStore {
  store: CacheStore;
  figures: StoreFigures;
  redis: RedisStore | undefined;
  snapshot: MemorySnapshot | undefined;
  tenantSecret: string;
}

const TENANT_SECRET = 'tenant-secret';

/** How long the start waits for Redis before serving anyway (from the upstream, until Redis answers). */
const REDIS_STARTUP_WAIT_MS = 2_000;

export async function openCacheStore(config: RecallConfig, log: FastifyBaseLogger): Promise<OpenedStore> {
  const candidate = config.cache.tenantSecret ?? randomBytes(32).toString('hex');
  // Expired entries stay for the longest stale-if-error grace any request can get.
  const keepExpiredMs = config.cache.staleIfErrorMaxSeconds * 1000;
  const target = redisTarget(config.redis);
  if (target !== undefined) {
    const redis = new RedisStore({
      target,
      keyPrefix: config.redis.keyPrefix,
      commandTimeoutMs: config.redis.commandTimeoutMs,
      connectTimeoutMs: config.redis.connectTimeoutMs,
      keepExpiredMs,
      nearCache: { maxEntries: config.redis.nearCacheMaxEntries, maxBytes: config.redis.nearCacheMaxBytes },
      onNearCacheProblem: (err) => log.warn({ err }, 'the near cache could not start (Redis client tracking needs Redis 6 and the CLIENT and SUBSCRIBE commands); every lookup reads Redis'),
    });
    // Redis holds other keys too and counts no evictions of ours: no entry figures from it.
    const figures: StoreFigures = { kind: 'redis', entries: () => undefined, bytes: () => undefined, evictions: () => undefined };
    const tenantSecret = await sharedTenantSecret(redis, config, candidate, log);
    if (config.cache.tenantSecret === undefined) redis.keepShared(TENANT_SECRET, tenantSecret);
    return { store: redis, figures, redis, snapshot: undefined, tenantSecret };
  }
  const store = new MemoryStore({ ...config.cache.memory, keepExpiredMs });
  const figures: StoreFigures = { kind: 'memory', entries: () => store.size, bytes: () => store.sizeBytes, evictions: () => store.evictions };
  const persistPath = config.cache.memory.persistPath;
  if (persistPath === undefined) return { store, figures, redis: undefined, snapshot: undefined, tenantSecret: candidate };
  const snapshot = new MemorySnapshot(store, persistPath, log);
  // Entries in the file were partitioned with the secret saved beside them; without a configured one, reuse it.
  const saved = await snapshot.load();
  const tenantSecret = config.cache.tenantSecret ?? saved ?? candidate;
  snapshot.start(config.cache.memory.persistIntervalS * 1000, tenantSecret);
  return { store, figures, redis: undefined, snapshot, tenantSecret };
}

/** Every instance on one Redis must derive the same partitions: the first one's secret is kept in Redis. */
async function sharedTenantSecret(redis: RedisStore, config: RecallConfig, candidate: string, log: FastifyBaseLogger): Promise<string> {
  if (config.cache.tenantSecret !== undefined) return config.cache.tenantSecret;
  if (await redis.whenReady(REDIS_STARTUP_WAIT_MS)) {
    try {
      return await redis.sharedValue(TENANT_SECRET, candidate);
    } catch (err) {
      log.warn({ err }, 'could not read the shared tenant secret from Redis');
    }
  }
  log.warn('Redis is not reachable at start: this instance partitions with its own secret and will not share entries with other instances until restarted; set cache.tenant_secret to avoid this');
  return candidate;
}
