import { Client } from 'pg';
import { CollapseStack, type CollapseRound } from '../../test/support/cache-collapse';
import { createBenchDatabase } from '../lib/bench-database';
import { type BenchResult, type Scenario, figureOf } from '../lib/report';

export interface CacheCollapseOptions {
  serverUrl: string;
  redisUrl: string;
  runs: number;
  /** Followers of the one feed (default 2,000). */
  followers?: number;
  log?: (line: string) => void;
}

/**
 * App requests per change with N followers of one public feed behind nginx's proxy_cache and
 * proxy_cache_lock (the project's docker/nginx.conf, two app instances): the followers long-poll
 * one cursor through nginx, one change is committed, the apps count the requests they got for
 * that cursor. Baseline, same run: the same followers on a private route (never cached).
 */
export async function cacheCollapse(opts: CacheCollapseOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const followers = opts.followers ?? 2000;
  const db = await createBenchDatabase(opts.serverUrl);
  const setup = new Client({ connectionString: db.url });
  await setup.connect();
  await setup.query(
    'CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)',
  );
  await setup.end();
  const stack = await CollapseStack.start(db.url, opts.redisUrl);
  const cached: CollapseRound[] = [];
  const uncached: CollapseRound[] = [];
  try {
    for (let run = 1; run <= opts.runs; run++) {
      cached.push(await stack.round(followers, 'public'));
      uncached.push(await stack.round(followers, 'runs'));
      const [c, u] = [cached[run - 1], uncached[run - 1]];
      log(
        `cache-collapse run ${run}: public ${c.appRequests.join('+')} app requests ` +
          `(${c.delivered}/${followers} delivered, last after ${c.lastAnswerMs} ms), private ` +
          `${u.appRequests.join('+')} (last after ${u.lastAnswerMs} ms)`,
      );
    }
  } finally {
    await stack.close();
    await db.drop();
  }
  const total = (r: CollapseRound) => r.appRequests.reduce((a, b) => a + b, 0);
  const perInstance = (r: CollapseRound) => Math.max(...r.appRequests);
  const figure = figureOf(cached.map(total));
  const baseline = figureOf(uncached.map(total));
  const worst = Math.max(...cached.map(perInstance));
  const allDelivered = cached.every((r) => r.delivered === followers);
  return {
    rows: [
      {
        bench: 'cache-collapse',
        row: `app requests per change, ${followers} long-poll followers of one public feed behind nginx proxy_cache + lock, 2 instances`,
        unit: 'req',
        figure,
        baseline: { label: 'private route, same nginx', ...baseline },
        ratio: figure.median / baseline.median,
        goal: '≤ 2 per instance',
        met: worst <= 2 && allDelivered,
        details: { cached, uncached },
      },
      {
        bench: 'cache-collapse',
        row: `commit → last of ${followers} answers through the caching proxy`,
        unit: 'ms',
        figure: figureOf(cached.map((r) => r.lastAnswerMs)),
        baseline: {
          label: 'private route, same nginx',
          ...figureOf(uncached.map((r) => r.lastAnswerMs)),
        },
        ratio:
          figureOf(cached.map((r) => r.lastAnswerMs)).median /
          figureOf(uncached.map((r) => r.lastAnswerMs)).median,
      },
    ],
    notes: [
      `cache-collapse: most app requests on one instance ${worst} (goal ≤ 2); every follower got the change: ${allDelivered}`,
    ],
  };
}

export const scenario: Scenario = { name: 'cache-collapse', run: cacheCollapse };
