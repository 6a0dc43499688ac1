// X-Recall-Compact: auto on /v1/chat/completions, through the official SDK, with the mock upstream summarising.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type OpenAI from 'openai';
import { startRecallWithMock, type RecallWithMock } from '../../support/recall.js';
import { agentConversation } from '../../support/conversation.js';

let env: RecallWithMock;
beforeAll(async () => { env = await startRecallWithMock({ 'compaction.auto_strategy': 'hybrid' }); });
afterAll(async () => { await env.close(); });
beforeEach(() => env.mock.reset());


function chatBodies(): Record<string, any>[] {
  return env.mock.requests().filter((r) => r.path === '/v1/chat/completions').map((r) => JSON.parse(r.body));
}

describe('X-Recall-Compact: auto', () => {
  it('compacts a long conversation before the upstream call and the cache, and says so', async () => {
    const sdk = env.recall.client({ defaultHeaders: { 'X-Recall-Compact': 'auto; target=600' } });
    const messages = agentConversation(8);
    const { data, response } = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages }).withResponse();
    expect(data.choices[0]!.message.content).toMatch(/^Mock answer/);
    const report = response.headers.get('x-recall-compacted')!;
    expect(report).toMatch(/^strategy=summary; tokens_before=\d+; tokens_after=\d+; target=600; summary_cached=false$/);
    expect(Number(/tokens_after=(\d+)/.exec(report)![1])).toBeLessThanOrEqual(600);
    // Two upstream calls: the summary, then the chat completion with the compacted conversation.
    const [summaryCall, chatCall] = chatBodies();
    expect(summaryCall!.messages[1].content).toContain('Question 0');
    expect(chatCall!.messages.length).toBeLessThan(messages.length);
    expect(chatCall!.messages[0]).toEqual(messages[0]);
    expect(chatCall!.messages[1].content).toMatch(/^Summary of the earlier conversation/);
    expect(chatCall!.messages.at(-1)).toEqual(messages.at(-1));

    // The same long conversation again: the summary is cached, so the compacted request is an exact hit.
    const again = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages }).withResponse();
    expect(again.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(again.response.headers.get('x-recall-compacted')).toContain('summary_cached=true');
    expect(again.data).toEqual(data);
    expect(env.mock.stats().byRoute['POST /v1/chat/completions']).toBe(2);
  });

  it('leaves a conversation within the target alone', async () => {
    const sdk = env.recall.client({ defaultHeaders: { 'X-Recall-Compact': 'auto' } });
    const messages = agentConversation(2);
    const { response } = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages }).withResponse();
    expect(response.headers.get('x-recall-compacted')).toMatch(/^strategy=none; tokens_before=(\d+); tokens_after=\1; target=123904$/);
    expect(chatBodies()[0]!.messages).toEqual(messages);
  });

  it('truncates a conversation a little over the target, keeping tool pairs whole', async () => {
    const sdk = env.recall.client({ defaultHeaders: { 'X-Recall-Compact': 'auto; target=1200' } });
    const messages = agentConversation(4);
    const { response } = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages }).withResponse();
    expect(response.headers.get('x-recall-compacted')).toMatch(/^strategy=truncation; /);
    const sent = chatBodies()[0]!.messages as Record<string, any>[];
    expect(sent[0]).toEqual(messages[0]);
    expect(sent[1]!.role).not.toBe('tool');
    for (let i = 0; i < sent.length; i++) if (sent[i]!.role === 'tool') expect(sent[i - 1]!.role === 'tool' || sent[i - 1]!.tool_calls !== undefined).toBe(true);
  });

  it('rejects a malformed header with a 400 naming it, before anything goes upstream', async () => {
    const response = await fetch(`${env.recall.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-recall-compact': 'auto; target=lots' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: unknown }).error).toMatchObject({ code: 'invalid_header', param: 'X-Recall-Compact' });
    expect(env.mock.stats().requests).toBe(0);
  });
});
