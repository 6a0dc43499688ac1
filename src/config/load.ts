// Builds the typed RecallConfig once at start: defaults, then the YAML file named by RECALL_CONFIG, then the
// environment (env wins). Any bad value stops the start with one line naming the key, the value and what is allowed.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CONFIG_FILE_ENV, SETTINGS, type Environment, type HostPort, type RecallConfig, type Setting } from './schema.js';
import { limitSettingsProblem } from '../limits/limit-settings.js';

const HTTP_PROTOCOLS = ['http:', 'https:'];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type { Environment };

export interface LoadOptions {
  env?: Environment;
  /** Overrides applied last, by YAML path (`upstream.url`); used by tests and embedding code. */
  overrides?: Readonly<Record<string, unknown>>;
}

/** The one place that reads `process.env`. */
export function loadConfigFromProcess(): RecallConfig {
  return loadConfig({ env: process.env });
}

export function loadConfig(options: LoadOptions = {}): RecallConfig {
  const env = options.env ?? {};
  const file = nonEmpty(env[CONFIG_FILE_ENV]);
  const fromFile = file === undefined ? new Map<string, unknown>() : readYamlFile(file);
  const config: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    let value: unknown = setting.default;
    let origin = 'default';
    if (fromFile.has(setting.yaml)) {
      value = fromFile.get(setting.yaml);
      origin = `${file}`;
    }
    const envValue = setting.env === undefined ? undefined : nonEmpty(env[setting.env]);
    if (envValue !== undefined) {
      value = envValue;
      origin = `$${setting.env}`;
    }
    if (options.overrides && setting.yaml in options.overrides) {
      value = options.overrides[setting.yaml];
      origin = 'override';
    }
    setPath(config, setting.field, coerce(setting, value, origin, env));
  }
  const typed = config as unknown as RecallConfig;
  checkRedisChoice(typed.redis);
  const limitsProblem = limitSettingsProblem(typed.auth, typed.limits, typed.upstream.apiKey);
  if (limitsProblem !== undefined) throw new ConfigError(`invalid setting ${limitsProblem}`);
  return typed;
}

/** One way to reach Redis at a time, and the settings each way needs. */
function checkRedisChoice(redis: RecallConfig['redis']): void {
  const chosen = [
    redis.url !== undefined && 'redis.url (RECALL_REDIS_URL)',
    redis.cluster !== undefined && 'redis.cluster (RECALL_REDIS_CLUSTER)',
    redis.sentinels !== undefined && 'redis.sentinels (RECALL_REDIS_SENTINELS)',
  ].filter((name) => name !== false);
  if (chosen.length > 1) {
    throw new ConfigError(`${chosen.join(' and ')} are both set: Recall uses one Redis, a standalone server (url), a Cluster or one found through Sentinel; set only one`);
  }
  if (redis.sentinels !== undefined && redis.sentinelName === undefined) {
    throw new ConfigError('redis.sentinels (RECALL_REDIS_SENTINELS) needs redis.sentinel_name (RECALL_REDIS_SENTINEL_NAME): the master group the sentinels monitor');
  }
  if (redis.sentinelName !== undefined && redis.sentinels === undefined) {
    throw new ConfigError('redis.sentinel_name (RECALL_REDIS_SENTINEL_NAME) is set but redis.sentinels (RECALL_REDIS_SENTINELS) is not: list the sentinels as host:port');
  }
  if (redis.password !== undefined && redis.cluster === undefined && redis.sentinels === undefined) {
    throw new ConfigError('redis.password (RECALL_REDIS_PASSWORD) applies to redis.cluster or redis.sentinels only; put a standalone server\'s password in redis.url (redis://:password@host:port)');
  }
}

/** `host:port` or `[ipv6]:port`; undefined when it is neither. */
function parseHostPort(text: string): HostPort | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return undefined;
  return { host: match[1] ?? match[2]!, port };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function readYamlFile(path: string): Map<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path} (from $${CONFIG_FILE_ENV}) cannot be read: ${(err as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const flat = new Map<string, unknown>();
  if (document === null || document === undefined) return flat;
  if (!isPlainObject(document)) throw new ConfigError(`config file ${path} must hold a mapping of settings at its top level`);
  flatten(document, '', flat);
  const known = new Set(SETTINGS.map((s) => s.yaml));
  for (const key of flat.keys()) {
    if (!known.has(key)) {
      throw new ConfigError(`config file ${path}: unknown key ${key}; known keys: ${[...known].join(', ')}`);
    }
  }
  return flat;
}

function flatten(node: Record<string, unknown>, prefix: string, into: Map<string, unknown>): void {
  for (const [key, value] of Object.entries(node)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    // `key:` with nothing after it (a section whose keys are all commented out, or an emptied value) means unset.
    if (value === null) continue;
    if (isPlainObject(value)) flatten(value, path, into);
    else into.set(path, value);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

function coerce(setting: Setting, value: unknown, origin: string, env: Environment): unknown {
  const fail = (allowed: string): never => {
    const shown = setting.secret ? '(hidden)' : JSON.stringify(value);
    throw new ConfigError(`invalid setting ${setting.yaml}${setting.env ? ` (${setting.env})` : ''} = ${shown} from ${origin}: must be ${allowed}`);
  };
  if (setting.type === 'list') {
    try {
      return setting.parse(value, setting.yaml, env);
    } catch (err) {
      // The list parsers only throw problems that name the path of the bad value.
      throw new ConfigError(`invalid setting ${(err as Error).message} (in ${origin})`);
    }
  }
  if (value === undefined || value === null) {
    if ((setting.type === 'string' || setting.type === 'url' || setting.type === 'hosts') && setting.default === undefined) return undefined;
    return fail(`set (${describeAllowed(setting)})`);
  }
  switch (setting.type) {
    case 'integer': {
      const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
      if (!/^-?\d+$/.test(text)) return fail(describeAllowed(setting));
      const n = Number(text);
      if (n < setting.min || n > setting.max) return fail(describeAllowed(setting));
      return n;
    }
    case 'number': {
      const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
      if (!/^-?\d+(\.\d+)?$/.test(text)) return fail(describeAllowed(setting));
      const n = Number(text);
      if (n < setting.min || n > setting.max) return fail(describeAllowed(setting));
      return n;
    }
    case 'string': {
      if (typeof value !== 'string' && typeof value !== 'number') return fail('a string');
      const problem = setting.check?.(String(value));
      if (problem !== undefined) return fail(`valid: ${problem}`);
      return String(value);
    }
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      const text = String(value).trim().toLowerCase();
      if (['true', 'on', 'yes', '1'].includes(text)) return true;
      if (['false', 'off', 'no', '0'].includes(text)) return false;
      return fail(describeAllowed(setting));
    }
    case 'url': {
      if (typeof value !== 'string') return fail(describeAllowed(setting));
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        return fail(describeAllowed(setting));
      }
      if (!(setting.protocols ?? HTTP_PROTOCOLS).includes(url.protocol)) return fail(describeAllowed(setting));
      if (setting.protocols === undefined && (url.search !== '' || url.hash !== '')) return fail(`${describeAllowed(setting)} without query or fragment`);
      return url.href.replace(/\/+$/, '');
    }
    case 'enum': {
      const text = String(value).trim().toLowerCase();
      if (!setting.values.includes(text)) return fail(describeAllowed(setting));
      return text;
    }
    case 'hosts': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
      if (items === undefined || items.some((item) => typeof item !== 'string')) return fail(describeAllowed(setting));
      const texts = (items as string[]).map((item) => item.trim()).filter((item) => item !== '');
      if (texts.length === 0) return fail(describeAllowed(setting));
      const hosts: HostPort[] = [];
      for (const text of texts) {
        const host = parseHostPort(text);
        if (host === undefined) return fail(`${describeAllowed(setting)}; ${JSON.stringify(text)} is not host:port with a port from 1 to 65535`);
        hosts.push(host);
      }
      return hosts;
    }
  }
}

/** What a setting accepts, in words; used in error messages and in the generated docs. */
export function describeAllowed(setting: Setting): string {
  switch (setting.type) {
    case 'integer':
      return `an integer from ${setting.min} to ${setting.max}`;
    case 'number':
      return `a number from ${setting.min} to ${setting.max}`;
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'url':
      return `a URL (${(setting.protocols ?? HTTP_PROTOCOLS).map((p) => `${p}//`).join(' or ')})`;
    case 'enum':
      return `one of ${setting.values.join(', ')}`;
    case 'list':
      return 'a list (YAML only)';
    case 'hosts':
      return 'host:port addresses (comma-separated, or a YAML list)';
  }
}
