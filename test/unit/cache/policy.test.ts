import { describe, expect, it } from 'vitest';
import { readPolicy } from '../../../src/cache/policy.js';
import { RecallError } from '../../../src/openai/errors.js';

describe('readPolicy', () => {
  it('defaults: read, write, default TTL and namespace', () => {
    expect(readPolicy({}, 60)).toEqual({ read: true, write: true, maxAgeS: undefined, ttlS: 60, namespace: 'default' });
  });

  it.each([
    ['no-cache', { read: false, write: true }],
    ['no-store', { read: false, write: false }],
    ['max-age=30', { read: true, write: true, maxAgeS: 30 }],
    ['No-Cache, max-age="5"', { read: false, write: true, maxAgeS: 5 }],
    ['private, s-maxage=10', { read: true, write: true }],
  ])('Cache-Control: %s', (header, expected) => {
    expect(readPolicy({ 'cache-control': header }, 60)).toMatchObject(expected);
  });

  it('takes X-Recall-TTL and X-Recall-Namespace', () => {
    expect(readPolicy({ 'x-recall-ttl': '5', 'x-recall-namespace': 'team-a.v2' }, 60)).toMatchObject({ ttlS: 5, namespace: 'team-a.v2' });
  });

  it.each([
    [{ 'x-recall-ttl': 'soon' }, 'X-Recall-TTL'],
    [{ 'x-recall-ttl': '0' }, 'X-Recall-TTL'],
    [{ 'x-recall-ttl': '-1' }, 'X-Recall-TTL'],
    [{ 'cache-control': 'max-age=abc' }, 'Cache-Control max-age'],
    [{ 'x-recall-namespace': 'has space' }, 'X-Recall-Namespace'],
    [{ 'x-recall-namespace': 'x'.repeat(65) }, 'X-Recall-Namespace'],
  ])('rejects %j with a 400 naming the header', (headers, param) => {
    let error: unknown;
    try {
      readPolicy(headers, 60);
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
    expect(readPolicy({ 'x-recall-semantic': header }, 60).semantic).toBe(expected);
  });

  it.each(['sometimes', '1.5', '-0.2', '', '0.9x'])('X-Recall-Semantic: %j is a 400 naming the header', (header) => {
    const error = (() => { try { readPolicy({ 'x-recall-semantic': header }, 60); } catch (e) { return e; } })();
    expect(error).toBeInstanceOf(RecallError);
    expect((error as RecallError).status).toBe(400);
    expect((error as RecallError).param).toBe('X-Recall-Semantic');
  });
});
