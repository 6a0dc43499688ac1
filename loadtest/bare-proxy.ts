// The reference floor for "what any Node proxy costs on this machine", not a product: node:http in, one keep-alive undici
// Pool out, whole bodies, no logging, no framework, no checks beyond what a pass-through needs.
//
//   node --import tsx loadtest/bare-proxy.ts --port 0 --upstream http://127.0.0.1:9090
//
// Forwards method, path (unchanged) and headers (minus host and hop-by-hop ones) with the client's body, reads the upstream
// answer whole and sends it back with its status and content-type. Prints one listening line; stops on SIGTERM/SIGINT.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

/** Not forwarded: undici sets host and content-length itself and refuses the hop-by-hop ones. */
const DROPPED = new Set(['host', 'connection', 'content-length', 'keep-alive', 'transfer-encoding', 'upgrade']);

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } } });
const upstream = new URL(values.upstream ?? 'http://127.0.0.1:9090');
if (upstream.pathname !== '/') throw new Error(`--upstream must be an origin (paths are forwarded unchanged), got '${upstream.href}'`);
// Same connection limit as Recall's default upstream.connections.
const pool = new Pool(upstream.origin, { connections: 256 });

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function forwardedHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !DROPPED.has(name)) out[name] = value;
  }
  return out;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const body = await readBody(req);
    const answer = await pool.request({
      method: req.method as 'POST',
      path: req.url ?? '/',
      headers: forwardedHeaders(req.headers),
      body: body.length === 0 ? null : body,
    });
    const payload = Buffer.from(await answer.body.arrayBuffer());
    const contentType = answer.headers['content-type'];
    res.writeHead(answer.statusCode, {
      ...(contentType === undefined ? {} : { 'content-type': contentType }),
      'content-length': payload.length,
    });
    res.end(payload);
  } catch (error) {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`bare proxy: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}

const server = createServer((req, res) => void handle(req, res));
server.listen(Number(values.port ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`bare proxy listening on http://127.0.0.1:${port} -> ${upstream.origin}`);
});

function stop(): void {
  server.close();
  server.closeAllConnections();
  pool.close().catch(() => undefined);
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
