import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { Client } from 'pg';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { NginxProcess } from './nginx';
import { insertItem } from './polling-app';

/** What one change cost the app instances behind nginx while `followers` long-polled one cursor. */
export interface CollapseRound {
  followers: number;
  /** Requests for the followers' cursor that reached each instance. */
  appRequests: number[];
  /** Followers answered 200 with exactly the new change. */
  delivered: number;
  /** Commit → the last follower's answer. */
  lastAnswerMs: number;
  /** How nginx answered them: HIT, MISS, … */
  cacheStatuses: Record<string, number>;
}

const WAIT_S = 20;

/**
 * Two instances of the items fixture app (shared Postgres and Redis) behind the project's nginx
 * configuration, with a request counter in each app. `round()` sends N long polls of one feed at
 * one cursor through nginx, commits one change, and counts what reached the apps.
 */
export class CollapseStack {
  private constructor(
    readonly apps: ItemsApp[],
    readonly nginx: NginxProcess,
    private readonly writer: Client,
    /** Per instance: requests by URL (path and query). */
    private readonly seen: Array<Map<string, number>>,
  ) {}

  static async start(databaseUrl: string, redisUrl: string): Promise<CollapseStack> {
    const keyPrefix = `polling-collapse:${randomBytes(4).toString('hex')}:`;
    const seen: Array<Map<string, number>> = [];
    const apps: ItemsApp[] = [];
    for (let i = 0; i < 2; i++) {
      const counts = new Map<string, number>();
      seen.push(counts);
      apps.push(
        // Every poll comes from nginx's address: one client for the per-client limit.
        await startItemsApp(
          databaseUrl,
          { redis: { url: redisUrl }, keyPrefix, http: { maxHeldPerClient: 100_000 } },
          (app) =>
            app.use((req: { originalUrl: string }, _res: unknown, next: () => void) => {
              counts.set(req.originalUrl, (counts.get(req.originalUrl) ?? 0) + 1);
              next();
            }),
        ),
      );
    }
    const nginx = await NginxProcess.start(apps.map((app) => Number(new URL(app.url).port)));
    const writer = new Client({ connectionString: databaseUrl });
    await writer.connect();
    return new CollapseStack(apps, nginx, writer, seen);
  }

  /** `followers` long polls of `/<route>/1/changes` at the head, then one change. */
  async round(followers: number, route: 'public' | 'runs' = 'public'): Promise<CollapseRound> {
    // The head straight from an instance: a cached head through nginx may be older.
    const head = await fetch(`${this.apps[0].url}/${route}/1/changes`);
    const cursor = ((await head.json()) as { cursor: string }).cursor;
    const path = `/${route}/1/changes?since=${cursor}&wait=${WAIT_S}`;
    const logBefore = this.nginx.accessLog().length;
    const answers = Array.from({ length: followers }, () =>
      getJson(`${this.nginx.url}${path}`).then((answer) => ({ ...answer, at: Date.now() })),
    );
    // Let every poll reach nginx (and the first one an app) before the change.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const committed = Date.now();
    const id = await insertItem(this.writer, 1);
    const results = await Promise.all(answers);
    const cacheStatuses: Record<string, number> = {};
    for (const line of this.nginx.accessLog().slice(logBefore)) {
      if (!line.uri.startsWith(`/${route}/1/changes?since=${cursor}`)) continue;
      cacheStatuses[line.cacheStatus] = (cacheStatuses[line.cacheStatus] ?? 0) + 1;
    }
    return {
      followers,
      appRequests: this.seen.map((counts) => counts.get(path) ?? 0),
      delivered: results.filter(
        (r) => r.status === 200 && r.body?.changes?.map((c) => c.id).join() === id,
      ).length,
      lastAnswerMs: Math.max(...results.map((r) => r.at)) - committed,
      cacheStatuses,
    };
  }

  async close(): Promise<void> {
    await this.writer.end();
    await this.nginx.stop();
    for (const app of this.apps) await app.close();
  }
}

/**
 * One GET on a connection of its own (no keep-alive pool): each follower is a client of its own,
 * and no round inherits sockets nginx may be closing.
 */
function getJson(
  url: string,
): Promise<{ status: number; body: { changes?: { id: string }[] } | null }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: res.statusCode === 200 ? JSON.parse(text) : null,
        }),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
}
