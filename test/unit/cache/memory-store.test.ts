import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../src/cache/memory-store.js';

const entry = (text: string, storedAt: number, ttlMs = 60_000) => ({ body: Buffer.from(text), storedAt, expiresAt: storedAt + ttlMs });

describe('MemoryStore', () => {
  it('returns what was set until it expires', async () => {
    let now = 1_000;
    const store = new MemoryStore({ maxEntries: 10, maxBytes: 1e6 }, () => now);
    await store.set('k', entry('v', now, 5_000));
    expect((await store.get('k'))?.body.toString()).toBe('v');
    now += 5_000;
    expect(await store.get('k')).toBeUndefined();
    expect(store.size).toBe(0);
    expect(store.sizeBytes).toBe(0);
  });

  it('evicts the least recently used entry past the entry limit', async () => {
    const store = new MemoryStore({ maxEntries: 2, maxBytes: 1e6 }, () => 0);
    await store.set('a', entry('1', 0));
    await store.set('b', entry('2', 0));
    await store.get('a');
    await store.set('c', entry('3', 0));
    expect(await store.get('b')).toBeUndefined();
    expect(await store.get('a')).toBeDefined();
    expect(await store.get('c')).toBeDefined();
    expect(store.evictions).toBe(1);
  });

  it('keeps its byte total within the limit', async () => {
    const store = new MemoryStore({ maxEntries: 1000, maxBytes: 2_000 }, () => 0);
    for (let i = 0; i < 20; i++) await store.set(`k${i}`, entry('x'.repeat(300), 0));
    expect(store.sizeBytes).toBeLessThanOrEqual(2_000);
    expect(store.size).toBeGreaterThan(0);
    expect(await store.get('k19')).toBeDefined();
    expect(await store.get('k0')).toBeUndefined();
  });

  it('replaces, deletes and clears', async () => {
    const store = new MemoryStore({ maxEntries: 10, maxBytes: 1e6 }, () => 0);
    await store.set('k', entry('one', 0));
    await store.set('k', entry('two', 0));
    expect(store.size).toBe(1);
    expect((await store.get('k'))?.body.toString()).toBe('two');
    expect(await store.delete('k')).toBe(true);
    expect(await store.delete('k')).toBe(false);
    await store.set('k', entry('three', 0));
    await store.clear();
    expect(store.size).toBe(0);
    expect(store.sizeBytes).toBe(0);
  });
});

describe('MemoryStore removal notices', () => {
  it('names every key that leaves (evicted, expired, deleted, purged, cleared) and not one replaced', async () => {
    let now = 0;
    const store = new MemoryStore({ maxEntries: 2, maxBytes: 1e6 }, () => now);
    const removed: string[] = [];
    store.onRemoved((key) => removed.push(key));
    await store.set('a', entry('1', 0));
    await store.set('a', entry('1 again', 0));
    expect(removed).toEqual([]);
    await store.set('b', entry('2', 0, 10));
    await store.set('c', entry('3', 0));
    expect(removed).toEqual(['a']);
    now = 10;
    expect(await store.get('b')).toBeUndefined();
    expect(removed).toEqual(['a', 'b']);
    await store.set('ns:d', entry('4', 0));
    expect(await store.delete('c')).toBe(true);
    expect(await store.delete('c')).toBe(false);
    expect(await store.deletePrefix('ns:')).toBe(1);
    await store.set('e', entry('5', 0));
    await store.clear();
    expect(removed).toEqual(['a', 'b', 'c', 'ns:d', 'e']);
  });
});

describe('MemoryStore at its limit', () => {
  it('evicts exactly the least recently used entries, in order, over many rounds', async () => {
    const store = new MemoryStore({ maxEntries: 100, maxBytes: 1e9 }, () => 0);
    for (let i = 0; i < 5_000; i++) {
      await store.set(`k${i}`, entry(String(i), 0));
      if (i % 10 === 0) await store.get('k0');
    }
    expect(store.size).toBe(100);
    expect(store.evictions).toBe(4_900);
    expect(await store.get('k0')).toBeDefined();
    expect(await store.get('k4900')).toBeUndefined();
    expect(await store.get('k4901')).toBeDefined();
    expect([...store.live()].map(([key]) => key).slice(-2)).toEqual(['k0', 'k4901']);
  });
});
