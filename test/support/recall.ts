// Starts a real Recall on a free loopback port (buildApp, as main does) and keeps its log lines for assertions.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { buildApp, type AppDeps } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { startMockUpstream, type MockUpstream } from '../../loadtest/mock-upstream.js';
import { startThrowawayRedis, type ThrowawayRedis } from './redis.js';

export interface RunningRecall {
  app: FastifyInstance;
  /** http://127.0.0.1:PORT */
  url: string;
  /** url + '/v1', what an SDK's baseURL is set to. */
  baseURL: string;
  /** Every log line written so far, as written. */
  logText(): string;
  logLines(): Record<string, unknown>[];
  client(options?: { apiKey?: string; defaultHeaders?: Record<string, string> }): OpenAI;
  close(): Promise<void>;
}

/** `settings` are YAML paths (`upstream.url`) → values, applied over the defaults. */
/** `deps` are the app's parts a test may set besides the log (e.g. a shorter limit window). */
export async function startRecall(settings: Record<string, unknown>, deps: Omit<AppDeps, 'logDestination'> = {}): Promise<RunningRecall> {
  const config = loadConfig({ env: {}, overrides: { 'server.port': 0, 'log.level': 'info', ...settings } });
  const lines: string[] = [];
  const app = await buildApp(config, { ...deps, logDestination: { write: (line: string) => void lines.push(line) } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('Recall did not bind a TCP port');
  const url = `http://127.0.0.1:${address.port}`;
  return {
    app,
    url,
    baseURL: `${url}/v1`,
    logText: () => lines.join(''),
    logLines: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    client: (options = {}) => new OpenAI({ baseURL: `${url}/v1`, apiKey: options.apiKey ?? 'sk-test-client-key-000', maxRetries: 0, defaultHeaders: options.defaultHeaders }),
    close: () => app.close(),
  };
}

/**
 * Polls `probe` until it returns true, for effects that land just after a response. The bound (about 8 s) only stops a
 * broken test from hanging; a shared, loaded machine can be slow.
 */
export async function eventually(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The usual pair of an integration test: the mock upstream and a Recall in front of it, with an SDK client. */
export interface RecallWithMock {
  mock: MockUpstream;
  recall: RunningRecall;
  sdk: OpenAI;
  close(): Promise<void>;
}

export async function startRecallWithMock(settings: Record<string, unknown> = {}, deps: Omit<AppDeps, 'logDestination'> = {}): Promise<RecallWithMock> {
  const mock = await startMockUpstream();
  const recall = await startRecall({ 'upstream.url': mock.baseURL, ...settings }, deps);
  return {
    mock,
    recall,
    sdk: recall.client(),
    close: async () => {
      await recall.close();
      await mock.close();
    },
  };
}

/** Two Recalls in front of one mock upstream, sharing a throwaway Redis of their own under one key prefix. */
export interface TwoOnRedis {
  mock: MockUpstream;
  first: RunningRecall;
  second: RunningRecall;
  redis: ThrowawayRedis;
  /** `redis.key_prefix` of both. */
  prefix: string;
  close(): Promise<void>;
}

export async function startTwoOnRedis(settings: Record<string, unknown>): Promise<TwoOnRedis> {
  const redis = await startThrowawayRedis();
  const mock = await startMockUpstream();
  const prefix = `recall-test-${randomUUID()}:`;
  // A generous command timeout: this shared machine can be slow, and a timed-out command fails open.
  const shared = { 'upstream.url': mock.baseURL, 'redis.url': redis.url, 'redis.key_prefix': prefix, 'redis.command_timeout_ms': 2_000, ...settings };
  const first = await startRecall(shared);
  const second = await startRecall(shared);
  return {
    mock, first, second, redis, prefix,
    close: async () => {
      await second.close();
      await first.close();
      await mock.close();
      await redis.stop();
    },
  };
}
