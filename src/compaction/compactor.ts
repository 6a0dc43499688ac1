// Shrinks a chat conversation to a token budget with one of three strategies, for POST /recall/compact and for
// auto-compaction on /v1/chat/completions. The strategies never split a tool call from its results.
//   truncation: system, developer and pinned messages plus the newest messages that fit.
//   summary:    older messages become one summary message (cached, incremental); the newest stay verbatim.
//   hybrid:     truncation while the conversation is at most compaction.hybrid_summary_ratio × target, summary above.
import type { RecallConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/catalog.js';
import type { JsonObject } from '../openai/wire.js';
import { blocksOf, textOf } from './conversation.js';
import type { Summarizer, SummaryContext, SummaryUsage } from './summary.js';
import { TokenCounter } from './tokens.js';
import { truncate } from './truncation.js';

export const STRATEGIES = ['truncation', 'summary', 'hybrid'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface CompactionRequest {
  model: string;
  messages: readonly JsonObject[];
  targetTokens: number;
  strategy: Strategy;
  /** Newest messages the summary strategy keeps verbatim; the configured default when undefined. */
  preserveRecent: number | undefined;
}

export interface Compaction {
  messages: JsonObject[];
  /** `none` when the conversation already fit. */
  strategyUsed: 'none' | 'truncation' | 'summary';
  reason: string;
  tokensBefore: number;
  tokensAfter: number;
  /** Whether the summary came from the cache; null when no summary was made. */
  summaryCached: boolean | null;
  /** The summary was built from an earlier cached summary plus the newer messages. */
  summaryIncremental: boolean;
  usage: SummaryUsage;
}

/** Text of the message that replaces the summarised messages; it marks what Recall wrote. */
export const SUMMARY_HEADING = 'Summary of the earlier conversation (written by Recall):';

const NO_USAGE: SummaryUsage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

export class Compactor {
  private readonly pinned: RegExp[];

  constructor(
    private readonly summarizer: Summarizer,
    private readonly settings: RecallConfig['compaction'],
    private readonly metrics?: Metrics,
  ) {
    this.pinned = (settings.pinnedPatterns ?? '').split('\n').filter((line) => line.trim() !== '').map((line) => new RegExp(line));
  }

  async compact(request: CompactionRequest, context: SummaryContext): Promise<Compaction> {
    const result = await this.run(request, context);
    const summary = result.summaryCached === null ? 'none' : result.summaryCached ? 'hit' : result.summaryIncremental ? 'incremental' : 'miss';
    this.metrics?.compaction(result.strategyUsed, summary, result.tokensBefore - result.tokensAfter);
    return result;
  }

  private async run(request: CompactionRequest, context: SummaryContext): Promise<Compaction> {
    const counter = new TokenCounter(request.model);
    const tokensBefore = counter.conversation(request.messages);
    const base = { tokensBefore, summaryCached: null, summaryIncremental: false, usage: NO_USAGE };
    if (tokensBefore <= request.targetTokens) {
      return { ...base, messages: [...request.messages], strategyUsed: 'none', reason: `already within target_tokens (${tokensBefore} ≤ ${request.targetTokens})`, tokensAfter: tokensBefore };
    }
    let strategy: 'truncation' | 'summary' = request.strategy === 'summary' ? 'summary' : 'truncation';
    let reason = `strategy ${request.strategy} requested`;
    if (request.strategy === 'hybrid') {
      const ratio = this.settings.hybridSummaryRatio;
      const limit = Math.floor(ratio * request.targetTokens);
      strategy = tokensBefore <= limit ? 'truncation' : 'summary';
      reason = strategy === 'truncation'
        ? `hybrid: ${tokensBefore} tokens ≤ ${ratio} × target_tokens (${limit}), so only a little has to go: truncation`
        : `hybrid: ${tokensBefore} tokens > ${ratio} × target_tokens (${limit}), too much to drop: summary`;
    }
    if (strategy === 'truncation') {
      const out = truncate(request.messages, request.targetTokens, counter, this.pinned);
      return { ...base, messages: out.messages, strategyUsed: 'truncation', reason: `${reason}; dropped ${out.dropped} oldest messages`, tokensAfter: out.tokens };
    }
    return this.summarise(request, counter, context, base, reason);
  }

  private async summarise(request: CompactionRequest, counter: TokenCounter, context: SummaryContext, base: Pick<Compaction, 'tokensBefore'>, reason: string): Promise<Compaction> {
    const { messages } = request;
    const blocks = blocksOf(messages);
    // The verbatim tail starts at a block boundary at or before the last `preserveRecent` messages.
    const preserve = request.preserveRecent ?? this.settings.preserveRecent;
    let tailBlock = blocks.length;
    while (tailBlock > 0 && blocks[tailBlock - 1]!.end > messages.length - preserve) tailBlock--;
    const kept: JsonObject[] = [];
    const span: JsonObject[] = [];
    const boundaries: number[] = [];
    for (let b = 0; b < tailBlock; b++) {
      const block = blocks[b]!;
      const part = messages.slice(block.start, block.end);
      const pinned = !block.orphan && part.some((m) => this.pinned.some((p) => p.test(textOf(m))));
      // A summary Recall wrote before is summarised again with the newer messages, not kept beside a new one.
      const earlierSummary = block.instructions && typeof part[0]!.content === 'string' && part[0]!.content.startsWith(SUMMARY_HEADING);
      if ((block.instructions && !earlierSummary) || pinned) kept.push(...part);
      else {
        span.push(...part);
        boundaries.push(span.length);
      }
    }
    const tail = blocks.length === tailBlock ? [] : messages.slice(blocks[tailBlock]!.start);
    let summaryCached: boolean | null = null;
    let summaryIncremental = false;
    let usage = NO_USAGE;
    let summarised: JsonObject[];
    if (span.length === 0) {
      summarised = [...messages];
      reason += '; nothing older than the preserved messages to summarise';
    } else {
      const summary = await this.summarizer.summarise(span, boundaries, context);
      summaryCached = summary.cached;
      summaryIncremental = summary.incremental;
      usage = summary.usage;
      summarised = [...kept, { role: 'system', content: `${SUMMARY_HEADING}\n${summary.text}` }, ...tail.filter((m, i) => !(i === 0 && m.role === 'tool'))];
      reason += `; summarised ${span.length} older messages${summary.cached ? ' (cached summary)' : summary.incremental ? ' (earlier cached summary plus the newer messages)' : ''}, kept ${tail.length} recent`;
    }
    let tokensAfter = counter.conversation(summarised);
    if (tokensAfter > request.targetTokens) {
      // Still too long: the summary and instructions stay, the oldest of the preserved messages go.
      const out = truncate(summarised, request.targetTokens, counter, this.pinned);
      summarised = out.messages;
      tokensAfter = out.tokens;
      reason += `; then dropped ${out.dropped} of the preserved messages to fit`;
    }
    return { ...base, messages: summarised, strategyUsed: 'summary', reason, tokensAfter, summaryCached, summaryIncremental, usage };
  }
}
