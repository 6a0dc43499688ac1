// Coalescing across Recall instances that share one Redis: a burst split over two instances costs one upstream call,
// and a lock left by a crashed leader only delays the others until it expires.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall, type RunningRecall } from '../../support/recall.js';
import { expectOneLeader, identicalBurst } from '../../support/burst.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../../support/redis.js';

let redisServer: ThrowawayRedis;
let redis: Redis;
let mock: MockUpstream;
let instances: RunningRecall[];
let counter = 0;

const PREFIX = 'recall-test:';
const upstreamChats = () => mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;
const freshChat = () => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `across ${process.pid} ${++counter}: what is a cache?` }] });

beforeAll(async () => {
  redisServer = await startThrowawayRedis();
  redis = new Redis(redisServer.url);
  mock = await startMockUpstream();
  // A generous command timeout: this shared test machine can be slow, and a timed-out lock fails open (upstream).
  const settings = { 'upstream.url': mock.baseURL, 'redis.url': redisServer.url, 'redis.key_prefix': PREFIX, 'redis.command_timeout_ms': 1_000 };
  instances = [await startRecall(settings), await startRecall(settings)];
});
afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  await mock.close();
  redis.disconnect();
  await redisServer.stop();
});
beforeEach(() => mock.reset());

describe('two instances on one Redis', () => {
  it('a burst split over both instances makes one upstream call; every answer is the same', async () => {
    const request = freshChat();
    const answers = await identicalBurst(instances.map((i) => i.client()), 40, request);
    expect(upstreamChats()).toBe(1);
    expectOneLeader(answers);
    // Both instances now hit the entry.
    for (const instance of instances) {
      const again = await instance.client().chat.completions.create(request).withResponse();
      expect(again.response.headers.get('x-recall-cache')).toBe('HIT');
    }
  });

  it('a streaming request on the other instance gets the stored answer as a stream', async () => {
    const request = freshChat();
    const slow = { headers: { 'x-mock-latency-ms': '300' } };
    const plain = instances[0]!.client().chat.completions.create(request, slow);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stream = await instances[1]!.client().chat.completions.create({ ...request, stream: true }, slow).withResponse();
    let text = '';
    for await (const chunk of stream.data) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe((await plain).choices[0]?.message.content);
    expect(stream.response.headers.get('x-recall-cache')).toBe('COALESCED');
    expect(upstreamChats()).toBe(1);
  });

  it("a lock left by a crashed leader expires, and the waiting request then calls the upstream itself", async () => {
    const request = freshChat();
    // The key, from an answer that stores nothing.
    const probe = await instances[0]!.client().chat.completions.create(request, { headers: { 'cache-control': 'no-store' } }).withResponse();
    const key = probe.response.headers.get('x-recall-key')!;
    // As if an instance took the lock and died: nobody refreshes it, nobody announces an answer.
    await redis.set(`recall-meta:${PREFIX}lock:${key}`, 'crashed-instance', 'PX', 600);
    const answer = await instances[1]!.client().chat.completions.create(request).withResponse();
    expect(answer.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(answer.data.choices[0]?.message.content).toBe(probe.data.choices[0]?.message.content);
    expect(upstreamChats()).toBe(2);
    expect(await redis.exists(`recall-meta:${PREFIX}lock:${key}`)).toBe(0);
  });

  it('a request waits for another instance at most coalesce.wait_ms, then goes upstream itself', async () => {
    const impatient = await startRecall({ 'upstream.url': mock.baseURL, 'redis.url': redisServer.url, 'redis.key_prefix': PREFIX, 'redis.command_timeout_ms': 1_000, 'coalesce.wait_ms': 200 });
    try {
      const request = freshChat();
      const probe = await impatient.client().chat.completions.create(request, { headers: { 'cache-control': 'no-store' } }).withResponse();
      const key = probe.response.headers.get('x-recall-key')!;
      // A live leader elsewhere that takes far too long.
      await redis.set(`recall-meta:${PREFIX}lock:${key}`, 'slow-instance', 'PX', 60_000);
      const answer = await impatient.client().chat.completions.create(request).withResponse();
      expect(answer.response.headers.get('x-recall-cache')).toBe('MISS');
      expect(upstreamChats()).toBe(2);
      await redis.del(`recall-meta:${PREFIX}lock:${key}`);
    } finally {
      await impatient.close();
    }
  });
});
