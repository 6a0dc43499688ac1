// Runs the CacheStore contract against MemoryStore (fake clock) and RedisStore (a throwaway redis-server of this file,
// a fresh key prefix per test, real TTLs), plus what only the Redis store has to get right.
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../src/cache/memory-store.js';
import { RedisEntryFormatError, RedisStore } from '../../../src/cache/redis-store.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../../support/redis.js';
import { describeStoreContract } from './store-contract.js';

let server: ThrowawayRedis;
let prefixes = 0;
/** Unique per test and per run, so that no test sees another's keys even on a shared server. */
const freshPrefix = () => `recall-test:${process.pid}:${++prefixes}:`;

beforeAll(async () => {
  server = await startThrowawayRedis();
});
afterAll(async () => {
  await server?.stop();
});

async function readyRedisStore(keyPrefix: string, keepExpiredMs?: number): Promise<RedisStore> {
  const store = new RedisStore({ url: server.url, keyPrefix, commandTimeoutMs: 2_000, connectTimeoutMs: 2_000, keepExpiredMs });
  if (!(await store.whenReady(5_000))) throw new Error(`RedisStore did not connect to ${server.url}`);
  return store;
}

describeStoreContract('MemoryStore', async (options = {}) => {
  let now = 1_764_000_000_000;
  return {
    store: new MemoryStore({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, keepExpiredMs: options.keepExpiredMs }, () => now),
    now: () => now,
    advance: async (ms) => {
      now += ms;
    },
    countsHits: true,
    cleanup: async () => {},
  };
});

describeStoreContract('RedisStore', async (options = {}) => {
  const keyPrefix = freshPrefix();
  const store = await readyRedisStore(keyPrefix, options.keepExpiredMs);
  const raw = new Redis(server.url);
  // Another application's key, and one that shares the store's prefix but for its final separator.
  const foreignKeys = ['other-app:entry', `${keyPrefix.slice(0, -1)}-neighbour:entry`];
  return {
    store,
    now: Date.now,
    advance: (ms) => sleep(ms),
    countsHits: false,
    foreign: {
      write: async () => {
        for (const key of foreignKeys) await raw.set(key, 'not recall');
      },
      exists: async () => (await raw.exists(...foreignKeys)) === foreignKeys.length,
    },
    cleanup: async () => {
      await store.clear();
      await store.close();
      await raw.unlink(...foreignKeys);
      await raw.quit();
    },
  };
});

describe('RedisStore', () => {
  let keyPrefix: string;
  let store: RedisStore;
  let raw: Redis;

  beforeEach(async () => {
    keyPrefix = freshPrefix();
    store = await readyRedisStore(keyPrefix);
    raw = new Redis(server.url);
  });
  afterEach(async () => {
    await store.clear();
    await store.close();
    await raw.quit();
  });

  it('writes under its key prefix with a Redis TTL, so Redis expires entries by itself', async () => {
    const now = Date.now();
    await store.set('ns:k', { body: Buffer.from('{}'), storedAt: now, expiresAt: now + 60_000 });
    const ttl = await raw.pttl(`${keyPrefix}ns:k`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('lets Redis keep an entry past its expiry for keepExpiredMs (PEXPIRE = TTL + keep), the value holding its own expiry', async () => {
    const keeping = await readyRedisStore(keyPrefix, 600_000);
    try {
      const now = Date.now();
      await keeping.set('k', { body: Buffer.from('{}'), storedAt: now, expiresAt: now + 60_000 });
      const ttl = await raw.pttl(`${keyPrefix}k`);
      expect(ttl).toBeGreaterThan(600_000);
      expect(ttl).toBeLessThanOrEqual(660_000);
      // Read by a store that keeps nothing: the entry's own expiry still says fresh.
      expect((await store.get('k'))?.expiresAt).toBe(now + 60_000);
    } finally {
      await keeping.close();
    }
  });

  it('stores nothing for an entry that has already expired', async () => {
    const now = Date.now();
    await store.set('k', { body: Buffer.from('{}'), storedAt: now - 2_000, expiresAt: now - 1_000 });
    expect(await raw.exists(`${keyPrefix}k`)).toBe(0);
  });

  it('rejects a value it did not write instead of serving it', async () => {
    await raw.set(`${keyPrefix}garbage`, 'not an entry at all');
    await expect(store.get('garbage')).rejects.toBeInstanceOf(RedisEntryFormatError);
    await raw.set(`${keyPrefix}short`, Buffer.from([1, 2, 3]));
    await expect(store.get('short')).rejects.toBeInstanceOf(RedisEntryFormatError);
  });

  it('rejects an entry of an unknown format version', async () => {
    const now = Date.now();
    await store.set('k', { body: Buffer.from('{}'), storedAt: now, expiresAt: now + 60_000 });
    const value = await raw.getBuffer(`${keyPrefix}k`);
    expect(value?.[0]).toBe(1);
    value![0] = 99;
    await raw.set(`${keyPrefix}k`, value!);
    await expect(store.get('k')).rejects.toThrow(/version 99/);
  });

  it('reports itself ready once connected', () => {
    expect(store.status()).toBe('ready');
    expect(store.kind).toBe('redis');
  });

  it('refuses settings it cannot honour', () => {
    const base = { url: server.url, commandTimeoutMs: 100, connectTimeoutMs: 100 };
    expect(() => new RedisStore({ ...base, keyPrefix: '' })).toThrow(/keyPrefix/);
  });
});
