// The one path every cached-route request takes, top to bottom (DESIGN.md):
//   tenant ─► rate limit ─► canonical key ─► exact tier ─► semantic tier ─► join in-flight ─► upstream ─► store
// Each stage is a call into its own module. The cache, coalescing and limit stages arrive with their issues;
// today a request goes straight to the upstream stage.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Forwarder } from './forward.js';

/** The routes whose answers Recall caches, by their path. */
export const CACHED_ROUTES = {
  '/v1/chat/completions': 'chat.completions',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
} as const;

export type CachedRoute = (typeof CACHED_ROUTES)[keyof typeof CACHED_ROUTES];

export class Pipeline {
  constructor(private readonly forwarder: Forwarder) {}

  handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    return this.forwarder.forward(request, reply, { body: request.recall.rawBody, readJsonWhole: true });
  }
}
