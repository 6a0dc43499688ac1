// Quality harness of the semantic tier (`npm run eval:semantic`): for every labelled pair of test/fixtures/
// semantic-pairs.json, decides as the tier does (similarity at or above the threshold, then the guards) whether the
// second prompt would be served the first one's answer, and prints, per category and across a threshold sweep, the
// hit rate on "same" pairs and the false-hit rate on "different" pairs, for each embedder available. The local
// embedder always runs; `--upstream-url http://host/v1 [--model M] [--api-key K]` adds the upstream one.
//   npm run eval:semantic [-- --markdown] [-- --upstream-url …]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../src/config/schema.js';
import { cosine, type Embedder } from '../src/cache/semantic/embedder.js';
import { factsOf, failedGuard } from '../src/cache/semantic/guards.js';
import { LocalEmbedder } from '../src/cache/semantic/local-embedder.js';
import { UpstreamEmbedder } from '../src/cache/semantic/upstream-embedder.js';
import type { SendWhole } from '../src/proxy/forward.js';

interface Pair { category: string; label: 'same' | 'different'; a: string; b: string }

const { values: args } = parseArgs({ options: {
  markdown: { type: 'boolean', default: false },
  dimensions: { type: 'string', default: '512' },
  'upstream-url': { type: 'string' },
  model: { type: 'string', default: 'text-embedding-3-small' },
  'api-key': { type: 'string' },
} });
const pairs = (JSON.parse(readFileSync(new URL('../test/fixtures/semantic-pairs.json', import.meta.url), 'utf8')) as { pairs: Pair[] }).pairs;
const THRESHOLDS = [0.7, 0.75, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98];
const MAX_FALSE_HITS = 0.01;

const embedders: Embedder[] = [new LocalEmbedder(Number(args.dimensions))];
if (args['upstream-url'] !== undefined) {
  const base = args['upstream-url'].replace(/\/+$/, '');
  const send: SendWhole = async (call) => {
    const response = await fetch(`${base}${call.path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(args['api-key'] ? { authorization: `Bearer ${args['api-key']}` } : {}) }, body: call.body as Buffer });
    return { status: response.status, headers: {}, body: Buffer.from(await response.arrayBuffer()) };
  };
  embedders.push(new UpstreamEmbedder(send, args.model, Number(args.dimensions)));
}

const categories = [...new Set(pairs.map((p) => `${p.category}/${p.label}`))];
for (const embedder of embedders) {
  const scored = [];
  for (const pair of pairs) {
    const [a, b] = await embedder.embed([pair.a, pair.b]);
    scored.push({ ...pair, similarity: cosine(a!, b!), guard: failedGuard(factsOf(pair.b), factsOf(pair.a)) });
  }
  const rate = (rows: typeof scored, t: number, guards: boolean) =>
    rows.length === 0 ? 0 : rows.filter((r) => r.similarity >= t && (!guards || r.guard === undefined)).length / rows.length;
  const same = scored.filter((r) => r.label === 'same');
  const different = scored.filter((r) => r.label === 'different');
  let chosen: number | undefined;
  for (const t of THRESHOLDS) if (chosen === undefined && rate(different, t, true) <= MAX_FALSE_HITS) chosen = t;

  const header = ['threshold', 'hit rate (same)', 'false hits (different)', 'false hits without guards', ...categories];
  const rows = THRESHOLDS.map((t) => [
    t.toFixed(2), pct(rate(same, t, true)), pct(rate(different, t, true)), pct(rate(different, t, false)),
    ...categories.map((c) => pct(rate(scored.filter((r) => `${r.category}/${r.label}` === c), t, true))),
  ]);
  console.log(`\nembedder: ${embedder.name} (${embedder.dimensions} dimensions), ${same.length} same and ${different.length} different pairs`);
  console.log('per category: share of pairs served (a hit on /same, a false hit on /different)\n');
  if (args.markdown) {
    console.log(`| ${header.join(' | ')} |`);
    console.log(`| ${header.map(() => '---').join(' | ')} |`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  } else {
    console.table(Object.fromEntries(rows.map((row) => [row[0], Object.fromEntries(header.slice(1).map((h, i) => [h, row[i + 1]]))])));
  }
  console.log(`\nlowest threshold with false hits <= ${pct(MAX_FALSE_HITS)}: ${chosen ?? 'none'}; configured default: ${DEFAULT_SEMANTIC_THRESHOLD}`);
  const guardCounts: Record<string, number> = {};
  for (const r of different) guardCounts[r.guard ?? 'none (vector only)'] = (guardCounts[r.guard ?? 'none (vector only)'] ?? 0) + 1;
  console.log('guards that refuse the different pairs:', guardCounts);
  const misses = same.filter((r) => r.guard !== undefined);
  if (misses.length > 0) console.log(`same pairs refused by a guard: ${misses.map((r) => `${r.guard}: "${r.b}"`).join('; ')}`);
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}
