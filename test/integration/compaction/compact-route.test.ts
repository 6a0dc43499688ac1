// POST /recall/compact on a real Recall in front of the mock upstream, which writes the summaries.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRecallWithMock, type RecallWithMock } from '../../support/recall.js';
import { agentConversation, words } from '../../support/conversation.js';

let env: RecallWithMock;
beforeAll(async () => { env = await startRecallWithMock({ 'compaction.pinned_patterns': '^PINNED:' }); });
afterAll(async () => { await env.close(); });
beforeEach(() => env.mock.reset());

async function compact(body: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${env.recall.url}/recall/compact`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test-client-key-000' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}


/** Every tool message follows its assistant call, and no tool message comes first after the instructions. */
function expectToolPairsIntact(messages: Record<string, any>[]): void {
  const calls = new Set<string>();
  const firstTurn = messages.findIndex((m) => m.role !== 'system' && m.role !== 'developer');
  expect(messages[firstTurn]?.role).not.toBe('tool');
  for (const message of messages) {
    if (message.role === 'assistant' && Array.isArray(message.tool_calls)) for (const call of message.tool_calls) calls.add(call.id);
    if (message.role === 'tool') expect(calls.has(message.tool_call_id)).toBe(true);
  }
}

describe('POST /recall/compact', () => {
  it('answers the conformance request with 200', async () => {
    const { status, json } = await compact({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], target_tokens: 100, strategy: 'truncation' });
    expect(status).toBe(200);
    expect(json).toMatchObject({ messages: [{ role: 'user', content: 'hi' }], strategy_used: 'none', tokens_before: 8, tokens_after: 8, summary_cached: null });
    expect(json.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
  });

  it('names the bad field in a 400', async () => {
    const cases: [unknown, string][] = [
      [{ messages: [{ role: 'user', content: 'hi' }], target_tokens: 100, strategy: 'truncation' }, 'model'],
      [{ model: 'gpt-4o-mini', messages: [], target_tokens: 100, strategy: 'truncation' }, 'messages'],
      [{ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], target_tokens: 0, strategy: 'truncation' }, 'target_tokens'],
      [{ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], target_tokens: 100, strategy: 'magic' }, 'strategy'],
      [{ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], target_tokens: 100, strategy: 'summary', preserve_recent: -1 }, 'preserve_recent'],
    ];
    for (const [body, field] of cases) {
      const { status, json } = await compact(body);
      expect(status, field).toBe(400);
      expect(json.error.param, field).toBe(field);
      expect(json.error.code).toBe('invalid_parameter');
    }
  });

  it('answers a budget that cannot be met with a clear error', async () => {
    const { status, json } = await compact({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: words(200, 'w') }], target_tokens: 50, strategy: 'truncation' });
    expect(status).toBe(400);
    expect(json.error.code).toBe('compaction_budget_unreachable');
    expect(json.error.param).toBe('target_tokens');
    expect(json.error.message).toContain('target_tokens 50 cannot be met');
  });

  it('truncates to the budget, keeping the system prompt, pinned messages and tool pairs', async () => {
    const messages = agentConversation(8);
    messages.splice(1, 0, { role: 'user', content: 'PINNED: my passport number is X123' });
    const { status, json } = await compact({ model: 'gpt-4o-mini', messages, target_tokens: 600, strategy: 'truncation' });
    expect(status).toBe(200);
    expect(json.strategy_used).toBe('truncation');
    expect(json.tokens_after).toBeLessThanOrEqual(600);
    expect(json.tokens_before).toBeGreaterThan(600);
    expect(json.messages[0]).toEqual(messages[0]);
    expect(json.messages[1]).toEqual(messages[1]);
    expect(json.messages.at(-1)).toEqual(messages.at(-1));
    expectToolPairsIntact(json.messages);
    expect(env.mock.stats().requests).toBe(0);
  });

  it('summarises the older span through the upstream, keeps recent messages, and caches the summary', async () => {
    const messages = agentConversation(8);
    const first = await compact({ model: 'gpt-4o-mini', messages, target_tokens: 600, strategy: 'summary', preserve_recent: 3 });
    expect(first.status).toBe(200);
    expect(first.json.strategy_used).toBe('summary');
    expect(first.json.summary_cached).toBe(false);
    expect(first.json.usage.total_tokens).toBeGreaterThan(0);
    expect(first.json.tokens_after).toBeLessThanOrEqual(600);
    const out = first.json.messages as Record<string, any>[];
    expect(out[0]).toEqual(messages[0]);
    expect(out[1]!.content).toMatch(/^Summary of the earlier conversation \(written by Recall\):\nMock answer/);
    // preserve_recent 3 falls inside the last tool pair's turn: widened to the call, so the pair stays whole.
    expect(out.slice(2)).toEqual(messages.slice(-4));
    expectToolPairsIntact(out);
    expect(env.mock.stats().byRoute['POST /v1/chat/completions']).toBe(1);
    const sent = JSON.parse(env.mock.requests()[0]!.body);
    expect(sent.model).toBe('gpt-4o-mini');
    expect(sent.messages[1].content).toContain('Question 0');

    const again = await compact({ model: 'gpt-4o-mini', messages, target_tokens: 600, strategy: 'summary', preserve_recent: 3 });
    expect(again.json.summary_cached).toBe(true);
    expect(again.json.messages).toEqual(out);
    expect(again.json.usage.total_tokens).toBe(0);
    expect(env.mock.stats().byRoute['POST /v1/chat/completions']).toBe(1);
    const metrics = await (await fetch(`${env.recall.url}/metrics`)).text();
    expect(Number(/^recall_compactions_total\{strategy="summary",summary="hit"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^recall_compaction_tokens_removed_total\{strategy="summary"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
  });

  it('summarises incrementally: the earlier summary plus only the new span', async () => {
    const short = agentConversation(6);
    const first = await compact({ model: 'gpt-4o-mini', messages: short, target_tokens: 500, strategy: 'summary', preserve_recent: 1 });
    expect(first.json.summary_cached).toBe(false);
    const firstSummary = (first.json.messages[1].content as string).split('\n').slice(1).join('\n');
    // The conversation grows: the same opening, then more turns.
    const grown = [...short, { role: 'assistant', content: 'Final answer A.' }, ...agentConversation(9).slice(1 + 6 * 4)];
    const second = await compact({ model: 'gpt-4o-mini', messages: grown, target_tokens: 500, strategy: 'summary', preserve_recent: 1 });
    expect(second.status).toBe(200);
    expect(second.json.summary_cached).toBe(false);
    expect(second.json.summary_incremental).toBe(true);
    const sent = JSON.parse(env.mock.requests().at(-1)!.body);
    const transcript = sent.messages[1].content as string;
    expect(transcript).toContain(`Earlier summary:\n${firstSummary}`);
    expect(transcript).not.toContain('Question 0');
    expect(transcript).toContain('Question 6');
    expectToolPairsIntact(second.json.messages);
  });

  it('summarises a conversation it compacted before together with its earlier summary, leaving one summary', async () => {
    const first = await compact({ model: 'gpt-4o-mini', messages: agentConversation(6), target_tokens: 500, strategy: 'summary', preserve_recent: 1 });
    const earlier = first.json.messages[1].content as string;
    const continued = [...first.json.messages, { role: 'assistant', content: 'Noted.' }, ...agentConversation(8).slice(1 + 6 * 4)];
    const second = await compact({ model: 'gpt-4o-mini', messages: continued, target_tokens: 500, strategy: 'summary', preserve_recent: 1 });
    expect(second.status).toBe(200);
    const summaries = (second.json.messages as Record<string, any>[]).filter((m) => typeof m.content === 'string' && m.content.startsWith('Summary of the earlier conversation'));
    expect(summaries).toHaveLength(1);
    expect(summaries[0]!.content).not.toBe(earlier);
    const transcript = JSON.parse(env.mock.requests().at(-1)!.body).messages[1].content as string;
    expect(transcript).toContain(earlier);
    expect(transcript).toContain('Question 6');
  });

  it('shares one upstream call between identical summaries asked at the same time', async () => {
    env.mock.setDefaults({ latencyMs: 50 });
    const body = { model: 'gpt-4o-mini', messages: agentConversation(7), target_tokens: 500, strategy: 'summary' };
    const answers = await Promise.all([compact(body), compact(body), compact(body)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers[1]!.json.messages).toEqual(answers[0]!.json.messages);
    expect(answers.filter((a) => a.json.summary_cached === false)).toHaveLength(1);
    expect(env.mock.stats().byRoute['POST /v1/chat/completions']).toBe(1);
  });

  it('hybrid truncates a little over budget and summarises far over it, saying why', async () => {
    const messages = agentConversation(4);
    const slightly = await compact({ model: 'gpt-4o-mini', messages, target_tokens: 1200, strategy: 'hybrid' });
    expect(slightly.json.tokens_before).toBeLessThanOrEqual(1.5 * 1200);
    expect(slightly.json.strategy_used).toBe('truncation');
    expect(slightly.json.reason).toContain('hybrid');
    expectToolPairsIntact(slightly.json.messages);
    const far = await compact({ model: 'gpt-4o-mini', messages, target_tokens: 500, strategy: 'hybrid' });
    expect(far.status).toBe(200);
    expect(far.json.strategy_used).toBe('summary');
    expect(far.json.reason).toContain('summary');
    expectToolPairsIntact(far.json.messages);
  });

  it('answers 502 when the upstream cannot summarise, leaving nothing half-done', async () => {
    env.mock.failNext('500', 3);
    const { status, json } = await compact({ model: 'gpt-4o-mini', messages: agentConversation(5), target_tokens: 300, strategy: 'summary' });
    expect(status).toBe(502);
    expect(json.error.code).toBe('compaction_summary_failed');
  });
});
