// The `upstream` embedder: the upstream's /v1/embeddings with the configured model, sent through the embeddings
// micro-batcher (concurrent lookups share calls) with the client's own credentials, and a bounded cache of its own
// so that a repeated prompt is embedded once.
import { createHash } from 'node:crypto';
import { BoundedMemo } from '../bounded-memo.js';
import type { SendWhole } from '../../proxy/forward.js';
import type { HeaderMap } from '../../upstream/headers.js';
import { normalise, type EmbedContext, type Embedder } from './embedder.js';

const CACHED_VECTORS = 10_000;

export class UpstreamEmbedder implements Embedder {
  readonly name = 'upstream';
  private readonly cache = new BoundedMemo<Float32Array>(CACHED_VECTORS);

  /** `dimensions` is asked of the model (text-embedding-3 models shorten their vectors to it). */
  constructor(
    private readonly send: SendWhole,
    private readonly model: string,
    readonly dimensions: number,
  ) {}

  async embed(texts: readonly string[], context?: EmbedContext): Promise<Float32Array[]> {
    const keys = texts.map((text) => createHash('sha256').update(text).digest('base64'));
    const out: (Float32Array | undefined)[] = keys.map((key) => this.cache.get(key));
    const missing = texts.filter((_, i) => out[i] === undefined);
    if (missing.length > 0) {
      const vectors = await this.fetch(missing, context);
      let next = 0;
      for (let i = 0; i < texts.length; i++) {
        if (out[i] !== undefined) continue;
        const vector = vectors[next++]!;
        this.cache.set(keys[i]!, vector);
        out[i] = vector;
      }
    }
    return out as Float32Array[];
  }

  private async fetch(texts: readonly string[], context: EmbedContext | undefined): Promise<Float32Array[]> {
    const body = Buffer.from(JSON.stringify({ model: this.model, input: texts, dimensions: this.dimensions, encoding_format: 'float' }));
    const headers: HeaderMap = { ...(context?.headers ?? {}), 'content-type': 'application/json', 'accept-encoding': 'identity' };
    delete headers['content-length'];
    const answer = await this.send({ method: 'POST', path: '/embeddings', headers, body, priority: context?.priority });
    if (answer.status !== 200) throw new Error(`upstream embeddings answered ${answer.status}`);
    const parsed = JSON.parse(answer.body.toString('utf8')) as { data?: { index?: number; embedding?: unknown }[] };
    const vectors: Float32Array[] = new Array<Float32Array>(texts.length);
    for (const item of parsed.data ?? []) {
      const index = item.index ?? -1;
      if (index < 0 || index >= texts.length) continue;
      vectors[index] = toVector(item.embedding, this.dimensions);
    }
    for (let i = 0; i < texts.length; i++) if (vectors[i] === undefined) throw new Error('upstream embeddings answer is missing a vector');
    return vectors;
  }
}

/** A float array (or base64 of float32s, which some upstreams send regardless) as a unit vector of `dimensions`. */
function toVector(embedding: unknown, dimensions: number): Float32Array {
  let values: Float32Array;
  if (Array.isArray(embedding)) values = Float32Array.from(embedding as number[]);
  else if (typeof embedding === 'string') {
    const bytes = Buffer.from(embedding, 'base64');
    values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  } else throw new Error('upstream embeddings answer has no vector');
  if (values.length !== dimensions) throw new Error(`upstream embedding has ${values.length} dimensions, expected ${dimensions}`);
  return normalise(values);
}
