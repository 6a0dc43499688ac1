// Three Recall instances on one real Redis Cluster (three masters, one replica each, a password on every node):
// entries, semantic vectors, in-flight locks, purges and request limits are shared across instances, with keys spread
// over every master.
import OpenAI from 'openai';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { sample, scrape } from '../../support/metrics.js';
import { closedPort, eventually, startRecall, startRecallWithMock, type RunningRecall } from '../../support/recall.js';
import { expectOneLeader, identicalBurst } from '../../support/burst.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../support/redis-cluster.js';
import { scanKeys } from '../../../src/cache/redis-connection.js';

const PREFIX = 'recall-cluster-test:';
const ADMIN_TOKEN = 'cluster-admin-token';
const PASSWORD = 'cluster-node-password';

let cluster: ThrowawayCluster;
let raw: Cluster;
let mock: MockUpstream;
let instances: [RunningRecall, RunningRecall, RunningRecall];
let counter = 0;

const upstreamChats = () => mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;
const chat = (content: string): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
const fresh = () => `Which houseplants survive a dark flat for ${++counter} weeks (${process.pid})?`;
const vectorsOn = async (instance: RunningRecall) => sample(await scrape(instance.url), 'recall_semantic_vectors');

/** Keys under the test's prefix on every master (a SCAN covers one node). */
async function storedKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of scanKeys(raw, `${PREFIX}*`, 500)) keys.push(...batch.keys.map(String));
  return keys;
}

beforeAll(async () => {
  cluster = await startThrowawayCluster({ password: PASSWORD });
  raw = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), { redisOptions: { password: PASSWORD } });
  mock = await startMockUpstream();
  // No tenant secret: the instances agree on one through the Cluster. A generous command timeout: this shared test
  // machine can be slow, and a timed-out command fails open (upstream), which would blur what is tested.
  const settings = {
    'upstream.url': mock.baseURL, 'redis.cluster': cluster.seeds, 'redis.password': PASSWORD, 'redis.key_prefix': PREFIX,
    'redis.command_timeout_ms': 1_000, 'admin.token': ADMIN_TOKEN,
  };
  instances = [await startRecall(settings), await startRecall(settings), await startRecall(settings)];
}, 120_000);
afterAll(async () => {
  await Promise.all((instances ?? []).map((i) => i.close()));
  await mock?.close();
  raw?.disconnect();
  await cluster?.stop();
});
beforeEach(() => mock.reset());

describe('three instances on a Redis Cluster', () => {
  it('an answer stored through one instance is an exact hit on the other two, with keys on every master', async () => {
    const [a, b, c] = instances;
    // 30 keys: the chance that the slots of all of them miss one of three masters is 3 × (2/3)^30, about 1 in 60,000.
    const prompts = Array.from({ length: 30 }, fresh);
    const first = await Promise.all(prompts.map((p) => a.client().chat.completions.create(chat(p)).withResponse()));
    expect(first.map((r) => r.response.headers.get('x-recall-cache'))).toEqual(prompts.map(() => 'MISS'));
    for (const instance of [b, c]) {
      const again = await Promise.all(prompts.map((p) => instance.client().chat.completions.create(chat(p)).withResponse()));
      expect(again.map((r) => r.response.headers.get('x-recall-cache'))).toEqual(prompts.map(() => 'HIT'));
      expect(again.map((r) => r.data)).toEqual(first.map((r) => r.data));
    }
    expect(upstreamChats()).toBe(prompts.length);
    // Entries are spread over the slots, so every master holds some of them.
    const holders = new Set(await Promise.all((await storedKeys()).map((key) => cluster.masterOf(key))));
    expect(holders.size).toBe(3);
    const ready = await (await fetch(`${c.url}/readyz`)).json() as { checks: { redis: { ok: boolean; status: string } } };
    expect(ready.checks.redis).toEqual({ ok: true, status: 'ready' });
  });

  it('an entry stored through one instance is a semantic hit on the others within about a second', async () => {
    const [a, b, c] = instances;
    const before = await Promise.all([b, c].map(vectorsOn));
    const original = fresh();
    const variant = original.toLowerCase().replace('?', '');
    const stored = await a.client().chat.completions.create(chat(original));
    await eventually(async () => (await vectorsOn(b)) > before[0]! && (await vectorsOn(c)) > before[1]!, 'both other instances indexed the vector');
    for (const instance of [b, c]) {
      const answer = await instance.client().chat.completions.create(chat(variant)).withResponse();
      expect(answer.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
      expect(answer.data).toEqual(stored);
    }
    expect(upstreamChats()).toBe(1);
  });

  it('a burst of identical requests spread over all three instances makes one upstream call', async () => {
    const request = chat(fresh());
    const answers = await identicalBurst(instances.map((i) => i.client()), 30, request);
    expect(upstreamChats()).toBe(1);
    expectOneLeader(answers);
  });

  it('purge-all through one instance clears the entries of every instance, on every master', async () => {
    const [a, b, c] = instances;
    const prompts = Array.from({ length: 12 }, fresh);
    await Promise.all(prompts.map((p, i) => instances[i % 3]!.client().chat.completions.create(chat(p))));
    const before = (await storedKeys()).length;
    expect(before).toBeGreaterThanOrEqual(prompts.length);
    const purge = await fetch(`${c.url}/recall/admin/purge`, {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ all: true }),
    });
    expect(purge.status).toBe(200);
    expect(await purge.json()).toEqual({ purged: before });
    expect(await storedKeys()).toEqual([]);
    mock.reset();
    for (const instance of [a, b]) {
      const outcomes = await Promise.all(prompts.map(async (p) => (await instance.client().chat.completions.create(chat(p), { headers: { 'x-recall-semantic': 'off' } }).withResponse()).response.headers.get('x-recall-cache')));
      // The first instance finds every entry gone and stores it again; the second then hits what the first stored.
      expect(outcomes).toEqual(prompts.map(() => (instance === a ? 'MISS' : 'HIT')));
    }
    expect(upstreamChats()).toBe(prompts.length);
  });
});

describe('rate limits and token budgets on the Cluster', () => {
  const BUDGET = 5_000;
  const onLimitedInstances = (limits: Record<string, number>) => Promise.all([0, 1, 2].map(() => startRecall({
    'upstream.url': mock.baseURL, 'redis.cluster': cluster.seeds, 'redis.password': PASSWORD, 'redis.key_prefix': `${PREFIX}limits:`,
    'redis.command_timeout_ms': 1_000, 'semantic.enabled': false, ...limits,
  })));

  it("count one key's requests on all three instances against one limit, and keep other keys apart", async () => {
    const limited = await onLimitedInstances({ 'limits.requests_per_minute': 3 });
    try {
      const apiKey = `sk-cluster-limits-${process.pid}`;
      const remaining: (string | null)[] = [];
      for (const instance of limited) {
        const { response } = await instance.client({ apiKey }).chat.completions.create(chat(fresh())).withResponse();
        remaining.push(response.headers.get('x-ratelimit-remaining-requests'));
      }
      expect(remaining).toEqual(['2', '1', '0']);
      const refused = await limited[1]!.client({ apiKey }).chat.completions.create(chat(fresh())).then(() => undefined, (e: unknown) => e);
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
      const other = await limited[2]!.client({ apiKey: `${apiKey}-other` }).chat.completions.create(chat(fresh())).withResponse();
      expect(other.response.headers.get('x-ratelimit-remaining-requests')).toBe('2');
    } finally {
      await Promise.all(limited.map((i) => i.close()));
    }
  }, 60_000);

  it("spend one token budget per key across the instances, corrected to each answer's usage", async () => {
    const limited = await onLimitedInstances({ 'limits.tokens_per_minute': BUDGET });
    try {
      const apiKey = `sk-cluster-budget-${process.pid}`;
      const spend = async (instance: RunningRecall, key: string) => {
        const { data, response } = await instance.client({ apiKey: key }).chat.completions.create({ ...chat(fresh()), max_tokens: 400 }).withResponse();
        return { usage: data.usage!.total_tokens, remaining: Number(response.headers.get('x-ratelimit-remaining-tokens')) };
      };
      const first = await spend(limited[0]!, apiKey);
      // The prompts are the same length, so each call reserves the same estimate before its usage is known.
      const estimate = BUDGET - first.remaining;
      const second = await spend(limited[1]!, apiKey);
      expect(second.remaining).toBe(BUDGET - first.usage - estimate);
      const third = await spend(limited[2]!, apiKey);
      expect(third.remaining).toBe(BUDGET - first.usage - second.usage - estimate);
      const otherKey = await spend(limited[2]!, `${apiKey}-other`);
      expect(otherKey.remaining).toBe(BUDGET - estimate);
    } finally {
      await Promise.all(limited.map((i) => i.close()));
    }
  }, 60_000);
});

describe('a Cluster that cannot be reached', () => {
  it('Recall starts, answers every request from the upstream and reports Redis down', async () => {
    const unreachable = await startRecallWithMock({ 'redis.cluster': `127.0.0.1:${await closedPort()}`, 'redis.key_prefix': PREFIX });
    try {
      const request = chat(fresh());
      for (let i = 0; i < 2; i++) {
        const answer = await unreachable.sdk.chat.completions.create(request).withResponse();
        expect(answer.response.headers.get('x-recall-cache')).toBe('MISS');
      }
      expect(unreachable.mock.stats().byRoute['POST /v1/chat/completions']).toBe(2);
      const ready = await fetch(`${unreachable.recall.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { checks: { redis: { ok: boolean } } }).checks.redis.ok).toBe(false);
    } finally {
      await unreachable.close();
    }
  }, 30_000);
});
