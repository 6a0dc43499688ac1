import { describe, expect, it } from 'vitest';
import { RetryPolicy, retryAfterMs, type RetrySettings } from '../../../src/upstream/retry.js';

const SETTINGS: RetrySettings = { retries: 2, retryBaseMs: 500, retryMaxMs: 8_000, retryAfterMaxMs: 10_000 };
const NOW = Date.parse('2026-03-01T12:00:00Z');

function policy(settings: Partial<RetrySettings> = {}, random = 0.5): RetryPolicy {
  return new RetryPolicy({ ...SETTINGS, ...settings }, () => random, () => NOW);
}

function failure(code: string): Error {
  return Object.assign(new Error(code), { code });
}

describe('RetryPolicy', () => {
  it.each([[429, 'status_429'], [502, 'status_502'], [503, 'status_503'], [504, 'status_504']])('retries a %i answer', (status, reason) => {
    expect(policy().afterAnswer(status, {}, 0)?.reason).toBe(reason);
  });

  it.each([200, 400, 401, 404, 500, 501])('passes a %i answer through', (status) => {
    expect(policy().afterAnswer(status, {}, 0)).toBeUndefined();
  });

  it('stops after upstream.retries retries', () => {
    expect(policy().afterAnswer(503, {}, 1)).toBeDefined();
    expect(policy().afterAnswer(503, {}, 2)).toBeUndefined();
    expect(policy({ retries: 0 }).afterAnswer(503, {}, 0)).toBeUndefined();
    expect(policy({ retries: 0 }).afterFailure(failure('ECONNREFUSED'), 0)).toBeUndefined();
  });

  it('waits as Retry-After asks, and does not retry when it asks for longer than retry_after_max_ms', () => {
    expect(policy().afterAnswer(429, { 'retry-after': '3' }, 0)).toEqual({ reason: 'status_429', delayMs: 3_000 });
    expect(policy().afterAnswer(503, { 'retry-after': '10' }, 0)?.delayMs).toBe(10_000);
    expect(policy().afterAnswer(429, { 'retry-after': '11' }, 0)).toBeUndefined();
    expect(policy({ retryAfterMaxMs: 0 }).afterAnswer(429, { 'retry-after': '1' }, 0)).toBeUndefined();
  });

  it('retries failures to connect, not failures that may come after the request was sent', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']) {
      expect(policy().afterFailure(failure(code), 0)?.reason, code).toBe('connect_error');
    }
    for (const code of ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_ABORTED']) {
      expect(policy().afterFailure(failure(code), 0), code).toBeUndefined();
    }
    expect(policy().afterFailure(new Error('no code'), 0)).toBeUndefined();
    expect(policy().afterFailure(undefined, 0)).toBeUndefined();
  });

  it('backs off exponentially up to retry_max_ms, with half of each step random', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => policy({}, 1).backoffMs(n))).toEqual([500, 1_000, 2_000, 4_000, 8_000, 8_000]);
    expect(policy({}, 0).backoffMs(0)).toBe(250);
    expect(policy({}, 0).backoffMs(4)).toBe(4_000);
    expect(policy({}, 0.5).afterAnswer(503, {}, 1)?.delayMs).toBe(750);
  });
});

describe('retryAfterMs', () => {
  it('reads seconds, an HTTP date, and retry-after-ms first', () => {
    expect(retryAfterMs({ 'retry-after': '2' }, NOW)).toBe(2_000);
    expect(retryAfterMs({ 'retry-after': '0' }, NOW)).toBe(0);
    expect(retryAfterMs({ 'retry-after': 'Sun, 01 Mar 2026 12:00:30 GMT' }, NOW)).toBe(30_000);
    expect(retryAfterMs({ 'retry-after': 'Sun, 01 Mar 2026 11:00:00 GMT' }, NOW)).toBe(0);
    expect(retryAfterMs({ 'retry-after-ms': '1500', 'retry-after': '2' }, NOW)).toBe(1_500);
  });

  it('ignores what it cannot read', () => {
    expect(retryAfterMs({}, NOW)).toBeUndefined();
    expect(retryAfterMs({ 'retry-after': 'soon' }, NOW)).toBeUndefined();
    expect(retryAfterMs({ 'retry-after-ms': 'x', 'retry-after': '2' }, NOW)).toBe(2_000);
  });
});
