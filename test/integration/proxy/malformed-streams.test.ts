// Upstream event streams that go wrong, as an openai SDK user sees them: the stream iterator ends with an APIError
// (never a parse error, never a hang), nothing is stored so the next identical request is a MISS, and requests joined
// to the same upstream call get the same clean ending. A valid stream cut at odd byte boundaries still assembles.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fault } from '../../../loadtest/mock-upstream.js';
import { startRecallWithMock, type RecallWithMock } from '../../support/recall.js';

let pair: RecallWithMock;
/** Caches only embeddings: its chat completions are forwarded (BYPASS) without the coalescer. */
let uncached: RecallWithMock;
let counter = 0;

beforeAll(async () => {
  pair = await startRecallWithMock();
  uncached = await startRecallWithMock({ 'cache.routes': 'embeddings' });
});
afterAll(async () => {
  await uncached.close();
  await pair.close();
});

const upstreamChats = () => pair.mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;
const freshChat = (model = 'gpt-4o-mini') => ({ model, messages: [{ role: 'user' as const, content: `malformed stream ${process.pid} ${++counter}` }] });

async function collect(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<{ text: string; models: Set<string> }> {
  let text = '';
  const models = new Set<string>();
  for await (const chunk of stream) {
    models.add(chunk.model);
    text += chunk.choices[0]?.delta.content ?? '';
  }
  return { text, models };
}

async function cacheOutcomeOf(request: ReturnType<typeof freshChat>): Promise<string | null> {
  return (await pair.sdk.chat.completions.create(request).withResponse()).response.headers.get('x-recall-cache');
}

describe('a malformed upstream stream', () => {
  it.each<[string, Fault, RegExp]>([
    ['garbage data mid-stream', 'garbage-stream', /sent an event that is not valid JSON/],
    ['no [DONE] before the end', 'no-done', /ended its stream before the final event/],
    ['an early close', 'broken-stream', /closed the connection|terminated|other side closed/],
    ['the upstream\'s own mid-stream error event', 'error-event', /The server had an error while processing your request/],
  ])('%s ends the SDK iterator with an APIError, and nothing is stored', async (_name, fault, message) => {
    const request = freshChat();
    const stream = await pair.sdk.chat.completions.create({ ...request, stream: true }, { headers: { 'x-mock-fault': fault } });
    const ending = await collect(stream).catch((e: unknown) => e);
    expect(ending).toBeInstanceOf(OpenAI.APIError);
    expect((ending as Error).message).toMatch(message);
    expect(await cacheOutcomeOf(request)).toBe('MISS');
  });

  it.each<Fault>(['garbage-stream', 'no-done'])('%s: joined streaming and plain requests end cleanly too, after one upstream call', async (fault) => {
    const request = freshChat();
    const before = upstreamChats();
    // Slow enough that both join the leader's flight before its bad event arrives.
    const headers = { 'x-mock-fault': fault, 'x-mock-chunk-delay-ms': '200' };
    const leader = await pair.sdk.chat.completions.create({ ...request, stream: true }, { headers });
    const follower = pair.sdk.chat.completions.create({ ...request, stream: true }, { headers }).then(collect).catch((e: unknown) => e);
    const plain = pair.sdk.chat.completions.create(request, { headers }).catch((e: unknown) => e);
    expect(await collect(leader).catch((e: unknown) => e)).toBeInstanceOf(OpenAI.APIError);
    expect(await follower).toBeInstanceOf(OpenAI.APIError);
    const plainError = await plain;
    expect(plainError).toBeInstanceOf(OpenAI.APIError);
    expect((plainError as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect(upstreamChats() - before).toBe(1);
    expect(await cacheOutcomeOf(request)).toBe('MISS');
  });

  it.each<[Fault, RegExp]>([
    ['garbage-stream', /sent an event that is not valid JSON/],
    ['no-done', /ended its stream before the final event/],
  ])('%s on a stream that is not cached (BYPASS) ends with an APIError too', async (fault, message) => {
    const { data: stream, response } = await uncached.sdk.chat.completions.create({ ...freshChat(), stream: true }, { headers: { 'x-mock-fault': fault } }).withResponse();
    expect(response.headers.get('x-recall-cache')).toBe('BYPASS');
    const ending = await collect(stream).catch((e: unknown) => e);
    expect(ending).toBeInstanceOf(OpenAI.APIError);
    expect((ending as Error).message).toMatch(message);
  });

  it('a valid stream that is not cached still ends normally', async () => {
    const { data: stream, response } = await uncached.sdk.chat.completions.create({ ...freshChat(), stream: true }, { headers: { 'x-mock-fault': 'split-stream' } }).withResponse();
    expect(response.headers.get('x-recall-cache')).toBe('BYPASS');
    expect((await collect(stream)).text.length).toBeGreaterThan(0);
  });

  it('a plain answer whose body is not JSON is a clean 502 (not a parse error in the SDK), and not stored', async () => {
    const request = freshChat();
    const error = await pair.sdk.chat.completions.create(request, { headers: { 'x-mock-fault': 'garbage-stream' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((error as Error).message).toMatch(/answered with a body that is not valid JSON/);
    expect(await cacheOutcomeOf(request)).toBe('MISS');
  });

  it('a valid stream split mid-line and mid-character is relayed intact and stored', async () => {
    const request = freshChat('mödel-ünïcødé-🚀');
    const whole = await collect(await pair.sdk.chat.completions.create({ ...request, stream: true }, { headers: { 'x-mock-fault': 'split-stream' } }));
    expect([...whole.models]).toEqual(['mödel-ünïcødé-🚀']);
    const repeat = await pair.sdk.chat.completions.create(request).withResponse();
    expect(repeat.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(repeat.data.choices[0]!.message.content).toBe(whole.text);
    expect(repeat.data.model).toBe('mödel-ünïcødé-🚀');
    expect(whole.text.length).toBeGreaterThan(0);
  });
});
