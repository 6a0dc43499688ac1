// The OpenAI routes: the cached ones go through the pipeline with a parsed JSON body; every other /v1/* route is
// forwarded unchanged, its upload streamed to the upstream as it arrives. A cached route's body must pass its schema
// (request-schemas.ts); each route reads X-Recall-Priority first, so a bad value is a 400 whatever the route and the
// cache would do, and before anything goes upstream.
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { chatCompletionSchema, completionSchema, embeddingsSchema } from '../openai/request-schemas.js';
import { markForwarded } from '../cache/cache-status.js';
import { readPriority } from '../upstream/priority.js';
import type { Forwarder } from './forward.js';
import { registerJsonBodyParser } from './json-body.js';
import { CACHED_ROUTES, type Pipeline } from './pipeline.js';

export interface ProxyRouteDeps {
  pipeline: Pipeline;
  forwarder: Forwarder;
  bodyLimitBytes: number;
  /** server.max_messages */
  maxMessages: number;
}

export async function proxyRoutes(app: FastifyInstance, deps: ProxyRouteDeps): Promise<void> {
  await app.register(async (cached) => {
    registerJsonBodyParser(cached, deps.bodyLimitBytes);
    const schemas = {
      '/v1/chat/completions': chatCompletionSchema({ maxMessages: deps.maxMessages }),
      '/v1/completions': completionSchema(),
      '/v1/embeddings': embeddingsSchema(),
    } satisfies Record<keyof typeof CACHED_ROUTES, object>;
    for (const [path, body] of Object.entries(schemas)) {
      // The schema rejects a bad body with a 400 naming the field before any cache or upstream work.
      cached.post(path, { schema: { body }, config: { limitsOwnBody: true } }, (request, reply) => {
        request.recall.route = path;
        request.recall.priority = readPriority(request.headers);
        return deps.pipeline.handle(request, reply);
      });
    }
  });

  await app.register(async (passthrough) => {
    passthrough.removeAllContentTypeParsers();
    passthrough.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    passthrough.all('/v1/*', (request, reply) => {
      request.recall.route = '/v1/*';
      request.recall.priority = readPriority(request.headers);
      markForwarded(reply, 'bypass');
      request.recall.cacheOutcome = 'BYPASS';
      const upload = request.body as Readable | undefined;
      return deps.forwarder.forward(request, reply, { body: upload, readJsonWhole: false });
    });
  });
}
