// The fast `factsOf` and `LocalEmbedder.embedOne` give exactly what their reference (the frozen first versions in
// reference-semantic.ts) gives: the same vectors to the bit (vectors are shared between instances and versions through
// Redis, and the threshold was tuned on them) and deep-equal facts, on every prompt of the eval set and on seeded
// generated prompts. Another seed: RECALL_SEMANTIC_SEED=<n> npx vitest run test/unit/cache/semantic.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { factsOf, type PromptFacts } from '../../../../src/cache/semantic/guards.js';
import { LocalEmbedder } from '../../../../src/cache/semantic/local-embedder.js';
import { referenceFactsOf, ReferenceLocalEmbedder } from './reference-semantic.js';
import { seededRandom } from '../../../../loadtest/mock-upstream.js';

const SEED = Number(process.env.RECALL_SEMANTIC_SEED ?? 20_240_611);

/** Pieces of prompts, by what they exercise. */
const PIECES = {
  words: ['what', 'is', 'the', 'capital', 'of', 'how', 'do', 'vaccines', 'work', 'vaccine', 'works', 'studies', 'bus', 'glass',
    'analysis', 'status', 'cities', 'ties', 'caches', 'cache', 'say', 'something', 'short', 'about', 'explain', 'please', 'me',
    'a', 'an', 'i', 'you', 'sleep', 'quality', 'improve', 'credit', 'score', 'reverse', 'list', 'python', 'bench', 'lmx3k2-9f8e7d6c',
    'x', 'ab', 'abc', 'the the the', 'kind of', 'sort of', 'really very'],
  numberWords: ['one', 'two', 'Three', 'TEN', 'twenty', 'hundred', 'thousand', 'million', 'first', 'second', 'half', 'twice',
    'dozen', 'both', 'single', 'double', 'triple', 'once', 'zero', 'ninth'],
  negations: ['not', 'no', 'never', 'none', 'nothing', 'nobody', 'nowhere', 'neither', 'nor', 'without', 'cannot', 'except',
    'excluding', 'unless', "don't", "can't", "won't", 'isn’t', "Don't", 'DON’T', "n't", "it's", "I'm", 'I’m', "O'Neil"],
  /** Words every object inherits as properties: the facts' lookups find some of them. */
  inherited: ['constructor', 'Constructor', '__proto__', '__PROTO__', 'toString', 'tostring', 'hasOwnProperty', 'valueOf',
    'isPrototypeOf', '__defineGetter__', 'prototype'],
  numbers: ['2', '+3', '-4', '1,000', '1,000,000', '12,34', '1,2345', '3.14', '10:30', '1/2', '50%', '-0.5%', '2024-06-01', 'v1.2.3',
    '1.2.3', '0x1F', '007', '+1,000', '1,000.5', '１２３', '٣', '²', '½', 'Ⅻ', '3rd', '2x', '42nd', '9f8e7d6c'],
  quotes: ['"cat"', '“dog”', '`git rebase -i`', "'serendipity'", '"unterminated', "''", '""', "'it's'", '"a "b" c"', '„German“',
    '«guillemets»', '‘single’', "x'y'z", "'", '"', '`', '“', '”', '" spaced "', "'9'", "é'word'é"],
  urls: ['https://example.com/a', 'http://x.org/path?q=1&r=2.', 'www.Example.com', 'WWW.EXAMPLE.COM/', 'HTTPS://Foo.Bar/Baz',
    'httpſ://weird.test', '(https://in.parens)', 'https://a.b/c)d', 'ftp://not.a.match', 'mailto:x@y.z', 'https://例え.jp/パス',
    'xhttps://glued.test', 'https://trailing.test/!?', 'www.', 'https://', 'see:https://a.b', '_www.under.score', 'ſwww.long.s'],
  files: ['config.yaml', 'config.json', 'README.md', 'src/app.ts', './a/b.test.js', 'file.tar.gz', 'v1.2', 'x.y.z', 'a-b_c.d-e.txt',
    'photo.JPEG', 'archive.toolongext', '.env', 'ﬁle.txt', 'café.py', 'a.b1', '1.5x', 'e.g.', 'i.e.', 'Mr.Smith', 'node.js'],
  identifiers: ['getUserById', 'getUserByEmail', 'MAX_RETRIES', 'snake_case', 'print(', 'os.path.join(', 'HTTPServer', 'iPhone',
    'XMLHttpRequest', '_private', 'a_b', 'fooBar()', 'x.y(', 'Ab1C', 'aB', '__init__', 'A_', 'ǅemal_x', 'fooΣbar'],
  names: ['Paris', 'Alice', 'Bob', 'I', 'Élodie', 'Ørsted', 'Łódź', 'İstanbul', 'Σωκράτης', 'Дмитрий', 'ǅemal', 'Rust', 'France',
    'Germany', 'NASA', 'McDonald', 'Ñandú', 'Ⅻ', '𝐀lpha', 'Ǉubljana'],
  unicode: ['café', 'naïve', '東京', '日本語の質問', 'ｆｕｌｌｗｉｄｔｈ', 'ＡＢＣ', 'ﬁ', 'ﬀ', 'ﬆ', 'ẞ', 'ß', 'ǆ', '㎏', 'K', 'ſ', 'e\u0301',
    'a\u200db', '👍', '😀', '👨‍👩‍👧', '🇫🇷', '𝐀𝐁𝐂', '𠀀𠀁', '\ud800', '\udc00x', '\ufeff', 'ŉ', 'ʼ', 'ﾊﾝｶｸ', '①', 'Ⓐ', 'µ', 'ﬃx',
    'Ω', 'Å', 'ǰ', 'İi̇', 'ΐ', 'ﬓ', 'ꭰ', '\u0345', 'Ꭰ', '𐐀', 'x\u0300\u0301', '٣٤', '\u00ad'],
  /** Features with the same 32-bit FNV-1a hash: a trigram pair, a word pair and a word-pair pair. */
  collisions: ['拨皁鋆 睨矡勦', 'chmvsrq szszgxw', 'rrft cack pxxf geuu', '拨皁鋆拨皁鋆 睨矡勦'],
} satisfies Record<string, string[]>;

const SEPARATORS = [' ', ' ', ' ', '  ', '\n', '\n\n', '\t', '. ', '? ', '! ', ': ', '; ', ', ', '', '-', '/', '(', ')', "'", '’',
  '"', '“', '”', '`', '\u00a0', '\u2028', '\u3000', '\r\n', '.', '_', ' \n ', '.\n', ' . '];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** A prompt of pieces from the families above, between separators, sometimes capitalised and punctuated. */
function piecesPrompt(random: () => number, pieceCount: number): string {
  const families = Object.values(PIECES);
  let text = '';
  for (let i = 0; i < pieceCount; i++) {
    let piece = pick(random, random() < 0.5 ? PIECES.words : pick(random, families));
    if (random() < 0.15) piece = piece.charAt(0).toUpperCase() + piece.slice(1);
    text += (i === 0 ? '' : pick(random, SEPARATORS)) + piece;
  }
  if (random() < 0.5) text += pick(random, ['.', '?', '!', '', ' ', '\n', '...', '?!']);
  return random() < 0.1 ? ` \t${text}\n ` : text;
}

/** Code units at random: ASCII, Latin, anywhere in the BMP (lone surrogates too), and astral pairs. */
function soupPrompt(random: () => number): string {
  const length = Math.floor(random() * 60);
  let text = '';
  for (let i = 0; i < length; i++) {
    const kind = random();
    if (kind < 0.5) text += String.fromCharCode(0x20 + Math.floor(random() * 0x5f));
    else if (kind < 0.65) text += String.fromCharCode(0x80 + Math.floor(random() * 0x200));
    else if (kind < 0.85) text += String.fromCharCode(Math.floor(random() * 0x10000));
    else if (kind < 0.95) text += String.fromCodePoint(0x10000 + Math.floor(random() * 0x100000));
    else text += pick(random, ['\n', '\t', ' ', "'", '’', '.', '_', '(']);
  }
  return text;
}

/** An eval prompt with a few code units inserted, deleted or swapped. */
function mutatedPrompt(random: () => number, base: string): string {
  const units = base.split('');
  for (let edits = 1 + Math.floor(random() * 4); edits > 0; edits--) {
    const at = Math.floor(random() * (units.length + 1));
    const edit = random();
    if (edit < 0.4) units.splice(at, 0, pick(random, [...SEPARATORS, 'A', 'z', '7', 'é', '’', 'ﬁ', '１', '😀'.charAt(0)]));
    else if (edit < 0.7) units.splice(at, 1);
    else if (at + 1 < units.length) [units[at], units[at + 1]] = [units[at + 1]!, units[at]!];
  }
  return units.join('');
}

const evalPrompts = (JSON.parse(readFileSync(new URL('../../../fixtures/semantic-pairs.json', import.meta.url), 'utf8')) as {
  pairs: { a: string; b: string }[];
}).pairs.flatMap((pair) => [pair.a, pair.b]);

function generatedPrompts(): string[] {
  const random = seededRandom(SEED);
  const prompts = ['', ' ', '\n', ' \t\n\u00a0\u3000 ', '.', "'", '’', 'a', 'I', 'Hi',
    'bench lmx3k2-9f8e7d6c 1234 say something short about caches',
    'What does the constructor do with __proto__ and toString? Not the Constructor.',
    ...Object.values(PIECES).flat()];
  for (let i = 0; i < 2_500; i++) prompts.push(piecesPrompt(random, 1 + Math.floor(random() * 30)));
  for (let i = 0; i < 500; i++) prompts.push(soupPrompt(random));
  for (let i = 0; i < 500; i++) prompts.push(mutatedPrompt(random, pick(random, evalPrompts)));
  // Long prompts (more features than the embedder's reused table holds), between short ones that reuse the table.
  for (const pieces of [3_000, 6_000]) prompts.splice(Math.floor(random() * prompts.length), 0, piecesPrompt(random, pieces));
  prompts.splice(Math.floor(random() * prompts.length), 0, 'the cat sat. '.repeat(4_000), soupPrompt(random).repeat(1_000));
  prompts.push(Array.from({ length: 5_000 }, (_, i) => `word${i} w${i % 7}`).join(' ').slice(0, 50_000));
  return prompts;
}

const preview = (text: string) => JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}… (${text.length} chars)` : text);

function sameVector(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Facts with the word Set as a sorted list and its size, for a deep comparison. */
function comparable(facts: PromptFacts): unknown {
  return { ...facts, words: [...facts.words].sort(), wordCount: facts.words.size };
}

describe(`the fast semantic functions against their reference (seed ${SEED})`, () => {
  const generated = generatedPrompts();

  it('the generated prompts are long and short, ASCII and not', () => {
    expect(generated.length).toBeGreaterThan(3_000);
    expect(Math.max(...generated.map((p) => p.length))).toBeGreaterThanOrEqual(50_000);
    expect(generated.filter((p) => /[^\x00-\x7f]/u.test(p)).length).toBeGreaterThan(1_000);
  });

  it.each([
    ['eval set', evalPrompts],
    ['generated', generated],
  ])('embedOne gives the same vector to the bit, on the %s prompts', (_name, prompts) => {
    for (const dimensions of [512, 384, 100, 1]) {
      const reference = new ReferenceLocalEmbedder(dimensions);
      const embedder = new LocalEmbedder(dimensions);
      const differing = prompts.filter((p) => !sameVector(embedder.embedOne(p), reference.embedOne(p)));
      expect(differing.map(preview), `${dimensions} dimensions`).toEqual([]);
    }
  });

  it.each([
    ['eval set', evalPrompts],
    ['generated', generated],
  ])('factsOf gives deep-equal facts, on the %s prompts', (_name, prompts) => {
    const differing = prompts.filter((p) => !isDeepStrictEqual(comparable(factsOf(p)), comparable(referenceFactsOf(p))));
    if (differing[0] !== undefined) expect(comparable(factsOf(differing[0]))).toEqual(comparable(referenceFactsOf(differing[0])));
    expect(differing.map(preview)).toEqual([]);
  });

  it('features with the same hash stay apart', () => {
    // Were they merged, the slot would get log1p(a + b) instead of log1p(a) + log1p(b).
    const embedder = new LocalEmbedder(512);
    const reference = new ReferenceLocalEmbedder(512);
    for (const prompt of PIECES.collisions) expect(sameVector(embedder.embedOne(prompt), reference.embedOne(prompt)), prompt).toBe(true);
  });
});
