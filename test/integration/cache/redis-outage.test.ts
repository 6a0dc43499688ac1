// The exact tier on a RedisStore when Redis is slow, crashes and comes back: lookups turn into errors (misses) at
// once, saves report false, one warning is logged, and the same store recovers by itself once Redis answers again.
import pino from 'pino';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ExactTier } from '../../../src/cache/exact-tier.js';
import type { CachePolicy } from '../../../src/cache/policy.js';
import { RedisStore } from '../../../src/cache/redis-store.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../../support/redis.js';

const COMMAND_TIMEOUT_MS = 250;
/**
 * Not a performance threshold: a bound that tells "failed fast" apart from "queued until Redis came back" or
 * "retried twenty times", both of which take seconds.
 */
const FAIL_FAST_BOUND_MS = 4 * COMMAND_TIMEOUT_MS;
const POLICY: CachePolicy = { read: true, write: true, maxAgeS: undefined, ttlS: 60, namespace: 'default' };
const BODY = Buffer.from('{"id":"chatcmpl-outage","object":"chat.completion","choices":[]}');

let server: ThrowawayRedis;
let store: RedisStore;
let tier: ExactTier;
let logLines: string[];

const warnings = () => logLines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level === 40);

async function waitFor(probe: () => boolean, what: string, boundMs = 8_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${boundMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await work;
  return { value, ms: performance.now() - start };
}

beforeAll(async () => {
  server = await startThrowawayRedis();
});
afterAll(async () => {
  await server?.stop();
});

beforeEach(async () => {
  logLines = [];
  store = new RedisStore({
    url: server.url, keyPrefix: `recall-outage:${process.pid}:`, commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 500,
    reconnectMaxDelayMs: 200,
  });
  tier = new ExactTier(store, pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }), 2 * 1024 * 1024);
  expect(await store.whenReady(5_000)).toBe(true);
});
afterEach(async () => {
  await store.close();
});

describe('ExactTier on a RedisStore', () => {
  it('fails open while Redis crashes, and serves again from the same store once it is back', { timeout: 20_000 }, async () => {
    expect(await tier.save('default:k', BODY, 60)).toBe(true);
    const hit = await tier.lookup('default:k', POLICY);
    expect(hit.outcome).toBe('hit');
    expect(hit.outcome === 'hit' && hit.entry.body.equals(BODY)).toBe(true);

    await server.crash();
    await waitFor(() => store.status() === 'down', 'the store reports Redis down');
    for (let i = 0; i < 3; i++) {
      const lookup = await timed(tier.lookup('default:k', POLICY));
      expect(lookup.value).toMatchObject({ outcome: 'error' });
      expect(lookup.ms).toBeLessThan(FAIL_FAST_BOUND_MS);
    }
    const save = await timed(tier.save('default:other', BODY, 60));
    expect(save.value).toBe(false);
    expect(save.ms).toBeLessThan(FAIL_FAST_BOUND_MS);
    // Four failures inside the warning interval: one line, naming the store.
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ msg: 'cache lookup failed; answering from the upstream', store: 'redis' });

    await server.restart();
    await waitFor(() => store.status() === 'ready', 'the store reconnects by itself');
    // The restarted server is empty: a miss, not an error; then the tier fills and serves it as before.
    expect(await tier.lookup('default:k', POLICY)).toMatchObject({ outcome: 'miss' });
    expect(await tier.save('default:k', BODY, 60)).toBe(true);
    expect((await tier.lookup('default:k', POLICY)).outcome).toBe('hit');
  });

  it('fails open while Redis is alive but does not answer', { timeout: 20_000 }, async () => {
    expect(await tier.save('default:k', BODY, 60)).toBe(true);
    const admin = new Redis(server.url);
    try {
      // Every client's commands wait until the pause ends, as with a Redis stuck on a slow command.
      const pauseMs = 6 * COMMAND_TIMEOUT_MS;
      await admin.client('PAUSE', pauseMs, 'ALL');
      const lookup = await timed(tier.lookup('default:k', POLICY));
      expect(lookup.value).toMatchObject({ outcome: 'error' });
      expect(lookup.ms).toBeLessThan(FAIL_FAST_BOUND_MS);
      expect(store.status()).toBe('ready');
      await sleep(pauseMs);
      expect((await tier.lookup('default:k', POLICY)).outcome).toBe('hit');
      expect(warnings()).toHaveLength(1);
    } finally {
      await admin.quit();
    }
  });
});

describe('ExactTier on a RedisStore, on a busy instance', () => {
  it('takes a reply that arrived while this process was busy, rather than failing it as a timeout', async () => {
    expect(await tier.save('default:busy', BODY, 60)).toBe(true);
    const lookup = tier.lookup('default:busy', POLICY);
    // The GET leaves in an immediate (autopipelining), and its timer starts then; the next immediate holds the event
    // loop past the timeout, as a saturated instance does. Redis answers meanwhile, but the reply is read only after
    // the timer is due.
    await new Promise<void>((resolve) => setImmediate(() => {
      const until = performance.now() + 2 * COMMAND_TIMEOUT_MS;
      while (performance.now() < until) { /* busy */ }
      resolve();
    }));
    const found = await lookup;
    expect(found.outcome).toBe('hit');
    expect(found.outcome === 'hit' && found.entry.body.equals(BODY)).toBe(true);
    expect(warnings()).toEqual([]);
  });
});

describe('RedisStore with nothing listening', () => {
  it('constructs, reports down, fails each call at once, and closes', { timeout: 20_000 }, async () => {
    const lonely = await startThrowawayRedis();
    const url = lonely.url;
    await lonely.stop();
    const absent = new RedisStore({ url, keyPrefix: 'recall-absent:', commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 500 });
    try {
      await waitFor(() => absent.status() === 'down', 'the store reports Redis down');
      const get = await timed(absent.get('k').then(() => 'answered', () => 'rejected'));
      expect(get.value).toBe('rejected');
      expect(get.ms).toBeLessThan(FAIL_FAST_BOUND_MS);
      expect(await absent.whenReady(50)).toBe(false);
    } finally {
      await absent.close();
    }
  });
});
