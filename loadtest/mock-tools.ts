// Mock HTTP tools for tests and benchmarks: POST (or GET) /tools/<name> answers after a configurable latency, or fails,
// and every call's start and end are recorded in order so tests assert parallelism and barriers without timings.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface ToolBehaviour {
  /** Milliseconds before answering (default 0). */
  latencyMs?: number;
  /** Answer with this HTTP status and an error body instead of a result. */
  failStatus?: number;
}

/** One recorded event; `label` is the call's `label` argument, or the tool name. */
export interface ToolEvent {
  event: 'start' | 'end' | 'aborted';
  tool: string;
  label: string;
}

export interface MockTools {
  /** http://127.0.0.1:PORT */
  url: string;
  /** The URL of tool `name`, for tools.registry. */
  toolUrl(name: string): string;
  behave(name: string, behaviour: ToolBehaviour): void;
  events: ToolEvent[];
  /** Calls received per tool. */
  calls(name: string): number;
  /** Most calls in progress at once since the last reset. */
  peakInFlight(): number;
  reset(): void;
  close(): Promise<void>;
}

export interface MockToolsOptions {
  /** 0 (default): a free port. */
  port?: number;
  /** What tools without a behaviour of their own do. */
  defaultBehaviour?: ToolBehaviour;
}

export async function startMockTools(options: MockToolsOptions = {}): Promise<MockTools> {
  const port = options.port ?? 0;
  const defaultBehaviour = options.defaultBehaviour ?? {};
  const behaviours = new Map<string, ToolBehaviour>();
  const counts = new Map<string, number>();
  const events: ToolEvent[] = [];
  let inFlight = 0;
  let peak = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://mock');
      const match = /^\/tools\/([^/]+)$/.exec(url.pathname);
      if (match === null) return void res.writeHead(404).end();
      const tool = match[1]!;
      const args = req.method === 'GET' || req.method === 'DELETE' ? Object.fromEntries(url.searchParams) : await readJson(req);
      const label = typeof args['label'] === 'string' ? args['label'] : tool;
      const n = (counts.get(tool) ?? 0) + 1;
      counts.set(tool, n);
      const behaviour = behaviours.get(tool) ?? defaultBehaviour;
      events.push({ event: 'start', tool, label });
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      let timer: NodeJS.Timeout | undefined;
      res.on('close', () => {
        if (res.writableEnded) return;
        clearTimeout(timer);
        inFlight -= 1;
        events.push({ event: 'aborted', tool, label });
      });
      timer = setTimeout(() => {
        inFlight -= 1;
        events.push({ event: 'end', tool, label });
        if (behaviour.failStatus !== undefined) {
          res.writeHead(behaviour.failStatus, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `${tool} failed on purpose` }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tool, args, n, authorization: req.headers.authorization ?? null }));
      }, behaviour.latencyMs ?? 0);
    })();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    toolUrl: (name) => `${url}/tools/${name}`,
    behave: (name, behaviour) => void behaviours.set(name, behaviour),
    events,
    calls: (name) => counts.get(name) ?? 0,
    peakInFlight: () => peak,
    reset: () => {
      events.length = 0;
      counts.clear();
      peak = inFlight;
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

/** `npm run mock-tools -- --port 9100 --latency-ms 50 --fail broken=503`: every tool answers after the latency. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '9100' }, 'latency-ms': { type: 'string', default: '0' }, fail: { type: 'string', multiple: true, default: [] } } });
  const latencyMs = Number(values['latency-ms']);
  const tools = await startMockTools({ port: Number(values.port), defaultBehaviour: { latencyMs } });
  const failing = new Map(values.fail.map((spec) => spec.split('=') as [string, string]));
  for (const [name, status] of failing) tools.behave(name, { latencyMs, failStatus: Number(status) });
  console.log(`mock tools on ${tools.url}/tools/<name> (latency ${latencyMs} ms)`);
  const stop = (): void => void tools.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// Only when this file is the entry point; importing it (tests, benchmarks) never starts a server.
const entryScript = process.argv[1];
if (entryScript !== undefined && import.meta.url === pathToFileURL(entryScript).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
