// Limit settings: the YAML lists are validated at start, and a mistake stops it with a line naming the bad value.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';
import { hashClientKey } from '../../../src/limits/limit-settings.js';

const HASH = hashClientKey('sk-some-client-key');

function fromYaml(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'recall-limits-'));
  const path = join(dir, 'recall.yaml');
  writeFileSync(path, text);
  return loadConfig({ env: { RECALL_CONFIG: path } });
}

function problemOf(load: () => unknown): string {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('the config loaded');
}

describe('limit settings', () => {
  it('hashes a key as sha256:<hex of the key as sent>', () => {
    expect(hashClientKey('sk-abc')).toBe('sha256:1460db1b6902f8b1fc2a40d9381a24d0fd22c3bc1b2c6f999c521da73776fbe0');
  });

  it('reads groups and keys from YAML, with limits per key and per group', () => {
    const config = fromYaml(`
auth:
  keys:
    - { name: team-a, hash: "${HASH.toUpperCase().replace('SHA256', 'sha256')}", group: standard }
limits:
  requests_per_minute: 10
  groups:
    - { name: standard, requests_per_minute: 60, tokens_per_minute: 100000 }
`);
    expect(config.auth).toEqual({ mode: 'passthrough', keys: [{ name: 'team-a', hash: HASH, group: 'standard', requestsPerMinute: undefined, tokensPerMinute: undefined }] });
    expect(config.limits).toEqual({ requestsPerMinute: 10, tokensPerMinute: 0, hitsSpendTokens: false, groups: [{ name: 'standard', requestsPerMinute: 60, tokensPerMinute: 100_000 }] });
  });

  it.each([
    ['a hash that is not sha256:<64 hex>', { 'auth.keys': [{ name: 'a', hash: 'sk-in-clear' }] }, /auth\.keys\[0\]\.hash must be sha256: followed by 64 hex digits \(npm run hash-key/],
    ['the same key twice', { 'auth.keys': [{ name: 'a', hash: HASH }, { name: 'b', hash: HASH }] }, /auth\.keys\[1\]\.hash: the same key is listed twice/],
    ['a name used twice', { 'limits.groups': [{ name: 'g' }, { name: 'g' }] }, /limits\.groups\[1\]\.name: g is configured twice/],
    ['an unknown field', { 'limits.groups': [{ name: 'g', rpm: 5 }] }, /limits\.groups\[0\]: unknown key rpm; known keys: name, requests_per_minute, tokens_per_minute/],
    ['a negative limit', { 'limits.groups': [{ name: 'g', requests_per_minute: -1 }] }, /limits\.groups\[0\]\.requests_per_minute must be an integer from 0 \(no limit\)/],
    ['a group nobody defined', { 'auth.keys': [{ name: 'a', hash: HASH, group: 'gold' }] }, /auth\.keys\[0\]\.group: no group in limits\.groups is named "gold"/],
    ['proxy_keys without keys', { 'auth.mode': 'proxy_keys', 'upstream.api_key': 'sk-up' }, /auth\.mode = proxy_keys needs the accepted keys in auth\.keys/],
    ['proxy_keys without an upstream key', { 'auth.mode': 'proxy_keys', 'auth.keys': [{ name: 'a', hash: HASH }] }, /auth\.mode = proxy_keys needs upstream\.api_key \(RECALL_UPSTREAM_API_KEY\)/],
    ['a list that is not a list', { 'auth.keys': 'sk-key' }, /auth\.keys must be a list of \{name, hash, group\}/],
  ])('rejects %s with a message naming it', (_what, overrides, message) => {
    expect(problemOf(() => loadConfig({ env: {}, overrides }))).toMatch(message);
  });

  it('never prints a key back: the message names the path, not the value', () => {
    expect(problemOf(() => loadConfig({ env: {}, overrides: { 'auth.keys': [{ name: 'a', hash: 'sk-live-secret-value' }] } }))).not.toContain('sk-live-secret-value');
  });
});
