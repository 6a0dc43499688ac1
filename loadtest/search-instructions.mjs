// Counts the CPU instructions of HNSW searches, independent of machine load: run under
//   valgrind --tool=callgrind --toggle-collect='CompiledIndex::Search*' node loadtest/search-instructions.mjs ...
// callgrind then counts only inside usearch's native search. Plain JavaScript, so that it runs without tsx.
//   node loadtest/search-instructions.mjs <graph file> <dimensions> <quantization> <connectivity> <expansion_search> <queries.f32> <searches> <k>
import { readFileSync } from 'node:fs';
import usearch from 'usearch';

const [path, dimensions, quantization, connectivity, expansionSearch, queriesPath, searches, k] = process.argv.slice(2);
const dims = Number(dimensions);
const graph = new usearch.Index({
  metric: usearch.MetricKind.Cos, quantization, multi: false, dimensions: dims,
  connectivity: Number(connectivity), expansion_add: 0, expansion_search: Number(expansionSearch),
});
graph.view(path);
const bytes = readFileSync(queriesPath);
const queries = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const count = queries.length / dims;
for (let i = 0; i < Number(searches); i++) {
  const at = (i % count) * dims;
  graph.search(queries.subarray(at, at + dims), Number(k), 1);
}
