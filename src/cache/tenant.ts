// Whose cache partition a request reads and fills: an HMAC-SHA256 of the client's API key under a server secret,
// so tenants never share entries and the key itself is never kept. `cache.scope: shared` is the explicit opt-in.
// The same HMAC, whatever the scope, is the identity rate limits and token budgets are kept under, except that a key
// has one identity whichever header carries it (its partitions stay apart: Azure and OpenAI answers may differ).
import { createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { BoundedMemo } from './bounded-memo.js';

export type CacheScope = 'tenant' | 'shared';

/** The partition of requests that carry no key (they all go upstream with the configured key, if any). */
export const ANONYMOUS_TENANT = 'anonymous';
export const SHARED_TENANT = 'shared';

export class TenantResolver {
  private readonly secret: Buffer;
  // An HMAC per request was 5 % of a cache hit's CPU; clients reuse a handful of keys. The memo lives in process
  // memory only, where the keys already pass through every request.
  private readonly memo = new BoundedMemo<string>(10_000);

  constructor(private readonly scope: CacheScope, secret: string) {
    this.secret = Buffer.from(secret, 'utf8');
  }

  tenantOf(request: TenantSource): string {
    return this.scope === 'shared' ? SHARED_TENANT : this.hmacOf(request, true);
  }

  /**
   * Who sent a request, whatever the cache scope: the HMAC of its API key (the same whether it came as a Bearer token
   * or as `api-key`), or of the name of the proxy-issued key it presented (`auth.mode: proxy_keys`, where the key
   * itself is stripped before anything else reads the headers).
   */
  identityOf(request: TenantSource): string {
    return this.hmacOf(request, false);
  }

  /** A partition tells an `api-key` credential from the same Bearer one (as it always has); an identity does not. */
  private hmacOf(request: TenantSource, partition: boolean): string {
    const proxyKey = request.recall?.proxyKey;
    const presented = proxyKey === undefined ? clientCredential(request.headers) : undefined;
    const credential = proxyKey !== undefined ? `proxy-key:${proxyKey}`
      : presented === undefined ? undefined
      : partition && presented.header === 'api-key' ? `api-key:${presented.key}` : presented.key;
    if (credential === undefined) return ANONYMOUS_TENANT;
    let tenant = this.memo.get(credential);
    if (tenant === undefined) {
      tenant = createHmac('sha256', this.secret).update(credential).digest('hex').slice(0, 32);
      this.memo.set(credential, tenant);
    }
    return tenant;
  }
}

/** What the resolver reads of a request: its headers, and the proxy-issued key it was admitted with, if any. */
export interface TenantSource {
  headers: IncomingHttpHeaders;
  recall: { proxyKey: string | undefined } | null;
}

/**
 * The one reading of the API key a client sent, and which header carried it: `Authorization: Bearer …` (the whole
 * header for other schemes), else Azure's `api-key`. Partitions, limit identities and proxy-issued keys all read it.
 */
export function clientCredential(headers: IncomingHttpHeaders): { key: string; header: 'authorization' | 'api-key' } | undefined {
  const authorization = headers.authorization;
  if (authorization !== undefined && authorization !== '') {
    return { key: authorization.startsWith('Bearer ') ? authorization.slice(7).trim() : authorization, header: 'authorization' };
  }
  const apiKey = headers['api-key'];
  if (typeof apiKey === 'string' && apiKey !== '') return { key: apiKey, header: 'api-key' };
  return undefined;
}
