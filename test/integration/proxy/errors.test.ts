// Every error Recall answers with itself, as a client sees it: OpenAI's shape, the right status, no stack trace.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { closedPort, eventually, startRecall, type RunningRecall } from '../../support/recall.js';

type ErrorJson = { error: { message: string; type: string; param: string | null; code: string | null } };

let mock: MockUpstream;
let recall: RunningRecall;
const LIMIT = 64 * 1024;

beforeAll(async () => {
  mock = await startMockUpstream();
  recall = await startRecall({ 'upstream.url': mock.baseURL, 'server.body_limit_bytes': LIMIT, 'upstream.headers_timeout_ms': 400 });
});
afterAll(async () => {
  await recall.close();
  await mock.close();
});

async function post(path: string, body: NonNullable<RequestInit['body']>, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const response = await fetch(`${recall.url}${path}`, { method: 'POST', body, headers, duplex: 'half' } as RequestInit);
  const text = await response.text();
  return { status: response.status, text, json: JSON.parse(text) as ErrorJson };
}

function expectOpenAIShape(json: unknown): void {
  expect(Object.keys((json as { error: object }).error).sort()).toEqual(['code', 'message', 'param', 'type']);
}

describe('client mistakes', () => {
  it('malformed JSON → 400 invalid_json, and nothing reaches the upstream', async () => {
    const before = mock.stats().requests;
    const { status, json, text } = await post('/v1/chat/completions', '{"model": "gpt-4o-mini", "messages": [');
    expect(status).toBe(400);
    expectOpenAIShape(json);
    expect(json.error.type).toBe('invalid_request_error');
    expect(json.error.code).toBe('invalid_json');
    expect(json.error.message).toMatch(/could not parse the JSON body/);
    expect(text).not.toMatch(/at .*\.(js|ts):\d+/);
    expect(mock.stats().requests).toBe(before);
  });

  it.each([
    ['an empty body', ''],
    ['an array', '[1,2]'],
    ['a string', '"hello"'],
    ['null', 'null'],
  ])('%s → 400 with a message that says a JSON object is expected', async (_name, body) => {
    const { status, json } = await post('/v1/embeddings', body);
    expect(status).toBe(400);
    expectOpenAIShape(json);
    expect(json.error.message).toMatch(/JSON object|body is empty/);
  });

  it('accepts a JSON body sent without a JSON content type, as OpenAI does', async () => {
    const { status } = await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), { 'content-type': 'application/x-www-form-urlencoded' });
    expect(status).toBe(200);
  });

  it('a body over the limit → 413 that the client actually receives (not a reset)', async () => {
    const big = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(LIMIT * 4) }] });
    const { status, json } = await post('/v1/chat/completions', big);
    expect(status).toBe(413);
    expect(json.error.code).toBe('request_too_large');
    expect(json.error.message).toMatch(/body_limit_bytes/);
  });

  it('a chunked upload over the limit → 413 as well', async () => {
    const piece = new TextEncoder().encode('x'.repeat(16 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 16) controller.enqueue(piece);
        else controller.close();
      },
    });
    const { status, json } = await post('/v1/chat/completions', stream as unknown as NonNullable<RequestInit['body']>);
    expect(status).toBe(413);
    expect(json.error.type).toBe('invalid_request_error');
  });

  it('an upload over the limit on a pass-through route → 413, and the upstream never sees it', async () => {
    const before = mock.stats().requests;
    const { status } = await post('/v1/files', 'y'.repeat(LIMIT + 1), { 'content-type': 'application/octet-stream' });
    expect(status).toBe(413);
    expect(mock.stats().requests).toBe(before);
  });

  it.each([
    ['GET', '/no/such/route'],
    ['POST', '/v2/chat/completions'],
    ['POST', '/recall/admin/purge'],
  ])('%s %s → 404 unknown_url', async (method, path) => {
    const response = await fetch(`${recall.url}${path}`, { method });
    const json = (await response.json()) as ErrorJson;
    expect(response.status).toBe(404);
    expectOpenAIShape(json);
    expect(json.error.code).toBe('unknown_url');
    expect(json.error.message).toBe(`Invalid URL (${method} ${path})`);
  });

  it('the SDK sees these as APIErrors with the status', async () => {
    const error = await recall.client().post('/chat/completions', { body: [1, 2] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe('upstream failures', () => {
  it('an upstream that is down → 502 upstream_unreachable naming it', async () => {
    const port = await closedPort();
    const orphan = await startRecall({ 'upstream.url': `http://127.0.0.1:${port}/v1` });
    try {
      const error = await orphan.client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      const apiError = error as InstanceType<typeof OpenAI.APIError>;
      expect(apiError.status).toBe(502);
      expect(apiError.code).toBe('upstream_unreachable');
      expect(apiError.message).toContain(`127.0.0.1:${port}`);
      expect(apiError.message).toMatch(/ECONNREFUSED/);
    } finally {
      await orphan.close();
    }
  });

  it('an upstream that does not answer in time → 504 upstream_timeout naming the setting', async () => {
    mock.reset();
    const error = await recall.client().chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'x-mock-fault': 'stall' } },
    ).catch((e: unknown) => e);
    const apiError = error as InstanceType<typeof OpenAI.APIError>;
    expect(apiError.status).toBe(504);
    expect(apiError.code).toBe('upstream_timeout');
    expect(apiError.message).toMatch(/upstream\.headers_timeout_ms/);
    await eventually(() => mock.stats().inFlight === 0, 'the stalled upstream request was given up');
  });

  it('a JSON answer cut off mid-body → 502 upstream_broken_response, never a half body', async () => {
    const error = await recall.client().chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'x-mock-fault': 'broken-stream' } },
    ).catch((e: unknown) => e);
    const apiError = error as InstanceType<typeof OpenAI.APIError>;
    expect(apiError.status).toBe(502);
    expect(apiError.code).toBe('upstream_broken_response');
  });
});

describe('health', () => {
  it('/healthz is alive and /readyz is ready while the upstream answers', async () => {
    expect((await fetch(`${recall.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${recall.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: { upstream: { ok: boolean } } }).checks.upstream.ok).toBe(true);
  });

  it('/readyz is 503 with the reason while the upstream is unreachable', async () => {
    const port = await closedPort();
    const orphan = await startRecall({ 'upstream.url': `http://127.0.0.1:${port}/v1` });
    try {
      const ready = await fetch(`${orphan.url}/readyz`);
      const body = (await ready.json()) as { status: string; checks: { upstream: { detail: string } } };
      expect(ready.status).toBe(503);
      expect(body.status).toBe('not_ready');
      expect(body.checks.upstream.detail).toMatch(/ECONNREFUSED/);
      expect((await fetch(`${orphan.url}/healthz`)).status).toBe(200);
    } finally {
      await orphan.close();
    }
  });

  it('/readyz reuses its probe instead of calling the upstream on every check', async () => {
    mock.reset();
    const fresh = await startRecall({ 'upstream.url': mock.baseURL, 'upstream.probe_ttl_ms': 60_000 });
    try {
      for (let i = 0; i < 5; i++) expect((await fetch(`${fresh.url}/readyz`)).status).toBe(200);
      expect(mock.stats().byRoute['GET /v1/models']).toBe(1);
    } finally {
      await fresh.close();
    }
  });
});
