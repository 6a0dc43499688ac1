// The built-in embedder: hashed word, word-pair and character-trigram features with sublinear (1 + log tf) weights,
// signed feature hashing into a fixed number of dimensions, L2-normalised. Offline, no model, microseconds a prompt.
// It measures surface similarity, not meaning: paraphrases score lower than with a learned model, which is why the
// guards and a high threshold carry the safety (see docs/SEMANTIC.md).
import type { Embedder } from './embedder.js';
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
/** "don't" is the word "dont": the apostrophe is no evidence. */
const APOSTROPHES = /['’]/gu;

export class LocalEmbedder implements Embedder {
  readonly name = 'local';
  /** Reused by every call (embedOne runs start to end without yielding); a longer prompt gets a table of its own. */
  private readonly counts = new FeatureCounts(REUSED_FEATURES);

  constructor(readonly dimensions: number) {}

  embed(texts: readonly string[]): Promise<Float32Array[]> {
    return Promise.resolve(texts.map((text) => this.embedOne(text)));
  }

  embedOne(text: string): Float32Array {
    const words = text.normalize('NFKC').toLowerCase().match(WORD_PATTERN) ?? [];
    // Each word brings a word, a pair and one trigram per code unit at most.
    let features = 2 * words.length;
    for (let i = 0; i < words.length; i++) {
      if (hasApostrophe(words[i]!)) words[i] = words[i]!.replace(APOSTROPHES, '');
      features += words[i]!.length;
    }
    const counts = features <= REUSED_FEATURES ? this.counts.clear(features) : new FeatureCounts(features).clear(features);
    let previousWord = -1;
    let previousIsStopWord = false;
    let pairPrefixHash = 0;
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      const stemmed = stem(word);
      const isStopWord = STOP_WORDS.has(word);
      const scale = isStopWord ? STOP_WORD_SCALE : 1;
      const wordFeature = counts.addWord(fnv1aAfter(W_HASH, stemmed), stemmed, FAMILY_WEIGHT.w * scale);
      if (i > 0) {
        const pairHash = fnv1aAfter(fnv1aStep(pairPrefixHash, SPACE_CODE), stemmed);
        counts.add(pairHash, previousWord, wordFeature, FAMILY_WEIGHT.p * (previousIsStopWord ? Math.min(scale, 0.5) : scale));
      }
      // The trigrams of " word ", in UTF-16 code units.
      const trigramWeight = FAMILY_WEIGHT.c * scale;
      let a = SPACE_CODE;
      let b = word.charCodeAt(0);
      for (let j = 1; j <= word.length; j++) {
        const c = j < word.length ? word.charCodeAt(j) : SPACE_CODE;
        counts.add(fnv1aStep(fnv1aStep(fnv1aStep(C_HASH, a), b), c), (a * 0x10000 + b) * 0x10000 + c, TRIGRAM, trigramWeight);
        a = b;
        b = c;
      }
      previousWord = wordFeature;
      previousIsStopWord = isStopWord;
      pairPrefixHash = fnv1aAfter(P_HASH, stemmed);
    }
    const vector = new Float32Array(this.dimensions);
    // The slots written, one bit each, so that normalising reads only those (a short prompt writes a few dozen).
    const written = new Array<number>(Math.ceil(this.dimensions / 32)).fill(0);
    let lastWeight = Number.NaN;
    let value = 0;
    for (let feature = 0; feature < counts.size; feature++) {
      const hash = counts.hashes[feature]!;
      const weight = counts.weights[feature]!;
      // Sublinear: a word said five times is not five times the evidence. The hash's top bit picks the sign, so
      // collisions cancel out on average instead of piling up. log1p is slow, and a word's trigrams mostly share a
      // weight: the last result is reused.
      if (weight !== lastWeight) value = Math.log1p((lastWeight = weight));
      const slot = hash % this.dimensions;
      vector[slot] = (vector[slot] ?? 0) + (hash & 0x80000000 ? -value : value);
      written[slot >>> 5]! |= 1 << (slot & 31);
    }
    return normaliseWritten(vector, written);
  }
}

/**
 * `normalise` (embedder.ts) reading only the slots written, in the same ascending order: the others are 0, and adding
 * 0 to the sum or scaling a 0 changes nothing, so the vector is the same to the bit.
 */
function normaliseWritten(vector: Float32Array, written: readonly number[]): Float32Array {
  let sum = 0;
  for (let word = 0; word < written.length; word++) {
    for (let bits = written[word]!; bits !== 0; bits &= bits - 1) {
      const slot = word * 32 + 31 - Math.clz32(bits & -bits);
      sum += vector[slot]! * vector[slot]!;
    }
  }
  if (sum === 0) return vector;
  const scale = 1 / Math.sqrt(sum);
  for (let word = 0; word < written.length; word++) {
    for (let bits = written[word]!; bits !== 0; bits &= bits - 1) {
      const slot = word * 32 + 31 - Math.clz32(bits & -bits);
      vector[slot] = vector[slot]! * scale;
    }
  }
  return vector;
}

/** Features a reused table holds (a prompt of a few thousand characters): about 130 kB kept per embedder. */
const REUSED_FEATURES = 4_096;
/** The second half of a feature's identity when it is no pair (a pair's is its second word's feature, never < 0). */
const TRIGRAM = -1;
const WORD = -2;

/**
 * Feature weights summed in the order the features are first seen (the order the vector's slots are summed in, which
 * the vectors depend on to the bit). A feature is found by its 32-bit FNV-1a hash and told apart from another with
 * the same hash by its identity: a word by its stem, a pair by its two words' features, a trigram by its code units.
 */
class FeatureCounts {
  readonly hashes: Uint32Array;
  readonly weights: Float64Array;
  /** A word's index in `stems`, a pair's first word's feature, or a trigram's three code units (48 bits). */
  private readonly first: Float64Array;
  /** WORD, TRIGRAM, or a pair's second word's feature. */
  private readonly second: Int32Array;
  private readonly stems: string[] = [];
  /** Open addressing over the hash, at most half full: a feature's index, or -1 for an empty slot. */
  private readonly slots: Int32Array;
  private mask = 0;
  size = 0;

  constructor(maxFeatures: number) {
    this.hashes = new Uint32Array(maxFeatures);
    this.weights = new Float64Array(maxFeatures);
    this.first = new Float64Array(maxFeatures);
    this.second = new Int32Array(maxFeatures);
    this.slots = new Int32Array(slotCount(maxFeatures));
  }

  /** Empties the table for a prompt of at most `features` features (no more than it was built for). */
  clear(features: number): this {
    const slots = slotCount(features);
    this.slots.fill(-1, 0, slots);
    this.mask = slots - 1;
    this.size = 0;
    this.stems.length = 0;
    return this;
  }

  /** Adds to the word of this stem; returns its feature. */
  addWord(hash: number, stem: string, weight: number): number {
    for (let slot = hash & this.mask; ; slot = (slot + 1) & this.mask) {
      const feature = this.slots[slot]!;
      if (feature === -1) {
        this.stems.push(stem);
        return (this.slots[slot] = this.append(hash, this.stems.length - 1, WORD, weight));
      }
      if (this.second[feature] === WORD && this.stems[this.first[feature]!] === stem) {
        this.weights[feature]! += weight;
        return feature;
      }
    }
  }

  /** Adds to the pair or trigram of this identity. */
  add(hash: number, first: number, second: number, weight: number): void {
    for (let slot = hash & this.mask; ; slot = (slot + 1) & this.mask) {
      const feature = this.slots[slot]!;
      if (feature === -1) {
        this.slots[slot] = this.append(hash, first, second, weight);
        return;
      }
      if (this.first[feature] === first && this.second[feature] === second) {
        this.weights[feature]! += weight;
        return;
      }
    }
  }

  private append(hash: number, first: number, second: number, weight: number): number {
    const feature = this.size++;
    this.hashes[feature] = hash;
    this.weights[feature] = weight;
    this.first[feature] = first;
    this.second[feature] = second;
    return feature;
  }
}

/** Table slots for `features` features: a power of two, at least twice as many. */
function slotCount(features: number): number {
  let slots = 16;
  while (slots < 2 * features) slots *= 2;
  return slots;
}

function hasApostrophe(word: string): boolean {
  return word.includes("'") || word.includes('’');
}

/** A plural or third-person "s" says little about the question: "vaccines work" and "vaccine works" match. */
function stem(word: string): string {
  if (word.length > 4 && word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  if (word.length > 3 && word.endsWith('s') && !word.endsWith('ss') && !word.endsWith('us') && !word.endsWith('is')) return word.slice(0, -1);
  return word;
}

// 32-bit FNV-1a over UTF-16 code units: fast, and stable across processes and versions (vectors are shared). A
// feature's hash is that of its family letter followed by its text ("w" + stem, "p" + stem + " " + stem, "c" +
// trigram), computed a piece at a time instead of over a built string: the same bits, without the string.
const FNV_OFFSET = 0x811c9dc5;
const SPACE_CODE = 0x20;
const W_HASH = fnv1aStep(FNV_OFFSET, 'w'.charCodeAt(0));
const P_HASH = fnv1aStep(FNV_OFFSET, 'p'.charCodeAt(0));
const C_HASH = fnv1aStep(FNV_OFFSET, 'c'.charCodeAt(0));

function fnv1aStep(hash: number, code: number): number {
  return Math.imul(hash ^ code, 0x01000193) >>> 0;
}

/** The hash of what was hashed into `hash`, followed by `text`. */
function fnv1aAfter(hash: number, text: string): number {
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}
