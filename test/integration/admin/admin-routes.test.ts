// The operator's view: purge by key, namespace or all, inspect an entry; only with the admin token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall, type RunningRecall } from '../../support/recall.js';

const TOKEN = 'admin-token-for-tests-123';
let mock: MockUpstream;
let recall: RunningRecall;
let n = 0;

beforeAll(async () => {
  mock = await startMockUpstream();
  recall = await startRecall({ 'upstream.url': mock.baseURL, 'admin.token': TOKEN });
});
afterAll(async () => {
  await recall.close();
  await mock.close();
});

async function ask(namespace = 'default') {
  n++;
  const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `admin question ${n}` }] };
  const first = await recall.client().chat.completions.create(request, { headers: { 'x-recall-namespace': namespace } }).withResponse();
  const repeat = async () => (await recall.client().chat.completions.create(request, { headers: { 'x-recall-namespace': namespace } }).withResponse()).response.headers.get('x-recall-cache');
  return { key: first.response.headers.get('x-recall-key')!, repeat };
}

function admin(path: string, init: { method?: string; body?: unknown; token?: string } = {}) {
  return fetch(`${recall.url}/recall/admin${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${init.token ?? TOKEN}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
}

describe('admin routes', () => {
  it('refuse a missing or wrong token with 401 in OpenAI shape', async () => {
    const wrong = await admin('/purge', { method: 'POST', body: { all: true }, token: 'nope' });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('invalid_admin_token');
    const none = await fetch(`${recall.url}/recall/admin/purge`, { method: 'POST' });
    expect(none.status).toBe(401);
  });

  it.each([
    ['a prefix of the right token', TOKEN.slice(0, -1)],
    ['the right token with more after it', `${TOKEN}x`],
    ['a token of the same length that differs in its last character', `${TOKEN.slice(0, -1)}4`],
    ['a far longer token', TOKEN.repeat(50)],
    ['an empty token', ''],
  ])('refuse %s with 401', async (_name, token) => {
    const answer = await admin('/purge', { method: 'POST', body: { all: true }, token });
    expect(answer.status).toBe(401);
    expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('invalid_admin_token');
  });

  it('refuse the right token sent without the Bearer scheme, and take the scheme in any case', async () => {
    const bare = await fetch(`${recall.url}/recall/admin/entries/default:${'0'.repeat(64)}`, { headers: { authorization: TOKEN } });
    expect(bare.status).toBe(401);
    const lower = await fetch(`${recall.url}/recall/admin/entries/default:${'0'.repeat(64)}`, { headers: { authorization: `bearer ${TOKEN}` } });
    expect(lower.status).toBe(404);
  });

  it('inspect an entry by the key a proxied answer names', async () => {
    const { key, repeat } = await ask();
    expect(key).toMatch(/^default:[0-9a-f]{64}$/);
    expect(await repeat()).toBe('HIT');
    const inspected = await admin(`/entries/${key}`);
    expect(inspected.status).toBe(200);
    const body = (await inspected.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ key, namespace: 'default', hits: 1 });
    expect(body.size_bytes as number).toBeGreaterThan(50);
    expect(body.ttl_s as number).toBeGreaterThan(86_000);
    const missing = await admin(`/entries/default:${'0'.repeat(64)}`);
    expect(missing.status).toBe(404);
  });

  it('inspecting counts no hit and does not keep an entry from being evicted first', async () => {
    const small = await startRecall({ 'upstream.url': mock.baseURL, 'admin.token': TOKEN, 'cache.memory.max_entries': 2 });
    try {
      const chat = (content: string) => small.client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }).withResponse();
      const inspect = async (key: string) => (await (await fetch(`${small.url}/recall/admin/entries/${key}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { hits: number };
      const oldest = (await chat('the oldest entry')).response.headers.get('x-recall-key')!;
      await chat('the newer entry');
      expect((await inspect(oldest)).hits).toBe(0);
      expect((await inspect(oldest)).hits).toBe(0);
      // Still the least recently used: a third entry evicts it, not the newer one.
      await chat('a third entry');
      expect((await chat('the newer entry')).response.headers.get('x-recall-cache')).toBe('HIT');
      expect((await chat('the oldest entry')).response.headers.get('x-recall-cache')).toBe('MISS');
    } finally {
      await small.close();
    }
  });

  it('purge one key', async () => {
    const a = await ask();
    const b = await ask();
    const res = await admin('/purge', { method: 'POST', body: { key: a.key } });
    expect(await res.json()).toEqual({ purged: 1 });
    expect(await a.repeat()).toBe('MISS');
    expect(await b.repeat()).toBe('HIT');
  });

  it('purge a namespace, leaving others', async () => {
    const inNs = await ask('team-x');
    const inNs2 = await ask('team-x');
    const outside = await ask('team-y');
    const res = await admin('/purge', { method: 'POST', body: { namespace: 'team-x' } });
    expect(await res.json()).toEqual({ purged: 2 });
    expect(await inNs.repeat()).toBe('MISS');
    expect(await inNs2.repeat()).toBe('MISS');
    expect(await outside.repeat()).toBe('HIT');
  });

  it('purge all', async () => {
    const a = await ask();
    const res = await admin('/purge', { method: 'POST', body: { all: true } });
    expect(((await res.json()) as { purged: number }).purged).toBeGreaterThanOrEqual(1);
    expect(await a.repeat()).toBe('MISS');
  });

  it('reject a purge body that is not exactly one of key, namespace, all', async () => {
    for (const body of [{}, { key: 'nothex' }, { all: false }, { namespace: 'a', all: true }]) {
      const res = await admin('/purge', { method: 'POST', body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    }
  });
});
