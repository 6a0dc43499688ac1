// Results of read tools with a cache TTL, kept in the exact tier under `tool:<name>:<hash of the arguments>` so that a
// write can drop every cached result of a tool it affects by prefix.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../cache/key.js';
import type { ExactTier } from '../cache/exact-tier.js';
import type { CachePolicy } from '../cache/policy.js';
import type { ToolSpec } from './registry.js';

export class ToolResultCache {
  constructor(private readonly exact: ExactTier) {}

  /** The cached result, or undefined (a miss, or a tool that is not cached). */
  async get(tool: ToolSpec, args: Readonly<Record<string, unknown>>): Promise<{ result: unknown } | undefined> {
    if (tool.cacheTtlS === undefined) return undefined;
    const found = await this.exact.lookup(resultKey(tool.name, args), policyFor(tool.cacheTtlS));
    if (found.outcome !== 'hit') return undefined;
    return JSON.parse(found.entry.body.toString('utf8')) as { result: unknown };
  }

  async set(tool: ToolSpec, args: Readonly<Record<string, unknown>>, result: unknown): Promise<void> {
    if (tool.cacheTtlS === undefined) return;
    await this.exact.save(resultKey(tool.name, args), Buffer.from(JSON.stringify({ result })), tool.cacheTtlS);
  }

  /** Drops the cached results of the tools a successful write declares it affects. */
  async invalidate(write: ToolSpec): Promise<void> {
    await Promise.all(write.affects.map((name) => this.exact.forgetPrefix(`${TOOL_KEY_PREFIX}${name}:`)));
  }
}

const TOOL_KEY_PREFIX = 'tool:';

function resultKey(tool: string, args: Readonly<Record<string, unknown>>): string {
  return `${TOOL_KEY_PREFIX}${tool}:${createHash('sha256').update(canonicalJson(args)).digest('hex')}`;
}

function policyFor(ttlS: number): CachePolicy {
  return { read: true, write: true, maxAgeS: undefined, ttlS, namespace: 'tool' };
}
