import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ANONYMOUS_TENANT, SHARED_TENANT, TenantResolver, type TenantSource } from '../../../src/cache/tenant.js';

/** A request as the resolver sees it: its headers, admitted with a proxy-issued key or not. */
function sent(headers: Record<string, string>, proxyKey?: string): TenantSource {
  return { headers, recall: { proxyKey } };
}

describe('TenantResolver', () => {
  const tenants = new TenantResolver('tenant', 'server-secret');

  it('derives a stable partition per key that does not contain the key', () => {
    const a = tenants.tenantOf(sent({ authorization: 'Bearer sk-alpha-123456' }));
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(tenants.tenantOf(sent({ authorization: 'Bearer sk-alpha-123456' }))).toBe(a);
    expect(a).not.toContain('alpha');
    expect(tenants.tenantOf(sent({ authorization: 'Bearer sk-beta-123456' }))).not.toBe(a);
    expect(new TenantResolver('tenant', 'other-secret').tenantOf(sent({ authorization: 'Bearer sk-alpha-123456' }))).not.toBe(a);
  });

  it('keeps Azure api-key and bearer credentials apart, and keyless requests together', () => {
    expect(tenants.tenantOf(sent({ 'api-key': 'sk-alpha-123456' }))).not.toBe(tenants.tenantOf(sent({ authorization: 'Bearer sk-alpha-123456' })));
    expect(tenants.tenantOf(sent({}))).toBe(ANONYMOUS_TENANT);
  });

  it('keeps the partitions it always derived, and gives a key one identity whichever header carries it', () => {
    const hmac = (credential: string) => createHmac('sha256', 'server-secret').update(credential).digest('hex').slice(0, 32);
    expect(tenants.tenantOf(sent({ 'api-key': 'sk-alpha-123456' }))).toBe(hmac('api-key:sk-alpha-123456'));
    expect(tenants.tenantOf(sent({ authorization: 'Bearer sk-alpha-123456' }))).toBe(hmac('sk-alpha-123456'));
    expect(tenants.tenantOf(sent({ authorization: 'Token sk-alpha-123456' }))).toBe(hmac('Token sk-alpha-123456'));
    expect(tenants.identityOf(sent({ 'api-key': 'sk-alpha-123456' }))).toBe(tenants.identityOf(sent({ authorization: 'Bearer sk-alpha-123456' })));
  });

  it('puts everyone in one partition when the scope is shared', () => {
    expect(new TenantResolver('shared', 's').tenantOf(sent({ authorization: 'Bearer sk-x' }))).toBe(SHARED_TENANT);
  });

  it('limits each key apart even with a shared cache: identityOf ignores the scope', () => {
    const shared = new TenantResolver('shared', 'server-secret');
    expect(shared.identityOf(sent({ authorization: 'Bearer sk-alpha-123456' }))).toBe(tenants.tenantOf(sent({ authorization: 'Bearer sk-alpha-123456' })));
    expect(shared.identityOf(sent({ authorization: 'Bearer sk-beta-123456' }))).not.toBe(shared.identityOf(sent({ authorization: 'Bearer sk-alpha-123456' })));
  });

  it('derives a proxy-issued key\'s partition from its name, not from the headers (its key is stripped from them)', () => {
    const upstreamKey = { authorization: 'Bearer sk-recall-upstream' };
    const alice = tenants.tenantOf(sent(upstreamKey, 'alice'));
    expect(alice).toMatch(/^[0-9a-f]{32}$/);
    expect(alice).not.toBe(tenants.tenantOf(sent(upstreamKey, 'bob')));
    expect(alice).not.toBe(tenants.tenantOf(sent(upstreamKey)));
  });
});
