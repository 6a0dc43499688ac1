// Fills a cache fast for the cache-size curve of loadtest/bench.ts, with Recall's own key, store and snapshot code:
// entry i answers the chat completion `cacheSizeBody(i)` sent with the benchmark's API key, under a fixed tenant
// secret that the Recall being measured is configured with. Runs as its own process, so that building a million
// entries never weighs on the load generator.
//
//   node --import tsx loadtest/bench-fill.ts --answer-file a.json --from 0 --to 100000 --snapshot /tmp/cache.jsonl
//   node --import tsx loadtest/bench-fill.ts --answer-file a.json --from 0 --to 100000 --redis redis://127.0.0.1:6390
//
// Prints one JSON line: {"filled": n, "usedMemoryBefore": …, "usedMemoryAfter": …} (Redis's used_memory; null for a snapshot).

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { cacheKey } from '../src/cache/key.js';
import { MemorySnapshot } from '../src/cache/memory-snapshot.js';
import { MemoryStore } from '../src/cache/memory-store.js';
import { DEFAULT_NAMESPACE } from '../src/cache/policy.js';
import { RedisStore } from '../src/cache/redis-store.js';
import type { CacheEntry } from '../src/cache/store.js';
import { TenantResolver } from '../src/cache/tenant.js';
import { BENCH_API_KEY, chatBody } from './bench-harness.js';

/** `cache.tenant_secret` of the Recall that serves the filled entries. */
export const CACHE_SIZE_TENANT_SECRET = 'recall-bench-cache-size';
const ENTRY_TTL_MS = 86_400_000;
/** Redis writes in flight at once. */
const REDIS_BATCH = 2_000;

/** The request entry i answers. */
export function cacheSizeBody(i: number): string {
  return chatBody(`bench cache size ${i}: say something short about caches`);
}

/** The key Recall computes for `cacheSizeBody(i)` with the benchmark's API key. */
function keyOf(tenant: string, i: number): string {
  return cacheKey({ route: 'chat.completions', tenant, namespace: DEFAULT_NAMESPACE, body: JSON.parse(cacheSizeBody(i)) as Record<string, unknown> });
}

function* entries(from: number, to: number, answer: Buffer): Generator<[string, CacheEntry]> {
  const tenant = new TenantResolver('tenant', CACHE_SIZE_TENANT_SECRET).tenantOf({ headers: { authorization: `Bearer ${BENCH_API_KEY}` }, recall: null });
  const storedAt = Date.now();
  for (let i = from; i < to; i++) yield [keyOf(tenant, i), { body: Buffer.from(answer), storedAt, expiresAt: storedAt + ENTRY_TTL_MS }];
}

/** Writes a snapshot file that Recall's in-memory store loads at start (`cache.memory.persist_path`). */
async function fillSnapshot(path: string, from: number, to: number, answer: Buffer): Promise<void> {
  const store = new MemoryStore({ maxEntries: to - from + 1, maxBytes: Number.MAX_SAFE_INTEGER });
  for (const [key, entry] of entries(from, to, answer)) await store.set(key, entry);
  await new MemorySnapshot(store, path, pino({ enabled: false })).save(CACHE_SIZE_TENANT_SECRET);
}

async function usedMemory(store: RedisStore): Promise<number> {
  const info = await store.connection.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN);
}

/** Writes the entries into Redis under Recall's default key prefix, as RedisStore writes them. */
async function fillRedis(url: string, from: number, to: number, answer: Buffer): Promise<{ before: number; after: number }> {
  const store = new RedisStore({ url, keyPrefix: 'recall:', commandTimeoutMs: 30_000, connectTimeoutMs: 5_000 });
  try {
    if (!(await store.whenReady(10_000))) throw new Error(`could not connect to ${url}`);
    const before = await usedMemory(store);
    let batch: Promise<void>[] = [];
    for (const [key, entry] of entries(from, to, answer)) {
      batch.push(store.set(key, entry));
      if (batch.length === REDIS_BATCH) {
        await Promise.all(batch);
        batch = [];
      }
    }
    await Promise.all(batch);
    return { before, after: await usedMemory(store) };
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'answer-file': { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, snapshot: { type: 'string' }, redis: { type: 'string' } },
  });
  const from = Number(values.from ?? 0);
  const to = Number(values.to);
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to <= from) throw new RangeError(`--from and --to must be integers with 0 <= from < to, got ${values.from}, ${values.to}`);
  if (values['answer-file'] === undefined) throw new Error('--answer-file is required: the completion every entry holds');
  const answer = readFileSync(values['answer-file']);
  if (values.snapshot !== undefined) {
    await fillSnapshot(values.snapshot, from, to, answer);
    console.log(JSON.stringify({ filled: to - from, usedMemoryBefore: null, usedMemoryAfter: null }));
  } else if (values.redis !== undefined) {
    const { before, after } = await fillRedis(values.redis, from, to, answer);
    console.log(JSON.stringify({ filled: to - from, usedMemoryBefore: before, usedMemoryAfter: after }));
  } else {
    throw new Error('one of --snapshot and --redis is required');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  });
}
