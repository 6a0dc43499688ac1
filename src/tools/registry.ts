// The tool registry: the HTTP tools a batch may call, parsed from `tools.registry` once at config load. Header
// secrets are `${VAR}` references resolved from the environment then; the URL never comes from a request.

/** One configured tool. */
export interface ToolSpec {
  name: string;
  url: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Resolved values (secrets included): never logged or echoed. */
  headers: Readonly<Record<string, string>>;
  timeoutMs: number;
  access: 'read' | 'write';
  /** Read tools only: how long a result is cached in the exact tier; undefined: not cached. */
  cacheTtlS: number | undefined;
  /** Write tools only: the tools whose cached results a successful call invalidates. */
  affects: readonly string[];
}

export type Environment = Readonly<Record<string, string | undefined>>;

export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const FIELDS = ['name', 'url', 'method', 'headers', 'timeout_ms', 'access', 'cache_ttl_s', 'affects'];
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 600_000;
const MAX_CACHE_TTL_S = 31_536_000;
const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Thrown with a message naming the path of the bad value (`tools.registry[2].timeout_ms`); the loader prefixes it. */
export class ToolRegistryProblem extends Error {
  override readonly name = 'ToolRegistryProblem';
}

/** Validates the YAML list and resolves header references; throws ToolRegistryProblem naming the path. */
export function parseToolRegistry(value: unknown, env: Environment, path = 'tools.registry'): ToolSpec[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ToolRegistryProblem(`${path} must be a list of tools ({name, url, access, …})`);
  const names = new Set<string>();
  const tools = value.map((item, i) => {
    const tool = parseTool(item, env, `${path}[${i}]`);
    if (names.has(tool.name)) throw new ToolRegistryProblem(`${path}[${i}].name: ${tool.name} is configured twice`);
    names.add(tool.name);
    return tool;
  });
  tools.forEach((tool, i) => tool.affects.forEach((name, j) => {
    if (!names.has(name)) throw new ToolRegistryProblem(`${path}[${i}].affects[${j}]: no tool is named ${JSON.stringify(name)}`);
  }));
  return tools;
}

function parseTool(item: unknown, env: Environment, at: string): ToolSpec {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ToolRegistryProblem(`${at} must be a mapping ({name, url, access, …})`);
  const raw = item as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!FIELDS.includes(key)) throw new ToolRegistryProblem(`${at}: unknown key ${key}; known keys: ${FIELDS.join(', ')}`);
  }
  const name = raw['name'];
  if (typeof name !== 'string' || !TOOL_NAME_PATTERN.test(name)) throw new ToolRegistryProblem(`${at}.name must be 1 to 64 of A-Z a-z 0-9 _ -`);
  const url = parseUrl(raw['url'], `${at}.url`);
  const method = raw['method'] === undefined ? 'POST' : String(raw['method']).toUpperCase();
  if (!(METHODS as readonly string[]).includes(method)) throw new ToolRegistryProblem(`${at}.method must be one of ${METHODS.join(', ')}`);
  const access = raw['access'];
  if (access !== 'read' && access !== 'write') throw new ToolRegistryProblem(`${at}.access must be read or write`);
  const timeoutMs = raw['timeout_ms'] === undefined ? DEFAULT_TIMEOUT_MS : integer(raw['timeout_ms'], `${at}.timeout_ms`, 1, MAX_TIMEOUT_MS);
  const cacheTtlS = raw['cache_ttl_s'] === undefined ? undefined : integer(raw['cache_ttl_s'], `${at}.cache_ttl_s`, 1, MAX_CACHE_TTL_S);
  if (cacheTtlS !== undefined && access !== 'read') throw new ToolRegistryProblem(`${at}.cache_ttl_s: only read tools are cached`);
  const affects = raw['affects'] === undefined ? [] : raw['affects'];
  if (!Array.isArray(affects) || !affects.every((a): a is string => typeof a === 'string')) throw new ToolRegistryProblem(`${at}.affects must be a list of tool names`);
  if (affects.length > 0 && access !== 'write') throw new ToolRegistryProblem(`${at}.affects: only write tools invalidate cached results`);
  return { name, url, method: method as ToolSpec['method'], headers: parseHeaders(raw['headers'], env, `${at}.headers`), timeoutMs, access, cacheTtlS, affects };
}

function parseUrl(value: unknown, at: string): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new ToolRegistryProblem(`${at} must be an http:// or https:// URL`);
  }
  if (typeof value !== 'string' || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ToolRegistryProblem(`${at} must be an http:// or https:// URL`);
  return url.href;
}

function integer(value: unknown, at: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ToolRegistryProblem(`${at} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** Header values may hold `${VAR}` references; a reference to an unset variable stops the start (value not shown). */
function parseHeaders(value: unknown, env: Environment, at: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ToolRegistryProblem(`${at} must be a mapping of header names to values`);
  const headers: Record<string, string> = {};
  for (const [name, raw] of Object.entries(value as Record<string, unknown>)) {
    if (typeof raw !== 'string' && typeof raw !== 'number') throw new ToolRegistryProblem(`${at}.${name} must be a string`);
    headers[name.toLowerCase()] = String(raw).replace(ENV_REFERENCE, (_match, variable: string) => {
      const resolved = env[variable];
      if (resolved === undefined || resolved === '') throw new ToolRegistryProblem(`${at}.${name}: environment variable ${variable} is not set`);
      return resolved;
    });
  }
  return headers;
}
