// Input validation and limits on every route, as a client sees them: a 400 in OpenAI's shape whose `param` and
// message name the field, nothing sent upstream; unknown fields pass; a head too large is a clean 431.
import { request as httpRequest } from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall, type RunningRecall } from '../../support/recall.js';

type ErrorJson = { error: { message: string; type: string; param: string | null; code: string | null } };

const ADMIN_TOKEN = 'validation-admin-token';
let mock: MockUpstream;
let recall: RunningRecall;
let limited: RunningRecall;
let n = 0;

beforeAll(async () => {
  mock = await startMockUpstream();
  recall = await startRecall({ 'upstream.url': mock.baseURL, 'admin.token': ADMIN_TOKEN });
  limited = await startRecall({
    'upstream.url': mock.baseURL, 'server.max_messages': 3, 'server.max_string_chars': 1024, 'server.max_json_depth': 8, 'server.max_header_bytes': 2048,
  });
});
afterAll(async () => {
  await limited.close();
  await recall.close();
  await mock.close();
});

async function post(target: RunningRecall, path: string, body: unknown, headers: Record<string, string> = {}) {
  const before = mock.stats().requests;
  const response = await fetch(`${target.url}${path}`, {
    method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers },
  });
  const json = (await response.json()) as ErrorJson;
  return { status: response.status, json, upstreamCalls: mock.stats().requests - before };
}

function chat(messages: unknown[] = [{ role: 'user', content: `validation ${++n}` }]) {
  return { model: 'gpt-4o-mini', messages };
}

async function expectFieldError(target: RunningRecall, path: string, body: unknown, param: string | null, message: RegExp) {
  const answer = await post(target, path, body);
  expect(answer.status).toBe(400);
  expect(Object.keys(answer.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_parameter', param });
  expect(answer.json.error.message).toMatch(message);
  if (param !== null) expect(answer.json.error.message).toContain(param);
  expect(answer.upstreamCalls).toBe(0);
}

describe('request schemas', () => {
  it('chat completions: a bad message role is named with its index, through the SDK', async () => {
    const error = await recall.client().chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'system', content: 'a' }, { role: 'user', content: 'b' }, { role: 'robot', content: 'c' } as never],
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const apiError = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(apiError.param).toBe('messages[2].role');
    expect(apiError.code).toBe('invalid_parameter');
    expect(apiError.message).toMatch(/Invalid value for 'messages\[2\]\.role': expected one of "system", .*but got "robot"/);
  });

  it.each([
    ['a missing model', { messages: [{ role: 'user', content: 'x' }] }, 'model', /Missing required parameter: 'model'/],
    ['a missing messages', { model: 'gpt-4o-mini' }, 'messages', /Missing required parameter: 'messages'/],
    ['an empty messages', { model: 'gpt-4o-mini', messages: [] }, 'messages', /array too short/],
    ['a model that is a number', { model: 4, messages: [{ role: 'user', content: 'x' }] }, 'model', /expected a string, but got an integer/],
    ['messages that is an object', { model: 'm', messages: { role: 'user' } }, 'messages', /expected an array, but got an object/],
    ['a message that is a string', { model: 'm', messages: ['hello'] }, 'messages[0]', /expected an object, but got a string/],
    ['a message without role', { model: 'm', messages: [{ content: 'x' }] }, 'messages[0].role', /Missing required parameter: 'messages\[0\]\.role'/],
    ['content that is a number', { model: 'm', messages: [{ role: 'user', content: 42 }] }, 'messages[0].content', /expected a string, an array or null, but got an integer/],
    ['stream that is a string', { ...chat(), stream: 'yes' }, 'stream', /expected a boolean or null, but got a string/],
    ['n below 1', { ...chat(), n: 0 }, 'n', /must be >= 1/],
    ['temperature that is a string', { ...chat(), temperature: '0' }, 'temperature', /expected a number or null/],
  ])('chat completions: %s → 400 naming the field', async (_name, body, param, message) => {
    await expectFieldError(recall, '/v1/chat/completions', body, param, message);
  });

  it('completions and embeddings name their fields too', async () => {
    await expectFieldError(recall, '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 12 }, 'prompt', /expected a string, an array or null, but got an integer/);
    await expectFieldError(recall, '/v1/embeddings', { model: 'text-embedding-3-small' }, 'input', /Missing required parameter: 'input'/);
    await expectFieldError(recall, '/v1/embeddings', { model: 'text-embedding-3-small', input: { text: 'x' } }, 'input', /expected a string or an array, but got an object/);
    await expectFieldError(recall, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x', dimensions: 1.5 }, 'dimensions', /expected an integer or null, but got a number/);
  });

  it('/recall/compact and the admin routes use the same validation, without coercion', async () => {
    const compact = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a' }, { role: 'bot', content: 'b' }], target_tokens: 100, strategy: 'truncation' };
    await expectFieldError(recall, '/recall/compact', compact, 'messages[1].role', /expected one of/);
    // A number as a string is not coerced into one.
    await expectFieldError(recall, '/recall/compact', { ...compact, messages: [{ role: 'user', content: 'a' }], target_tokens: '100' }, 'target_tokens', /expected an integer, but got a string/);
    const purge = await post(recall, '/recall/admin/purge', { everything: 'please' }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(purge.status).toBe(400);
    expect(purge.json.error).toMatchObject({ code: 'invalid_parameter', param: 'everything' });
    expect(purge.json.error.message).toBe("Unrecognized request argument supplied: 'everything'.");
  });

  it('unknown top-level and message fields pass through to the upstream unchanged', async () => {
    const body = { ...chat([{ role: 'user', content: `unknown fields ${++n}`, brand_new: { x: 1 } }]), future_option: [1, 'two'], temperature: null, stream: null };
    const answer = await fetch(`${recall.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-recall-cache')).toBe('MISS');
    expect(JSON.parse(mock.requests().at(-1)!.body)).toEqual(body);
  });

  it('a repeated body is validated before it is answered every time, valid or not', async () => {
    const valid = chat();
    const outcomes: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${recall.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(valid), headers: { 'content-type': 'application/json' } });
      outcomes.push(response.headers.get('x-recall-cache'));
    }
    expect(outcomes).toEqual(['MISS', 'HIT', 'HIT']);
    // The same invalid bytes, repeated until the body parser hands out one frozen object for them: still a 400 each time.
    const invalid = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }, { role: 'nobody' }] };
    for (let i = 0; i < 4; i++) await expectFieldError(recall, '/v1/chat/completions', invalid, 'messages[1].role', /expected one of/);
  });
});

describe('error messages', () => {
  it('quote a client\'s value cut short, never echo a huge one back whole', async () => {
    const name = 'n'.repeat(100_000);
    const tools = await post(recall, '/recall/tools/batch', { calls: [{ id: 'a', name }] });
    expect(tools.status).toBe(400);
    expect(tools.json.error).toMatchObject({ code: 'unknown_tool', param: 'calls[0].name' });
    expect(tools.json.error.message.length).toBeLessThan(200);
    const role = await post(recall, '/v1/chat/completions', chat([{ role: 'r'.repeat(100_000), content: 'x' }]));
    expect(role.json.error.param).toBe('messages[0].role');
    expect(role.json.error.message.length).toBeLessThan(300);
  });
});

describe('limits', () => {
  it('server.max_messages caps messages on chat completions and /recall/compact', async () => {
    const four = Array.from({ length: 4 }, (_, i) => ({ role: 'user', content: `m${i}` }));
    await expectFieldError(limited, '/v1/chat/completions', chat(four), 'messages', /array too long. Expected an array with maximum length 3, but got an array with length 4/);
    await expectFieldError(limited, '/recall/compact', { model: 'gpt-4o-mini', messages: four, target_tokens: 10, strategy: 'truncation' }, 'messages', /array too long/);
    expect((await post(limited, '/v1/chat/completions', chat(four.slice(0, 3)))).status).toBe(200);
  });

  it('server.max_string_chars caps every string of a body, unknown fields and keys included', async () => {
    const long = 'x'.repeat(1025);
    await expectFieldError(limited, '/v1/chat/completions', chat([{ role: 'user', content: 'ok' }, { role: 'user', content: long }]), 'messages[1].content', /string too long. Expected a string with maximum length 1024 \(server.max_string_chars\)/);
    await expectFieldError(limited, '/v1/embeddings', { model: 'e', input: ['short', long] }, 'input[1]', /string too long/);
    await expectFieldError(limited, '/v1/completions', { model: 'c', prompt: 'p', extra: { [long]: 1 } }, 'extra', /object key is longer than 1024/);
    expect((await post(limited, '/v1/chat/completions', chat([{ role: 'user', content: 'x'.repeat(1024) }]))).status).toBe(200);
  });

  it('server.max_json_depth caps nesting, naming where it went too deep', async () => {
    let nested: unknown = 'bottom';
    for (let i = 0; i < 8; i++) nested = { deeper: nested };
    await expectFieldError(limited, '/v1/chat/completions', { ...chat(), metadata: nested }, 'metadata.deeper.deeper.deeper.deeper.deeper.deeper.deeper', /nested deeper than 8 levels/);
    await expectFieldError(limited, '/recall/tools/batch', { calls: [{ id: 'a', name: 't', arguments: nested }] }, 'calls[0].arguments.deeper.deeper.deeper.deeper.deeper', /nested deeper than 8 levels/);
  });

  it('a body nested far deeper than any request is a 400 at the default limits, not a crash', async () => {
    const depth = 50_000;
    const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"deep ${++n}"}],"x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    for (let i = 0; i < 3; i++) {
      const answer = await post(recall, '/v1/chat/completions', body);
      expect(answer.status).toBe(400);
      expect(answer.json.error.param).toMatch(/^x(\[0\])+$/);
      expect(answer.upstreamCalls).toBe(0);
    }
  });

  it('a request head over server.max_header_bytes → 431 in OpenAI shape, and the server keeps serving', async () => {
    const url = new URL(`${limited.url}/v1/chat/completions`);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'x-padding': 'p'.repeat(4096) } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (piece: string) => (body += piece));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(chat()));
    });
    expect(answer.status).toBe(431);
    const json = JSON.parse(answer.body) as ErrorJson;
    expect(json.error).toMatchObject({ type: 'invalid_request_error', code: 'request_header_fields_too_large', param: null });
    expect(json.error.message).toMatch(/exceed 2048 bytes \(server.max_header_bytes\)/);
    expect((await post(limited, '/v1/chat/completions', chat())).status).toBe(200);
  });
});

describe('URLs the router cannot read', () => {
  it.each(['/%', '/v1/%E0%A4%A', `/recall/admin/entries/${'k'.repeat(150)}`])('%s → 404 unknown_url in OpenAI shape', async (path) => {
    const response = await fetch(`${recall.url}${path}`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(response.status).toBe(404);
    const json = (await response.json()) as ErrorJson;
    expect(json.error).toMatchObject({ type: 'invalid_request_error', code: 'unknown_url', param: null });
    expect(json.error.message).toMatch(/^Invalid URL \(/);
  });
});
