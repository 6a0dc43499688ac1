// Throwaway redis-server processes on free loopback ports, so that a test owns its Redis: it can crash and restart
// it, and no other run ever sees its data. Nothing is persisted (no RDB, no AOF).
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

const STARTUP_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 2_000;
/** Another process may take the free port between our probe and redis-server's bind; then try another one. */
const PORT_ATTEMPTS = 3;

export interface ThrowawayRedis {
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** SIGKILL, as a crash: connections drop without a goodbye. Resolves once the process is gone. */
  crash(): Promise<void>;
  /** Starts a fresh, empty server on the same port and waits until it answers PING. */
  restart(): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL if it lingers); safe to call twice or after `crash`. */
  stop(): Promise<void>;
}

export async function startThrowawayRedis(): Promise<ThrowawayRedis> {
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = (await freePort())!;
    try {
      let child = await launch(port);
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        crash: () => terminate(child, 'SIGKILL'),
        restart: async () => {
          await terminate(child, 'SIGKILL');
          child = await launch(port);
        },
        stop: () => terminate(child, 'SIGTERM'),
      };
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/** A free loopback port; `port` asks whether that one is free (0: any). Resolves undefined when it is taken. */
export async function freePort(port = 0): Promise<number | undefined> {
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (!bound) return undefined;
  const { port: chosen } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return chosen;
}

/**
 * Starts `redis-server` on the port (no persistence) with `extraArgs` after the defaults (`configFile` before them),
 * and resolves once it answers PING; `launch(port)` is a plain throwaway server.
 */
export async function launch(port: number, extraArgs: readonly string[] = [], configFile?: string): Promise<ChildProcess> {
  const child = spawn('redis-server', [
    ...(configFile === undefined ? [] : [configFile]),
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir(),
    '--daemonize', 'no', '--loglevel', 'warning', ...extraArgs,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let spawnError: Error | undefined;
  child.once('error', (error) => { spawnError = error; });

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (spawnError !== undefined) throw new Error(`could not run redis-server: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server on port ${port} exited (${child.exitCode ?? child.signalCode}): ${output.trim()}`);
    }
    if (await answersPing(port)) return child;
    await sleep(20);
  }
  await terminate(child, 'SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING within ${STARTUP_TIMEOUT_MS} ms: ${output.trim()}`);
}

/** A raw RESP PING, so that no client library's own retrying hides whether the server is up. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH')); // NOAUTH: up, with requirepass
    });
  });
}

/** Sends the signal and resolves once the process has exited (SIGKILL after 2 s if a SIGTERM is not enough). */
export async function terminate(child: ChildProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const stopped = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
  if (!stopped) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** One command (or a few) on a fresh connection to a loopback server, which is closed after; no retries, no queueing. */
export async function askRedis<T>(port: number, command: (redis: Redis) => Promise<T>, password?: string): Promise<T> {
  const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000, commandTimeout: 2_000, password });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await command(redis);
  } finally {
    redis.disconnect();
  }
}
