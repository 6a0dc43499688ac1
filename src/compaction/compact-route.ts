// POST /recall/compact: shrinks a chat conversation to target_tokens and answers with the compacted messages and
// what was done. Its JSON schema rejects bad input with a 400 naming the field before any work starts.
import type { FastifyInstance } from 'fastify';
import type { TenantResolver } from '../cache/tenant.js';
import { readPriority } from '../upstream/priority.js';
import { upstreamRequestHeaders } from '../upstream/headers.js';
import type { JsonObject } from '../openai/wire.js';
import { chatMessagesSchema } from '../openai/request-schemas.js';
import { STRATEGIES, type Compactor, type Strategy } from './compactor.js';

export interface CompactRouteDeps {
  compactor: Compactor;
  tenants: TenantResolver;
  upstreamApiKey: string | undefined;
  /** server.max_messages */
  maxMessages: number;
}

interface CompactBody {
  model: string;
  messages: JsonObject[];
  target_tokens: number;
  strategy: Strategy;
  preserve_recent?: number;
}

function bodySchema(maxMessages: number) {
  return {
    type: 'object',
    required: ['model', 'messages', 'target_tokens', 'strategy'],
    properties: {
      model: { type: 'string', minLength: 1 },
      messages: chatMessagesSchema({ maxMessages }),
      target_tokens: { type: 'integer', minimum: 1 },
      strategy: { type: 'string', enum: [...STRATEGIES] },
      preserve_recent: { type: 'integer', minimum: 0 },
    },
  } as const;
}

export async function compactRoutes(app: FastifyInstance, deps: CompactRouteDeps): Promise<void> {
  app.post<{ Body: CompactBody }>('/recall/compact', { schema: { body: bodySchema(deps.maxMessages) } }, async (request) => {
    const body = request.body;
    const priority = readPriority(request.headers);
    const result = await deps.compactor.compact(
      { model: body.model, messages: body.messages, targetTokens: body.target_tokens, strategy: body.strategy, preserveRecent: body.preserve_recent },
      {
        tenant: deps.tenants.tenantOf(request),
        headers: upstreamRequestHeaders(request.headers, { fallbackApiKey: deps.upstreamApiKey, keepContentLength: false, identityEncoding: true }),
        priority,
      },
    );
    return {
      messages: result.messages,
      strategy_used: result.strategyUsed,
      reason: result.reason,
      tokens_before: result.tokensBefore,
      tokens_after: result.tokensAfter,
      summary_cached: result.summaryCached,
      summary_incremental: result.summaryIncremental,
      usage: result.usage,
    };
  });
}
