// The near cache in front of Redis, as users run it: two instances on one Redis. Repeated hits are answered from each
// instance's memory, and whatever changes an entry in Redis (another instance's purge, a new answer, Redis going away)
// reaches the copies, so no instance serves an entry that Redis no longer holds.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../../src/cache/redis-store.js';
import { eventually, startRecall, startTwoOnRedis, type RunningRecall, type TwoOnRedis } from '../../support/recall.js';
import { sample, scrape } from '../../support/metrics.js';
import { promtoolCheckMetrics } from '../../support/prometheus.js';
import { toolAvailable } from '../../support/binaries.js';
import type { ChildProcess } from 'node:child_process';
import { freePort, launch, startThrowawayRedis, terminate, type ThrowawayRedis } from '../../support/redis.js';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';

const ADMIN_TOKEN = 'near-cache-admin';
const API_KEY = 'sk-near-cache-tenant';
let n = 0;
const chat = () => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `near cache question ${++n} ${randomUUID()}` }] });

async function ask(recall: RunningRecall, request: ReturnType<typeof chat>): Promise<{ cache: string | null; key: string | null; content: string | null | undefined }> {
  const { data, response } = await recall.client({ apiKey: API_KEY }).chat.completions.create(request).withResponse();
  return { cache: response.headers.get('x-recall-cache'), key: response.headers.get('x-recall-key'), content: data.choices[0]?.message.content };
}

const metric = async (recall: RunningRecall, name: string) => sample(await scrape(recall.url), name);

describe('near cache, two instances on one Redis', () => {
  let two: TwoOnRedis;
  beforeAll(async () => {
    two = await startTwoOnRedis({ 'admin.token': ADMIN_TOKEN });
    for (const recall of [two.first, two.second]) await eventually(async () => (await metric(recall, 'recall_near_cache_active')) === 1, 'the near cache is active');
  });
  afterAll(async () => {
    await two?.close();
  });

  it('answers repeated hits from memory, and serves no entry another instance purged', async () => {
    const { first, second, mock } = two;
    const request = chat();
    expect((await ask(first, request)).cache).toBe('MISS');
    // Read from Redis the first time, and the second (now tracked, and kept); answered from memory the third.
    const stored = await ask(second, request);
    expect(stored.cache).toBe('HIT');
    expect(await ask(second, request)).toEqual(stored);
    const heldBefore = await metric(second, 'recall_near_cache_hits_total');
    expect(await ask(second, request)).toEqual(stored);
    expect(await metric(second, 'recall_near_cache_hits_total')).toBe(heldBefore + 1);
    expect(await metric(second, 'recall_near_cache_entries')).toBeGreaterThanOrEqual(1);

    const invalidated = await metric(second, 'recall_near_cache_invalidations_total');
    const purge = await fetch(`${first.url}/recall/admin/purge`, {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ key: stored.key }),
    });
    expect(await purge.json()).toEqual({ purged: 1 });
    await eventually(async () => (await metric(second, 'recall_near_cache_invalidations_total')) > invalidated, 'Redis tells the second instance');
    const calls = mock.stats().requests;
    expect((await ask(second, request)).cache).toBe('MISS');
    expect(mock.stats().requests).toBe(calls + 1);
  });

  it.skipIf(!toolAvailable('promtool', 'prometheus'))('exports metrics promtool accepts', async () => {
    const exposition = await scrape(two.second.url);
    expect(exposition).toContain('recall_near_cache_hits_total');
    expect(promtoolCheckMetrics(exposition)).toEqual({ status: 0, output: '' });
  });

  it('the instance that purges drops its own copy at once', async () => {
    const { first } = two;
    const request = chat();
    expect((await ask(first, request)).cache).toBe('MISS');
    const { key } = await ask(first, request);
    const hitsBefore = await metric(first, 'recall_near_cache_hits_total');
    expect((await ask(first, request)).cache).toBe('HIT');
    expect(await metric(first, 'recall_near_cache_hits_total')).toBe(hitsBefore + 1);
    const purge = await fetch(`${first.url}/recall/admin/purge`, {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ key }),
    });
    expect(await purge.json()).toEqual({ purged: 1 });
    expect((await ask(first, request)).cache).toBe('MISS');
  });
});

describe('near cache while Redis is away', () => {
  let redis: ThrowawayRedis;
  let mock: MockUpstream;
  let recall: RunningRecall;
  beforeAll(async () => {
    redis = await startThrowawayRedis();
    mock = await startMockUpstream();
    recall = await startRecall({ 'upstream.url': mock.baseURL, 'redis.url': redis.url, 'redis.key_prefix': `recall-test-${randomUUID()}:`, 'redis.command_timeout_ms': 2_000 });
    await eventually(async () => (await metric(recall, 'recall_near_cache_active')) === 1, 'the near cache is active');
  });
  afterAll(async () => {
    await recall?.close();
    await mock?.close();
    await redis?.stop();
  });

  it('is emptied and unused while Redis cannot say what changed, and used again once it can', async () => {
    const request = chat();
    expect((await ask(recall, request)).cache).toBe('MISS');
    expect((await ask(recall, request)).cache).toBe('HIT');
    expect((await ask(recall, request)).cache).toBe('HIT');
    expect(await metric(recall, 'recall_near_cache_hits_total')).toBeGreaterThanOrEqual(1);

    // The entry went with the crash; a copy in memory would still answer HIT.
    await redis.crash();
    await eventually(async () => (await metric(recall, 'recall_near_cache_active')) === 0, 'the near cache stands down');
    expect(await metric(recall, 'recall_near_cache_entries')).toBe(0);
    expect((await ask(recall, request)).cache).toBe('MISS');

    await redis.restart();
    await eventually(async () => (await metric(recall, 'recall_near_cache_active')) === 1, 'the near cache is active again');
    const hitsBefore = await metric(recall, 'recall_near_cache_hits_total');
    const later = chat();
    expect((await ask(recall, later)).cache).toBe('MISS');
    expect((await ask(recall, later)).cache).toBe('HIT');
    expect((await ask(recall, later)).cache).toBe('HIT');
    expect(await metric(recall, 'recall_near_cache_hits_total')).toBe(hitsBefore + 1);
  });
});

describe('near cache on a Redis that refuses client tracking', () => {
  let port: number;
  let server: ChildProcess;
  let mock: MockUpstream;
  let recall: RunningRecall;
  beforeAll(async () => {
    port = (await freePort())!;
    // As some managed Redis services do: no CLIENT command.
    server = await launch(port, ['--rename-command', 'CLIENT', '""']);
    mock = await startMockUpstream();
    recall = await startRecall({ 'upstream.url': mock.baseURL, 'redis.url': `redis://127.0.0.1:${port}`, 'redis.key_prefix': `recall-test-${randomUUID()}:`, 'redis.command_timeout_ms': 2_000 });
  });
  afterAll(async () => {
    await recall?.close();
    await mock?.close();
    if (server !== undefined) await terminate(server, 'SIGKILL');
  });

  it('says so once in the log, stays off, and every hit is read from Redis', async () => {
    await eventually(() => recall.logLines().some((line) => String(line.msg).startsWith('the near cache could not start')), 'the warning is logged');
    const request = chat();
    expect((await ask(recall, request)).cache).toBe('MISS');
    for (let i = 0; i < 3; i++) expect((await ask(recall, request)).cache).toBe('HIT');
    const exposition = await scrape(recall.url);
    expect(sample(exposition, 'recall_near_cache_active')).toBe(0);
    expect(sample(exposition, 'recall_near_cache_hits_total')).toBe(0);
    expect(sample(exposition, 'recall_cache_lookups_total', { result: 'hit' })).toBe(3);
  });
});

describe('near cache reads', () => {
  let redis: ThrowawayRedis;
  const stores: RedisStore[] = [];
  const open = (maxEntries = 100, keyPrefix = `recall-test-${randomUUID()}:`) => {
    const store = new RedisStore({ url: redis.url, keyPrefix, commandTimeoutMs: 2_000, connectTimeoutMs: 2_000, nearCache: { maxEntries, maxBytes: 1024 * 1024 } });
    stores.push(store);
    return store;
  };
  const entry = (text: string) => ({ body: Buffer.from(text), storedAt: Date.now(), expiresAt: Date.now() + 60_000 });
  beforeAll(async () => {
    redis = await startThrowawayRedis();
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('does not keep what a read brought back when the key changed while the read was on its way', async () => {
    const store = open();
    await eventually(() => store.near?.active() === true, 'the near cache is active');
    await store.set('k', entry('old'));
    // The first read of a key is not tracked: the second one is the read a near cache keeps.
    await store.get('k');
    const reading = store.get('k');
    // What an invalidation from Redis does, arriving before the read's reply.
    store.near!.forget('k');
    expect((await reading)?.body.toString()).toBe('old');
    expect(store.near!.entries()).toBe(0);
    // Invalidated, the key starts over: read twice from Redis, then answered from memory.
    await store.get('k');
    await store.get('k');
    expect(store.near!.hits()).toBe(0);
    expect((await store.get('k'))?.body.toString()).toBe('old');
    expect(store.near!.hits()).toBe(1);
  });

  it('never serves an expired entry from memory', async () => {
    const store = open();
    await eventually(() => store.near?.active() === true, 'the near cache is active');
    const now = Date.now();
    await store.set('short', { body: Buffer.from('soon gone'), storedAt: now, expiresAt: now + 300 });
    expect((await store.get('short'))?.body.toString()).toBe('soon gone');
    expect((await store.get('short'))?.body.toString()).toBe('soon gone');
    expect(store.near!.entries()).toBe(1);
    const hits = store.near!.hits();
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await store.get('short')).toBeUndefined();
    // The store would drop an expired entry anyway; the near cache must not have answered it, and let it go.
    expect(store.near!.hits()).toBe(hits);
    expect(store.near!.entries()).toBe(0);
  });

  it('keeps a key only once it is read a second time, so that keys read once cost Redis no tracking', async () => {
    const store = open();
    await eventually(() => store.near?.active() === true, 'the near cache is active');
    const { Redis } = await import('ioredis');
    const admin = new Redis(redis.url);
    // Redis's count of tracked keys; keys other clients tracked before may still be in it.
    const tracked = async () => Number(/tracking_total_keys:(\d+)/.exec(await admin.info('stats'))?.[1]);
    for (let i = 0; i < 20; i++) await store.set(`once-${i}`, entry(`value ${i}`));
    const before = await tracked();
    for (let i = 0; i < 20; i++) expect((await store.get(`once-${i}`))?.body.toString()).toBe(`value ${i}`);
    expect(store.near!.entries()).toBe(0);
    expect(await tracked()).toBe(before);
    await store.get('once-3');
    expect(store.near!.entries()).toBe(1);
    expect(await tracked()).toBe(before + 1);
    admin.disconnect();
  });

  it('is off with near_cache_max_entries 0: every read goes to Redis', async () => {
    const store = open(0);
    expect(store.near).toBeUndefined();
    expect(await store.whenReady(2_000)).toBe(true);
    await store.set('k', entry('value'));
    expect((await store.get('k'))?.body.toString()).toBe('value');
  });

  it('drops everything when the database is flushed', async () => {
    const prefix = `recall-test-${randomUUID()}:`;
    const writer = open(100, prefix);
    const reader = open(100, prefix);
    await eventually(() => reader.near?.active() === true, 'the near cache is active');
    await writer.set('k', entry('value'));
    await reader.get('k');
    await reader.get('k');
    await reader.get('k');
    expect(reader.near!.hits()).toBe(1);
    const { Redis } = await import('ioredis');
    const admin = new Redis(redis.url);
    await admin.flushall();
    admin.disconnect();
    await eventually(() => reader.near!.entries() === 0, 'the flush reaches the near cache');
    expect(await reader.get('k')).toBeUndefined();
  });
});
