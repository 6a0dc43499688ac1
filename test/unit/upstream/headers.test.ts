import { describe, expect, it } from 'vitest';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../../src/upstream/headers.js';

const options = { fallbackApiKey: undefined, keepContentLength: false, identityEncoding: false };

describe('upstreamRequestHeaders', () => {
  it('strips hop-by-hop headers, those named by Connection, host, length and Recall controls', () => {
    const out = upstreamRequestHeaders(
      {
        host: 'recall:8080', connection: 'keep-alive, x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', te: 'trailers',
        'transfer-encoding': 'chunked', upgrade: 'h2c', 'proxy-authorization': 'Basic abc', 'content-length': '12',
        'x-recall-namespace': 'n', 'content-type': 'application/json', 'openai-organization': 'org-1', authorization: 'Bearer sk-client',
      },
      options,
    );
    expect(out).toEqual({ 'content-type': 'application/json', 'openai-organization': 'org-1', authorization: 'Bearer sk-client' });
  });

  it("keeps the client's key, and uses the configured key only when the client sends none", () => {
    const fallback = { ...options, fallbackApiKey: 'sk-recall' };
    expect(upstreamRequestHeaders({ authorization: 'Bearer sk-client' }, fallback).authorization).toBe('Bearer sk-client');
    expect(upstreamRequestHeaders({ 'api-key': 'azure-key' }, fallback)).toEqual({ 'api-key': 'azure-key' });
    expect(upstreamRequestHeaders({}, fallback).authorization).toBe('Bearer sk-recall');
    expect(upstreamRequestHeaders({}, options).authorization).toBeUndefined();
  });

  it('keeps the length for streamed bodies and asks for identity encoding when Recall reads the answer', () => {
    const out = upstreamRequestHeaders({ 'content-length': '5', 'accept-encoding': 'gzip, br' }, { ...options, keepContentLength: true, identityEncoding: true });
    expect(out).toEqual({ 'content-length': '5', 'accept-encoding': 'identity' });
  });
});

describe('clientResponseHeaders', () => {
  it('passes rate-limit and retry headers unchanged and drops hop-by-hop ones', () => {
    const out = clientResponseHeaders({
      'retry-after': '1', 'x-ratelimit-remaining-requests': '0', 'content-type': 'application/json',
      'content-length': '10', connection: 'keep-alive', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked',
    });
    expect(out).toEqual({ 'retry-after': '1', 'x-ratelimit-remaining-requests': '0', 'content-type': 'application/json' });
  });
});
