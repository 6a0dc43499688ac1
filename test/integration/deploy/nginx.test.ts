// config/nginx.conf, as shipped (only its ports changed), in front of three Recall instances that share one Redis: the
// load is spread over all three, they answer as one cache, and a stream passes through event by event, unbuffered.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { toolAvailable } from '../../support/binaries.js';
import { sample, scrape } from '../../support/metrics.js';
import { closedPort, eventually, startRecall, type RunningRecall } from '../../support/recall.js';
import { startThrowawayRedis, terminate, type ThrowawayRedis } from '../../support/redis.js';

const HAS_NGINX = toolAvailable('nginx', 'nginx-light');

let redis: ThrowawayRedis;
let mock: MockUpstream;
let instances: RunningRecall[];
let nginx: ChildProcess;
let prefixDir: string;
let sdk: OpenAI;

const chat = (content: string): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
/** Chat completions an instance answered, over every status and cache outcome. */
const servedBy = async (instance: RunningRecall) => {
  const text = await scrape(instance.url);
  return ['HIT', 'MISS', 'COALESCED'].reduce((sum, cache) => sum + sample(text, 'recall_requests_total', { route: '/v1/chat/completions', status: '200', cache }), 0);
};

describe.skipIf(!HAS_NGINX)('config/nginx.conf in front of three instances', () => {
  beforeAll(async () => {
    redis = await startThrowawayRedis();
    mock = await startMockUpstream();
    const settings = { 'upstream.url': mock.baseURL, 'redis.url': redis.url, 'redis.key_prefix': 'recall-nginx-test:', 'redis.command_timeout_ms': 1_000 };
    instances = [await startRecall(settings), await startRecall(settings), await startRecall(settings)];
    const shipped = await readFile(new URL('../../../config/nginx.conf', import.meta.url), 'utf8');
    const listenPort = await closedPort();
    let next = 0;
    const config = shipped
      .replace(/listen 127\.0\.0\.1:8080;/, `listen 127.0.0.1:${listenPort};`)
      .replace(/server 127\.0\.0\.1:808\d /g, () => `server ${new URL(instances[next++]!.url).host} `);
    expect(next).toBe(3);
    prefixDir = await mkdtemp(join(tmpdir(), 'recall-nginx-'));
    await writeFile(join(prefixDir, 'nginx.conf'), config);
    nginx = spawn('nginx', ['-p', prefixDir, '-c', join(prefixDir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    nginx.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const baseURL = `http://127.0.0.1:${listenPort}/v1`;
    await eventually(async () => {
      if (nginx.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      return fetch(`http://127.0.0.1:${listenPort}/healthz`).then((r) => r.ok, () => false);
    }, 'nginx answers');
    sdk = new OpenAI({ baseURL, apiKey: 'sk-test-client-key-000', maxRetries: 0 });
  }, 60_000);
  afterAll(async () => {
    if (nginx !== undefined) await terminate(nginx, 'SIGTERM');
    await Promise.all((instances ?? []).map((i) => i.close()));
    await mock?.close();
    await redis?.stop();
    if (prefixDir !== undefined) await rm(prefixDir, { recursive: true, force: true });
  });

  it('spreads requests over every instance, which answer as one cache', async () => {
    const before = await Promise.all(instances.map(servedBy));
    const request = chat(`nginx ${process.pid}: what does a load balancer do?`);
    const first = await sdk.chat.completions.create(request).withResponse();
    expect(first.response.headers.get('x-recall-cache')).toBe('MISS');
    const repeats = [];
    for (let i = 0; i < 9; i++) repeats.push(await sdk.chat.completions.create(request).withResponse());
    expect(repeats.map((r) => r.response.headers.get('x-recall-cache'))).toEqual(repeats.map(() => 'HIT'));
    expect(repeats.map((r) => r.data)).toEqual(repeats.map(() => first.data));
    const after = await Promise.all(instances.map(servedBy));
    for (let i = 0; i < instances.length; i++) expect(after[i]!, `instance ${i}`).toBeGreaterThan(before[i]!);
    expect(mock.stats().byRoute['POST /v1/chat/completions']).toBe(1);
  });

  it('passes a stream through event by event: the first chunk arrives while the upstream is still sending', async () => {
    const stream = await sdk.chat.completions.create(
      { ...chat(`nginx ${process.pid}: stream a long answer`), stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '150' } },
    );
    let chunks = 0;
    let upstreamOpenAtFirstChunk: number | undefined;
    let text = '';
    for await (const chunk of stream) {
      if (chunks++ === 0) upstreamOpenAtFirstChunk = mock.stats().inFlight;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    // The mock is still sending (one exchange open) when the client already has the first event.
    expect(upstreamOpenAtFirstChunk).toBe(1);
    expect(chunks).toBeGreaterThan(3);
    expect(text).toMatch(/^Mock answer/);
  });
});
