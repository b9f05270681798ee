import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis, { Cluster } from 'ioredis';
import { freePort } from './redis-server';
import { requireCommand } from './system-tools';
import { waitFor } from './wait-for';

export interface ClusterNode {
  host: string;
  port: number;
}

/** How long a master may be silent before its replica takes over: short, so tests fail over fast. */
const NODE_TIMEOUT_MS = 1000;

/**
 * A throw-away Redis Cluster on loopback: `masters` redis-server processes with
 * `--cluster-enabled yes` (and one replica each when asked), joined by `redis-cli --cluster
 * create`, in a temp dir removed at stop(). Owned by one test, which may kill its nodes.
 */
export class OwnedRedisCluster {
  private readonly processes = new Map<number, ChildProcess>();

  private constructor(
    readonly nodes: ClusterNode[],
    private readonly dir: string,
  ) {}

  static async start(
    options: { masters?: number; replicas?: boolean } = {},
  ): Promise<OwnedRedisCluster> {
    requireCommand('redis-server');
    requireCommand('redis-cli');
    const count = (options.masters ?? 3) * (options.replicas ? 2 : 1);
    const ports: number[] = [];
    while (ports.length < count) {
      const port = await freePort();
      // The cluster bus listens on port + 10000: both must be free.
      if (port < 55535 && !ports.includes(port)) ports.push(port);
    }
    const dir = mkdtempSync(join(tmpdir(), 'polling-redis-cluster-'));
    const cluster = new OwnedRedisCluster(
      ports.map((port) => ({ host: '127.0.0.1', port })),
      dir,
    );
    try {
      for (const port of ports) await cluster.startNode(port);
      const create = spawnSync(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...ports.map((port) => `127.0.0.1:${port}`),
          '--cluster-replicas',
          options.replicas ? '1' : '0',
          '--cluster-yes',
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      if (create.status !== 0) {
        throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
      }
      await cluster.waitUntilOk();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** A cluster client for the test's own use (reading keys, finding masters). */
  client(): Cluster {
    return new Cluster(this.nodes, { redisOptions: { maxRetriesPerRequest: 2 } });
  }

  /** The port of the master that serves `key`'s slot now. */
  async masterOf(key: string): Promise<number> {
    const probe = new Redis(this.liveNode().port, '127.0.0.1');
    try {
      const slot = (await probe.cluster('KEYSLOT', key)) as number;
      const ranges = (await probe.cluster('SLOTS')) as unknown as Array<
        [number, number, [string, number]]
      >;
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no master serves slot ${slot}`);
      return range[2][1];
    } finally {
      probe.disconnect();
    }
  }

  /**
   * A manual failover (`CLUSTER FAILOVER` on a replica of `masterPort`): the replica takes over in
   * step with its master, which becomes its replica and stays up. Resolves with the new master.
   */
  async failover(masterPort: number): Promise<number> {
    const master = new Redis(masterPort, '127.0.0.1');
    let replicaPort: number;
    try {
      const id = String(await master.cluster('MYID'));
      const replicas = (await master.cluster('REPLICAS', id)) as unknown as string[];
      const match = /127\.0\.0\.1:(\d+)@/.exec(replicas[0] ?? '');
      if (!match) throw new Error(`master ${masterPort} has no replica`);
      replicaPort = Number(match[1]);
    } finally {
      master.disconnect();
    }
    const replica = new Redis(replicaPort, '127.0.0.1');
    try {
      await replica.cluster('FAILOVER');
    } finally {
      replica.disconnect();
    }
    await waitFor(
      async () => {
        const probe = new Redis(replicaPort, '127.0.0.1');
        try {
          return /role:master/.test(String(await probe.info('replication')));
        } finally {
          probe.disconnect();
        }
      },
      { timeoutMs: 15_000, intervalMs: 100, message: `replica ${replicaPort} did not take over` },
    );
    await this.waitUntilOk();
    return replicaPort;
  }

  /** SIGKILL one node (a crashed master: its replica is promoted after the node timeout). */
  async kill(port: number): Promise<void> {
    const child = this.processes.get(port);
    this.processes.delete(port);
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** Every live node reports `cluster_state:ok` and agrees on the slot map. */
  async waitUntilOk(timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        for (const port of this.processes.keys()) {
          const probe = new Redis(port, '127.0.0.1', { lazyConnect: true });
          probe.on('error', () => undefined);
          try {
            const info = String(await probe.cluster('INFO'));
            if (!info.includes('cluster_state:ok')) return false;
          } catch {
            return false;
          } finally {
            probe.disconnect();
          }
        }
        return true;
      },
      { timeoutMs, intervalMs: 100, message: 'the Redis Cluster did not reach cluster_state:ok' },
    );
  }

  async stop(): Promise<void> {
    for (const port of [...this.processes.keys()]) await this.kill(port);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private liveNode(): ClusterNode {
    const port = [...this.processes.keys()][0];
    if (port === undefined) throw new Error('no live cluster node');
    return { host: '127.0.0.1', port };
  }

  private async startNode(port: number): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(this.dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        String(NODE_TIMEOUT_MS),
        // A replica takes over however long ago it last heard from its master (default: not
        // when its data is older than 10 node timeouts).
        '--cluster-replica-validity-factor',
        '0',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    );
    this.processes.set(port, child);
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => 50 });
    probe.on('error', () => undefined);
    try {
      await waitFor(async () => (await probe.ping().catch(() => null)) === 'PONG', {
        timeoutMs: 5000,
        message: `redis-server (cluster node) did not start on port ${port}`,
      });
    } finally {
      probe.disconnect();
    }
  }
}
