import { describe, expect, it } from 'vitest';
import { allowsStale, freshnessLeftS, withinGrace } from '../../../src/cache/stale.js';

const NOW = 1_764_000_000_000;
/** Stored 100 s ago, expired 10 s ago. */
const entry = { body: Buffer.from('{}'), storedAt: NOW - 100_000, expiresAt: NOW - 10_000 };

describe('stale-if-error rules', () => {
  it.each([[500, true], [502, true], [503, true], [504, true], [501, false], [429, false], [400, false], [404, false], [499, false], [200, false]])(
    'status %i allows a stale answer: %s', (status, allowed) => {
      expect(allowsStale(status)).toBe(allowed);
    });

  it('counts staleness from the expiry, to the millisecond', () => {
    expect(withinGrace(entry, { graceS: 10, maxAgeS: undefined }, NOW)).toBe(true);
    expect(withinGrace(entry, { graceS: 10, maxAgeS: undefined }, NOW + 1)).toBe(false);
    expect(withinGrace(entry, { graceS: 9, maxAgeS: undefined }, NOW)).toBe(false);
    expect(freshnessLeftS(entry, undefined, NOW)).toBe(-10);
  });

  it('counts staleness from max-age when the request set a shorter one', () => {
    // max-age=60: fresh for this request until 40 s ago.
    expect(freshnessLeftS(entry, 60, NOW)).toBe(-40);
    expect(withinGrace(entry, { graceS: 40, maxAgeS: 60 }, NOW)).toBe(true);
    expect(withinGrace(entry, { graceS: 39, maxAgeS: 60 }, NOW)).toBe(false);
    // A longer max-age changes nothing: the entry expired first.
    expect(freshnessLeftS(entry, 600, NOW)).toBe(-10);
    // A fresh entry too old for max-age=0 is stale by its age.
    const young = { ...entry, storedAt: NOW - 3_000, expiresAt: NOW + 60_000 };
    expect(withinGrace(young, { graceS: 3, maxAgeS: 0 }, NOW)).toBe(true);
    expect(withinGrace(young, { graceS: 2, maxAgeS: 0 }, NOW)).toBe(false);
  });
});
