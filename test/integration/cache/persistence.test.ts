// A single instance without Redis keeps its cache across a restart when cache.memory.persist_path is set.
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall } from '../../support/recall.js';

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  await mock.close();
});

const chat = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] });

describe('memory store persistence', () => {
  it('answers from the cache after a restart, per tenant, and drops expired entries', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'recall-persist-')), 'cache.snapshot');
    const settings = { 'upstream.url': mock.baseURL, 'cache.memory.persist_path': path };
    const first = await startRecall(settings);
    const kept = await first.client({ apiKey: 'sk-persist-a' }).chat.completions.create(chat('kept across restarts'));
    await first.client({ apiKey: 'sk-persist-a' }).chat.completions.create(chat('short lived'), { headers: { 'x-recall-ttl': '1' } });
    await first.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);

    await new Promise((r) => setTimeout(r, 1_100));
    mock.reset();
    const second = await startRecall(settings);
    try {
      const again = await second.client({ apiKey: 'sk-persist-a' }).chat.completions.create(chat('kept across restarts')).withResponse();
      expect(again.response.headers.get('x-recall-cache')).toBe('HIT');
      expect(again.data).toEqual(kept);
      const otherTenant = await second.client({ apiKey: 'sk-persist-b' }).chat.completions.create(chat('kept across restarts')).withResponse();
      expect(otherTenant.response.headers.get('x-recall-cache')).toBe('MISS');
      const expired = await second.client({ apiKey: 'sk-persist-a' }).chat.completions.create(chat('short lived')).withResponse();
      expect(expired.response.headers.get('x-recall-cache')).toBe('MISS');
      expect(second.logLines().some((l) => l.msg === 'cache snapshot loaded' && l.loaded === 1 && l.expired === 1)).toBe(true);
    } finally {
      await second.close();
    }
  });

  it('starts empty, with a warning, from a file that is not a snapshot', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'recall-persist-')), 'cache.snapshot');
    writeFileSync(path, 'this is not a snapshot\n');
    const recall = await startRecall({ 'upstream.url': mock.baseURL, 'cache.memory.persist_path': path });
    try {
      const answer = await recall.client().chat.completions.create(chat('after a bad file')).withResponse();
      expect(answer.response.status).toBe(200);
      expect(recall.logLines().some((l) => l.msg === 'cache snapshot has an unknown format; starting empty')).toBe(true);
    } finally {
      await recall.close();
    }
  });
});
