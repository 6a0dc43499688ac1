// Recall on Redis found through Sentinel (the master and its replica behind a password): two instances share entries on
// the master the sentinel names, and after the master dies and the sentinel promotes its replica, they follow the new
// master and hit the entries it kept; their near caches track keys on the new master.
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { eventually, startRecall, type RunningRecall } from '../../support/recall.js';
import { sample, scrape } from '../../support/metrics.js';
import { SENTINEL_MASTER_NAME, startThrowawaySentinel, type ThrowawaySentinel } from '../../support/redis-sentinel.js';

let sentinel: ThrowawaySentinel;
let mock: MockUpstream;
let instances: [RunningRecall, RunningRecall];

const PREFIX = 'recall-sentinel-test:';
const PASSWORD = 'sentinel-test-password';
const ADMIN_TOKEN = 'sentinel-test-admin';
const chat = (content: string): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

beforeAll(async () => {
  sentinel = await startThrowawaySentinel({ password: PASSWORD });
  mock = await startMockUpstream();
  const settings = {
    'upstream.url': mock.baseURL, 'redis.sentinels': sentinel.sentinels, 'redis.sentinel_name': SENTINEL_MASTER_NAME, 'redis.password': PASSWORD,
    'redis.key_prefix': PREFIX, 'redis.command_timeout_ms': 1_000, 'semantic.enabled': false, 'admin.token': ADMIN_TOKEN,
  };
  instances = [await startRecall(settings), await startRecall(settings)];
}, 60_000);
afterAll(async () => {
  await Promise.all((instances ?? []).map((i) => i.close()));
  await mock?.close();
  await sentinel?.stop();
});

describe('two instances on Redis through Sentinel', () => {
  it('share entries, and hit them again on the promoted replica after the master dies', async () => {
    const [a, b] = instances;
    const request = chat(`sentinel ${process.pid}: what does a sentinel do?`);
    const first = await a.client().chat.completions.create(request).withResponse();
    expect(first.response.headers.get('x-recall-cache')).toBe('MISS');
    const onB = await b.client().chat.completions.create(request).withResponse();
    expect(onB.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(onB.data).toEqual(first.data);

    await sentinel.replicated();
    await sentinel.failover();
    // Until an instance has asked the sentinel for the new master, its lookups fail open: answered, from upstream.
    for (const instance of instances) {
      await eventually(async () => {
        const answer = await instance.client().chat.completions.create(request).withResponse();
        expect(answer.data.choices[0]?.message.content).toBe(first.data.choices[0]?.message.content);
        return answer.response.headers.get('x-recall-cache') === 'HIT';
      }, 'the instance hits the entry on the promoted replica');
    }
    const health = await (await fetch(`${b.url}/readyz`)).json() as { checks: { redis: { ok: boolean } } };
    expect(health.checks.redis.ok).toBe(true);
    // The entry they hit is the one the promoted replica holds.
    const promoted = new Redis(sentinel.replicaPort, '127.0.0.1', { password: PASSWORD });
    try {
      expect(await promoted.exists(PREFIX + first.response.headers.get('x-recall-key')!)).toBe(1);
    } finally {
      promoted.disconnect();
    }

    // Each near cache tracks its keys on the new master: a purge through one instance reaches the other's copy.
    for (const instance of instances) {
      await eventually(async () => sample(await scrape(instance.url), 'recall_near_cache_active') === 1, 'the near cache is active on the new master');
    }
    const nearHits = sample(await scrape(b.url), 'recall_near_cache_hits_total');
    for (let i = 0; i < 3; i++) expect((await b.client().chat.completions.create(request).withResponse()).response.headers.get('x-recall-cache')).toBe('HIT');
    expect(sample(await scrape(b.url), 'recall_near_cache_hits_total')).toBeGreaterThan(nearHits);
    const invalidations = sample(await scrape(b.url), 'recall_near_cache_invalidations_total');
    const purge = await fetch(`${a.url}/recall/admin/purge`, {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key: first.response.headers.get('x-recall-key') }),
    });
    expect(await purge.json()).toEqual({ purged: 1 });
    await eventually(async () => sample(await scrape(b.url), 'recall_near_cache_invalidations_total') > invalidations, 'the purge reaches the second instance');
    expect((await b.client().chat.completions.create(request).withResponse()).response.headers.get('x-recall-cache')).toBe('MISS');
  }, 90_000);
});
