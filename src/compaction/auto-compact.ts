// Auto-compaction: `X-Recall-Compact: auto` (optionally `; target=N`) on /v1/chat/completions compacts the messages
// before the cache lookup and the upstream call, so the key and the upstream see the compacted conversation.
// What was done is reported in `X-Recall-Compacted`.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { TenantResolver } from '../cache/tenant.js';
import type { RecallConfig } from '../config/schema.js';
import { RecallError } from '../openai/errors.js';
import { isRecord, type JsonObject } from '../openai/wire.js';
import { upstreamRequestHeaders } from '../upstream/headers.js';
import type { Compactor } from './compactor.js';
import { contextWindowOf } from './context-window.js';

const HEADER = 'x-recall-compact';
const AUTO_FORM = /^\s*auto\s*(?:;\s*target\s*=\s*(\d+)\s*)?$/i;

/** undefined without the header; `target` undefined means the model's context window minus the reply's room. */
export function readCompactHeader(headers: IncomingHttpHeaders): { target: number | undefined } | undefined {
  const value = headers[HEADER];
  if (value === undefined) return undefined;
  const match = typeof value === 'string' ? AUTO_FORM.exec(value) : null;
  const target = match?.[1] === undefined ? undefined : Number(match[1]);
  if (match === null || (target !== undefined && (target < 1 || !Number.isSafeInteger(target)))) {
    throw new RecallError('invalidHeader', `X-Recall-Compact must be 'auto' or 'auto; target=N' with N a positive integer, not '${String(value).slice(0, 40)}'.`, 'X-Recall-Compact');
  }
  return { target };
}

export class AutoCompaction {
  constructor(
    private readonly compactor: Compactor,
    private readonly tenants: TenantResolver,
    private readonly settings: RecallConfig['compaction'],
    private readonly upstreamApiKey: string | undefined,
  ) {}

  /** The request's body, compacted when it asks for it and exceeds the target; the raw bytes are replaced to match. */
  async apply(request: FastifyRequest, reply: FastifyReply): Promise<JsonObject> {
    const body = request.body as JsonObject;
    const asked = readCompactHeader(request.headers);
    if (asked === undefined) return body;
    // A body the upstream would reject anyway goes to it unchanged, for its own error.
    if (typeof body.model !== 'string' || !Array.isArray(body.messages) || body.messages.length === 0 || !body.messages.every(isRecord)) return body;
    const target = asked.target ?? this.windowTarget(body);
    const result = await this.compactor.compact(
      { model: body.model, messages: body.messages, targetTokens: target, strategy: this.settings.autoStrategy, preserveRecent: undefined },
      {
        tenant: this.tenants.tenantOf(request),
        headers: upstreamRequestHeaders(request.headers, { fallbackApiKey: this.upstreamApiKey, keepContentLength: false, identityEncoding: true }),
        priority: request.recall.priority,
      },
    );
    const summary = result.summaryCached === null ? '' : `; summary_cached=${result.summaryCached}`;
    reply.header('x-recall-compacted', `strategy=${result.strategyUsed}; tokens_before=${result.tokensBefore}; tokens_after=${result.tokensAfter}; target=${target}${summary}`);
    if (result.strategyUsed === 'none') return body;
    const compacted = { ...body, messages: result.messages };
    request.body = compacted;
    request.recall.rawBody = Buffer.from(JSON.stringify(compacted));
    return compacted;
  }

  private windowTarget(body: JsonObject): number {
    const reply = typeof body.max_completion_tokens === 'number' ? body.max_completion_tokens
      : typeof body.max_tokens === 'number' ? body.max_tokens : this.settings.autoReserveTokens;
    return Math.max(1, contextWindowOf(String(body.model), this.settings.defaultContextTokens) - reply);
  }
}
