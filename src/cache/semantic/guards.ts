// False-hit guards: a candidate above the similarity threshold is served only when the facts a vector blurs are the
// same in both prompts: numbers (digits or number words), quoted strings, URLs, file names, code identifiers, named
// entities and negation, and when neither prompt is more than twice as long as the other. Each guard has a name
// (a metrics label); the first that fails is returned.

export type GuardName = 'numbers' | 'quotes' | 'urls' | 'files' | 'identifiers' | 'entities' | 'negation' | 'length';

export const GUARD_NAMES: readonly GuardName[] = ['numbers', 'quotes', 'urls', 'files', 'identifiers', 'entities', 'negation', 'length'];

/** Shorter / longer prompt, in characters, below which two prompts are not the same question. */
const MIN_LENGTH_RATIO = 0.5;

/** What the guards compare, extracted once per prompt. Lists are sorted, so equal multisets compare equal. */
export interface PromptFacts {
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

/**
 * Every word the two lookups above can find: a word outside it is not looked up (a Set is much faster than a lookup by
 * an arbitrary string), and no word finds what the objects inherit ("constructor" is no number).
 */
const LOOKED_UP_WORDS = new Set([...Object.keys(NUMBER_WORDS), ...Object.keys(NEGATIONS)]);

const URL_PATTERN = /\b(?:https?:\/\/|www\.)[^\s<>"'`)]+/giu;
const QUOTE_PATTERN = /"([^"]+)"|“([^”]+)”|`([^`]+)`|(?<![\p{L}\p{N}])'([^']+)'(?![\p{L}\p{N}])/gu;
/** The extension starts with a letter, so a version number (1.2.3) is no file. */
const FILE_PATTERN = /(?<![\p{L}\p{N}_./-])[\w-]+(?:\.[\w-]+)*\.[A-Za-z][A-Za-z0-9]{0,5}(?![\p{L}\p{N}_])/gu;
const NUMBER_PATTERN = /[-+]?\d+(?:[.,:/]\d+)*%?/gu;
/** A word: letters, digits and underscores, with an apostrophe suffix ("don't", "it’s"). The local embedder's too. */
export const WORD_PATTERN = /[\p{L}\p{N}_]+(?:['’][\p{L}]+)?/gu;
/** camelCase, PascalCase with an inner capital, snake_case, SCREAMING_CASE, a call `name(`, or a dotted path. */
const IDENTIFIER_PATTERN = /\b(?:[a-z]+[A-Z][\w]*|[A-Z][a-z0-9]+[A-Z][\w]*|\w+_\w+|[A-Za-z_]\w*(?=\()|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?=\())/gu;
/**
 * What every match of the pattern of the same name holds, found by a much cheaper scan: a text without it is not
 * searched (most prompts hold no URL, quote, file name or identifier).
 */
const MAY_HOLD_URL = /https?:\/\/|www\./iu;
const MAY_HOLD_QUOTE = /["“`']/u;
const MAY_HOLD_FILE = /\.[A-Za-z]/u;
const MAY_HOLD_NUMBER = /\d/u;
/** An inner capital (camelCase, PascalCase), an underscore or a call. */
const MAY_HOLD_IDENTIFIER = /[a-z0-9][A-Z]|[_(]/u;
const URL_TRAILING_PUNCTUATION = /[.,;:!?]+$/u;
const UPPERCASE_START = /^\p{Lu}/u;
const CURLY_APOSTROPHE = /’/gu;
const LEADING_PLUS = /^\+/u;
const THOUSANDS_SEPARATOR = /(\d),(\d{3})(?!\d)/gu;
const SPACE = /\s/u;

export function factsOf(text: string): PromptFacts {
  const urls: string[] = [];
  let withoutUrls = text;
  if (MAY_HOLD_URL.test(text)) {
    for (const match of text.matchAll(URL_PATTERN)) urls.push(match[0].replace(URL_TRAILING_PUNCTUATION, '').toLowerCase());
    withoutUrls = text.replace(URL_PATTERN, ' ');
  }
  const quotes: string[] = [];
  if (MAY_HOLD_QUOTE.test(withoutUrls)) {
    for (const match of withoutUrls.matchAll(QUOTE_PATTERN)) quotes.push((match[1] ?? match[2] ?? match[3] ?? match[4] ?? '').trim());
  }
  const files: string[] = [];
  if (MAY_HOLD_FILE.test(withoutUrls)) for (const match of withoutUrls.matchAll(FILE_PATTERN)) files.push(match[0].toLowerCase());
  const identifiers: string[] = [];
  if (MAY_HOLD_IDENTIFIER.test(withoutUrls)) for (const match of withoutUrls.matchAll(IDENTIFIER_PATTERN)) identifiers.push(match[0]);
  const numbers: string[] = [];
  if (MAY_HOLD_NUMBER.test(withoutUrls)) for (const match of withoutUrls.matchAll(NUMBER_PATTERN)) numbers.push(normaliseNumber(match[0]));
  const negations: string[] = [];
  const entities: string[] = [];
  const words = new Set<string>();
  for (const match of withoutUrls.matchAll(WORD_PATTERN)) {
    const word = match[0];
    const lowered = word.toLowerCase();
    const lower = lowered.includes('’') ? lowered.replace(CURLY_APOSTROPHE, "'") : lowered;
    words.add(lower);
    const lookedUp = LOOKED_UP_WORDS.has(lower);
    const asNumber = lookedUp ? NUMBER_WORDS[lower] : undefined;
    if (asNumber !== undefined) numbers.push(asNumber);
    if (lower.endsWith("n't")) negations.push('not');
    else if (lookedUp && NEGATIONS[lower] !== undefined) negations.push(NEGATIONS[lower]);
    if (startsUppercase(word) && !startsSentence(withoutUrls, match.index) && !(word === 'I' || word.startsWith("I'"))) entities.push(lower);
  }
  return {
    length: text.trim().length,
    numbers: numbers.sort(), quotes: quotes.sort(), urls: urls.sort(), files: files.sort(), identifiers: identifiers.sort(),
    entities: entities.sort(), negations: negations.sort(), words,
  };
}

/** The first guard the pair fails, or undefined when the candidate may be served. */
export function failedGuard(request: PromptFacts, candidate: PromptFacts): GuardName | undefined {
  const shorter = Math.min(request.length, candidate.length);
  const longer = Math.max(request.length, candidate.length);
  if (longer > 0 && shorter / longer < MIN_LENGTH_RATIO) return 'length';
  if (!sameList(request.numbers, candidate.numbers)) return 'numbers';
  if (!sameList(request.quotes, candidate.quotes)) return 'quotes';
  if (!sameList(request.urls, candidate.urls)) return 'urls';
  if (!sameList(request.files, candidate.files)) return 'files';
  if (!sameList(request.identifiers, candidate.identifiers)) return 'identifiers';
  if (!request.entities.every((e) => candidate.words.has(e)) || !candidate.entities.every((e) => request.words.has(e))) return 'entities';
  if (!sameList(request.negations, candidate.negations)) return 'negation';
  return undefined;
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
  if (!text.startsWith('+') && !text.includes(',')) return text;
  return text.replace(LEADING_PLUS, '').replace(THOUSANDS_SEPARATOR, '$1$2');
}

/** An uppercase letter first (\p{Lu}, which among ASCII characters is A-Z). */
function startsUppercase(word: string): boolean {
  const code = word.charCodeAt(0);
  return code < 0x80 ? code >= 0x41 && code <= 0x5a : UPPERCASE_START.test(word);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
