// A burst of identical chat requests, and what one upstream call for all of them looks like from the outside.
import type OpenAI from 'openai';
import { expect } from 'vitest';

/**
 * The mock's delay for a burst: every request must arrive before the upstream answers. On two shared cores, with
 * Chromium and Prometheus tests running alongside, 300 ms was sometimes too short.
 */
const BURST_LATENCY = { headers: { 'x-mock-latency-ms': '1500' } };

/** `count` copies of one chat request, sent at once, spread round-robin over the clients (one per instance). */
export function identicalBurst(clients: readonly OpenAI[], count: number, request: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming) {
  return Promise.all(Array.from({ length: count }, (_, i) => clients[i % clients.length]!.chat.completions.create(request, BURST_LATENCY).withResponse()));
}

/**
 * One answer for the whole burst, one MISS (the request that went upstream) and every other COALESCED, or HIT when
 * it arrived only once the answer was stored (a loaded machine). Returns each answer's X-Recall-Cache.
 */
export function expectOneLeader(answers: readonly { data: unknown; response: Response }[]): (string | null)[] {
  expect(new Set(answers.map((a) => JSON.stringify(a.data))).size).toBe(1);
  const outcomes = answers.map((a) => a.response.headers.get('x-recall-cache'));
  expect(outcomes.filter((o) => o === 'MISS')).toHaveLength(1);
  expect(outcomes.filter((o) => o === 'COALESCED' || o === 'HIT')).toHaveLength(answers.length - 1);
  return outcomes;
}
