// The recall process as an operator runs it: a bad setting stops the start with exit code 2, and SIGTERM lets
// in-flight streams finish before the process exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../loadtest/mock-upstream.js';
import { closedPort } from '../support/recall.js';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function runMain(env: Record<string, string>): Started {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RECALL_')));
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

async function waitForHealth(url: string, started: Started): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (started.child.exitCode !== null) throw new Error(`recall exited: ${started.stderr()}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('recall did not become healthy');
}

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  await mock.close();
});

describe('recall main', () => {
  it.each([
    [{ RECALL_PORT: 'http' }, /^recall: invalid setting server\.port \(RECALL_PORT\) = "http" from \$RECALL_PORT: must be an integer from 0 to 65535$/],
    [{ RECALL_UPSTREAM_URL: 'localhost:9000' }, /^recall: invalid setting upstream\.url .*must be a URL \(http:\/\/ or https:\/\/\)$/],
    [{ RECALL_CONFIG: '/nonexistent.yaml' }, /^recall: config file \/nonexistent\.yaml \(from \$RECALL_CONFIG\) cannot be read/],
  ])('stops with exit code 2 and one clear line for %j', async (env, line) => {
    const started = runMain(env);
    expect(await started.exit).toBe(2);
    expect(started.stderr().trim().split('\n')).toHaveLength(1);
    expect(started.stderr().trim()).toMatch(line);
  });

  it('on SIGTERM finishes the stream in flight, refuses new connections, and exits 0', async () => {
    const port = await closedPort();
    const started = runMain({ RECALL_PORT: String(port), RECALL_UPSTREAM_URL: mock.baseURL, RECALL_LOG_LEVEL: 'info' });
    const url = `http://127.0.0.1:${port}`;
    await waitForHealth(url, started);

    const sdk = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const stream = await sdk.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'finish this even while shutting down' }], stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '60' } },
    );
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);

    started.child.kill('SIGTERM');
    const chunks = [first.value];
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) chunks.push(next.value);
    expect(chunks.some((c) => c?.choices[0]?.finish_reason === 'stop')).toBe(true);

    expect(await started.exit).toBe(0);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    expect(started.stdout()).toContain('shutting down');
    // The stream's request line is written when it ends, during shutdown: the log's last batch is flushed on exit.
    const requestLines = started.stdout().split('\n').filter((line) => line.includes('"msg":"request"'));
    expect(requestLines.map((line) => (JSON.parse(line) as { status: number; route: string }).route)).toContain('/v1/chat/completions');
  });

  it('closes streams that outlive the grace period, and still exits 0', async () => {
    const port = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), 'recall-e2e-'));
    writeFileSync(join(dir, 'recall.yaml'), `server:\n  port: ${port}\n  shutdown_grace_ms: 300\nupstream:\n  url: ${mock.baseURL}\n`);
    const started = runMain({ RECALL_CONFIG: join(dir, 'recall.yaml') });
    const url = `http://127.0.0.1:${port}`;
    await waitForHealth(url, started);
    const pending = fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'stall' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stall' }] }),
    }).then((r) => r.status, () => 'closed');
    await new Promise((r) => setTimeout(r, 200));
    started.child.kill('SIGTERM');
    expect(await started.exit).toBe(0);
    expect(await pending).toBe('closed');
    expect(started.stdout()).toContain('shutdown grace period over');
  });
});
