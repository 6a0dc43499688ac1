// The vector index: partitions never mix, the best candidates come first, flat and HNSW partitions agree, bounds hold.
import { describe, expect, it } from 'vitest';
import { DEFAULT_HNSW, FLAT_LIMIT, VectorIndex } from '../../../../src/cache/semantic/vector-index.js';
import { LocalEmbedder } from '../../../../src/cache/semantic/local-embedder.js';

const embedder = new LocalEmbedder(64);
const meta = (partition: string, exactKey: string, text = exactKey, expiresAt = Infinity) => ({ partition, exactKey, text, expiresAt });

describe('vector index', () => {
  it('finds the best vector of the partition and nothing of another partition', () => {
    const index = new VectorIndex(64, 100);
    index.add(embedder.embedOne('how do vaccines work'), meta('p1', 'k1'));
    index.add(embedder.embedOne('how do vaccines work'), meta('p2', 'k2'));
    index.add(embedder.embedOne('what is a black hole'), meta('p1', 'k3'));
    const found = index.search('p1', embedder.embedOne('How do vaccines work?'), 0.5);
    expect(found.map((c) => c.meta.exactKey)).toEqual(['k1']);
    expect(found[0]!.similarity).toBeCloseTo(1, 5);
    expect(index.search('p3', embedder.embedOne('how do vaccines work'), 0)).toEqual([]);
  });

  it('a partition that outgrows the flat scan moves into HNSW and still finds exact matches', () => {
    const index = new VectorIndex(64, 10_000);
    const count = FLAT_LIMIT + 100;
    for (let i = 0; i < count; i++) index.add(embedder.embedOne(`question number ${i} about topic ${i * 7}`), meta('big', `k${i}`));
    let found = 0;
    for (let i = 0; i < count; i += 37) {
      const best = index.search('big', embedder.embedOne(`question number ${i} about topic ${i * 7}`), 0.99)[0];
      if (best?.meta.exactKey === `k${i}`) found++;
    }
    expect(found).toBe(Math.ceil(count / 37));
    expect(index.size).toBe(count);
    index.removeKey('k0');
    expect(index.search('big', embedder.embedOne('question number 0 about topic 0'), 0.99).map((c) => c.meta.exactKey)).not.toContain('k0');
  });

  it('a flat partition finds every remaining vector, best first, after removals from its middle', () => {
    const index = new VectorIndex(64, 10_000);
    const count = FLAT_LIMIT - 1;
    const text = (i: number) => `flat question ${i} about topic ${i * 11}`;
    for (let i = 0; i < count; i++) index.add(embedder.embedOne(text(i)), meta('flat', `k${i}`));
    const removed = new Set([0, 3, 50, 51, 52, count - 1]);
    for (const i of removed) index.removeKey(`k${i}`);
    expect(index.size).toBe(count - removed.size);
    for (let i = 0; i < count; i++) {
      const found = index.search('flat', embedder.embedOne(text(i)), 0);
      if (removed.has(i)) {
        expect(found.map((c) => c.meta.exactKey)).not.toContain(`k${i}`);
        continue;
      }
      expect(found[0]?.meta.exactKey).toBe(`k${i}`);
      expect(found[0]!.similarity).toBeCloseTo(1, 5);
      expect(found.map((c) => c.similarity)).toEqual([...found.map((c) => c.similarity)].sort((a, b) => b - a));
    }
    // Down to a few vectors, scanned in JavaScript: the same answers.
    for (let i = 0; i < count; i++) if (!removed.has(i) && i > 5) index.removeKey(`k${i}`);
    expect(index.size).toBe(4);
    expect(index.search('flat', embedder.embedOne(text(5)), 0.99).map((c) => c.meta.exactKey)).toEqual(['k5']);
  });

  it('keeps at most maxVectors, dropping the oldest, and one vector per entry', () => {
    const index = new VectorIndex(64, 2);
    index.add(embedder.embedOne('one'), meta('p', 'a'));
    index.add(embedder.embedOne('two'), meta('p', 'b'));
    index.add(embedder.embedOne('two'), meta('p', 'b'));
    expect(index.size).toBe(2);
    index.add(embedder.embedOne('three'), meta('p', 'c'));
    expect(index.size).toBe(2);
    expect(index.search('p', embedder.embedOne('one'), 0.99)).toEqual([]);
    expect(index.bytes()).toBeGreaterThan(2 * 64 * 4);
  });

  it('drops vectors of expired entries when swept, and of purged entries by key, namespace or all', () => {
    const index = new VectorIndex(64, 100);
    index.add(embedder.embedOne('soon gone'), meta('p', 'default:a', 'soon gone', 1_000));
    index.add(embedder.embedOne('kept longer'), meta('p', 'default:b', 'kept longer', 5_000));
    index.add(embedder.embedOne('other namespace'), meta('p', 'team-x:c', 'other namespace', 5_000));
    index.add(embedder.embedOne('prefix lookalike'), meta('p', 'team-xy:d', 'prefix lookalike', 5_000));
    expect(index.removeExpired(999)).toBe(0);
    expect(index.removeExpired(1_000)).toBe(1);
    expect(index.search('p', embedder.embedOne('soon gone'), 0.99)).toEqual([]);
    expect(index.size).toBe(3);
    index.purge({ namespace: 'team-x' });
    expect(index.search('p', embedder.embedOne('other namespace'), 0.99)).toEqual([]);
    expect(index.search('p', embedder.embedOne('prefix lookalike'), 0.99).map((c) => c.meta.exactKey)).toEqual(['team-xy:d']);
    index.purge({ key: 'default:b' });
    expect(index.size).toBe(1);
    index.purge({ all: true });
    expect(index.size).toBe(0);
    expect(index.search('p', embedder.embedOne('prefix lookalike'), 0.5)).toEqual([]);
  });

  it('adds a batch (an index built from Redis): one vector per entry, the last one winning, the newest within maxVectors', () => {
    const index = new VectorIndex(64, FLAT_LIMIT + 50);
    const entries = Array.from({ length: FLAT_LIMIT + 100 }, (_, i) => ({ vector: embedder.embedOne(`batch question ${i} on subject ${i * 3}`), meta: meta('p', `k${i}`) }));
    entries.push({ vector: embedder.embedOne('the replacement of k500'), meta: meta('p', 'k500') });
    entries.push({ vector: new Float32Array(32), meta: meta('p', 'wrong-length') });
    expect(index.addMany(entries)).toBe(FLAT_LIMIT + 50);
    expect(index.size).toBe(FLAT_LIMIT + 50);
    // The oldest 50 did not fit.
    expect(index.search('p', embedder.embedOne('batch question 10 on subject 30'), 0.99)).toEqual([]);
    expect(index.search('p', embedder.embedOne(`batch question ${FLAT_LIMIT + 99} on subject ${(FLAT_LIMIT + 99) * 3}`), 0.99)[0]?.meta.exactKey).toBe(`k${FLAT_LIMIT + 99}`);
    expect(index.search('p', embedder.embedOne('the replacement of k500'), 0.99)[0]?.meta.exactKey).toBe('k500');
    expect(index.search('p', embedder.embedOne('batch question 500 on subject 1500'), 0.99)).toEqual([]);
  });

  for (const quantization of ['f16', 'i8'] as const) {
    it(`a ${quantization} graph finds the same vectors, with similarities close to the exact ones`, () => {
      const index = new VectorIndex(64, 10_000, { ...DEFAULT_HNSW, quantization });
      const texts = Array.from({ length: FLAT_LIMIT + 20 }, (_, i) => `quantised question ${i} about ${i % 7} things`);
      const entries = texts.map((text, i) => ({ vector: embedder.embedOne(text), meta: meta('q', `k${i}`) }));
      index.addMany(entries);
      const full = new VectorIndex(64, 10_000, { ...DEFAULT_HNSW, quantization: 'f32' });
      full.addMany(entries);
      for (const i of [0, 77, FLAT_LIMIT + 19]) {
        const best = index.search('q', embedder.embedOne(texts[i]!), 0.9)[0];
        expect(best?.meta.exactKey).toBe(`k${i}`);
        expect(best!.similarity).toBeCloseTo(1, 1);
      }
      // Smaller vectors in the graph: fewer bytes than the same index in f32.
      expect(index.bytes()).toBeLessThan(full.bytes());
    });
  }

  it('refuses a vector of another length', () => {
    expect(new VectorIndex(64, 10).add(new Float32Array(32), meta('p', 'k'))).toBe(false);
  });
});
