// POST /recall/tools/batch on a real Recall with the mock tools: both request forms, ordering seen from the tools'
// own start/end records, failure isolation, timeouts, the result cache and its invalidation, bad input, metrics.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockTools, type MockTools } from '../../../loadtest/mock-tools.js';
import { eventually, startRecall, type RunningRecall } from '../../support/recall.js';

let tools: MockTools;
let recall: RunningRecall;

beforeAll(async () => {
  tools = await startMockTools();
  const tool = (name: string, more: Record<string, unknown> = {}) => ({ name, url: tools.toolUrl(name), access: 'read', ...more });
  recall = await startRecall({
    'tools.registry': [
      tool('search', { headers: { authorization: 'Bearer tool-secret' } }),
      tool('lookup', { method: 'GET' }),
      tool('weather', { cache_ttl_s: 300 }),
      tool('broken'),
      tool('sleepy', { timeout_ms: 100 }),
      tool('save', { access: 'write', affects: ['weather'] }),
    ],
  });
});

afterAll(async () => {
  await recall?.close();
  await tools?.close();
});

beforeEach(() => {
  tools.reset();
  tools.behave('search', { latencyMs: 300 });
  tools.behave('lookup', { latencyMs: 300 });
  tools.behave('broken', { failStatus: 500 });
  tools.behave('sleepy', { latencyMs: 10_000 });
});

async function batch(body: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${recall.url}/recall/tools/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, json: await response.json() };
}

const order = () => tools.events.map((e) => `${e.event} ${e.label}`);

describe('POST /recall/tools/batch', () => {
  it('answers an empty batch with empty arrays', async () => {
    expect(await batch({ calls: [] })).toEqual({ status: 200, json: { results: [], messages: [] } });
  });

  it('runs independent reads in parallel and answers in input order with tool messages', async () => {
    const { status, json } = await batch({ calls: [
      { id: 'c1', name: 'search', arguments: { label: 'one', q: 'cats' } },
      { id: 'c2', name: 'lookup', arguments: { label: 'two', id: 7 } },
      { id: 'c3', name: 'search', arguments: { label: 'three' } },
    ] });
    expect(status).toBe(200);
    expect(order().slice(0, 3).every((e) => e.startsWith('start'))).toBe(true);
    expect(json.results.map((r: any) => [r.id, r.status, r.cached])).toEqual([['c1', 'ok', false], ['c2', 'ok', false], ['c3', 'ok', false]]);
    expect(json.results[0].result).toMatchObject({ tool: 'search', args: { label: 'one', q: 'cats' }, authorization: 'Bearer tool-secret' });
    expect(json.results[1].result).toMatchObject({ tool: 'lookup', args: { label: 'two', id: '7' } });
    expect(typeof json.results[0].duration_ms).toBe('number');
    expect(json.messages[0]).toEqual({ role: 'tool', tool_call_id: 'c1', content: JSON.stringify(json.results[0].result) });
    expect(json.messages.map((m: any) => m.tool_call_id)).toEqual(['c1', 'c2', 'c3']);
  });

  it('accepts OpenAI tool_calls with JSON-string arguments', async () => {
    const { status, json } = await batch({ tool_calls: [
      { id: 'call_a', type: 'function', function: { name: 'search', arguments: '{"label":"a"}' } },
      { id: 'call_b', type: 'function', function: { name: 'lookup', arguments: '{"label":"b"}' } },
    ] });
    expect(status).toBe(200);
    expect(json.results.map((r: any) => r.status)).toEqual(['ok', 'ok']);
    expect(json.messages.map((m: any) => m.tool_call_id)).toEqual(['call_a', 'call_b']);
  });

  it('honours max_concurrency', async () => {
    const calls = ['a', 'b', 'c', 'd'].map((label) => ({ id: label, name: 'search', arguments: { label } }));
    await batch({ calls, max_concurrency: 1 });
    expect(order()).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c', 'start d', 'end d']);
  });

  it('makes a write a barrier between the reads around it', async () => {
    await batch({ calls: [
      { id: 'r1', name: 'search', arguments: { label: 'r1' } },
      { id: 'w', name: 'save', arguments: { label: 'w' } },
      { id: 'r2', name: 'search', arguments: { label: 'r2' } },
      { id: 'r3', name: 'lookup', arguments: { label: 'r3' } },
    ] });
    const log = order();
    expect(log.indexOf('start w')).toBeGreaterThan(log.indexOf('end r1'));
    expect(Math.min(log.indexOf('start r2'), log.indexOf('start r3'))).toBeGreaterThan(log.indexOf('end w'));
  });

  it('isolates a failure: its dependants are skipped with the reason, the rest runs', async () => {
    const { json } = await batch({ calls: [
      { id: 'bad', name: 'broken' },
      { id: 'needs-bad', name: 'search', depends_on: ['bad'] },
      { id: 'free', name: 'lookup', arguments: { label: 'free' } },
    ] });
    expect(json.results.map((r: any) => r.status)).toEqual(['error', 'skipped', 'ok']);
    expect(json.results[0].error).toContain('broken answered HTTP 500');
    expect(json.results[1].error).toContain('dependency bad failed');
    expect(JSON.parse(json.messages[1].content)).toMatchObject({ status: 'skipped' });
    expect(tools.calls('search')).toBe(0);
  });

  it("times a call out on its tool's timeout_ms and aborts it", async () => {
    const { json } = await batch({ calls: [{ id: 's', name: 'sleepy' }, { id: 'after', name: 'search', depends_on: ['s'] }] });
    expect(json.results[0]).toMatchObject({ status: 'timeout', error: "no answer within the tool's timeout of 100 ms" });
    expect(json.results[1]).toMatchObject({ status: 'skipped' });
  });

  it('caches read results with a TTL and drops them after a write that affects the tool', async () => {
    const ask = { calls: [{ id: 'w1', name: 'weather', arguments: { city: 'Oslo' } }] };
    expect((await batch(ask)).json.results[0]).toMatchObject({ status: 'ok', cached: false, result: { n: 1 } });
    expect((await batch(ask)).json.results[0]).toMatchObject({ status: 'ok', cached: true, result: { n: 1 } });
    expect(tools.calls('weather')).toBe(1);
    const after = await batch({ calls: [{ id: 's', name: 'save', arguments: { city: 'Oslo' } }, { id: 'w2', name: 'weather', arguments: { city: 'Oslo' } }] });
    expect(after.json.results[1]).toMatchObject({ status: 'ok', cached: false, result: { n: 2 } });
    expect(tools.calls('weather')).toBe(2);
  });

  it('shares one call among identical cached reads of a batch, and calls again after a write that affects the tool', async () => {
    const weather = (id: string) => ({ id, name: 'weather', arguments: { city: 'Tromsø', label: id } });
    const same = (id: string) => ({ id, name: 'weather', arguments: { label: 'x', city: 'Tromsø' } });
    const { json } = await batch({ calls: [same('a'), same('b'), { id: 'w', name: 'save', arguments: {} }, same('c'), weather('d')] });
    expect(json.results.map((r: any) => [r.id, r.status, r.cached])).toEqual([['a', 'ok', false], ['b', 'ok', true], ['w', 'ok', false], ['c', 'ok', false], ['d', 'ok', false]]);
    expect(json.results[1].result).toEqual(json.results[0].result);
    expect(tools.calls('weather')).toBe(3);
  });

  it.each([
    [{ calls: [{ id: 'a', name: 'nope' }] }, 'unknown_tool', 'calls[0].name'],
    [{ tool_calls: [{ id: 'a', type: 'function', function: { name: 'search', arguments: '{oops' } }] }, 'invalid_tool_arguments', 'tool_calls[0].function.arguments'],
    [{ calls: [{ id: 'a', name: 'search' }, { id: 'a', name: 'search' }] }, 'duplicate_call_id', 'calls[1].id'],
    [{ calls: [{ id: 'a', name: 'search', depends_on: ['ghost'] }] }, 'unknown_dependency', 'calls[0].depends_on[0]'],
    [{ calls: [{ id: 'a', name: 'search', depends_on: ['b'] }, { id: 'b', name: 'search', depends_on: ['a'] }] }, 'dependency_cycle', 'calls[0].depends_on'],
    [{ calls: [{ id: 'a', name: 'search' }], max_concurrency: 0 }, 'invalid_parameter', 'max_concurrency'],
    [{ nothing: true }, 'invalid_parameter', 'calls'],
  ])('answers 400 before anything runs: %j', async (body, code, param) => {
    const { status, json } = await batch(body);
    expect(status).toBe(400);
    expect(json.error).toMatchObject({ code, param, type: 'invalid_request_error' });
    expect(tools.events).toEqual([]);
  });

  it('aborts the running calls when the client leaves', async () => {
    tools.behave('search', { latencyMs: 10_000 });
    const client = new AbortController();
    const sent = fetch(`${recall.url}/recall/tools/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: client.signal,
      body: JSON.stringify({ calls: [{ id: 'a', name: 'search', arguments: { label: 'left' } }] }) }).catch(() => undefined);
    await eventually(() => tools.events.some((e) => e.event === 'start'), 'the tool was called');
    client.abort();
    await sent;
    await eventually(() => tools.events.some((e) => e.event === 'aborted' && e.label === 'left'), 'the tool call was aborted');
  });

  it('answers a body that is not JSON with invalid_json', async () => {
    const response = await fetch(`${recall.url}/recall/tools/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{calls' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as any).error.code).toBe('invalid_json');
  });

  it('exports tool call durations by tool and status, batch sizes and concurrency used', async () => {
    await batch({ calls: [{ id: 'a', name: 'search' }, { id: 'b', name: 'broken' }] });
    const text = await (await fetch(`${recall.url}/metrics`)).text();
    expect(text).toMatch(/recall_tool_call_duration_seconds_count\{tool="search",status="ok"\} [1-9]/);
    expect(text).toMatch(/recall_tool_call_duration_seconds_count\{tool="broken",status="error"\} [1-9]/);
    expect(text).toMatch(/recall_tool_batch_calls_count [1-9]/);
    expect(text).toMatch(/recall_tool_batch_concurrency_count [1-9]/);
  });
});

describe('the batch deadline (tools.batch_timeout_ms)', () => {
  it('times out the running calls and skips the calls not started', async () => {
    const deadline = await startRecall({ 'tools.batch_timeout_ms': 150, 'tools.registry': [{ name: 'sleepy', url: tools.toolUrl('sleepy'), access: 'read' }, { name: 'save', url: tools.toolUrl('save'), access: 'write' }] });
    try {
      const response = await fetch(`${deadline.url}/recall/tools/batch`, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ calls: [{ id: 's', name: 'sleepy' }, { id: 'w', name: 'save' }] }) });
      const json = (await response.json()) as any;
      expect(json.results[0]).toMatchObject({ status: 'timeout', error: 'the batch deadline of 150 ms passed while it ran' });
      expect(json.results[1]).toMatchObject({ status: 'skipped', error: 'the batch deadline of 150 ms passed before it started' });
      expect(tools.calls('save')).toBe(0);
    } finally {
      await deadline.close();
    }
  });
});
