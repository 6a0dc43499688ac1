// A throwaway Redis Sentinel setup on free loopback ports: a master, its replica and one sentinel (quorum 1) that
// promotes the replica a second or two after the master dies. Nothing is persisted; `stop()` removes it all.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import type { Redis } from 'ioredis';
import { askRedis, freePort, launch, terminate } from './redis.js';

export const SENTINEL_MASTER_NAME = 'recall-test';
const PROMOTION_TIMEOUT_MS = 60_000;

export interface ThrowawaySentinel {
  /** `127.0.0.1:PORT` of the sentinel, what RECALL_REDIS_SENTINELS takes. */
  readonly sentinels: string;
  readonly masterPort: number;
  readonly replicaPort: number;
  /** Resolves once every write so far has reached the replica. */
  replicated(): Promise<void>;
  /** SIGKILLs the master and resolves once the sentinel names the replica as the master. */
  failover(): Promise<void>;
  stop(): Promise<void>;
}

/** `password`: the master and the replica require it (and the replica and the sentinel use it); the sentinel needs none. */
export async function startThrowawaySentinel(options: { password?: string } = {}): Promise<ThrowawaySentinel> {
  const { password } = options;
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
  const ask = <T>(port: number, command: (redis: Redis) => Promise<T>, withPassword = true) => askRedis(port, command, withPassword ? password : undefined);
  const dir = await mkdtemp(join(tmpdir(), 'recall-sentinel-'));
  const children: ChildProcess[] = [];
  const killAll = () => { for (const child of children) child.kill('SIGKILL'); };
  process.once('exit', killAll);
  const stop = async () => {
    process.off('exit', killAll);
    await Promise.all(children.map((child) => terminate(child, 'SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const [masterPort, replicaPort, sentinelPort] = [(await freePort())!, (await freePort())!, (await freePort())!];
    children.push(await launch(masterPort, auth));
    children.push(await launch(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort), ...auth]));
    // Sentinel rewrites its config file as it learns the setup: it needs a writable one of its own.
    const config = join(dir, 'sentinel.conf');
    await writeFile(config, '');
    children.push(await launch(sentinelPort, [
      '--dir', dir, '--sentinel',
      '--sentinel', 'monitor', SENTINEL_MASTER_NAME, '127.0.0.1', String(masterPort), '1',
      '--sentinel', 'down-after-milliseconds', SENTINEL_MASTER_NAME, '1000',
      '--sentinel', 'failover-timeout', SENTINEL_MASTER_NAME, '5000',
      ...(password === undefined ? [] : ['--sentinel', 'auth-pass', SENTINEL_MASTER_NAME, password]),
    ], config));
    const masterNamed = async () => Number((await ask(sentinelPort, (r) => r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME) as Promise<string[]>, false))[1]);
    const until = async (probe: () => Promise<boolean>, what: string) => {
      const deadline = Date.now() + PROMOTION_TIMEOUT_MS;
      while (Date.now() < deadline) {
        if (await probe().catch(() => false)) return;
        await sleep(100);
      }
      throw new Error(`timed out waiting until ${what}`);
    };
    await until(async () => (await ask(replicaPort, (r) => r.info('replication'))).includes('master_link_status:up'), 'the replica is in sync');
    // The sentinel must know the replica before the master dies, or it has nobody to promote.
    await until(async () => ((await ask(sentinelPort, (r) => r.call('SENTINEL', 'REPLICAS', SENTINEL_MASTER_NAME), false)) as unknown[]).length > 0, 'the sentinel found the replica');
    return {
      sentinels: `127.0.0.1:${sentinelPort}`,
      masterPort,
      replicaPort,
      replicated: async () => {
        const acknowledged = await ask(masterPort, (r) => r.call('WAIT', '1', '1500'));
        if (acknowledged !== 1) throw new Error('the replica did not acknowledge the writes');
      },
      failover: async () => {
        await terminate(children[0]!, 'SIGKILL');
        await until(async () => (await masterNamed()) === replicaPort, 'the sentinel promoted the replica');
        await until(async () => (await ask(replicaPort, (r) => r.info('replication'))).includes('role:master'), 'the replica acts as master');
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
