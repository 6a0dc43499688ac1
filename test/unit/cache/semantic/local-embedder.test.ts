// The local embedder: unit vectors of the configured length, stable, closer for near-repeats than for other questions.
import { describe, expect, it } from 'vitest';
import { cosine } from '../../../../src/cache/semantic/embedder.js';
import { LocalEmbedder } from '../../../../src/cache/semantic/local-embedder.js';

const embedder = new LocalEmbedder(256);
const similarity = (a: string, b: string) => cosine(embedder.embedOne(a), embedder.embedOne(b));

describe('local embedder', () => {
  it('gives unit vectors of the configured length, the same for the same text', async () => {
    const [a, b] = await embedder.embed(['How do vaccines work?', 'How do vaccines work?']);
    expect(a).toHaveLength(256);
    expect(cosine(a!, a!)).toBeCloseTo(1, 5);
    expect(Array.from(a!)).toEqual(Array.from(b!));
  });

  it('case, punctuation and spacing do not change the vector', () => {
    expect(similarity('What is the capital of France?', 'what is the capital of  france')).toBeCloseTo(1, 5);
  });

  it('a rewording scores higher than another question', () => {
    const reworded = similarity('How can I improve my sleep quality?', 'How can I improve the quality of my sleep?');
    const other = similarity('How can I improve my sleep quality?', 'How can I improve my credit score?');
    expect(reworded).toBeGreaterThan(other);
  });

  it('empty text is a zero vector, not a NaN', () => {
    expect(Array.from(embedder.embedOne('')).every((x) => x === 0)).toBe(true);
  });
});
