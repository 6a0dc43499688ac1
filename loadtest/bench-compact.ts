// Compaction benchmark: POST /recall/compact latency for truncation, a summary served from the summary cache (warm)
// and a summary the upstream must write (miss), in front of the mock upstream with a fixed latency. Recall and the
// mock run in this process, requests go one at a time over HTTP; prints medians and the two ratios the design targets:
// warm summary ≤ 2 × truncation, and a summary cache hit ≥ 10 × faster than a miss.
//
//   npm run bench:compact -- [--requests 30] [--mock-latency-ms 200] [--turns 40]
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { startMockUpstream } from './mock-upstream.js';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at === -1 ? fallback : Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number >= 0`);
  return value;
}

const requests = flag('requests', 30);
const latencyMs = flag('mock-latency-ms', 200);
const turns = flag('turns', 40);

function conversation(seed: string): Record<string, unknown>[] {
  const words = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');
  const messages: Record<string, unknown>[] = [{ role: 'system', content: 'You are a travel agent.' }];
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: `${seed} question ${t}: ${words(30, `q${t}_`)}` });
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `call_${t}`, type: 'function', function: { name: 'search', arguments: `{"turn":${t}}` } }] });
    messages.push({ role: 'tool', tool_call_id: `call_${t}`, content: `Result ${t}: ${words(40, `r${t}_`)}` });
    messages.push({ role: 'assistant', content: `Answer ${t}: ${words(20, `a${t}_`)}` });
  }
  messages.push({ role: 'user', content: 'And the final question?' });
  return messages;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const mock = await startMockUpstream({ latencyMs });
const app = await buildApp(loadConfig({ env: {}, overrides: { 'server.port': 0, 'log.level': 'warn', 'upstream.url': mock.baseURL } }));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address() as { port: number };
const url = `http://127.0.0.1:${address.port}/recall/compact`;

async function timed(body: unknown, expectCached: boolean | null): Promise<number> {
  const startedAt = performance.now();
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' }, body: JSON.stringify(body) });
  const json = (await response.json()) as { summary_cached?: boolean | null };
  const elapsed = performance.now() - startedAt;
  if (response.status !== 200) throw new Error(`compact answered ${response.status}: ${JSON.stringify(json)}`);
  if (json.summary_cached !== expectCached) throw new Error(`expected summary_cached ${String(expectCached)}, got ${String(json.summary_cached)}`);
  return elapsed;
}

try {
  const target = 1500;
  const shared = conversation('shared');
  const truncation: number[] = [];
  const warm: number[] = [];
  const miss: number[] = [];
  await timed({ model: 'gpt-4o-mini', messages: shared, target_tokens: target, strategy: 'summary' }, false);
  for (let i = 0; i < requests; i++) {
    truncation.push(await timed({ model: 'gpt-4o-mini', messages: shared, target_tokens: target, strategy: 'truncation' }, null));
    warm.push(await timed({ model: 'gpt-4o-mini', messages: shared, target_tokens: target, strategy: 'summary' }, true));
    miss.push(await timed({ model: 'gpt-4o-mini', messages: conversation(`run${i}`), target_tokens: target, strategy: 'summary' }, false));
  }
  const [t, w, m] = [median(truncation), median(warm), median(miss)];
  console.log(`| case | median ms (${requests} requests, ${turns} turns = ${shared.length} messages, mock latency ${latencyMs} ms) |`);
  console.log('| --- | --- |');
  console.log(`| truncation | ${t.toFixed(2)} |`);
  console.log(`| summary, cache hit | ${w.toFixed(2)} |`);
  console.log(`| summary, cache miss | ${m.toFixed(2)} |`);
  console.log(`\nwarm summary / truncation: ${(w / t).toFixed(2)} × (target ≤ 2)`);
  console.log(`summary miss / hit: ${(m / w).toFixed(1)} × (target ≥ 10)`);
} finally {
  await app.close();
  await mock.close();
}
