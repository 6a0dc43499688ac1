// POST /recall/tools/batch: runs a batch of tool calls and answers `{results, messages}`; errors come from the catalog.
import type { FastifyInstance } from 'fastify';
import type { ToolBatch } from './tool-batch.js';

export async function toolRoutes(app: FastifyInstance, options: { batch: ToolBatch }): Promise<void> {
  app.post('/recall/tools/batch', async (request) => options.batch.run(request.body));
}
