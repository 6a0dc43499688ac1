// One POST /recall/tools/batch: parse and validate (400 before anything runs), plan the order, execute through the
// result cache and the invoker, and answer per call in input order with the `tool` messages to append.
import { canonicalJson } from '../cache/key.js';
import type { Metrics } from '../metrics/catalog.js';
import { parseBatchRequest, type BatchCall } from './batch-request.js';
import { executeBatch, type CallReport } from './executor.js';
import type { ToolInvoker } from './invoke.js';
import { planOrder } from './plan.js';
import type { ToolSpec } from './registry.js';
import type { ToolResultCache } from './result-cache.js';

export interface ToolBatchSettings {
  registry: readonly ToolSpec[];
  maxConcurrency: number;
  batchTimeoutMs: number;
  maxCalls: number;
}

/** One call's line in the answer. */
export type CallAnswer = { id: string; status: CallReport['status']; duration_ms: number; cached: boolean } & ({ result: unknown } | { error: string });

export interface ToolMessage {
  role: 'tool';
  tool_call_id: string;
  content: string;
}

export interface BatchAnswer {
  results: CallAnswer[];
  messages: ToolMessage[];
}

export class ToolBatch {
  private readonly tools: ReadonlyMap<string, ToolSpec>;

  constructor(
    private readonly settings: ToolBatchSettings,
    private readonly invoker: ToolInvoker,
    private readonly cache: ToolResultCache,
    private readonly metrics: Metrics,
  ) {
    this.tools = new Map(settings.registry.map((tool) => [tool.name, tool]));
  }

  /** `clientGone` aborts what still runs when the client leaves. */
  async run(body: unknown, clientGone?: AbortSignal): Promise<BatchAnswer> {
    const request = parseBatchRequest(body, this.tools, { maxCalls: this.settings.maxCalls, maxConcurrency: this.settings.maxConcurrency });
    const { calls } = request;
    // Identical calls of a cached read tool in one batch share one call; a write drops the shares of what it affects.
    const shared = new Map<string, Promise<{ result: unknown; cached: boolean }>>();
    const waits = planOrder(calls.map((c) => ({ id: c.id, access: c.tool.access, dependsOn: c.dependsOn })), request.form);
    const outcome = await executeBatch(
      calls.map((c) => ({ id: c.id, timeoutMs: c.tool.timeoutMs, dependsOn: c.dependsOn })),
      waits,
      {
        maxConcurrency: request.maxConcurrency ?? this.settings.maxConcurrency,
        deadlineMs: this.settings.batchTimeoutMs,
        signal: clientGone,
        run: (i, signal) => this.runShared(calls[i]!, signal, shared),
        onSettled: (i, report) => this.metrics.toolCall(calls[i]!.tool.name, report.status, report.durationMs / 1000),
      },
    );
    this.metrics.toolBatch(calls.length, outcome.concurrencyUsed);
    const results = outcome.reports.map(toAnswer);
    return { results, messages: outcome.reports.map(toMessage) };
  }

  private async runShared(call: BatchCall, signal: AbortSignal, shared: Map<string, Promise<{ result: unknown; cached: boolean }>>): Promise<{ result: unknown; cached: boolean }> {
    if (call.tool.access === 'write') {
      const done = await this.runCall(call, signal);
      for (const key of shared.keys()) if (call.tool.affects.some((name) => key.startsWith(`${name}\0`))) shared.delete(key);
      return done;
    }
    if (call.tool.cacheTtlS === undefined) return this.runCall(call, signal);
    const key = `${call.tool.name}\0${canonicalJson(call.arguments)}`;
    const leader = shared.get(key);
    if (leader !== undefined) return { result: (await leader).result, cached: true };
    const running = this.runCall(call, signal);
    shared.set(key, running);
    return running;
  }

  private async runCall(call: BatchCall, signal: AbortSignal): Promise<{ result: unknown; cached: boolean }> {
    const hit = await this.cache.get(call.tool, call.arguments);
    if (hit !== undefined) return { result: hit.result, cached: true };
    const result = await this.invoker.call(call.tool, call.arguments, signal);
    if (call.tool.access === 'write') await this.cache.invalidate(call.tool);
    else await this.cache.set(call.tool, call.arguments, result);
    return { result, cached: false };
  }
}

function toAnswer(report: CallReport): CallAnswer {
  const head = { id: report.id, status: report.status, duration_ms: report.durationMs, cached: report.cached };
  return report.status === 'ok' ? { ...head, result: report.result } : { ...head, error: report.error };
}

/** A string result goes as it is; anything else as JSON. Failures as `{"error": …}` so the model can tell them apart. */
function toMessage(report: CallReport): ToolMessage {
  const content = report.status === 'ok'
    ? (typeof report.result === 'string' ? report.result : JSON.stringify(report.result))
    : JSON.stringify({ error: report.error, status: report.status });
  return { role: 'tool', tool_call_id: report.id, content };
}
