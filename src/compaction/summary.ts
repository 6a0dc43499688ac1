// The `summary` strategy's upstream part: turns a span of older messages into one summary text with the configured
// model and prompt, cached in the exact tier under the SHA-256 of the span, model, prompt version and tenant.
// Incremental: when a prefix of the span was summarised before, that summary plus only the newer messages is sent.
import { createHash } from 'node:crypto';
import type { ExactTier } from '../cache/exact-tier.js';
import type { CachePolicy } from '../cache/policy.js';
import { canonicalJson } from '../cache/key.js';
import type { RecallConfig } from '../config/schema.js';
import { summaryFailed } from '../openai/errors.js';
import { isRecord, type JsonObject } from '../openai/wire.js';
import type { SendWhole } from '../proxy/forward.js';
import type { HeaderMap } from '../upstream/headers.js';
import type { Priority } from '../upstream/priority.js';
import { textOf } from './conversation.js';

/** Bumped when the transcript format or the cache entry changes; with the prompt's hash it forms the prompt version. */
const SUMMARY_FORMAT = 'recall-summary-v1';
/** Summaries live in the exact tier under their own namespace: purging it drops them all. */
export const SUMMARY_NAMESPACE = 'compaction';

export interface SummaryUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface Summary {
  text: string;
  /** Served from the cache, or shared with an identical summary being made at the same time: no upstream call of its own. */
  cached: boolean;
  /** Built from a cached summary of an earlier prefix plus the newer messages. */
  incremental: boolean;
  /** What the upstream call spent; zeros for a cached summary. */
  usage: SummaryUsage;
}

/** On whose behalf the summary call goes upstream: the client's tenant, credentials and priority. */
export interface SummaryContext {
  tenant: string;
  headers: HeaderMap;
  priority: Priority | undefined;
}

const NO_USAGE: SummaryUsage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

export class Summarizer {
  private readonly promptVersion: string;
  private readonly policy: CachePolicy;
  /** Summaries being made, by the key of their full span. */
  private readonly inFlight = new Map<string, Promise<Summary>>();

  constructor(
    private readonly exact: ExactTier,
    private readonly send: SendWhole,
    private readonly settings: RecallConfig['compaction'],
  ) {
    this.promptVersion = `${SUMMARY_FORMAT}:${createHash('sha256').update(settings.summaryPrompt).digest('hex').slice(0, 16)}`;
    this.policy = { read: true, write: true, maxAgeS: undefined, ttlS: settings.summaryTtlSeconds, namespace: SUMMARY_NAMESPACE };
  }

  /**
   * `boundaries`: prefix lengths (message counts) at which an earlier summary may have been made, ascending. Identical
   * spans summarised at the same time share one upstream call.
   */
  summarise(span: readonly JsonObject[], boundaries: readonly number[], context: SummaryContext): Promise<Summary> {
    const keys = this.prefixKeys(span, context.tenant);
    const fullKey = keys[span.length - 1]!;
    const joined = this.inFlight.get(fullKey);
    if (joined !== undefined) return joined.then((summary) => ({ ...summary, usage: NO_USAGE, cached: true }));
    const made = this.make(span, boundaries, context, keys).finally(() => this.inFlight.delete(fullKey));
    this.inFlight.set(fullKey, made);
    return made;
  }

  private async make(span: readonly JsonObject[], boundaries: readonly number[], context: SummaryContext, keys: readonly string[]): Promise<Summary> {
    const fullKey = keys[span.length - 1]!;
    const candidates = [span.length, ...boundaries.filter((b) => b > 0 && b < span.length).reverse()];
    const lookups = await this.exact.lookupMany(candidates.map((length) => keys[length - 1]!), this.policy);
    let previous: { length: number; text: string } | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const lookup = lookups[i]!;
      if (lookup.outcome !== 'hit') continue;
      const text = readEntry(lookup.entry.body);
      if (text === undefined) continue;
      if (i === 0) return { text, cached: true, incremental: false, usage: NO_USAGE };
      previous = { length: candidates[i]!, text };
      break;
    }
    const transcript = transcriptOf(span.slice(previous?.length ?? 0), previous?.text);
    const { text, usage } = await this.callUpstream(transcript, context);
    await this.exact.save(fullKey, Buffer.from(JSON.stringify({ summary: text })), this.settings.summaryTtlSeconds);
    return { text, cached: false, incremental: previous !== undefined, usage };
  }

  /** Key of every prefix of the span: a hash chain, so the key of a prefix is the same in any longer conversation. */
  private prefixKeys(span: readonly JsonObject[], tenant: string): string[] {
    let chain = createHash('sha256').update(SUMMARY_FORMAT).update('\0').update(tenant).update('\0')
      .update(this.settings.summaryModel).update('\0').update(this.promptVersion).digest('hex');
    return span.map((message) => {
      chain = createHash('sha256').update(chain).update('\0').update(canonicalJson(message)).digest('hex');
      return `${SUMMARY_NAMESPACE}:${chain}`;
    });
  }

  private async callUpstream(transcript: string, context: SummaryContext): Promise<{ text: string; usage: SummaryUsage }> {
    const body = Buffer.from(JSON.stringify({
      model: this.settings.summaryModel,
      messages: [{ role: 'system', content: this.settings.summaryPrompt }, { role: 'user', content: transcript }],
      temperature: 0,
    }));
    const headers: HeaderMap = { ...context.headers, 'content-type': 'application/json', 'accept-encoding': 'identity' };
    delete headers['content-length'];
    const answer = await this.send({ method: 'POST', path: '/chat/completions', headers, body, priority: context.priority });
    if (answer.status !== 200) throw summaryFailed(`it answered ${answer.status}: ${answer.body.toString('utf8').slice(0, 200)}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body.toString('utf8'));
    } catch {
      throw summaryFailed('its answer is not JSON');
    }
    const choice = isRecord(parsed) && Array.isArray(parsed.choices) ? parsed.choices[0] : undefined;
    const text = isRecord(choice) && isRecord(choice.message) && typeof choice.message.content === 'string' ? choice.message.content.trim() : '';
    if (text === '') throw summaryFailed('its answer has no text');
    const usage = isRecord(parsed) && isRecord(parsed.usage) ? parsed.usage : {};
    const prompt = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
    const completion = typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0;
    return { text, usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } };
  }
}

function readEntry(body: Buffer): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    return isRecord(parsed) && typeof parsed.summary === 'string' ? parsed.summary : undefined;
  } catch {
    return undefined;
  }
}

/** The span as plain text the summary model reads: one paragraph per message, tool calls and results spelled out. */
export function transcriptOf(messages: readonly JsonObject[], earlierSummary: string | undefined): string {
  const parts: string[] = [];
  if (earlierSummary !== undefined) parts.push(`Earlier summary:\n${earlierSummary}`);
  for (const message of messages) {
    const role = typeof message.role === 'string' ? message.role : 'unknown';
    const who = typeof message.name === 'string' ? `${role} (${message.name})` : role;
    const text = textOf(message);
    if (text !== '') parts.push(role === 'tool' ? `tool result: ${text}` : `${who}: ${text}`);
    if (Array.isArray(message.tool_calls)) {
      for (const call of message.tool_calls) {
        if (isRecord(call) && isRecord(call.function)) parts.push(`${who} called ${String(call.function.name)}(${String(call.function.arguments ?? '')})`);
      }
    }
  }
  return parts.join('\n\n');
}
