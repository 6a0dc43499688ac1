// The built-in embedder: hashed word, word-pair and character-trigram features with sublinear (1 + log tf) weights,
// signed feature hashing into a fixed number of dimensions, L2-normalised. Offline, no model, microseconds a prompt.
// It measures surface similarity, not meaning: paraphrases score lower than with a learned model, which is why the
// guards and a high threshold carry the safety (see docs/SEMANTIC.md).
import type { Embedder } from './embedder.js';
import { normalise } from './embedder.js';
import { WORD_PATTERN } from './guards.js';

/** Weights of the feature families: whole words carry the most, trigrams absorb typos and inflections. */
const FAMILY_WEIGHT = { w: 1, p: 0.7, c: 0.35 } as const;

/**
 * Function words carry the phrasing, not the question ("can you", "what is the"); they keep a small weight, so that
 * the words that differ between two questions decide. Negations are not in here: they are content.
 */
const STOP_WORDS = new Set(('a an the of to in on at for with by from about as into and or but if then so is are was were be been being am ' +
  'do does did doing have has had can could would should will shall may might must i me my you your we our it its this that ' +
  'these those there here what whats which who how please tell give show explain describe let just some any way me up out ' +
  'there kind sort really very also get').split(' '));
const STOP_WORD_SCALE = 0.2;

export class LocalEmbedder implements Embedder {
  readonly name = 'local';

  constructor(readonly dimensions: number) {}

  embed(texts: readonly string[]): Promise<Float32Array[]> {
    return Promise.resolve(texts.map((text) => this.embedOne(text)));
  }

  embedOne(text: string): Float32Array {
    const counts = new Map<string, number>();
    const add = (feature: string, weight: number) => counts.set(feature, (counts.get(feature) ?? 0) + weight);
    const words = (text.normalize('NFKC').toLowerCase().match(WORD_PATTERN) ?? []).map((w) => w.replace(/['’]/gu, ''));
    const stems = words.map(stem);
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      const scale = STOP_WORDS.has(word) ? STOP_WORD_SCALE : 1;
      add(`w${stems[i]}`, FAMILY_WEIGHT.w * scale);
      if (i > 0) add(`p${stems[i - 1]} ${stems[i]}`, FAMILY_WEIGHT.p * (STOP_WORDS.has(words[i - 1]!) ? Math.min(scale, 0.5) : scale));
      const padded = ` ${word} `;
      for (let j = 0; j + 3 <= padded.length; j++) add(`c${padded.slice(j, j + 3)}`, FAMILY_WEIGHT.c * scale);
    }
    const vector = new Float32Array(this.dimensions);
    for (const [feature, weight] of counts) {
      const hash = fnv1a(feature);
      // Sublinear: a word said five times is not five times the evidence. The hash's top bit picks the sign, so
      // collisions cancel out on average instead of piling up.
      const value = Math.log1p(weight);
      const slot = hash % this.dimensions;
      vector[slot] = (vector[slot] ?? 0) + (hash & 0x80000000 ? -value : value);
    }
    return normalise(vector);
  }
}

/** A plural or third-person "s" says little about the question: "vaccines work" and "vaccine works" match. */
function stem(word: string): string {
  if (word.length > 4 && word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  if (word.length > 3 && word.endsWith('s') && !word.endsWith('ss') && !word.endsWith('us') && !word.endsWith('is')) return word.slice(0, -1);
  return word;
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
