// The exact tier on Redis as users run it: instances share entries (and partitions), and a Redis that dies
// mid-run costs hits, never requests; hits come back by themselves when it returns.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall, type RunningRecall } from '../../support/recall.js';
import { startThrowawayRedis } from '../../support/redis.js';

type Redis = Awaited<ReturnType<typeof startThrowawayRedis>>;

let mock: MockUpstream;
let redis: Redis;
let a: RunningRecall;
let b: RunningRecall;
let n = 0;

const chat = () => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `redis question ${++n} ${Date.now()}` }] });
const outcome = async (recall: RunningRecall, request: ReturnType<typeof chat>, apiKey = 'sk-redis-tenant') =>
  (await recall.client({ apiKey }).chat.completions.create(request).withResponse()).response.headers.get('x-recall-cache');

beforeAll(async () => {
  mock = await startMockUpstream();
  redis = await startThrowawayRedis();
  const settings = { 'upstream.url': mock.baseURL, 'redis.url': redis.url, 'redis.key_prefix': `recall-test-${process.pid}:`, 'redis.command_timeout_ms': 200 };
  a = await startRecall(settings);
  b = await startRecall(settings);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
  await mock?.close();
});

describe('exact tier on Redis', () => {
  it('an answer stored through one instance is a HIT on another, for the same tenant only', async () => {
    const request = chat();
    expect(await outcome(a, request)).toBe('MISS');
    expect(await outcome(b, request)).toBe('HIT');
    expect(await outcome(b, request, 'sk-someone-else')).toBe('MISS');
    const stream = await b.client({ apiKey: 'sk-redis-tenant' }).chat.completions.create({ ...request, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    const plain = await a.client({ apiKey: 'sk-redis-tenant' }).chat.completions.create(request);
    expect(text).toBe(plain.choices[0]?.message.content);
  });

  it('/readyz reports Redis without making Recall unready', async () => {
    const ready = await fetch(`${a.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: { redis: { status: string } } }).checks.redis.status).toBe('ready');
  });

  it('keeps answering while Redis is down, and hits resume once it is back', async () => {
    const before = chat();
    expect(await outcome(a, before)).toBe('MISS');
    await redis.crash();

    for (let i = 0; i < 5; i++) {
      const response = await a.client({ apiKey: 'sk-redis-tenant' }).chat.completions.create(chat()).withResponse();
      expect(response.response.status).toBe(200);
      expect(response.data.choices[0]?.message.content).toMatch(/\w/);
    }
    expect(await outcome(a, before)).toBe('MISS');
    const ready = await fetch(`${a.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: { redis: { ok: boolean } } }).checks.redis.ok).toBe(false);
    expect(a.logLines().some((l) => l.msg === 'cache lookup failed; answering from the upstream')).toBe(true);

    await redis.restart();
    const after = chat();
    let stored = false;
    for (let i = 0; i < 100 && !stored; i++) {
      await outcome(a, after);
      stored = (await outcome(b, after)) === 'HIT';
      if (!stored) await new Promise((r) => setTimeout(r, 50));
    }
    expect(stored).toBe(true);
  });

  it('a purge of everything keeps the partitions: instances still share entries afterwards', async () => {
    const admin = await startRecall({ 'upstream.url': mock.baseURL, 'redis.url': redis.url, 'redis.key_prefix': `recall-test-${process.pid}:`, 'admin.token': 'purge-token' });
    try {
      const purged = await fetch(`${admin.url}/recall/admin/purge`, { method: 'POST', headers: { authorization: 'Bearer purge-token', 'content-type': 'application/json' }, body: '{"all":true}' });
      expect(purged.status).toBe(200);
      const request = chat();
      expect(await outcome(a, request)).toBe('MISS');
      expect(await outcome(admin, request)).toBe('HIT');
    } finally {
      await admin.close();
    }
  });

  it('never writes an API key to Redis', async () => {
    const key = 'sk-redis-secret-key-777';
    await a.client({ apiKey: key }).chat.completions.create(chat());
    const { createConnection } = await import('node:net');
    const dump = await new Promise<string>((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port: redis.port });
      let out = '';
      socket.on('data', (d) => {
        out += d.toString('latin1');
        if (out.includes('END-OF-DUMP')) socket.end();
      });
      socket.on('end', () => resolve(out));
      socket.on('error', reject);
      // Every key and every value (strings, and the fields of the semantic tier's stream), as raw protocol text.
      socket.write('EVAL "local out = {} for _, k in ipairs(redis.call(\'KEYS\', \'*\')) do table.insert(out, k) local t = redis.call(\'TYPE\', k).ok if t == \'string\' then table.insert(out, redis.call(\'GET\', k)) elseif t == \'stream\' then for _, e in ipairs(redis.call(\'XRANGE\', k, \'-\', \'+\')) do for _, f in ipairs(e[2]) do table.insert(out, f) end end end end table.insert(out, \'END-OF-DUMP\') return out" 0\r\n');
    });
    expect(dump).toContain('END-OF-DUMP');
    expect(dump).toContain('recall-meta:');
    expect(dump).toContain('recall-test-');
    // The semantic tier's stream is dumped too: its vector, partition hash, entry key and message text.
    expect(dump).toMatch(/recall-meta:[^\r\n]*semantic/);
    expect(dump).not.toContain(key);
    expect(dump).not.toContain('redis-secret-key');
  });
});
