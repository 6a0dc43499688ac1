// The reference the fast `factsOf` and `LocalEmbedder.embedOne` must match exactly (same-as-reference.test.ts): a
// frozen, verbatim copy of both as they were before they were optimised (commit 472d3a7), with what they use. Do not
// edit it to follow src/: change it only in a change that means to change their output, and say so there (vectors are
// shared through Redis, so for the embedder that is a new vector version).

// ---- src/cache/semantic/guards.ts (factsOf and what it uses) ----

/** What the guards compare, extracted once per prompt. Lists are sorted, so equal multisets compare equal. */
interface PromptFacts {
  length: number;
  numbers: string[];
  quotes: string[];
  urls: string[];
  files: string[];
  identifiers: string[];
  /** Capitalised words not at the start of a sentence, lowercased. */
  entities: string[];
  negations: string[];
  /** Every word, lowercased: an entity of one prompt written in lower case in the other still matches. */
  words: Set<string>;
}

const NUMBER_WORDS: Record<string, string> = {
  zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
  eleven: '11', twelve: '12', thirteen: '13', fourteen: '14', fifteen: '15', sixteen: '16', seventeen: '17', eighteen: '18',
  nineteen: '19', twenty: '20', thirty: '30', forty: '40', fifty: '50', sixty: '60', seventy: '70', eighty: '80', ninety: '90',
  hundred: '100', thousand: '1000', million: '1000000', billion: '1000000000', dozen: '12', half: '1/2', twice: '2x',
  first: '1st', second: '2nd', third: '3rd', fourth: '4th', fifth: '5th', sixth: '6th', seventh: '7th', eighth: '8th',
  ninth: '9th', tenth: '10th', once: '1x', single: '1', double: '2x', triple: '3x', both: '2',
};

/** Negation cues, normalised: "don't", "do not" and "cannot" are all "not". */
const NEGATIONS: Record<string, string> = {
  not: 'not', no: 'no', never: 'never', none: 'none', nothing: 'nothing', nobody: 'nobody', nowhere: 'nowhere',
  neither: 'neither', nor: 'nor', without: 'without', cannot: 'not', except: 'except', excluding: 'except', unless: 'unless',
};

const URL_PATTERN = /\b(?:https?:\/\/|www\.)[^\s<>"'`)]+/giu;
const QUOTE_PATTERN = /"([^"]+)"|“([^”]+)”|`([^`]+)`|(?<![\p{L}\p{N}])'([^']+)'(?![\p{L}\p{N}])/gu;
const FILE_PATTERN = /(?<![\p{L}\p{N}_./-])[\w-]+(?:\.[\w-]+)*\.[A-Za-z][A-Za-z0-9]{0,5}(?![\p{L}\p{N}_])/gu;
const NUMBER_PATTERN = /[-+]?\d+(?:[.,:/]\d+)*%?/gu;
/** A word: letters, digits and underscores, with an apostrophe suffix ("don't", "it’s"). The local embedder's too. */
const WORD_PATTERN = /[\p{L}\p{N}_]+(?:['’][\p{L}]+)?/gu;
/** camelCase, PascalCase with an inner capital, snake_case, SCREAMING_CASE, a call `name(`, or a dotted path. */
const IDENTIFIER_PATTERN = /\b(?:[a-z]+[A-Z][\w]*|[A-Z][a-z0-9]+[A-Z][\w]*|\w+_\w+|[A-Za-z_]\w*(?=\()|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?=\())/gu;
const SPACE = /\s/u;

export function referenceFactsOf(text: string): PromptFacts {
  const urls = [...text.matchAll(URL_PATTERN)].map((m) => m[0].replace(/[.,;:!?]+$/u, '').toLowerCase());
  const withoutUrls = text.replace(URL_PATTERN, ' ');
  const quotes = [...withoutUrls.matchAll(QUOTE_PATTERN)].map((m) => (m[1] ?? m[2] ?? m[3] ?? m[4] ?? '').trim());
  const files = [...withoutUrls.matchAll(FILE_PATTERN)].map((m) => m[0].toLowerCase()).filter((f) => !/^\d+(\.\d+)*$/u.test(f));
  const identifiers = [...withoutUrls.matchAll(IDENTIFIER_PATTERN)].map((m) => m[0]);
  const numbers = [...withoutUrls.matchAll(NUMBER_PATTERN)].map((m) => normaliseNumber(m[0]));
  const negations: string[] = [];
  const entities: string[] = [];
  const words = new Set<string>();
  for (const match of withoutUrls.matchAll(WORD_PATTERN)) {
    const word = match[0];
    const lower = word.toLowerCase().replace(/’/gu, "'");
    words.add(lower);
    // Changed on purpose (with the fast version): own words only; "constructor" found Object here before.
    const asNumber = Object.hasOwn(NUMBER_WORDS, lower) ? NUMBER_WORDS[lower] : undefined;
    if (asNumber !== undefined) numbers.push(asNumber);
    if (lower.endsWith("n't")) negations.push('not');
    else if (Object.hasOwn(NEGATIONS, lower)) negations.push(NEGATIONS[lower]!);
    if (/^\p{Lu}/u.test(word) && !startsSentence(withoutUrls, match.index) && !(word === 'I' || word.startsWith("I'"))) entities.push(lower);
  }
  return {
    length: text.trim().length,
    numbers: numbers.sort(), quotes: quotes.sort(), urls: urls.sort(), files: files.sort(), identifiers: identifiers.sort(),
    entities: entities.sort(), negations: negations.sort(), words,
  };
}

/**
 * Whether a word at `index` starts a sentence: it is first in the text, or the whitespace before it holds a newline,
 * or follows one of . ! ? : ; (a colon or semicolon often starts a list or a clause). Scans back over that
 * whitespace only, so a long prompt costs linear time, not a scan of everything before each capitalised word.
 */
function startsSentence(text: string, index: number): boolean {
  if (index === 0) return true;
  let i = index - 1;
  for (; i >= 0 && SPACE.test(text[i]!); i--) if (text[i] === '\n') return true;
  return i < index - 1 && i >= 0 && '.!?:;'.includes(text[i]!);
}

function normaliseNumber(text: string): string {
  // 1,000 and 1000 are one number; a leading + changes nothing.
  return text.replace(/^\+/u, '').replace(/(\d),(\d{3})(?!\d)/gu, '$1$2');
}

// ---- src/cache/semantic/local-embedder.ts (embedOne) ----

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

export class ReferenceLocalEmbedder {
  constructor(readonly dimensions: number) {}

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

/** Scales a vector to length 1 in place (a zero vector stays zero). From src/cache/semantic/embedder.ts. */
function normalise(vector: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += vector[i]! * vector[i]!;
  if (sum === 0) return vector;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < vector.length; i++) vector[i] = vector[i]! * scale;
  return vector;
}
