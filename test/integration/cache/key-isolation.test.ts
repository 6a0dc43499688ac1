// No cache-key collision across routes, tenants or namespaces: one body, sent everywhere it is valid, gets a
// distinct x-recall-key for each, and no first request in any partition is answered from another's entry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRecallWithMock, type RecallWithMock } from '../../support/recall.js';

let pair: RecallWithMock;

beforeAll(async () => {
  pair = await startRecallWithMock();
});
afterAll(async () => {
  await pair.close();
});

// Valid for chat completions, completions and embeddings alike.
const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `isolation ${process.pid}` }], prompt: `isolation ${process.pid}`, input: `isolation ${process.pid}`, temperature: 0 });

async function send(path: string, apiKey: string, namespace?: string) {
  const response = await fetch(`${pair.recall.baseURL}${path}`, {
    method: 'POST', body,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}`, ...(namespace === undefined ? {} : { 'x-recall-namespace': namespace }) },
  });
  expect(response.status).toBe(200);
  await response.arrayBuffer();
  return { key: response.headers.get('x-recall-key'), cache: response.headers.get('x-recall-cache') };
}

describe('cache partitions', () => {
  it('the same body on other routes, tenants and namespaces never shares a key or a hit', async () => {
    const partitions: [string, string, string | undefined][] = [
      ['/chat/completions', 'sk-isolation-tenant-a', undefined],
      ['/completions', 'sk-isolation-tenant-a', undefined],
      ['/chat/completions', 'sk-isolation-tenant-b', undefined],
      ['/completions', 'sk-isolation-tenant-b', undefined],
      ['/chat/completions', 'sk-isolation-tenant-a', 'team-1'],
      ['/completions', 'sk-isolation-tenant-a', 'team-1'],
      ['/chat/completions', 'sk-isolation-tenant-b', 'team-1'],
      ['/chat/completions', 'sk-isolation-tenant-a', 'team-2'],
    ];
    const keys: string[] = [];
    for (const [path, apiKey, namespace] of partitions) {
      const first = await send(path, apiKey, namespace);
      expect(first.cache, `${path} ${apiKey} ${namespace}`).toBe('MISS');
      keys.push(first.key!);
    }
    expect(new Set(keys).size).toBe(partitions.length);
    // Embeddings (keyed per input) are a partition of their own too.
    expect((await send('/embeddings', 'sk-isolation-tenant-a')).cache).toBe('MISS');
    // Each partition did store its entry: a repeat in each is a HIT under its own key.
    for (const [i, [path, apiKey, namespace]] of partitions.entries()) {
      expect(await send(path, apiKey, namespace)).toEqual({ key: keys[i], cache: 'HIT' });
    }
  });
});
