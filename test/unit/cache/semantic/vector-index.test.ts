// The vector index: partitions never mix, the best candidates come first, flat and HNSW partitions agree, bounds hold.
import { describe, expect, it } from 'vitest';
import { FLAT_LIMIT, VectorIndex } from '../../../../src/cache/semantic/vector-index.js';
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

  it('refuses a vector of another length', () => {
    expect(new VectorIndex(64, 10).add(new Float32Array(32), meta('p', 'k'))).toBe(false);
  });
});
