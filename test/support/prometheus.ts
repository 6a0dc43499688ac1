// Runs Prometheus's own tools for tests: `promtool check metrics` on an exposition, and a throwaway `prometheus`
// server (temporary data directory, free loopback port) queried over its HTTP API.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** `promtool check metrics` on an exposition: its exit status and what it printed (the lint problems). */
export function promtoolCheckMetrics(exposition: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

export interface RunningPrometheus {
  url: string;
  /** Runs an instant PromQL query; the first result's value, or undefined when the result is empty. */
  query(expression: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Starts `prometheus` with this YAML config on a free port; resolves once /-/ready answers 200. */
export async function startPrometheus(configYaml: string): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'recall-prometheus-'));
  writeFileSync(join(dir, 'prometheus.yml'), configYaml);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = async () => {
    await terminate(child);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited (${child.exitCode}): ${output.trim()}`);
    }
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus was not ready within 20 s: ${output.trim()}`);
    }
    await sleep(100);
  }
  return {
    url,
    stop,
    async query(expression) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expression)}`);
      const body = (await response.json()) as { status: string; error?: string; data: { result: { value: [number, string] }[] } };
      if (body.status !== 'success') throw new Error(`PromQL ${expression} failed: ${body.error}`);
      const first = body.data.result[0];
      return first === undefined ? undefined : Number(first.value[1]);
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
  if (!stopped) {
    child.kill('SIGKILL');
    await exited;
  }
}
