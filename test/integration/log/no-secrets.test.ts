// No API key or admin token in any log line, whichever path a request takes: hit, miss, stream, coalesced, the
// upstream's 401/429/500, Recall's own 400/404/413/431, slow-request warnings (which carry a breakdown), admin calls
// right and wrong, compaction with a summary, embeddings, tool batches. Logged at trace, the most that is ever logged.
import { request as httpRequest } from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall, type RunningRecall } from '../../support/recall.js';

const API_KEY = 'sk-proj-LEAKCHECK0a1b2c3d4e5f6a7b8c9d';
const AZURE_KEY = 'azLEAKCHECK77665544332211';
const ADMIN_TOKEN = 'admin-LEAKCHECK-7c1d9e2f';
/** The part of each secret that no legitimate log field could contain by chance. */
const MARKER = 'LEAKCHECK';

let mock: MockUpstream;
let recall: RunningRecall;
let sdk: OpenAI;

beforeAll(async () => {
  mock = await startMockUpstream();
  recall = await startRecall({
    'upstream.url': mock.baseURL, 'admin.token': ADMIN_TOKEN, 'log.level': 'trace', 'log.slow_request_ms': 1,
    'server.body_limit_bytes': 4096, 'server.max_header_bytes': 4096, 'upstream.retries': 0,
  });
  sdk = recall.client({ apiKey: API_KEY });
});
afterAll(async () => {
  await recall.close();
  await mock.close();
});

const chat = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] });
const headers = { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` };

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) void _;
}

async function rawRequest(path: string, extraHeaders: Record<string, string>): Promise<number> {
  const url = new URL(`${recall.url}${path}`);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...headers, ...extraHeaders } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

describe('logs', () => {
  it('never contain the API key or the admin token, on any path', async () => {
    const statuses: number[] = [];
    // An error event in a stream is an APIError without a status: 0.
    const status = (p: Promise<unknown>) => p.then(() => 200, (e: unknown) => (e instanceof OpenAI.APIError ? (e.status ?? 0) : -1)).then((s) => void statuses.push(s));

    // Miss, hit, stream (a hit rendered as a stream, and a streamed miss), coalesced.
    await status(sdk.chat.completions.create(chat('secret miss')));
    await status(sdk.chat.completions.create(chat('secret miss')));
    await status(sdk.chat.completions.create({ ...chat('secret miss'), stream: true }).then(drain));
    await status(sdk.chat.completions.create({ ...chat('secret stream'), stream: true, stream_options: { include_usage: true } }).then(drain));
    const slow = { headers: { 'x-mock-latency-ms': '100' } };
    await Promise.all([status(sdk.chat.completions.create(chat('secret joined'), slow)), status(sdk.chat.completions.create(chat('secret joined'), slow))]);
    // The upstream's own errors, plain and mid-stream, and a malformed stream.
    for (const fault of ['401', '429', '500']) await status(sdk.chat.completions.create(chat(`secret ${fault}`), { headers: { 'x-mock-fault': fault, 'x-mock-retry-after': '3600' } }));
    for (const fault of ['broken-stream', 'garbage-stream', 'error-event']) {
      await status(sdk.chat.completions.create({ ...chat(`secret ${fault}`), stream: true }, { headers: { 'x-mock-fault': fault } }).then(drain));
    }
    // Recall's own 400 (bad JSON, bad field, bad header), 404, 413 and 431.
    statuses.push((await fetch(`${recall.baseURL}/chat/completions`, { method: 'POST', headers, body: '{"broken' })).status);
    await status(sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'wizard', content: API_KEY }] as never }));
    await status(sdk.chat.completions.create(chat('secret header'), { headers: { 'x-recall-ttl': API_KEY } }));
    statuses.push((await fetch(`${recall.url}/nowhere?api_key=${API_KEY}`, { headers })).status);
    statuses.push((await fetch(`${recall.baseURL}/chat/completions`, { method: 'POST', headers, body: JSON.stringify(chat('x'.repeat(5000))) })).status);
    statuses.push(await rawRequest('/v1/chat/completions', { 'x-padding': API_KEY.repeat(200) }));
    // Passthrough routes, with the key in an Azure-style header and the query string.
    statuses.push((await fetch(`${recall.baseURL}/models?api_key=${API_KEY}`, { headers: { 'api-key': AZURE_KEY } })).status);
    // Embeddings, compaction with an upstream summary, a tool batch.
    await status(sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['secret one', 'secret two'] }));
    await status(sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['secret one', 'secret two'] }));
    const conversation = Array.from({ length: 12 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: `turn ${i} `.repeat(40) }));
    statuses.push((await fetch(`${recall.url}/recall/compact`, { method: 'POST', headers, body: JSON.stringify({ model: 'gpt-4o-mini', messages: conversation, target_tokens: 150, strategy: 'summary' }) })).status);
    statuses.push((await fetch(`${recall.url}/recall/tools/batch`, { method: 'POST', headers, body: JSON.stringify({ calls: [{ id: 'a', name: 'missing' }] }) })).status);
    // Admin: right token, wrong tokens (one of them the API key), inspect a missing entry.
    const admin = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
    statuses.push((await fetch(`${recall.url}/recall/admin/purge`, { method: 'POST', headers: admin(ADMIN_TOKEN), body: JSON.stringify({ namespace: 'nobody' }) })).status);
    statuses.push((await fetch(`${recall.url}/recall/admin/purge`, { method: 'POST', headers: admin(API_KEY), body: '{"all":true}' })).status);
    statuses.push((await fetch(`${recall.url}/recall/admin/purge`, { method: 'POST', headers: admin(`${ADMIN_TOKEN}x`), body: '{"all":true}' })).status);
    statuses.push((await fetch(`${recall.url}/recall/admin/entries/default:${'0'.repeat(64)}`, { headers: admin(ADMIN_TOKEN) })).status);

    // Every path was taken, as its status shows.
    expect(statuses).toEqual(expect.arrayContaining([200, 0, 401, 429, 500, 400, 404, 413, 431]));
    expect(statuses.filter((s) => s === -1)).toEqual([]);
    // Every request made a line (slow_request_ms 1 makes most of them warnings with a breakdown).
    await new Promise((resolve) => setTimeout(resolve, 100));
    const lines = recall.logLines();
    expect(lines.filter((l) => l.msg === 'slow request').length).toBeGreaterThan(10);
    expect(lines.some((l) => l.level === 40 && l.msg === 'upstream stream failed')).toBe(true);
    // The key did reach the upstream: it was there to leak.
    expect(mock.requests().some((r) => r.headers.authorization === `Bearer ${API_KEY}`)).toBe(true);

    const everything = recall.logText();
    for (const secret of [API_KEY, AZURE_KEY, ADMIN_TOKEN, MARKER]) expect(everything).not.toContain(secret);
  });
});
