// The OpenAI routes: the cached ones go through the pipeline with a parsed JSON body; every other /v1/* route is
// forwarded unchanged, its upload streamed to the upstream as it arrives. Each reads X-Recall-Priority first, so
// a bad value is a 400 whatever the route and the cache would do, and before anything goes upstream.
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { invalidJson } from '../openai/errors.js';
import { markForwarded } from '../cache/cache-status.js';
import { readPriority } from '../upstream/priority.js';
import type { Forwarder } from './forward.js';
import { registerJsonBodyParser } from './json-body.js';
import { CACHED_ROUTES, type Pipeline } from './pipeline.js';

export interface ProxyRouteDeps {
  pipeline: Pipeline;
  forwarder: Forwarder;
  bodyLimitBytes: number;
}

export async function proxyRoutes(app: FastifyInstance, deps: ProxyRouteDeps): Promise<void> {
  await app.register(async (cached) => {
    registerJsonBodyParser(cached, deps.bodyLimitBytes);
    for (const path of Object.keys(CACHED_ROUTES)) {
      // The body parser already guarantees a JSON object; field-level schemas arrive with input hardening.
      cached.post(path, { config: { limitsOwnBody: true } }, (request, reply) => {
        request.recall.priority = readPriority(request.headers);
        if (request.recall.rawBody === undefined) throw invalidJson('the body is empty');
        return deps.pipeline.handle(request, reply);
      });
    }
  });

  await app.register(async (passthrough) => {
    passthrough.removeAllContentTypeParsers();
    passthrough.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    passthrough.all('/v1/*', (request, reply) => {
      request.recall.priority = readPriority(request.headers);
      markForwarded(reply, 'bypass');
      request.recall.cacheOutcome = 'BYPASS';
      const upload = request.body as Readable | undefined;
      return deps.forwarder.forward(request, reply, { body: upload, readJsonWhole: false });
    });
  });
}
