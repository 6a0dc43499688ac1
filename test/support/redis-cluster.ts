// A throwaway local Redis Cluster: three masters with one replica each, on free loopback ports, nothing persisted.
// A test can SIGKILL a master and wait for its replica to take over. Everything is torn down by `stop()`, and by an
// exit hook if the test process ends without it.
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { askRedis, freePort, launch, terminate } from './redis.js';

const run = promisify(execFile);
const MASTERS = 3;
const NODES = MASTERS * 2;
/** A node's cluster bus listens on its port + 10000; both must be free. */
const BUS_OFFSET = 10_000;
/** Cluster formation and a failover take seconds; this only stops a broken run from hanging. */
const SETTLE_TIMEOUT_MS = 60_000;

export interface ClusterNode {
  readonly port: number;
  /** `127.0.0.1:PORT` */
  readonly address: string;
  readonly process: ChildProcess;
}

export interface ThrowawayCluster {
  readonly nodes: readonly ClusterNode[];
  /** Every node as comma-separated `host:port`, what RECALL_REDIS_CLUSTER takes. */
  readonly seeds: string;
  /** The ports of the nodes that serve slots now (from CLUSTER NODES of a live node). */
  masters(): Promise<number[]>;
  /** The port of the master serving `key` now. */
  masterOf(key: string): Promise<number>;
  /** SIGKILL, as a crash: no goodbye to clients or to the other nodes. */
  kill(port: number): Promise<void>;
  /** Resolves once every slot is served by a live master and the cluster says `cluster_state:ok` everywhere alive. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Every node then requires it (`requirepass`), and replicas use it towards their masters (`masterauth`). */
  password?: string;
}

export async function startThrowawayCluster(options: ClusterOptions = {}): Promise<ThrowawayCluster> {
  const auth = options.password === undefined ? [] : ['--requirepass', options.password, '--masterauth', options.password];
  const dir = await mkdtemp(join(tmpdir(), 'recall-cluster-'));
  const nodes: ClusterNode[] = [];
  const killAll = () => { for (const node of nodes) node.process.kill('SIGKILL'); };
  process.once('exit', killAll);
  const stop = async () => {
    process.off('exit', killAll);
    await Promise.all(nodes.map((node) => terminate(node.process, 'SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of await freePortPairs(NODES)) {
      const child = await launch(port, [
        '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '1000',
        '--dir', dir, ...auth,
      ]);
      nodes.push({ port, address: `127.0.0.1:${port}`, process: child });
    }
    // Masters are the first three addresses; redis-cli gives each one replica among the rest.
    const cliAuth = options.password === undefined ? [] : ['-a', options.password, '--no-auth-warning'];
    await run('redis-cli', [...cliAuth, '--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
    const cluster = handle(nodes, stop, options.password);
    await cluster.settled();
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

function handle(nodes: ClusterNode[], stop: () => Promise<void>, password: string | undefined): ThrowawayCluster {
  const ask = <T>(port: number, command: (redis: Redis) => Promise<T>) => askRedis(port, command, password);
  const alive = () => nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null);
  const topology = async () => {
    const text = await ask(alive()[0]!.port, (r) => r.cluster('NODES') as Promise<string>);
    return text.trim().split('\n').map((line) => {
      const [, address, flags, , , , , linkState, ...slots] = line.split(' ');
      return { port: Number(address!.split('@')[0]!.split(':')[1]), flags: flags!.split(','), linkState, servesSlots: slots.length > 0 };
    });
  };
  const masters = async () => (await topology()).filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.servesSlots).map((n) => n.port);
  return {
    nodes,
    seeds: nodes.map((n) => n.address).join(','),
    masters,
    masterOf: async (key) => {
      const slot = await ask(alive()[0]!.port, (r) => r.cluster('KEYSLOT', key) as Promise<number>);
      const slots = await ask(alive()[0]!.port, (r) => r.cluster('SLOTS'));
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (range?.[2] === undefined) throw new Error(`no node serves slot ${slot}`);
      return range[2][1];
    },
    kill: async (port) => {
      const node = nodes.find((n) => n.port === port);
      if (node === undefined) throw new Error(`no cluster node on port ${port}`);
      await terminate(node.process, 'SIGKILL');
    },
    settled: async () => {
      const deadline = Date.now() + SETTLE_TIMEOUT_MS;
      let last = '';
      while (Date.now() < deadline) {
        try {
          const states = await Promise.all(alive().map((n) => ask(n.port, (r) => r.cluster('INFO') as Promise<string>)));
          const live = await masters();
          const replicasUp = await Promise.all(alive().map((n) => ask(n.port, (r) => r.info('replication'))));
          const replicasSyncing = replicasUp.some((info) => info.includes('role:slave') && !info.includes('master_link_status:up'));
          if (states.every((s) => s.includes('cluster_state:ok')) && live.length === MASTERS && !replicasSyncing) return;
          last = `states ${states.map((s) => /cluster_state:(\w+)/.exec(s)?.[1]).join(',')}, masters ${live.join(',')}, replicas syncing: ${replicasSyncing}`;
        } catch (error) {
          last = String(error);
        }
        await sleep(200);
      }
      throw new Error(`the Redis Cluster did not settle within ${SETTLE_TIMEOUT_MS} ms (${last})`);
    },
    stop,
  };
}

/** `count` loopback ports p, each with p + 10000 free too, below 55536 so that the bus port exists. */
async function freePortPairs(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count && attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (ports.includes(port) || ports.includes(port - BUS_OFFSET) || ports.includes(port + BUS_OFFSET)) continue;
    if ((await freePort(port)) !== undefined && (await freePort(port + BUS_OFFSET)) !== undefined) ports.push(port);
  }
  if (ports.length < count) throw new Error(`found only ${ports.length} of ${count} free loopback port pairs for a Redis Cluster`);
  return ports;
}
