// Proxy-issued keys (auth.mode: proxy_keys): only listed keys get in, the upstream sees Recall's own key and never
// the client's, each issued key has its own cache partition and limits, and no key ever reaches the log.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashClientKey } from '../../../src/limits/limit-settings.js';
import { startRecallWithMock, type RecallWithMock } from '../../support/recall.js';

const ALICE = 'rk-issued-alice-7f3a91';
const BOB = 'rk-issued-bob-2c55e0';
const UPSTREAM_KEY = 'sk-recall-own-upstream-key';
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'What is the capital of Peru?' }] };

let setup: RecallWithMock;

beforeAll(async () => {
  setup = await startRecallWithMock({
    'auth.mode': 'proxy_keys',
    'auth.keys': [{ name: 'alice', hash: hashClientKey(ALICE), group: 'team' }, { name: 'bob', hash: hashClientKey(BOB) }],
    'limits.groups': [{ name: 'team', requests_per_minute: 100 }],
    'upstream.api_key': UPSTREAM_KEY,
  });
});
afterAll(() => setup.close());

/** Every header value the upstream received, across all recorded requests. */
function upstreamHeaderValues(): string[] {
  return setup.mock.requests().flatMap((r) => Object.values(r.headers).flatMap((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v])));
}

describe('proxy-issued keys', () => {
  it('answers 401 invalid_api_key in OpenAI\'s shape to a missing or unknown key, before anything goes upstream', async () => {
    const before = setup.mock.stats().requests;
    const missing = await fetch(`${setup.recall.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) });
    expect(missing.status).toBe(401);
    const body = await missing.json() as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
    expect(body.error.message).toMatch(/didn't provide an API key/);

    const err = await setup.recall.client({ apiKey: 'rk-made-up-key-000' }).chat.completions.create(chat).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
    expect((err as Error).message).not.toContain('rk-made-up-key-000');

    // A key the upstream itself would take is no key here either.
    const upstreamKey = await setup.recall.client({ apiKey: UPSTREAM_KEY }).models.list().then(() => undefined, (e: unknown) => e);
    expect(upstreamKey).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(setup.mock.stats().requests).toBe(before);
  });

  it('calls the upstream with Recall\'s key, never the client\'s (Bearer or api-key, cached and forwarded routes)', async () => {
    setup.mock.reset();
    await setup.recall.client({ apiKey: ALICE }).chat.completions.create(chat);
    await setup.recall.client({ apiKey: BOB }).models.list();
    const azure = await fetch(`${setup.recall.baseURL}/embeddings`, {
      method: 'POST', headers: { 'api-key': BOB, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'text-embedding-3-small', input: 'Lima' }),
    });
    expect(azure.status).toBe(200);
    const recorded = setup.mock.requests();
    expect(recorded.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/chat/completions', 'GET /v1/models', 'POST /v1/embeddings']);
    for (const request of recorded) {
      expect(request.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      expect(request.headers['api-key']).toBeUndefined();
    }
    const sent = upstreamHeaderValues().join('\n');
    expect(sent).not.toContain(ALICE);
    expect(sent).not.toContain(BOB);
  });

  it('gives each issued key its own cache partition, though the upstream key is the same for all', async () => {
    const alice = setup.recall.client({ apiKey: ALICE });
    const bob = setup.recall.client({ apiKey: BOB });
    const question = { ...chat, messages: [{ role: 'user' as const, content: 'What is the capital of Chile?' }] };
    expect((await alice.chat.completions.create(question).withResponse()).response.headers.get('x-recall-cache')).toBe('MISS');
    expect((await alice.chat.completions.create(question).withResponse()).response.headers.get('x-recall-cache')).toBe('HIT');
    expect((await bob.chat.completions.create(question).withResponse()).response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it('applies the issued key\'s group limits', async () => {
    const { response } = await setup.recall.client({ apiKey: ALICE }).models.list().withResponse();
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('100');
  });

  it('asks for an issued key on /recall/compact and /recall/tools/batch too', async () => {
    for (const path of ['/recall/compact', '/recall/tools/batch']) {
      const response = await fetch(`${setup.recall.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(response.status, path).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code, path).toBe('invalid_api_key');
    }
    const compact = await fetch(`${setup.recall.url}/recall/compact`, {
      method: 'POST', headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: chat.messages, target_tokens: 1000, strategy: 'truncation' }),
    });
    expect(compact.status).toBe(200);
  });

  it('keeps /healthz and /metrics open without a key', async () => {
    expect((await fetch(`${setup.recall.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${setup.recall.url}/metrics`)).status).toBe(200);
  });

  it('never writes a key, issued, unknown or upstream, into the log', () => {
    const log = setup.recall.logText();
    expect(log).toContain('"status":401');
    for (const key of [ALICE, BOB, UPSTREAM_KEY, 'rk-made-up-key-000']) expect(log).not.toContain(key);
  });
});
