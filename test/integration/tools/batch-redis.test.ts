// Cached tool results in Redis are shared by instances, and a write on one instance invalidates them for the other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockTools, type MockTools } from '../../../loadtest/mock-tools.js';
import { startRecall, type RunningRecall } from '../../support/recall.js';
import { startThrowawayRedis } from '../../support/redis.js';

let tools: MockTools;
let redis: Awaited<ReturnType<typeof startThrowawayRedis>>;
let first: RunningRecall;
let second: RunningRecall;

beforeAll(async () => {
  tools = await startMockTools();
  redis = await startThrowawayRedis();
  const settings = {
    'redis.url': redis.url, 'redis.key_prefix': `recall-tools-test-${process.pid}:`, 'redis.command_timeout_ms': 500,
    'tools.registry': [
      { name: 'weather', url: tools.toolUrl('weather'), access: 'read', cache_ttl_s: 300 },
      { name: 'save', url: tools.toolUrl('save'), access: 'write', affects: ['weather'] },
    ],
  };
  first = await startRecall(settings);
  second = await startRecall(settings);
});

afterAll(async () => {
  await first?.close();
  await second?.close();
  await redis?.stop();
  await tools?.close();
});

async function batch(recall: RunningRecall, body: unknown): Promise<any> {
  const response = await fetch(`${recall.url}/recall/tools/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return response.json();
}

describe('tool results cached in Redis', () => {
  it('are shared across instances and dropped for all by a write that affects the tool', async () => {
    const ask = { calls: [{ id: 'w', name: 'weather', arguments: { city: 'Bergen', units: 'c' } }] };
    expect((await batch(first, ask)).results[0]).toMatchObject({ status: 'ok', cached: false });
    // Argument order does not matter: the key is over canonical JSON.
    const reordered = { calls: [{ id: 'w', name: 'weather', arguments: { units: 'c', city: 'Bergen' } }] };
    expect((await batch(second, reordered)).results[0]).toMatchObject({ status: 'ok', cached: true, result: { n: 1 } });
    expect((await batch(first, { calls: [{ id: 's', name: 'save', arguments: {} }] })).results[0]).toMatchObject({ status: 'ok' });
    expect((await batch(second, ask)).results[0]).toMatchObject({ status: 'ok', cached: false, result: { n: 2 } });
  });
});
