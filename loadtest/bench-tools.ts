// Tool batching benchmark: wall time of a batch of 10 independent 50 ms read tools run through POST /recall/tools/batch
// at max_concurrency 10 against the same batch at max_concurrency 1 (sequential, as an agent loop runs them), and a
// mixed read/write batch whose barriers fix its critical path. Recall and the mock tools run in this process.
//
//   npm run bench:tools -- [--rounds 20] [--latency-ms 50] [--calls 10]

import { parseArgs } from 'node:util';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { startMockTools } from './mock-tools.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' }, 'latency-ms': { type: 'string', default: '50' }, calls: { type: 'string', default: '10' } } });
const rounds = Number(values.rounds);
const latencyMs = Number(values['latency-ms']);
const callCount = Number(values.calls);

const tools = await startMockTools();
for (const name of ['read', 'write']) tools.behave(name, { latencyMs });
const config = loadConfig({ env: {}, overrides: {
  'server.port': 0, 'log.level': 'warn', 'tools.max_concurrency': 64,
  'tools.registry': [{ name: 'read', url: tools.toolUrl('read'), access: 'read' }, { name: 'write', url: tools.toolUrl('write'), access: 'write' }],
} });
const app = await buildApp(config);
await app.listen({ host: '127.0.0.1', port: 0 });
const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/recall/tools/batch`;

async function timeBatch(body: unknown): Promise<number> {
  const startedAt = performance.now();
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await response.json()) as { results: { status: string }[] };
  if (answer.results.some((r) => r.status !== 'ok')) throw new Error(`a call failed: ${JSON.stringify(answer)}`);
  return performance.now() - startedAt;
}

const reads = Array.from({ length: callCount }, (_v, i) => ({ id: `r${i}`, name: 'read', arguments: { i } }));
// r r r W r r r W r r: 3 parallel stages of reads and 2 writes, so 5 latencies on the critical path.
const mixed = ['read', 'read', 'read', 'write', 'read', 'read', 'read', 'write', 'read', 'read'].map((name, i) => ({ id: `m${i}`, name, arguments: { i } }));
const scenarios = [
  { name: `${callCount} independent reads, max_concurrency ${callCount}`, body: { calls: reads, max_concurrency: callCount } },
  { name: `${callCount} independent reads, max_concurrency 1 (sequential)`, body: { calls: reads, max_concurrency: 1 } },
  { name: 'mixed: r r r W r r r W r r, max_concurrency 10', body: { calls: mixed, max_concurrency: 10 } },
  { name: 'mixed, max_concurrency 1 (sequential)', body: { calls: mixed, max_concurrency: 1 } },
];

await timeBatch(scenarios[0]!.body); // warm-up: connections to the tools
const medians: number[] = [];
console.log(`| scenario | median ms | p90 ms | min ms |\n| --- | --- | --- | --- |`);
for (const scenario of scenarios) {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) times.push(await timeBatch(scenario.body));
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  medians.push(median);
  console.log(`| ${scenario.name} | ${median.toFixed(1)} | ${times[Math.floor(times.length * 0.9)]!.toFixed(1)} | ${times[0]!.toFixed(1)} |`);
}
const saving = (parallel: number, sequential: number) => `${((1 - parallel / sequential) * 100).toFixed(1)} %`;
console.log(`\nindependent reads: ${saving(medians[0]!, medians[1]!)} less wall time than sequential (target ≥ 80 %)`);
console.log(`mixed batch: ${saving(medians[2]!, medians[3]!)} less wall time than sequential (critical path 5 of 10 latencies: at most 50 %)`);
console.log(`${rounds} rounds per scenario, tool latency ${latencyMs} ms, node ${process.version}, commit ${process.env['GIT_COMMIT'] ?? 'see git log'}`);
await app.close();
await tools.close();
