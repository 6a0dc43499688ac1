// POST /recall/tools/batch: runs a batch of tool calls and answers `{results, messages}`; errors come from the catalog.
import type { FastifyInstance } from 'fastify';
import type { ToolBatch } from './tool-batch.js';

export async function toolRoutes(app: FastifyInstance, options: { batch: ToolBatch }): Promise<void> {
  app.post('/recall/tools/batch', async (request, reply) => {
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
