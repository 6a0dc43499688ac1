// The ceiling of the cache-hit benchmark, not a product: one bare Fastify route that answers every chat completion with
// the same bytes (the body Recall returns on a hit), with no logging and no work beyond what Fastify itself does.
//
//   node --import tsx loadtest/ceiling-server.ts --port 0 --body-file /tmp/answer.json
//
// Prints one `ceiling listening on http://127.0.0.1:PORT` line; stops on SIGTERM/SIGINT.

import Fastify from 'fastify';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, 'body-file': { type: 'string' } } });
const bodyFile = values['body-file'];
if (bodyFile === undefined) throw new Error('--body-file is required: the exact bytes to answer with');
const port = Number(values.port ?? '0');
if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new RangeError(`--port must be a port number, got '${values.port}'`);

const answer = readFileSync(bodyFile);
const app = Fastify({ logger: false });
app.post('/v1/chat/completions', (_request, reply) => {
  reply.type('application/json').send(answer);
});

await app.listen({ host: '127.0.0.1', port });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error(`unexpected listening address ${String(address)}`);
console.log(`ceiling listening on http://127.0.0.1:${address.port}`);

const stop = (): void => {
  app.close().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error('ceiling failed to close:', error);
      process.exit(1);
    },
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
