// The request log as an operator reads it: one JSON line per request, and no credential anywhere in it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { closedPort, eventually, startRecall, type RunningRecall } from '../../support/recall.js';

const SECRETS: [string, string, string, string, string] = ['sk-live-A1b2C3d4E5f6G7h8', 'azure-key-9f8e7d6c5b4a', 'query-secret-5566', 'sk-fallback-Zz9Yy8Xx7', 'basic-pass-3141'];

let mock: MockUpstream;
let recall: RunningRecall;

beforeAll(async () => {
  mock = await startMockUpstream();
  recall = await startRecall({ 'upstream.url': mock.baseURL, 'upstream.api_key': SECRETS[3], 'log.level': 'trace' });
});
afterAll(async () => {
  await recall.close();
  await mock.close();
});

describe('request log', () => {
  it('writes one line per request with route, status, durations and the cache field', async () => {
    const before = recall.logLines().filter((l) => l.msg === 'request').length;
    await recall.client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'log me' }] });
    await eventually(() => recall.logLines().filter((l) => l.msg === 'request').length === before + 1, 'the request was logged');
    const line = recall.logLines().filter((l) => l.msg === 'request').at(-1)!;
    expect(line).toMatchObject({ method: 'POST', route: '/v1/chat/completions', status: 200, cache: 'MISS' });
    expect(typeof line.duration_ms).toBe('number');
    expect(typeof line.upstream_ms).toBe('number');
    expect(line.upstream_ms as number).toBeLessThanOrEqual(line.duration_ms as number);

    await recall.client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'log me' }] });
    await eventually(() => recall.logLines().filter((l) => l.msg === 'request').length === before + 2, 'the hit was logged');
    expect(recall.logLines().filter((l) => l.msg === 'request').at(-1)).toMatchObject({ status: 200, cache: 'HIT', upstream_ms: null });
  });

  it('logs a client that leaves mid-stream as status 499', async () => {
    const controller = new AbortController();
    const stream = await recall.client().chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'leave early' }], stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '100' }, signal: controller.signal },
    );
    await stream[Symbol.asyncIterator]().next();
    controller.abort();
    await eventually(() => recall.logLines().some((l) => l.msg === 'request' && l.status === 499), 'the abandoned request was logged');
    expect(recall.logLines().filter((l) => l.status === 499)).toHaveLength(1);
  });

  it('a client that leaves before the upstream answers is a 499 in the log, not an error', async () => {
    const controller = new AbortController();
    // The previous test's stream may still be in flight at the mock: wait for this request itself to arrive.
    const sent = mock.stats().requests;
    const pending = recall.client().chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'too slow for me' }] },
      { headers: { 'x-mock-latency-ms': '2000' }, signal: controller.signal },
    ).catch((e: unknown) => e);
    // This very request: the previous test's stream may still be open at the mock for a moment.
    await eventually(() => mock.requests().some((r) => r.body.includes('too slow for me')), 'the upstream got the request');
    controller.abort();
    await pending;
    await eventually(() => mock.stats().aborted === 2 && recall.logLines().filter((l) => l.status === 499).length === 2, 'the abandoned request was logged');
    expect(recall.logLines().filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('never writes a key, whatever carries it and whatever goes wrong', async () => {
    const sdk = recall.client({ apiKey: SECRETS[0] });
    await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] });
    const stream = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }, { headers: { 'x-mock-fault': 'broken-stream' } });
    await (async () => { for await (const _ of stream) { /* drain */ } })().catch(() => undefined);
    await fetch(`${recall.baseURL}/models?api_key=${SECRETS[2]}`, { headers: { 'api-key': SECRETS[1] } });
    await fetch(`${recall.baseURL}/models`, { headers: { authorization: `Basic ${SECRETS[4]}` } });
    await fetch(`${recall.baseURL}/chat/completions`, { method: 'POST', body: '{"broken', headers: { authorization: `Bearer ${SECRETS[0]}` } });
    await fetch(`${recall.baseURL}/models`); // the configured key goes upstream
    mock.failNext('500');
    await sdk.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }).catch(() => undefined);

    const port = await closedPort();
    const orphan = await startRecall({ 'upstream.url': `http://127.0.0.1:${port}/v1`, 'upstream.api_key': SECRETS[3], 'log.level': 'trace' });
    await orphan.client({ apiKey: SECRETS[0] }).chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).catch(() => undefined);
    await fetch(`${orphan.url}/readyz`);
    await orphan.close();

    await eventually(() => recall.logLines().filter((l) => l.msg === 'request').length >= 10, 'every request was logged');
    const everything = recall.logText() + orphan.logText();
    expect(everything).toContain('upstream stream failed');
    expect(orphan.logText()).toContain('ECONNREFUSED');
    for (const secret of SECRETS) expect(everything).not.toContain(secret);
    // The keys did reach the upstream: the log is clean because Recall scrubs, not because nothing was sent.
    expect(mock.requests().some((r) => r.headers.authorization === `Bearer ${SECRETS[0]}`)).toBe(true);
    expect(mock.requests().some((r) => r.headers.authorization === `Bearer ${SECRETS[3]}`)).toBe(true);
  });
});
