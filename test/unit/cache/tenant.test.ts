import { describe, expect, it } from 'vitest';
import { ANONYMOUS_TENANT, SHARED_TENANT, TenantResolver } from '../../../src/cache/tenant.js';

describe('TenantResolver', () => {
  const tenants = new TenantResolver('tenant', 'server-secret');

  it('derives a stable partition per key that does not contain the key', () => {
    const a = tenants.tenantOf({ authorization: 'Bearer sk-alpha-123456' });
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(tenants.tenantOf({ authorization: 'Bearer sk-alpha-123456' })).toBe(a);
    expect(a).not.toContain('alpha');
    expect(tenants.tenantOf({ authorization: 'Bearer sk-beta-123456' })).not.toBe(a);
    expect(new TenantResolver('tenant', 'other-secret').tenantOf({ authorization: 'Bearer sk-alpha-123456' })).not.toBe(a);
  });

  it('keeps Azure api-key and bearer credentials apart, and keyless requests together', () => {
    expect(tenants.tenantOf({ 'api-key': 'sk-alpha-123456' })).not.toBe(tenants.tenantOf({ authorization: 'Bearer sk-alpha-123456' }));
    expect(tenants.tenantOf({})).toBe(ANONYMOUS_TENANT);
  });

  it('puts everyone in one partition when the scope is shared', () => {
    expect(new TenantResolver('shared', 's').tenantOf({ authorization: 'Bearer sk-x' })).toBe(SHARED_TENANT);
  });
});
