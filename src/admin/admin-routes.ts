// Operator routes under /recall/admin: purge by key, namespace or all (entries, and the semantic vectors that stand
// for them, on every instance), and inspect one entry. They exist only when an admin token is configured, and the
// bearer token is compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { CacheStore, PurgeScope } from '../cache/store.js';
import { RecallError } from '../openai/errors.js';

export interface AdminDeps {
  token: string;
  store: CacheStore;
  /** Purges the semantic vectors of what was purged (undefined when the semantic tier is off). */
  purgeVectors?: ((scope: PurgeScope) => Promise<void>) | undefined;
  now?: () => number;
}

const KEY_PATTERN = '^[A-Za-z0-9._:-]{1,64}:[0-9a-f]{64}$';
const NAMESPACE_PATTERN = '^[A-Za-z0-9._:-]{1,64}$';

const PURGE_BODY = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  properties: {
    key: { type: 'string', pattern: KEY_PATTERN },
    namespace: { type: 'string', pattern: NAMESPACE_PATTERN },
    all: { type: 'boolean', const: true },
  },
} as const;

export async function adminRoutes(app: FastifyInstance, deps: AdminDeps): Promise<void> {
  const expected = digest(deps.token);
  const now = deps.now ?? Date.now;

  app.addHook('onRequest', async (request: FastifyRequest) => {
    const header = request.headers.authorization ?? '';
    // The scheme is case-insensitive (RFC 9110). Digests of equal length are compared, so neither the token's
    // length nor how much of it matches shows in the time taken.
    const presented = /^bearer /i.test(header) ? header.slice(7) : '';
    if (!timingSafeEqual(digest(presented), expected)) {
      throw new RecallError('invalidAdminToken', 'Missing or wrong admin token: send Authorization: Bearer <RECALL_ADMIN_TOKEN>.');
    }
  });

  app.post('/recall/admin/purge', { schema: { body: PURGE_BODY } }, async (request) => {
    const scope = request.body as PurgeScope;
    let purged: number;
    if ('key' in scope) purged = (await deps.store.delete(scope.key)) ? 1 : 0;
    else if ('namespace' in scope) purged = await deps.store.deletePrefix(`${scope.namespace}:`);
    else purged = await deps.store.deletePrefix('');
    await deps.purgeVectors?.(scope);
    return { purged };
  });

  app.get('/recall/admin/entries/:key', { schema: { params: { type: 'object', properties: { key: { type: 'string', pattern: KEY_PATTERN } } } } }, async (request) => {
    const { key } = request.params as { key: string };
    // getStale: an inspection is no lookup, so it counts no hit and leaves the entry's LRU recency alone. An expired
    // entry kept for stale-if-error is not cached as far as clients can tell: not found.
    const entry = await deps.store.getStale(key);
    const at = now();
    if (entry === undefined || entry.expiresAt <= at) throw new RecallError('entryNotFound', `No cache entry ${key} (it may have expired or been purged).`, 'key');
    return {
      key,
      namespace: key.slice(0, key.lastIndexOf(':')),
      size_bytes: entry.body.length,
      stored_at: new Date(entry.storedAt).toISOString(),
      expires_at: new Date(entry.expiresAt).toISOString(),
      age_s: Math.floor((at - entry.storedAt) / 1000),
      ttl_s: Math.max(0, Math.ceil((entry.expiresAt - at) / 1000)),
      // The memory store counts from an entry's first hit (undefined before it); the Redis store does not count (null).
      hits: entry.hits ?? (deps.store.kind === 'memory' ? 0 : null),
    };
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
