// The request line is written member by member (lineMembers) for speed; it must read exactly as JSON.stringify would
// write the same fields (lineFields), whatever the request carried.
import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { lineFields, lineMembers } from '../../../src/log/request-log.js';
import { newRequestContext, type RequestContext } from '../../../src/proxy/request-context.js';

function requestWith(url: string, method: string, recall: Partial<RequestContext> | null): FastifyRequest {
  return { url, method, recall: recall === null ? null : { ...newRequestContext(), ...recall } } as unknown as FastifyRequest;
}

const cases: [string, FastifyRequest, string, number, number | undefined][] = [
  ['a plain hit', requestWith('/v1/chat/completions', 'POST', { cacheOutcome: 'HIT', tenantHash: 'ab12cd34' }), '/v1/chat/completions', 200, 0.4567],
  ['a miss with an upstream time and a streamed first event', requestWith('/v1/chat/completions', 'POST', { cacheOutcome: 'MISS', upstreamMs: 12.3456, firstEventMs: 3.333 }), '/v1/chat/completions', 200, 15.55],
  ['a semantic hit', requestWith('/v1/completions', 'POST', { cacheOutcome: 'SEMANTIC', similarity: 0.9712345 }), '/v1/completions', 200, 1],
  ['a coalesced follower', requestWith('/v1/chat/completions', 'POST', { cacheOutcome: 'COALESCED' }), '/v1/chat/completions', 200, 250],
  ['no context (refused before the hooks)', requestWith('/nowhere', 'GET', null), 'unmatched', 404, undefined],
  ['a path with quotes, unicode and a key in its query', requestWith('/v1/models?api_key=sk-abcdefgh12345678&q="ünï\\code"\n', 'GET', {}), '/v1/*', 499, 2e-7],
  ['a similarity that is not a number', requestWith('/v1/chat/completions', 'POST', { similarity: Number.NaN, upstreamMs: Number.POSITIVE_INFINITY }), '/v1/chat/completions', 502, -0],
];

describe('the request line', () => {
  it.each(cases)('reads as JSON.stringify of its fields: %s', (_name, request, route, status, durationMs) => {
    const members = lineMembers(request, route, status, durationMs);
    expect(members).toBe(JSON.stringify(lineFields(request, route, status, durationMs)).slice(1, -1));
    expect(JSON.parse(`{${members}}`)).toMatchObject({ route, status });
    expect(members).not.toContain('sk-abcdefgh12345678');
  });
});
