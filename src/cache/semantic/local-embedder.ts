// The built-in embedder: hashed word, word-pair and character-trigram features with sublinear (1 + log tf) weights,
// signed feature hashing into a fixed number of dimensions, L2-normalised. Offline, no model, microseconds a prompt.
// It measures surface similarity, not meaning: paraphrases score lower than with a learned model, which is why the
// guards and a high threshold carry the safety (see docs/SEMANTIC.md).
import type { Embedder } from './embedder.js';
import { normalise } from './embedder.js';

/** Weights of the feature families: whole words carry the most, trigrams absorb typos and inflections. */
const FAMILY_WEIGHT = { w: 1, p: 0.7, c: 0.35 } as const;

const WORD_PATTERN = /[\p{L}\p{N}_]+(?:['’][\p{L}]+)?/gu;

export class LocalEmbedder implements Embedder {
  readonly name = 'local';

  constructor(readonly dimensions: number) {}

  embed(texts: readonly string[]): Promise<Float32Array[]> {
    return Promise.resolve(texts.map((text) => this.embedOne(text)));
  }

  embedOne(text: string): Float32Array {
    const counts = new Map<string, number>();
    const add = (feature: string) => counts.set(feature, (counts.get(feature) ?? 0) + 1);
    const words = text.normalize('NFKC').toLowerCase().match(WORD_PATTERN) ?? [];
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      add(`w${word}`);
      if (i > 0) add(`p${words[i - 1]} ${word}`);
      const padded = ` ${word} `;
      for (let j = 0; j + 3 <= padded.length; j++) add(`c${padded.slice(j, j + 3)}`);
    }
    const vector = new Float32Array(this.dimensions);
    for (const [feature, count] of counts) {
      const hash = fnv1a(feature);
      // Sublinear: a word said five times is not five times the evidence. The hash's top bit picks the sign, so
      // collisions cancel out on average instead of piling up.
      const value = (1 + Math.log(count)) * FAMILY_WEIGHT[feature[0] as 'w' | 'p' | 'c'];
      const slot = hash % this.dimensions;
      vector[slot] = (vector[slot] ?? 0) + (hash & 0x80000000 ? -value : value);
    }
    return normalise(vector);
  }
}

/** 32-bit FNV-1a over UTF-16 code units: fast, and stable across processes and versions (vectors are shared). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
