// The semantic tier shared through Redis: an entry stored through one instance is a semantic hit on another, and an
// instance started later builds its index from Redis.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
