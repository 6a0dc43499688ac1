// The semantic tier shared through Redis: an entry stored through one instance is a semantic hit on another, an
// instance started later builds its index from Redis, and vectors leave every instance with their entries (purged,
// expired).
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { sample, scrape } from '../../support/metrics.js';
import { eventually, startRecall, type RunningRecall } from '../../support/recall.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../../support/redis.js';

let redisServer: ThrowawayRedis;
let mock: MockUpstream;
let instances: RunningRecall[];
let settings: Record<string, unknown>;
let run = 0;

const upstreamChats = () => mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;
const vectorsOn = async (instance: RunningRecall) => sample(await scrape(instance.url), 'recall_semantic_vectors');

/** A Recall whose Redis connection is up: before that it serves from the upstream and stores nothing (fail open). */
async function startConnected(config: Record<string, unknown>): Promise<RunningRecall> {
  const instance = await startRecall(config);
  await eventually(async () => {
    const ready = (await (await fetch(`${instance.url}/readyz`)).json()) as { checks: { redis?: { ok: boolean } } };
    return ready.checks.redis?.ok === true;
  }, 'Recall is connected to Redis');
  return instance;
}

function question(): { original: string; variant: string } {
  run++;
  return {
    original: `Which houseplants survive a dark flat for ${run} weeks without water?`,
    variant: `which houseplants survive a dark flat for ${run} weeks without water`,
  };
}

const chat = (content: string): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

beforeAll(async () => {
  redisServer = await startThrowawayRedis();
  mock = await startMockUpstream();
  settings = { 'upstream.url': mock.baseURL, 'redis.url': redisServer.url, 'redis.key_prefix': 'recall-semantic-test:', 'redis.command_timeout_ms': 1_000, 'cache.tenant_secret': 'shared-secret' };
  instances = [await startRecall(settings), await startRecall(settings)];
});
afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  await mock.close();
  await redisServer.stop();
});
beforeEach(() => mock.reset());

describe('two instances on one Redis share vectors', () => {
  it('an entry stored through one instance is a semantic hit on the other', async () => {
    const [a, b] = instances as [RunningRecall, RunningRecall];
    const before = await vectorsOn(b);
    const { original, variant } = question();
    const first = await a.client().chat.completions.create(chat(original));
    await eventually(async () => (await vectorsOn(b)) > before, 'the other instance indexed the vector');
    const second = await b.client().chat.completions.create(chat(variant)).withResponse();
    expect(second.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(second.data).toEqual(first);
    expect(upstreamChats()).toBe(1);
  });

  it('an instance started later builds its index from Redis', async () => {
    const { original, variant } = question();
    await instances[0]!.client().chat.completions.create(chat(original));
    const late = await startRecall(settings);
    instances.push(late);
    await eventually(async () => (await vectorsOn(late)) >= run, 'the new instance loaded the shared vectors');
    const answer = await late.client().chat.completions.create(chat(variant)).withResponse();
    expect(answer.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(upstreamChats()).toBe(1);
  });

  it('a follower that lost Redis catches up once it is back', async () => {
    const [a, b] = instances as [RunningRecall, RunningRecall];
    await redisServer.restart();
    const before = await vectorsOn(b);
    let stored: { original: string; variant: string } | undefined;
    let first: OpenAI.Chat.ChatCompletion | undefined;
    // Until the instances have reconnected, answers are served but not stored (fail open).
    await eventually(async () => {
      const attempt = question();
      const answer = await a.client().chat.completions.create(chat(attempt.original)).withResponse();
      if (answer.response.headers.get('cache-status') !== 'recall; fwd=miss; stored') return false;
      stored = attempt;
      first = answer.data;
      return true;
    }, 'instance A stores in Redis again');
    await eventually(async () => (await vectorsOn(b)) > before, 'instance B follows the stream again');
    const answer = await b.client().chat.completions.create(chat(stored!.variant)).withResponse();
    expect(answer.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(answer.data).toEqual(first);
  });
});

describe('vectors leave with their entries, on every instance', () => {
  let pair: RunningRecall[];
  let prefix: string;
  let redisClient: Redis;
  let prefixRun = 0;
  const streamLength = () => redisClient.xlen(`recall-meta:${prefix}semantic`);
  const purgeOn = async (instance: RunningRecall, body: unknown) => {
    const answer = await fetch(`${instance.url}/recall/admin/purge`, {
      method: 'POST', headers: { authorization: 'Bearer admin-secret', 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    expect(answer.status).toBe(200);
    return answer.json();
  };
  // Its own key prefix per test: vector counts and the stream start from nothing.
  const settingsOf = () => ({ ...settings, 'redis.key_prefix': prefix, 'admin.token': 'admin-secret', 'semantic.sweep_interval_ms': 100 });

  beforeAll(() => {
    redisClient = new Redis(redisServer.url);
  });
  afterAll(() => redisClient.quit());
  beforeEach(async () => {
    prefix = `recall-semantic-gone-${++prefixRun}:`;
    pair = [await startConnected(settingsOf()), await startConnected(settingsOf())];
  });
  afterEach(() => Promise.all(pair.map((i) => i.close())));

  it('a purge of all through one instance empties both indexes (a near-repeat on the other is a MISS), and a later instance loads nothing', async () => {
    const [a, b] = pair as [RunningRecall, RunningRecall];
    const { original, variant } = question();
    await a.client().chat.completions.create(chat(original));
    await eventually(async () => (await vectorsOn(b)) === 1, 'the other instance indexed the vector');
    expect(await purgeOn(a, { all: true })).toEqual({ purged: 1 });
    expect(await vectorsOn(a)).toBe(0);
    await eventually(async () => (await vectorsOn(b)) === 0, 'the other instance applied the purge');
    const late = await startConnected(settingsOf());
    pair.push(late);
    // The stream holds only the purge record (checked before anything new is stored).
    expect(await streamLength()).toBe(1);
    // Looked up and not found: the purge reached the other instance's index. (Only one instance can be asked: the
    // answer is stored, and the same question on another instance is then an exact HIT from the shared store. The
    // purging instance's index was checked empty above.)
    const again = await b.client().chat.completions.create(chat(variant)).withResponse();
    expect(again.response.headers.get('x-recall-cache')).toBe('MISS');
    // That one new entry is all the late instance holds: had it loaded the purged vector, it would hold two.
    await eventually(async () => (await vectorsOn(late)) >= 1, 'the late instance indexed the new vector');
    expect(await vectorsOn(late)).toBe(1);
  });

  it('a namespace purge through one instance takes those vectors from the other', async () => {
    const [a, b] = pair as [RunningRecall, RunningRecall];
    const purged = question();
    const kept = question();
    await a.client({ defaultHeaders: { 'x-recall-namespace': 'semantic-team' } }).chat.completions.create(chat(purged.original));
    await a.client().chat.completions.create(chat(kept.original));
    await eventually(async () => (await vectorsOn(b)) === 2, 'the other instance indexed both vectors');
    expect(await purgeOn(b, { namespace: 'semantic-team' })).toEqual({ purged: 1 });
    await eventually(async () => (await vectorsOn(a)) === 1, 'the first instance applied the purge');
    const still = await a.client().chat.completions.create(chat(kept.variant)).withResponse();
    expect(still.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
  });

  it('vectors of expired entries are swept on every instance, trimmed from the stream, and never loaded by a later instance', async () => {
    const [a, b] = pair as [RunningRecall, RunningRecall];
    await a.client().chat.completions.create(chat(question().original), { headers: { 'x-recall-ttl': '1' } });
    await eventually(async () => (await vectorsOn(b)) === 1, 'the other instance indexed the vector');
    expect(await streamLength()).toBe(1);
    await eventually(async () => (await vectorsOn(a)) === 0 && (await vectorsOn(b)) === 0, 'both instances swept the expired vector');
    await eventually(async () => (await streamLength()) === 0, 'the expired record was trimmed from the stream');
    const lived = question();
    await a.client().chat.completions.create(chat(lived.original));
    const late = await startConnected(settingsOf());
    pair.push(late);
    await eventually(async () => (await vectorsOn(late)) === 1, 'the late instance loaded the live vector');
    const answer = await late.client().chat.completions.create(chat(lived.variant)).withResponse();
    expect(answer.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
  });

  it('an expired entry is never served by another instance, even before any sweep', async () => {
    await Promise.all(pair.splice(0).map((i) => i.close()));
    const unswept = { ...settingsOf(), 'semantic.sweep_interval_ms': 3_600_000 };
    const [a, b] = [await startConnected(unswept), await startConnected(unswept)];
    pair.push(a, b);
    const { original, variant } = question();
    await a.client().chat.completions.create(chat(original), { headers: { 'x-recall-ttl': '1' } });
    await eventually(async () => (await vectorsOn(b)) === 1, 'the other instance indexed the vector');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const expiredBefore = sample(await scrape(b.url), 'recall_semantic_lookups_total', { result: 'expired' });
    const later = await b.client().chat.completions.create(chat(variant)).withResponse();
    expect(later.response.headers.get('x-recall-cache')).toBe('MISS');
    // Found, its entry gone from Redis, and dropped.
    expect(sample(await scrape(b.url), 'recall_semantic_lookups_total', { result: 'expired' })).toBe(expiredBefore + 1);
  });

  it('a record that never expires at the stream head does not keep the expired records behind it from being trimmed', async () => {
    await Promise.all(pair.splice(0).map((i) => i.close()));
    // Another instance's record written before vectors carried an expiry: live for as long as it is remembered.
    await redisClient.xadd(`recall-meta:${prefix}semantic`, '*', 'i', 'elsewhere', 'p', 'p', 'k', 'default:legacy', 't', 'legacy', 'v', Buffer.alloc(512 * 4));
    const a = await startConnected({ ...settingsOf(), 'semantic.max_vectors': 2 });
    pair.push(a);
    for (let i = 0; i < 3; i++) await a.client().chat.completions.create(chat(question().original), { headers: { 'x-recall-ttl': '1' } });
    // Only trimming empties the stream: MAXLEN ~ 2 keeps at least two records, and the legacy one was there first.
    // Past max_vectors records the never-expiring head is forgotten (MAXLEN took it from Redis), so once the
    // three entries expire the sweep trims the stream to nothing; before, it stopped at that head for good.
    await eventually(async () => (await streamLength()) === 0, 'the expired records were trimmed from the stream');
  });

  it('a record of an expired entry still in the stream is skipped when a later instance loads it', async () => {
    // No sweeps here: the dead records must still be in the stream when the later instance reads it.
    await Promise.all(pair.splice(0).map((i) => i.close()));
    const unswept = { ...settingsOf(), 'semantic.sweep_interval_ms': 3_600_000 };
    const a = await startConnected(unswept);
    pair.push(a);
    await a.client().chat.completions.create(chat(question().original), { headers: { 'x-recall-ttl': '1' } });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    // Another instance's record of an entry that expired a moment ago.
    await redisClient.xadd(`recall-meta:${prefix}semantic`, '*', 'i', 'elsewhere', 'p', 'p', 'k', 'default:dead', 't', 'dead', 'e', String(Date.now() - 1), 'v', Buffer.alloc(512 * 4));
    const late = await startConnected(unswept);
    pair.push(late);
    await a.client().chat.completions.create(chat(question().original));
    await eventually(async () => (await vectorsOn(late)) >= 1, 'the late instance loaded the live vector');
    expect(await streamLength()).toBe(3);
    expect(await vectorsOn(late)).toBe(1);
  });
});
