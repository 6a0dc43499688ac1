// In-flight coalescing through a real Recall and the mock upstream, as SDK users see it: identical concurrent
// requests cost one upstream call, streams fan out live to late joiners, errors reach everyone.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MockUpstream } from '../../../loadtest/mock-upstream.js';
import { eventually, startRecallWithMock, type RecallWithMock } from '../../support/recall.js';
import { expectOneLeader, identicalBurst } from '../../support/burst.js';

let pair: RecallWithMock;
let mock: MockUpstream;
let sdk: OpenAI;
let counter = 0;

const upstreamChats = () => mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;
/** A prompt no other test uses, so that nothing is cached or in flight for it yet. */
const freshChat = () => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `coalesce ${process.pid} ${++counter}: tell me about caches` }] });

async function collect(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<{ text: string; chunks: number; usage: unknown }> {
  let text = '';
  let chunks = 0;
  let usage: unknown;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, chunks, usage };
}

beforeAll(async () => {
  pair = await startRecallWithMock();
  ({ mock, sdk } = pair);
});
afterAll(() => pair.close());
beforeEach(() => mock.reset());

describe('identical requests in flight', () => {
  it('200 concurrent identical requests make exactly one upstream call and get 200 identical answers', async () => {
    const request = freshChat();
    const answers = await identicalBurst([sdk], 200, request);
    expect(upstreamChats()).toBe(1);
    const outcomes = expectOneLeader(answers);
    expect(outcomes.filter((o) => o === 'COALESCED').length).toBeGreaterThan(100);
    const follower = answers.find((a) => a.response.headers.get('x-recall-cache') === 'COALESCED')!;
    expect(follower.response.headers.get('cache-status')).toBe('recall; fwd=miss; stored; detail=coalesced');
    // The entry was stored once, for whoever asks next.
    const next = await sdk.chat.completions.create(request).withResponse();
    expect(next.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(next.data).toEqual(answers[0]!.data);
    expect(upstreamChats()).toBe(1);
  });

  it('streaming joiners get every chunk, early or late, and plain joiners the assembled completion', async () => {
    const request = freshChat();
    const paced = { headers: { 'x-mock-chunk-delay-ms': '40' } };
    const leader = await sdk.chat.completions.create({ ...request, stream: true }, paced).withResponse();
    const leaderText = collect(leader.data);
    // Joiners arrive while the leader's stream is under way: some chunks have already gone by.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const lateStream = sdk.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }, paced).withResponse();
    const latePlain = sdk.chat.completions.create(request, paced).withResponse();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const later = sdk.chat.completions.create({ ...request, stream: true }, paced).withResponse();

    const [first, late, plain, last] = await Promise.all([leaderText, lateStream.then((r) => collect(r.data)), latePlain, later.then((r) => collect(r.data))]);
    expect(upstreamChats()).toBe(1);
    expect(first.text.length).toBeGreaterThan(0);
    expect(late.text).toBe(first.text);
    expect(last.text).toBe(first.text);
    expect(plain.data.choices[0]?.message.content).toBe(first.text);
    // Only the joiner that asked for usage got the usage chunk.
    expect(late.usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) });
    expect(first.usage).toBeUndefined();
    expect(last.usage).toBeUndefined();
    expect(leader.response.headers.get('x-recall-cache')).toBe('MISS');
    expect((await lateStream).response.headers.get('x-recall-cache')).toBe('COALESCED');
    expect(plain.response.headers.get('x-recall-cache')).toBe('COALESCED');
  });

  it('a streaming request joining a plain one gets the answer as a stream', async () => {
    const request = freshChat();
    const slow = { headers: { 'x-mock-latency-ms': '200' } };
    const plain = sdk.chat.completions.create(request, slow);
    await eventually(() => mock.stats().inFlight === 1, 'the upstream got the first request');
    const streamed = await sdk.chat.completions.create({ ...request, stream: true }, slow).withResponse();
    const text = (await collect(streamed.data)).text;
    expect(text).toBe((await plain).choices[0]?.message.content);
    expect(streamed.response.headers.get('x-recall-cache')).toBe('COALESCED');
    expect(streamed.response.headers.get('content-type')).toContain('text/event-stream');
    expect(upstreamChats()).toBe(1);
  });

  it('the leader leaving does not stop the call while others wait; they get the whole answer and it is stored', async () => {
    const request = freshChat();
    const paced = { headers: { 'x-mock-chunk-delay-ms': '40' } };
    const controller = new AbortController();
    const leader = await sdk.chat.completions.create({ ...request, stream: true }, { ...paced, signal: controller.signal });
    await leader[Symbol.asyncIterator]().next();
    const follower = sdk.chat.completions.create({ ...request, stream: true }, paced).then(collect);
    const plainFollower = sdk.chat.completions.create(request, paced);
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    const [streamed, plain] = await Promise.all([follower, plainFollower]);
    expect(streamed.text.length).toBeGreaterThan(0);
    expect(plain.choices[0]?.message.content).toBe(streamed.text);
    expect(mock.stats().aborted).toBe(0);
    expect(upstreamChats()).toBe(1);
    const again = await sdk.chat.completions.create(request).withResponse();
    expect(again.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(again.data.choices[0]?.message.content).toBe(streamed.text);
  });

  it('when every waiting client leaves, the upstream call is aborted and nothing is stored', async () => {
    const request = freshChat();
    const slow = { headers: { 'x-mock-latency-ms': '2000' } };
    const controllers = [new AbortController(), new AbortController()];
    const pending = controllers.map((c) => sdk.chat.completions.create(request, { ...slow, signal: c.signal }).catch((e: unknown) => e));
    await eventually(() => mock.stats().inFlight === 1, 'the upstream got the request');
    controllers[0]!.abort();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(mock.stats().aborted).toBe(0);
    controllers[1]!.abort();
    await Promise.all(pending);
    await eventually(() => mock.stats().aborted === 1, 'the upstream call was aborted');
    const again = await sdk.chat.completions.create(request).withResponse();
    expect(again.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(upstreamChats()).toBe(2);
  });

  it("an upstream error reaches every waiter with the upstream's own status and body, and is not stored", async () => {
    const request = freshChat();
    // A Retry-After longer than Recall waits for: the 429 passes through instead of being retried.
    const failing = { headers: { 'x-mock-latency-ms': '200', 'x-mock-fault': '429', 'x-mock-retry-after': '3600' } };
    const errors = await Promise.all(Array.from({ length: 5 }, () => sdk.chat.completions.create(request, failing).catch((e: unknown) => e)));
    expect(upstreamChats()).toBe(1);
    for (const error of errors) {
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(429);
      expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('rate_limit_exceeded');
    }
    const again = await sdk.chat.completions.create(request).withResponse();
    expect(again.response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it('a stream that breaks mid-way ends every streaming waiter with an error event and fails plain waiters with 502', async () => {
    const request = freshChat();
    const broken = { headers: { 'x-mock-fault': 'broken-stream', 'x-mock-chunk-delay-ms': '100' } };
    const leader = await sdk.chat.completions.create({ ...request, stream: true }, broken);
    const follower = sdk.chat.completions.create({ ...request, stream: true }, broken).then(collect).catch((e: unknown) => e);
    const plain = sdk.chat.completions.create(request, broken).catch((e: unknown) => e);
    const leaderResult = await collect(leader).catch((e: unknown) => e);
    expect(leaderResult).toBeInstanceOf(OpenAI.APIError);
    expect(await follower).toBeInstanceOf(OpenAI.APIError);
    const plainError = await plain;
    expect(plainError).toBeInstanceOf(OpenAI.APIError);
    expect((plainError as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect(upstreamChats()).toBe(1);
  });

  it('requests with another API key never join: each tenant makes its own call', async () => {
    const request = freshChat();
    const slow = { headers: { 'x-mock-latency-ms': '200' } };
    const clients = ['sk-tenant-one', 'sk-tenant-two'].map((apiKey) => pair.recall.client({ apiKey }));
    const answers = await Promise.all(clients.flatMap((client) => [client, client].map((c) => c.chat.completions.create(request, slow).withResponse())));
    expect(upstreamChats()).toBe(2);
    const outcomes = answers.map((a) => a.response.headers.get('x-recall-cache'));
    expect(outcomes.filter((o) => o === 'MISS')).toHaveLength(2);
    expect(outcomes.filter((o) => o === 'COALESCED')).toHaveLength(2);
    // Each upstream call carried its own tenant's key.
    const keys = mock.requests().filter((r) => r.path === '/v1/chat/completions').map((r) => r.headers.authorization);
    expect(keys.sort()).toEqual(['Bearer sk-tenant-one', 'Bearer sk-tenant-two']);
  });

  it('no-cache and no-store requests join a request in flight too', async () => {
    const request = freshChat();
    const slow = { 'x-mock-latency-ms': '200' };
    const answers = await Promise.all([
      sdk.chat.completions.create(request, { headers: slow }).withResponse(),
      sdk.chat.completions.create(request, { headers: { ...slow, 'cache-control': 'no-cache' } }).withResponse(),
      sdk.chat.completions.create(request, { headers: { ...slow, 'cache-control': 'no-store' } }).withResponse(),
    ]);
    expect(upstreamChats()).toBe(1);
    expect(answers.map((a) => a.response.headers.get('x-recall-cache'))).toEqual(['MISS', 'COALESCED', 'COALESCED']);
    expect(answers[2]!.response.headers.get('cache-status')).toBe('recall; fwd=bypass; stored; detail=coalesced');
  });

  it('counts coalesced requests and what they saved in /metrics', async () => {
    const request = freshChat();
    const slow = { headers: { 'x-mock-latency-ms': '200' } };
    await Promise.all(Array.from({ length: 4 }, () => sdk.chat.completions.create(request, slow)));
    const metrics = await (await fetch(`${pair.recall.url}/metrics`)).text();
    const coalesced = Number(/^recall_coalesced_requests_total\{route="chat.completions"\} (\d+)/m.exec(metrics)?.[1]);
    expect(coalesced).toBeGreaterThanOrEqual(3);
    expect(metrics).toMatch(/^recall_requests_total\{route="\/v1\/chat\/completions",status="200",cache="COALESCED"\} \d+/m);
  });
});

describe('with coalescing off', () => {
  it('every identical request goes upstream on its own', async () => {
    const off = await startRecallWithMock({ 'coalesce.enabled': false });
    try {
      const request = freshChat();
      const answers = await Promise.all(Array.from({ length: 5 }, () => off.sdk.chat.completions.create(request, { headers: { 'x-mock-latency-ms': '200' } }).withResponse()));
      expect(off.mock.stats().byRoute['POST /v1/chat/completions']).toBe(5);
      expect(answers.every((a) => a.response.headers.get('x-recall-cache') === 'MISS')).toBe(true);
    } finally {
      await off.close();
    }
  });

  it('past max_followers, further identical requests go upstream on their own', async () => {
    const capped = await startRecallWithMock({ 'coalesce.max_followers': 2 });
    try {
      const request = freshChat();
      const answers = await Promise.all(Array.from({ length: 5 }, () => capped.sdk.chat.completions.create(request, { headers: { 'x-mock-latency-ms': '300' } }).withResponse()));
      const outcomes = answers.map((a) => a.response.headers.get('x-recall-cache'));
      expect(outcomes.filter((o) => o === 'COALESCED')).toHaveLength(2);
      expect(capped.mock.stats().byRoute['POST /v1/chat/completions']).toBe(3);
    } finally {
      await capped.close();
    }
  });

  it('past max_replay_bytes, a late streaming request goes upstream on its own while a plain one still joins', async () => {
    const small = await startRecallWithMock({ 'coalesce.max_replay_bytes': 0 });
    try {
      const request = freshChat();
      const paced = { headers: { 'x-mock-chunk-delay-ms': '40' } };
      const leader = await small.sdk.chat.completions.create({ ...request, stream: true }, paced);
      const leaderText = collect(leader);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const lateStream = await small.sdk.chat.completions.create({ ...request, stream: true }, paced).withResponse();
      const latePlain = await small.sdk.chat.completions.create(request, paced).withResponse();
      const late = await collect(lateStream.data);
      expect(late.text).toBe((await leaderText).text);
      expect(lateStream.response.headers.get('x-recall-cache')).not.toBe('COALESCED');
      expect(latePlain.response.headers.get('x-recall-cache')).not.toBe('MISS');
    } finally {
      await small.close();
    }
  });
});
