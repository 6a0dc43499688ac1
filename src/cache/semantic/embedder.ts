// The interface both embedders implement: texts in, L2-normalised vectors of a fixed length out, in order.
import type { HeaderMap } from '../../upstream/headers.js';
import type { Priority } from '../../upstream/priority.js';

/** Whose request an embedding serves: the upstream embedder calls the upstream with its credentials and priority. */
export interface EmbedContext {
  /** The client's request headers as they would go upstream (credentials included). */
  headers: HeaderMap;
  priority: Priority;
}

export interface Embedder {
  /** `local` or `upstream`, as configured; a label on metrics and in the eval report. */
  readonly name: 'local' | 'upstream';
  /** Length of every vector; fixed for the life of the process (the index is built for it). */
  readonly dimensions: number;
  /** One unit vector per text, in the order given. Rejects when the embedder cannot answer (the tier fails open). */
  embed(texts: readonly string[], context?: EmbedContext): Promise<Float32Array[]>;
}

/** Cosine similarity of two unit vectors. */
export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot;
}

/** Scales a vector to length 1 in place (a zero vector stays zero). */
export function normalise(vector: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += vector[i]! * vector[i]!;
  if (sum === 0) return vector;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < vector.length; i++) vector[i] = vector[i]! * scale;
  return vector;
}
