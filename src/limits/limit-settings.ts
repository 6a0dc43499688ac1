// The structured limit settings, parsed once at config load: key groups with their per-minute limits, and the client
// keys Recall knows, each by the SHA-256 of the key (never the key) with its group or its own limits.
import { createHash } from 'node:crypto';

/** Per-minute limits; 0 or undefined: no limit of that kind. */
export interface MinuteLimits {
  requestsPerMinute: number | undefined;
  tokensPerMinute: number | undefined;
}

export interface LimitGroup extends MinuteLimits {
  name: string;
}

export interface ClientKeySpec extends MinuteLimits {
  /** Shown in logs and errors instead of the key. */
  name: string;
  /** `sha256:<64 hex>` of the key as the client sends it (the Bearer token). */
  hash: string;
  group: string | undefined;
}

/** Thrown with a message naming the path of the bad value (`limits.groups[1].requests_per_minute`); the loader prefixes it. */
class LimitSettingsProblem extends Error {
  override readonly name = 'LimitSettingsProblem';
}

const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
const MAX_PER_MINUTE = 1_000_000_000;
const GROUP_FIELDS = ['name', 'requests_per_minute', 'tokens_per_minute'];
const KEY_FIELDS = ['name', 'hash', 'group', 'requests_per_minute', 'tokens_per_minute'];

/** How a key is written into `auth.keys`: `sha256:` and the hex SHA-256 of the key exactly as the client sends it. */
export function hashClientKey(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

export function parseLimitGroups(value: unknown, path: string): LimitGroup[] {
  return parseList(value, path, '{name, requests_per_minute, tokens_per_minute}', (raw, at) => {
    known(raw, GROUP_FIELDS, at);
    return { name: name(raw['name'], `${at}.name`), ...minuteLimits(raw, at) };
  });
}

export function parseClientKeys(value: unknown, path: string): ClientKeySpec[] {
  const keys = parseList(value, path, '{name, hash, group}', (raw, at): ClientKeySpec => {
    known(raw, KEY_FIELDS, at);
    const hash = raw['hash'];
    if (typeof hash !== 'string' || !HASH_PATTERN.test(hash.trim().toLowerCase())) {
      throw new LimitSettingsProblem(`${at}.hash must be sha256: followed by 64 hex digits (npm run hash-key -- <key> prints it)`);
    }
    const group = raw['group'] === undefined ? undefined : name(raw['group'], `${at}.group`);
    return { name: name(raw['name'], `${at}.name`), hash: hash.trim().toLowerCase(), group, ...minuteLimits(raw, at) };
  });
  const hashes = new Set<string>();
  keys.forEach((key, i) => {
    if (hashes.has(key.hash)) throw new LimitSettingsProblem(`${path}[${i}].hash: the same key is listed twice`);
    hashes.add(key.hash);
  });
  return keys;
}

function parseList<T extends { name: string }>(value: unknown, path: string, shape: string, parse: (raw: Record<string, unknown>, at: string) => T): T[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new LimitSettingsProblem(`${path} must be a list of ${shape}`);
  const names = new Set<string>();
  return value.map((item, i) => {
    const at = `${path}[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new LimitSettingsProblem(`${at} must be a mapping ${shape}`);
    const parsed = parse(item as Record<string, unknown>, at);
    if (names.has(parsed.name)) throw new LimitSettingsProblem(`${at}.name: ${parsed.name} is configured twice`);
    names.add(parsed.name);
    return parsed;
  });
}

function known(raw: Record<string, unknown>, fields: readonly string[], at: string): void {
  for (const key of Object.keys(raw)) {
    if (!fields.includes(key)) throw new LimitSettingsProblem(`${at}: unknown key ${key}; known keys: ${fields.join(', ')}`);
  }
}

function name(value: unknown, at: string): string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) throw new LimitSettingsProblem(`${at} must be 1 to 64 of A-Z a-z 0-9 _ . -`);
  return value;
}

function minuteLimits(raw: Record<string, unknown>, at: string): MinuteLimits {
  return {
    requestsPerMinute: perMinute(raw['requests_per_minute'], `${at}.requests_per_minute`),
    tokensPerMinute: perMinute(raw['tokens_per_minute'], `${at}.tokens_per_minute`),
  };
}

function perMinute(value: unknown, at: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_PER_MINUTE) {
    throw new LimitSettingsProblem(`${at} must be an integer from 0 (no limit) to ${MAX_PER_MINUTE}`);
  }
  return value;
}

/** What no single setting can check: groups that keys name exist, and proxy_keys has keys and an upstream key. */
export function limitSettingsProblem(
  auth: { mode: string; keys: readonly ClientKeySpec[] },
  limits: { groups: readonly LimitGroup[] },
  upstreamApiKey: string | undefined,
): string | undefined {
  const groups = new Set(limits.groups.map((g) => g.name));
  for (const [i, key] of auth.keys.entries()) {
    if (key.group !== undefined && !groups.has(key.group)) {
      return `auth.keys[${i}].group: no group in limits.groups is named ${JSON.stringify(key.group)}`;
    }
  }
  if (auth.mode !== 'proxy_keys') return undefined;
  if (auth.keys.length === 0) return 'auth.mode = proxy_keys needs the accepted keys in auth.keys (none are listed)';
  if (upstreamApiKey === undefined) return 'auth.mode = proxy_keys needs upstream.api_key (RECALL_UPSTREAM_API_KEY): Recall calls the upstream with its own key';
  return undefined;
}
