// Requests per minute per API key, as an OpenAI SDK user sees them: OpenAI's x-ratelimit-*-requests headers on every
// answer, a 429 the SDK raises as RateLimitError once the key's requests are used up, a new window after the reset,
// keys counted apart, and one count shared by every instance on one Redis.
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashClientKey } from '../../../src/limits/limit-settings.js';
import { sample, scrape } from '../../support/metrics.js';
import { eventually, startRecallWithMock, startTwoOnRedis, type RecallWithMock, type TwoOnRedis } from '../../support/recall.js';

const LIMIT = 3;
const chat = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] });

async function rateLimitErrorOf(request: Promise<unknown>): Promise<InstanceType<typeof OpenAI.RateLimitError>> {
  const err = await request.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.RateLimitError);
  return err as InstanceType<typeof OpenAI.RateLimitError>;
}

describe('requests per minute, in memory', () => {
  let setup: RecallWithMock;
  // A short window so that the test can see one end; the count and the headers do not depend on its length.
  const WINDOW_MS = 1_500;

  beforeAll(async () => {
    setup = await startRecallWithMock({ 'limits.requests_per_minute': LIMIT }, { limitWindowMs: WINDOW_MS });
  });
  afterAll(() => setup.close());

  it('counts down in OpenAI headers, answers 429 in OpenAI shape past the limit, and lets requests in again after the reset', async () => {
    const sdk = setup.recall.client({ apiKey: 'sk-limits-alpha-0001' });
    const remaining: string[] = [];
    for (let i = 0; i < LIMIT; i++) {
      const { response } = await sdk.chat.completions.create(chat(`count ${i}`)).withResponse();
      expect(response.headers.get('x-ratelimit-limit-requests')).toBe(String(LIMIT));
      expect(response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?m?s$/);
      remaining.push(response.headers.get('x-ratelimit-remaining-requests')!);
    }
    expect(remaining).toEqual(['2', '1', '0']);

    const upstreamBefore = setup.mock.stats().requests;
    const err = await rateLimitErrorOf(sdk.chat.completions.create(chat('one too many')));
    expect(err.status).toBe(429);
    expect(err.type).toBe('requests');
    expect(err.code).toBe('rate_limit_exceeded');
    expect(err.message).toMatch(/Rate limit reached for requests: limit 3 per minute/);
    expect(Number(err.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(err.headers.get('x-ratelimit-limit-requests')).toBe(String(LIMIT));
    expect(err.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(setup.mock.stats().requests).toBe(upstreamBefore);

    // A cache hit is a request too: it is limited like any other. A large upload still gets to read its 429.
    await rateLimitErrorOf(sdk.chat.completions.create(chat('count 0')));
    const large = await fetch(`${setup.recall.baseURL}/chat/completions`, {
      method: 'POST', headers: { authorization: 'Bearer sk-limits-alpha-0001', 'content-type': 'application/json' }, body: JSON.stringify(chat('x'.repeat(4 * 1024 * 1024))),
    });
    expect(large.status).toBe(429);

    const metrics = await scrape(setup.recall.url);
    expect(sample(metrics, 'recall_rate_limited_requests_total', { limit: 'requests', route: '/v1/chat/completions' })).toBe(3);
    const stats = await (await fetch(`${setup.recall.url}/recall/stats`)).json() as { rate_limited: { requests: number; tokens: number } };
    expect(stats.rate_limited).toEqual({ requests: 3, tokens: 0 });

    // Once the window is over, the key has its full allowance again.
    let after: Response | undefined;
    await eventually(async () => {
      after = await fetch(`${setup.recall.baseURL}/chat/completions`, {
        method: 'POST', headers: { authorization: 'Bearer sk-limits-alpha-0001', 'content-type': 'application/json' }, body: JSON.stringify(chat('after the reset')),
      });
      return after.status === 200;
    }, 'the window resets');
    expect(after!.headers.get('x-ratelimit-remaining-requests')).toBe(String(LIMIT - 1));
  });

  it('keeps two API keys apart: one used up does not limit the other', async () => {
    const beta = setup.recall.client({ apiKey: 'sk-limits-beta-0002' });
    const gamma = setup.recall.client({ apiKey: 'sk-limits-gamma-0003' });
    for (let i = 0; i < LIMIT; i++) await beta.chat.completions.create(chat(`beta ${i}`));
    await rateLimitErrorOf(beta.chat.completions.create(chat('beta again')));
    const { response } = await gamma.chat.completions.create(chat('gamma first')).withResponse();
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe(String(LIMIT - 1));
  });

  it('limits forwarded routes (/v1/models) and leaves /healthz, /metrics and /recall/stats alone', async () => {
    const headers = { authorization: 'Bearer sk-limits-delta-0004' };
    const models = await fetch(`${setup.recall.baseURL}/models`, { headers });
    expect(models.headers.get('x-ratelimit-remaining-requests')).toBe(String(LIMIT - 1));
    for (const path of ['/healthz', '/metrics', '/recall/stats']) {
      const response = await fetch(`${setup.recall.url}${path}`, { headers });
      expect(response.status, path).toBe(200);
      expect(response.headers.get('x-ratelimit-limit-requests'), path).toBeNull();
    }
  });

  it('never writes the API keys into the log', () => {
    const log = setup.recall.logText();
    expect(log).toContain('"status":429');
    for (const key of ['sk-limits-alpha-0001', 'sk-limits-beta-0002', 'sk-limits-gamma-0003', 'sk-limits-delta-0004']) expect(log).not.toContain(key);
  });
});

describe('requests per minute, per key and per group', () => {
  let setup: RecallWithMock;

  beforeAll(async () => {
    setup = await startRecallWithMock({
      'limits.requests_per_minute': 5,
      'limits.groups': [{ name: 'small', requests_per_minute: 1 }],
      'auth.keys': [{ name: 'tiny', hash: hashClientKey('sk-group-small-0001'), group: 'small' }, { name: 'roomy', hash: hashClientKey('sk-own-limit-0002'), group: 'small', requests_per_minute: 2 }],
    });
  });
  afterAll(() => setup.close());

  it('gives a key its group\'s limit, its own limit over its group\'s, and any other key the default', async () => {
    const limitOf = async (apiKey: string) => (await setup.recall.client({ apiKey }).chat.completions.create(chat(`who is ${apiKey}`)).withResponse())
      .response.headers.get('x-ratelimit-limit-requests');
    expect(await limitOf('sk-group-small-0001')).toBe('1');
    expect(await limitOf('sk-own-limit-0002')).toBe('2');
    expect(await limitOf('sk-not-listed-0003')).toBe('5');
    await rateLimitErrorOf(setup.recall.client({ apiKey: 'sk-group-small-0001' }).chat.completions.create(chat('second')));
  });

  it('reads a key the same way whether it comes as a Bearer token or as Azure\'s api-key: one key, one limit, one count', async () => {
    const send = (headers: Record<string, string>) => fetch(`${setup.recall.baseURL}/chat/completions`, {
      method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(chat('either header')),
    });
    const bearer = await send({ authorization: 'Bearer sk-either-header-0004' });
    const azure = await send({ 'api-key': 'sk-either-header-0004' });
    expect([bearer.status, azure.status]).toEqual([200, 200]);
    expect(bearer.headers.get('x-ratelimit-remaining-requests')).toBe('4');
    expect(azure.headers.get('x-ratelimit-remaining-requests')).toBe('3');
    // A listed key is found through either header: 'tiny' (group small, 1 per minute) is used up by its Bearer request.
    expect((await send({ authorization: 'Bearer sk-group-small-0001' })).headers.get('x-ratelimit-limit-requests')).toBe('1');
    expect((await send({ 'api-key': 'sk-group-small-0001' })).status).toBe(429);
  });

  it('shows Recall\'s limit over the upstream\'s x-ratelimit headers, and an upstream 429 with its own', async () => {
    const sdk = setup.recall.client({ apiKey: 'sk-upstream-headers-0004' });
    const { response } = await sdk.chat.completions.create(chat('with upstream headers'), { headers: { 'x-mock-ratelimit-headers': 'on' } }).withResponse();
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('5');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('4');
    // No token budget here: the upstream's token headers pass through.
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('30000000');

    // A wait longer than upstream.retry_after_max_ms: the upstream's 429 reaches the client as it is.
    const err = await rateLimitErrorOf(sdk.chat.completions.create(chat('upstream refuses'), { headers: { 'x-mock-fault': '429', 'x-mock-retry-after': '100' } }));
    expect(err.headers.get('retry-after')).toBe('100');
    expect(err.headers.get('x-ratelimit-limit-requests')).toBe('60');
  });
});

describe('requests per minute, shared by instances on one Redis', () => {
  let pair: TwoOnRedis;

  beforeAll(async () => {
    // No semantic tier: its Redis feed is not what these tests are about (and it reports a crashed Redis on its own).
    pair = await startTwoOnRedis({ 'limits.requests_per_minute': LIMIT, 'semantic.enabled': false });
  });
  afterAll(() => pair.close());

  it('counts one key\'s requests on both instances against one limit', async () => {
    const apiKey = 'sk-limits-shared-0005';
    const first = pair.first.client({ apiKey });
    const other = pair.second.client({ apiKey });
    const remaining: string[] = [];
    for (const [i, sdk] of [first, other, first].entries()) {
      const { response } = await sdk.chat.completions.create(chat(`shared ${i}`)).withResponse();
      remaining.push(response.headers.get('x-ratelimit-remaining-requests')!);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const err = await rateLimitErrorOf(other.chat.completions.create(chat('shared, one too many')));
    expect(err.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    // Another key on the same Redis has its own count.
    const { response } = await pair.second.client({ apiKey: 'sk-limits-shared-0006' }).chat.completions.create(chat('other key')).withResponse();
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe(String(LIMIT - 1));

    // The counters are kept under the key's HMAC: no key is ever written to Redis.
    const client = new Redis(pair.redis.url);
    try {
      const keys = await client.keys('*');
      expect(keys.filter((k) => k.startsWith(`recall-limits:${pair.prefix}requests:`))).toHaveLength(2);
      expect(keys.join('\n')).not.toContain('sk-limits-shared');
    } finally {
      client.disconnect();
    }
  });

  it('lets requests through while Redis is down (fail open)', async () => {
    await pair.redis.crash();
    const sdk = pair.first.client({ apiKey: 'sk-limits-shared-0005' });
    const { response } = await sdk.chat.completions.create(chat('while Redis is down')).withResponse();
    expect(response.status).toBe(200);
    // No count could be read: none is made up.
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBeNull();
  });
});
