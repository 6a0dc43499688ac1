// The false-hit guards: which differences between two last user messages keep a candidate from being served.
import { describe, expect, it } from 'vitest';
import { factsOf, failedGuard } from '../../../../src/cache/semantic/guards.js';

const guard = (a: string, b: string) => failedGuard(factsOf(a), factsOf(b));

describe('guards', () => {
  it.each([
    ['What is 2+2?', 'What is 2+3?', 'numbers'],
    ['Give me two reasons to learn Rust.', 'Give me three reasons to learn Rust.', 'numbers'],
    ['Explain the first law of thermodynamics.', 'Explain the second law of thermodynamics.', 'numbers'],
    ['Define the word "cat".', 'Define the word "dog".', 'quotes'],
    ['Summarise https://example.com/a please.', 'Summarise https://example.com/b please.', 'urls'],
    ['What does config.yaml do?', 'What does config.json do?', 'files'],
    ['What does getUserById return?', 'What does getUserByEmail return?', 'identifiers'],
    ['Why is MAX_RETRIES ignored?', 'Why is MAX_TIMEOUT ignored?', 'identifiers'],
    ['What is the capital of France?', 'What is the capital of Germany?', 'entities'],
    ['Why do cats purr?', "Why don't cats purr?", 'negation'],
    ['Give me recipes with meat.', 'Give me recipes without meat.', 'negation'],
    ['Which animals can swim?', 'Which animals cannot swim?', 'negation'],
    ['Hi', 'Tell me everything about the history of the Roman empire.', 'length'],
  ])('%s / %s → %s', (a, b, expected) => {
    expect(guard(a, b)).toBe(expected);
    expect(guard(b, a)).toBe(expected);
  });

  it.each([
    ['What is the capital of France?', 'what is the capital of france'],
    ['How do I reverse a list in Python?', 'How can I reverse a list in Python?'],
    ['Convert 1,000 meters to feet.', 'Convert 1000 meters to feet.'],
    ["What's the best way to learn Spanish?", 'Whats the best way to learn Spanish?'],
    ['Explain `git rebase -i` to me.', 'explain `git rebase -i` to me'],
  ])('%s / %s pass', (a, b) => {
    expect(guard(a, b)).toBeUndefined();
  });

  it('a number written as a word equals the digit', () => {
    expect(guard('Give me 3 ideas for dinner.', 'Give me three ideas for dinner.')).toBeUndefined();
  });

  it('words that objects inherit are no numbers and no negations', () => {
    // "constructor" and "__proto__" used to find Object's own members in the lookup tables.
    expect(factsOf('explain the class constructor and __proto__ in JavaScript').numbers).toEqual([]);
    expect(factsOf('explain the class constructor and __proto__ in JavaScript').negations).toEqual([]);
    expect(guard('What does a constructor do in a class?', 'What does a constructor method do in a class?')).toBeUndefined();
  });

  it('a capitalised word is an entity unless it starts a sentence, in a prompt of 200,000 characters too', () => {
    // Sentence starts: the text's first word, after . ! ? : ; and whitespace, and after a newline.
    expect(factsOf('Rome is older than Paris; Oslo? No. Lima:Quito\n  Bern and Kyiv').entities).toEqual(['kyiv', 'paris', 'quito']);
    const sentence = 'I met Alice in Paris, then Bob. ';
    const repeats = Math.ceil(200_000 / sentence.length);
    const facts = factsOf(`${sentence.repeat(repeats)}Then\nOslo and Lima`);
    expect(facts.length).toBeGreaterThan(200_000);
    // "I" is no entity; "Then" and "Oslo" start sentences, "Bob" follows a comma.
    expect(facts.entities).toEqual([...Array(repeats).fill('alice'), ...Array(repeats).fill('bob'), 'lima', ...Array(repeats).fill('paris')]);
  });
});
