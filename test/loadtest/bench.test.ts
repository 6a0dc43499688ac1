// `npm run bench` end to end, on its two cheapest steps: it starts the ceiling and Recall in processes of their own,
// loads both, and saves numbers. Speeds are not asserted (the machine is shared); that it completes, measures
// something on each side and leaves docs/BENCHMARKS.md alone under --only is.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REPORT = `${ROOT}docs/BENCHMARKS.md`;

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('RECALL_')));
  const child = spawn(process.execPath, ['--import', 'tsx', `${ROOT}loadtest/bench.ts`, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

interface SavedRun {
  throughput: Record<string, { requestsPerSecond: number; responses: number; non2xx: number; cacheHeader: Record<string, number> }>;
  skipped: string[];
}

describe('npm run bench --quick --only ceiling,memory-hits', () => {
  it('measures the ceiling and memory hits, prints their ratio and leaves the report alone', async () => {
    const reportBefore = readFileSync(REPORT, 'utf8');
    // A generous budget: other work may share the machine.
    const { code, stdout, stderr } = await runBench(['--quick', '--only', 'ceiling,memory-hits', '--budget', '150']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/\| memory hits \/ ceiling \| \d+ req\/s \/ \d+ req\/s \| \d+\.\d{3} \| ≥ 0\.7 \| \*\*(met|not met)\*\* \|/);
    const saved = JSON.parse(readFileSync(/JSON: (.+\.json)/.exec(stdout)?.[1] ?? '', 'utf8')) as SavedRun;
    expect(saved.skipped).toEqual([]);
    expect(Object.keys(saved.throughput).sort()).toEqual(['ceiling', 'memoryHits']);
    for (const measured of Object.values(saved.throughput)) {
      expect(measured.requestsPerSecond).toBeGreaterThan(0);
      expect(measured.non2xx).toBe(0);
    }
    const hits = saved.throughput.memoryHits;
    expect(hits?.cacheHeader.HIT).toBe(hits?.responses);
    expect(readFileSync(REPORT, 'utf8')).toBe(reportBefore);
  }, 240_000);

  it('refuses an unknown step before starting anything', async () => {
    const { code, stderr } = await runBench(['--only', 'ceiling,warp-speed']);
    expect(code).toBe(1);
    expect(stderr).toContain("--only: unknown step 'warp-speed'");
  }, 60_000);

  it('refuses --quick with --large, which would contradict each other', async () => {
    const { code, stderr } = await runBench(['--quick', '--large']);
    expect(code).toBe(1);
    expect(stderr).toContain('--quick and --large do not go together');
  }, 60_000);
});
