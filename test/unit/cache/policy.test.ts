import { describe, expect, it } from 'vitest';
import { readPolicy } from '../../../src/cache/policy.js';
import { RecallError } from '../../../src/openai/errors.js';

const DEFAULTS = { ttlS: 60, staleIfErrorS: 0, staleIfErrorMaxS: 3600 };

describe('readPolicy', () => {
  it('defaults: read, write, default TTL and namespace, no stale answers', () => {
    expect(readPolicy({}, DEFAULTS)).toEqual({ read: true, write: true, maxAgeS: undefined, staleIfErrorS: 0, ttlS: 60, namespace: 'default' });
  });

  it.each([
    ['stale-if-error=30', 0, { staleIfErrorS: 30 }],
    ['max-age=5, stale-if-error="120"', 0, { maxAgeS: 5, staleIfErrorS: 120 }],
    // The request's own value wins over the configured default, in both directions.
    ['stale-if-error=0', 600, { staleIfErrorS: 0 }],
    ['max-age=10', 600, { staleIfErrorS: 600 }],
    // Capped at what the stores keep.
    ['stale-if-error=86400', 0, { staleIfErrorS: 3600 }],
    ['max-age=10', 7200, { staleIfErrorS: 3600 }],
    // A request that does not read the cache gets no stale answer.
    ['no-cache, stale-if-error=30', 0, { read: false, staleIfErrorS: 0 }],
    ['no-store', 600, { read: false, write: false, staleIfErrorS: 0 }],
  ])('Cache-Control: %s with a configured default of %i s', (header, staleIfErrorS, expected) => {
    expect(readPolicy({ 'cache-control': header }, { ...DEFAULTS, staleIfErrorS })).toMatchObject(expected);
  });

  it.each([
    ['no-cache', { read: false, write: true }],
    ['no-store', { read: false, write: false }],
    ['max-age=30', { read: true, write: true, maxAgeS: 30 }],
    ['No-Cache, max-age="5"', { read: false, write: true, maxAgeS: 5 }],
    ['private, s-maxage=10', { read: true, write: true }],
  ])('Cache-Control: %s', (header, expected) => {
    expect(readPolicy({ 'cache-control': header }, DEFAULTS)).toMatchObject(expected);
  });

  it('takes X-Recall-TTL and X-Recall-Namespace', () => {
    expect(readPolicy({ 'x-recall-ttl': '5', 'x-recall-namespace': 'team-a.v2' }, DEFAULTS)).toMatchObject({ ttlS: 5, namespace: 'team-a.v2' });
  });

  it.each([
    [{ 'x-recall-ttl': 'soon' }, 'X-Recall-TTL'],
    [{ 'x-recall-ttl': '0' }, 'X-Recall-TTL'],
    [{ 'x-recall-ttl': '-1' }, 'X-Recall-TTL'],
    [{ 'cache-control': 'max-age=abc' }, 'Cache-Control max-age'],
    [{ 'cache-control': 'stale-if-error=-5' }, 'Cache-Control stale-if-error'],
    [{ 'cache-control': 'stale-if-error' }, 'Cache-Control stale-if-error'],
    [{ 'x-recall-namespace': 'has space' }, 'X-Recall-Namespace'],
    [{ 'x-recall-namespace': 'x'.repeat(65) }, 'X-Recall-Namespace'],
  ])('rejects %j with a 400 naming the header', (headers, param) => {
    let error: unknown;
    try {
      readPolicy(headers, DEFAULTS);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RecallError);
    expect((error as RecallError).status).toBe(400);
    expect((error as RecallError).param).toBe(param);
  });

  it.each([
    ['off', 'off'],
    ['OFF', 'off'],
    ['on', undefined],
    ['0.95', 0.95],
    ['1', 1],
    ['0', 0],
  ])('X-Recall-Semantic: %s', (header, expected) => {
    expect(readPolicy({ 'x-recall-semantic': header }, DEFAULTS).semantic).toBe(expected);
  });

  it.each(['sometimes', '1.5', '-0.2', '', '0.9x'])('X-Recall-Semantic: %j is a 400 naming the header', (header) => {
    const error = (() => { try { readPolicy({ 'x-recall-semantic': header }, DEFAULTS); } catch (e) { return e; } })();
    expect(error).toBeInstanceOf(RecallError);
    expect((error as RecallError).status).toBe(400);
    expect((error as RecallError).param).toBe('X-Recall-Semantic');
  });
});
