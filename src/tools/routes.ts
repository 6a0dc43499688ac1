// POST /recall/tools/batch: runs a batch of tool calls and answers `{results, messages}`; errors come from the catalog.
import type { FastifyInstance } from 'fastify';
import type { ToolBatch } from './tool-batch.js';

export async function toolRoutes(app: FastifyInstance, options: { batch: ToolBatch }): Promise<void> {
  // The body's shape is checked field by field by batch-request.ts (cross-field rules: ids, dependencies); the schema
  // adds what every route gets, the input limits.
  app.post('/recall/tools/batch', { schema: { body: { type: 'object' } } }, async (request, reply) => {
    const clientGone = new AbortController();
    // The response closing before it was written means the client left: the calls still running are aborted.
    const onClose = (): void => {
      if (!reply.raw.writableEnded) clientGone.abort();
    };
    reply.raw.once('close', onClose);
    try {
      return await options.batch.run(request.body, clientGone.signal);
    } finally {
      reply.raw.off('close', onClose);
    }
  });
}
