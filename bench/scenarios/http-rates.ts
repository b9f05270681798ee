import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { createBenchDatabase } from '../lib/bench-database';
import { Child } from '../lib/child';
import type { AutocannonSummary } from '../lib/autocannon-runner';
import { type BenchResult, type Scenario, type BenchRow, figureOf, median } from '../lib/report';

export interface HttpRatesOptions {
  /** Server to bench on; a fresh database is created there and dropped afterwards. */
  serverUrl: string;
  /** Seconds of autocannon load per measured run (304 path and hello route alike). */
  seconds: number;
  runs: number;
  /** Redis for the optional 304 row with the Redis index; null skips it. */
  redisUrl?: string | null;
  /** Seconds per run of the Redis 304 row (shown, no goal). Default 3. */
  redisSeconds?: number;
  /** autocannon connections. Default 32. */
  connections?: number;
  /** Identical long pollers woken by one change in the aggregator row. Default 1,000. */
  pollers?: number;
  /** Length of each short-vs-long run, seconds. Default 10. */
  followSeconds?: number;
  log?: (line: string) => void;
}

const APP = join(__dirname, '..', 'lib', 'rates-app.ts');
const AUTOCANNON = join(__dirname, '..', 'lib', 'autocannon-runner.ts');
const CLIENTS = join(__dirname, '..', 'lib', 'poll-clients.ts');
const WARMUP_S = 1;
const BENCH = 'http-rates';

interface Counts {
  dataSourceQueries: number;
  pgStatements: number;
  handlerRuns: number;
  held: number;
  aggregatorRuns: number;
  aggregatorJoined: number;
  cpuUs: { user: number; system: number };
}

interface App {
  name: string;
  url: string;
  child: Child;
  counts(): Promise<Counts>;
}

async function startApp(
  name: string,
  env: Record<string, string>,
  children: Child[],
): Promise<App> {
  const nodeArgs = process.env.BENCH_APP_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = await Child.start<{ port: number }>(name, APP, {
    loader: 'ts-node',
    env,
    nodeArgs,
    readyTimeoutMs: 90_000,
  });
  children.push(child);
  const url = `http://127.0.0.1:${child.info.port}`;
  return {
    name,
    url,
    child,
    counts: async () => (await (await fetch(`${url}/_bench/counts`)).json()) as Counts,
  };
}

/** The feed's head cursor: a poll without `since` (answers at once, no row query). */
async function headOf(app: App, run: number): Promise<string> {
  const res = await fetch(`${app.url}/runs/${run}/changes`);
  const cursor = res.headers.get('poll-cursor');
  if (res.status !== 200 || !cursor) throw new Error(`${BENCH}: head of run ${run}: ${res.status}`);
  return cursor;
}

/** The autocannon process: runs one load at a time, on command. */
type Loader = (
  url: string,
  seconds: number,
  connections: number,
  headers?: Record<string, string>,
) => Promise<AutocannonSummary>;

async function startLoader(children: Child[]): Promise<Loader> {
  const child = await Child.start('autocannon', AUTOCANNON, { loader: 'ts-node' });
  children.push(child);
  return (url, seconds, connections, headers = {}) =>
    child.request<AutocannonSummary>(
      'run',
      { url, connections, duration: seconds, headers },
      (seconds + 30) * 1000,
    );
}

const percentile = (values: number[], p: number) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

// ---------------------------------------------------------------------------------------------
// Row 1: the 304 path against a hello route in the same app.

interface RateSample {
  rps: number;
  statusCodes: Record<string, number>;
  errors: number;
  dataSourceQueries: number;
  /** Statements of the polling module's own pg connections (all pg statements − the DataSource's). */
  moduleStatements: number;
  seconds: number;
  latencyP99Ms: number;
  /** CPU time of the app process per answered request (less sensitive to other load than req/s). */
  appCpuUsPerRequest: number;
}

async function measureRate(
  app: App,
  load: Loader,
  target: Target,
  opts: { seconds: number; connections: number },
): Promise<RateSample> {
  const before = await app.counts();
  const started = Date.now();
  const r = await load(target.url, opts.seconds, opts.connections, target.headers);
  const seconds = (Date.now() - started) / 1000;
  const after = await app.counts();
  const ds = after.dataSourceQueries - before.dataSourceQueries;
  return {
    rps: r.rps,
    statusCodes: r.statusCodes,
    errors: r.errors + r.timeouts,
    dataSourceQueries: ds,
    moduleStatements: after.pgStatements - before.pgStatements - ds,
    seconds,
    latencyP99Ms: r.latencyP99Ms,
    appCpuUsPerRequest:
      (after.cpuUs.user + after.cpuUs.system - before.cpuUs.user - before.cpuUs.system) /
      Math.max(1, r.requests),
  };
}

/** One route under load: what to request and which status every answer must have. */
interface Target {
  key: 'hello' | 'bare304' | 'poll';
  label: string;
  url: string;
  headers: Record<string, string>;
  status: string;
}

async function notModifiedRow(
  app: App,
  load: Loader,
  index: string,
  opts: { connections: number; runs: number; seconds: number; reference: boolean },
  log: (line: string) => void,
): Promise<BenchRow> {
  const run = 1;
  const cursor = await headOf(app, run);
  const poll: Target = {
    key: 'poll',
    label: '304 poll',
    url: `${app.url}/runs/${run}/changes?since=${cursor}&wait=0`,
    headers: { 'if-none-match': `"${cursor}"` },
    status: '304',
  };
  const check = await fetch(poll.url, { headers: poll.headers });
  if (check.status !== 304) throw new Error(`${BENCH}: expected 304, got ${check.status}`);
  const targets: Target[] = [
    { key: 'hello', label: 'GET /hello', url: `${app.url}/hello`, headers: {}, status: '200' },
    poll,
  ];
  if (opts.reference) {
    targets.push({
      key: 'bare304',
      label: 'GET /bare-304',
      url: `${app.url}/bare-304`,
      headers: {},
      status: '304',
    });
  }

  // Warm every route up (JIT, sockets) before anything is measured.
  for (const t of targets) await load(t.url, WARMUP_S, opts.connections, t.headers);

  const samples = new Map<Target['key'], RateSample[]>(targets.map((t) => [t.key, []]));
  for (let i = 0; i < opts.runs; i++) {
    // Rotate the order, so drift on the machine hits every route alike.
    const order = targets.map((_, k) => targets[(k + i) % targets.length]);
    for (const t of order) {
      const sample = await measureRate(app, load, t, opts);
      samples.get(t.key)!.push(sample);
      log(
        `${BENCH}: ${index} index, run ${i + 1}, ${t.label}: ${sample.rps.toFixed(0)} req/s, ` +
          `statuses ${JSON.stringify(sample.statusCodes)}, ${sample.dataSourceQueries} DataSource ` +
          `queries, ${sample.moduleStatements} module statements in ${sample.seconds.toFixed(1)} s, ` +
          `app CPU ${sample.appCpuUsPerRequest.toFixed(0)} µs/request`,
      );
    }
  }
  const allExpected = targets.every((t) =>
    samples
      .get(t.key)!
      .every((s) => s.errors === 0 && Object.keys(s.statusCodes).every((c) => c === t.status)),
  );
  const polls = samples.get('poll')!;
  const hellos = samples.get('hello')!;
  const queries = polls.reduce((n, s) => n + s.dataSourceQueries, 0);
  const figure = figureOf(polls.map((s) => s.rps));
  const baseline = figureOf(hellos.map((s) => s.rps));
  const ratio = figure.median / baseline.median;
  const perSecond = (list: RateSample[]) =>
    list.reduce((n, s) => n + s.moduleStatements, 0) / list.reduce((n, s) => n + s.seconds, 0);
  const bare = samples.get('bare304');
  const statementRates = { during304: perSecond(polls), duringHello: perSecond(hellos) };
  // The module's own statements are time-driven (the idle reader's backstop), not per request.
  const backstopOnly = statementRates.during304 <= statementRates.duringHello + 1;
  return {
    bench: BENCH,
    row: `304 path (@LongPoll, wait=0 + If-None-Match, nothing changed), ${index} index`,
    unit: 'req/s',
    figure,
    baseline: { label: 'GET /hello', ...baseline },
    ratio,
    goal: '≥ 0.80×, 0 queries',
    met: ratio >= 0.8 && queries === 0 && backstopOnly && allExpected,
    details: {
      index,
      connections: opts.connections,
      secondsPerRun: opts.seconds,
      dataSourceQueriesDuring304Runs: queries,
      moduleStatementsPerSecond: statementRates,
      moduleStatementsBackstopOnly: backstopOnly,
      allAnswersAsExpected: allExpected,
      ...(bare
        ? {
            bare304Reference: {
              ...figureOf(bare.map((s) => s.rps)),
              ratioToHello: median(bare.map((s) => s.rps)) / baseline.median,
            },
          }
        : {}),
      appCpuUsPerRequest: Object.fromEntries(
        [...samples].map(([key, list]) => [key, median(list.map((x) => x.appCpuUsPerRequest))]),
      ),
      samples: Object.fromEntries(samples),
    },
  };
}

/**
 * The 304 path of the same app on Fastify against Express (issue 19): both under the same load,
 * in alternating order, each run measuring both.
 */
async function platformRow(
  express: App,
  fastify: App,
  load: Loader,
  opts: { connections: number; runs: number; seconds: number },
  log: (line: string) => void,
): Promise<BenchRow> {
  const targets = await Promise.all(
    [express, fastify].map(async (app) => {
      const cursor = await headOf(app, 1);
      const target: Target = {
        key: 'poll',
        label: `304 poll on ${app.name}`,
        url: `${app.url}/runs/1/changes?since=${cursor}&wait=0`,
        headers: { 'if-none-match': `"${cursor}"` },
        status: '304',
      };
      const check = await fetch(target.url, { headers: target.headers });
      if (check.status !== 304) throw new Error(`${BENCH}: ${app.name}: got ${check.status}`);
      await load(target.url, WARMUP_S, opts.connections, target.headers);
      return { app, target, samples: [] as RateSample[] };
    }),
  );
  for (let i = 0; i < opts.runs; i++) {
    for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
      const sample = await measureRate(t.app, load, t.target, opts);
      t.samples.push(sample);
      log(
        `${BENCH}: run ${i + 1}, ${t.target.label}: ${sample.rps.toFixed(0)} req/s, statuses ` +
          `${JSON.stringify(sample.statusCodes)}, app CPU ${sample.appCpuUsPerRequest.toFixed(0)} µs/request`,
      );
    }
  }
  const [onExpress, onFastify] = targets.map((t) => t.samples);
  const figure = figureOf(onFastify.map((s) => s.rps));
  const baseline = figureOf(onExpress.map((s) => s.rps));
  const allExpected = targets.every((t) =>
    t.samples.every((s) => s.errors === 0 && Object.keys(s.statusCodes).every((c) => c === '304')),
  );
  return {
    bench: BENCH,
    row: 'Fastify: 304 path (@LongPoll, wait=0 + If-None-Match), in-memory index',
    unit: 'req/s',
    figure,
    baseline: { label: 'the same app on Express', ...baseline },
    ratio: figure.median / baseline.median,
    details: {
      connections: opts.connections,
      secondsPerRun: opts.seconds,
      allAnswersAsExpected: allExpected,
      appCpuUsPerRequest: {
        express: median(onExpress.map((s) => s.appCpuUsPerRequest)),
        fastify: median(onFastify.map((s) => s.appCpuUsPerRequest)),
      },
      samples: { express: onExpress, fastify: onFastify },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Row 2: aggregator on vs off, identical long pollers woken by one change.

interface WakeSample {
  queries: number;
  handlerRuns: number;
  statuses: Record<string, number>;
  distinctBodies: number;
  wakeMs: number;
}

async function wakeUp(
  app: App,
  clients: Child,
  writer: Client,
  run: number,
  pollers: number,
  id: string,
): Promise<WakeSample> {
  const since = await headOf(app, run);
  const base = await app.counts();
  await clients.request(
    'hold',
    {
      id,
      url: `${app.url}/runs/${run}/changes?since=${since}&wait=60`,
      count: pollers,
      // Same cursor, same auth scope: requests the aggregator may answer with one handler run.
      headers: { authorization: 'Bearer same-user' },
    },
    30_000,
  );
  const deadline = Date.now() + 30_000;
  let before = await app.counts();
  while (before.held < base.held + pollers) {
    if (Date.now() > deadline) throw new Error(`${BENCH}: only ${before.held} polls held`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    before = await app.counts();
  }
  const started = performance.now();
  await writer.query('INSERT INTO items (run, body) VALUES ($1, $2)', [run, 'wake them all']);
  const done = await clients.request<{ statuses: Record<string, number>; distinctBodies: number }>(
    'held',
    { id },
    60_000,
  );
  const wakeMs = performance.now() - started;
  const after = await app.counts();
  return {
    queries: after.dataSourceQueries - before.dataSourceQueries,
    handlerRuns: after.handlerRuns - before.handlerRuns,
    statuses: done.statuses,
    distinctBodies: done.distinctBodies,
    wakeMs,
  };
}

async function aggregatorRow(
  on: App,
  off: App,
  clients: Child,
  writer: Client,
  opts: { runs: number; pollers: number },
  log: (line: string) => void,
): Promise<BenchRow> {
  const samples = { on: [] as WakeSample[], off: [] as WakeSample[] };
  for (let i = 0; i < opts.runs; i++) {
    for (const [key, app, run] of [
      ['on', on, 2],
      ['off', off, 3],
    ] as const) {
      const s = await wakeUp(app, clients, writer, run, opts.pollers, `wake-${key}-${i}`);
      samples[key].push(s);
      log(
        `${BENCH}: aggregator ${key}, wake-up ${i + 1}: ${s.queries} row queries, ` +
          `${s.handlerRuns} handler runs, statuses ${JSON.stringify(s.statuses)}, ` +
          `${s.distinctBodies} distinct bodies, all answered in ${s.wakeMs.toFixed(0)} ms`,
      );
    }
  }
  const ok = (s: WakeSample) =>
    s.statuses['200'] === opts.pollers &&
    Object.keys(s.statuses).length === 1 &&
    s.distinctBodies === 1;
  const figure = figureOf(samples.on.map((s) => s.queries));
  const baseline = figureOf(samples.off.map((s) => s.queries));
  const allOk = [...samples.on, ...samples.off].every(ok);
  return {
    bench: BENCH,
    row: `aggregator: row queries per change, ${opts.pollers.toLocaleString('en')} identical long pollers woken by one change (on vs off)`,
    unit: 'queries',
    figure,
    baseline: { label: 'aggregator off', ...baseline },
    ratio: figure.median / baseline.median,
    goal: `≤ 2 vs ≈${opts.pollers.toLocaleString('en')}`,
    met: figure.max <= 2 && baseline.median >= 0.9 * opts.pollers && allOk,
    details: {
      pollers: opts.pollers,
      allAnswered200WithTheChange: allOk,
      handlerRuns: {
        on: samples.on.map((s) => s.handlerRuns),
        off: samples.off.map((s) => s.handlerRuns),
      },
      wakeMs: { on: samples.on.map((s) => s.wakeMs), off: samples.off.map((s) => s.wakeMs) },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Row 3: short vs long polling for the same update rate.

interface ClientStats {
  requests: number;
  statuses: Record<string, number>;
  bytesRead: number;
  bytesWritten: number;
  delivered: number;
  latenciesMs: number[];
}

interface FollowedGroup {
  name: string;
  path: string;
  mode: 'short' | 'long';
  clients: ClientStats[];
}

interface GroupSample {
  requestsPerChange: number;
  bytesPerChange: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  delivered: number;
  expected: number;
  statuses: Record<string, number>;
}

interface Feed {
  run: number;
  perSecond: number;
}

const FOLLOW_CLIENTS = 10;
const SHORT_INTERVAL_MS = 1000;

async function followRun(
  app: App,
  clients: Child,
  writer: Client,
  feeds: Feed[],
  seconds: number,
  id: string,
): Promise<Map<string, GroupSample>> {
  const groups = [];
  for (const feed of feeds) {
    const since = await headOf(app, feed.run);
    const path = `/runs/${feed.run}/changes`;
    for (const mode of ['short', 'long'] as const) {
      groups.push({
        name: `${mode}-${feed.run}`,
        path,
        mode,
        clients: FOLLOW_CLIENTS,
        since,
        intervalMs: SHORT_INTERVAL_MS,
        waitS: 30,
      });
    }
  }
  await clients.request('follow', { id, base: app.url, groups });
  // Let every long poller be held before the first change.
  await new Promise((resolve) => setTimeout(resolve, 300));

  // One writer per feed, committing at a steady rate; each row carries its send time.
  const lastIds: Record<string, string> = {};
  const counts = new Map<number, number>();
  await Promise.all(
    feeds.map(async (feed) => {
      const start = performance.now();
      const total = Math.max(1, Math.round(seconds * feed.perSecond));
      for (let k = 0; k < total; k++) {
        const due = start + (k * 1000) / feed.perSecond;
        const delay = due - performance.now();
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        const sentAt = String(performance.timeOrigin + performance.now());
        const { rows } = await writer.query(
          'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
          [feed.run, sentAt],
        );
        lastIds[`/runs/${feed.run}/changes`] = String(rows[0].id);
        counts.set(feed.run, k + 1);
      }
      // Keep the run length the same for every feed: wait out the last interval too.
      const end = start + seconds * 1000;
      if (end > performance.now()) {
        await new Promise((resolve) => setTimeout(resolve, end - performance.now()));
      }
    }),
  );
  const followed = await clients.request<{ groups: FollowedGroup[] }>(
    'finish',
    { id, lastIds },
    30_000,
  );

  const result = new Map<string, GroupSample>();
  for (const g of followed.groups) {
    const feed = feeds.find((f) => `/runs/${f.run}/changes` === g.path)!;
    const sum = (f: (c: ClientStats) => number) => g.clients.reduce((n, c) => n + f(c), 0);
    const delivered = sum((c) => c.delivered);
    const statuses: Record<string, number> = {};
    for (const c of g.clients) {
      for (const [code, n] of Object.entries(c.statuses))
        statuses[code] = (statuses[code] ?? 0) + n;
    }
    const latencies = g.clients.flatMap((c) => c.latenciesMs);
    result.set(`${g.mode}@${feed.perSecond}`, {
      requestsPerChange: sum((c) => c.requests) / delivered,
      bytesPerChange: sum((c) => c.bytesRead) / delivered,
      latencyP50Ms: percentile(latencies, 50),
      latencyP95Ms: percentile(latencies, 95),
      delivered,
      expected: (counts.get(feed.run) ?? 0) * g.clients.length,
      statuses,
    });
  }
  return result;
}

async function shortVsLongRows(
  app: App,
  clients: Child,
  writer: Client,
  opts: { runs: number; seconds: number; feeds: Feed[] },
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const samples = new Map<string, GroupSample[]>();
  for (let i = 0; i < opts.runs; i++) {
    // Fresh feeds every run, so a run never sees another run's changes.
    const feeds = opts.feeds.map((f, n) => ({ ...f, run: 100 + 10 * i + n }));
    const result = await followRun(app, clients, writer, feeds, opts.seconds, `follow-${i}`);
    for (const [key, s] of result) {
      samples.set(key, [...(samples.get(key) ?? []), s]);
      log(
        `${BENCH}: follow run ${i + 1}, ${key}/s: ${s.delivered}/${s.expected} delivered, ` +
          `${s.requestsPerChange.toFixed(2)} requests and ${s.bytesPerChange.toFixed(0)} response ` +
          `bytes per delivered change, latency p50 ${s.latencyP50Ms.toFixed(1)} ms, ` +
          `p95 ${s.latencyP95Ms.toFixed(1)} ms, statuses ${JSON.stringify(s.statuses)}`,
      );
    }
  }
  const rows: BenchRow[] = [];
  for (const feed of opts.feeds) {
    const long = samples.get(`long@${feed.perSecond}`)!;
    const short = samples.get(`short@${feed.perSecond}`)!;
    const what = `${FOLLOW_CLIENTS} clients, ${feed.perSecond} changes/s, long poll vs short poll every ${SHORT_INTERVAL_MS / 1000} s`;
    const complete = [...long, ...short].every((s) => s.delivered === s.expected);
    const metric = (
      name: string,
      unit: string,
      pick: (s: GroupSample) => number,
      extra: Record<string, unknown> = {},
    ): BenchRow => {
      const figure = figureOf(long.map(pick));
      const baseline = figureOf(short.map(pick));
      return {
        bench: BENCH,
        row: `${what}: ${name}`,
        unit,
        figure,
        baseline: { label: 'short poll', ...baseline },
        ratio: figure.median / baseline.median,
        details: {
          clients: FOLLOW_CLIENTS,
          changesPerSecond: feed.perSecond,
          shortIntervalMs: SHORT_INTERVAL_MS,
          secondsPerRun: opts.seconds,
          everyClientGotEveryChange: complete,
          long,
          short,
          ...extra,
        },
      };
    };
    rows.push(
      metric('requests per delivered change', 'req', (s) => s.requestsPerChange),
      metric('response bytes per delivered change (headers incl.)', 'B', (s) => s.bytesPerChange),
      metric('commit-to-client latency p50', 'ms', (s) => s.latencyP50Ms),
    );
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------

async function redisReachable(url: string): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

async function dropRedisKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/**
 * HTTP request rates of the polling surface, from load generators in processes of their own: the
 * 304 path against a hello route in the same app, the aggregator with a thousand identical
 * pollers, and short vs long polling for one update rate.
 */
export async function httpRates(opts: HttpRatesOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const connections = opts.connections ?? 32;
  const pollers = opts.pollers ?? 1000;
  const followSeconds = opts.followSeconds ?? 10;
  const redisSeconds = opts.redisSeconds ?? 3;
  const rate = { connections, runs: opts.runs, seconds: opts.seconds };
  const began = Date.now();
  const db = await createBenchDatabase(opts.serverUrl);
  const writer = new Client({ connectionString: db.url });
  const children: Child[] = [];
  const redisPrefix = `polling-bench-${process.pid}-${randomBytes(3).toString('hex')}:`;
  const redisUrl = opts.redisUrl && (await redisReachable(opts.redisUrl)) ? opts.redisUrl : null;
  const rows: BenchRow[] = [];
  try {
    await writer.connect();
    await writer.query(
      'CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)',
    );
    const version = (await writer.query('SHOW server_version')).rows[0].server_version;
    const env = { DATABASE_URL: db.url };

    // Every process at once (their start is mostly ts-node): the app, the same without the
    // aggregator, the app on the Redis index, autocannon and the poll clients. The apps not under
    // load meanwhile only idle (their readers' backstop reads).
    const [memory, noAggregator, redisApp, load, clients, onFastify] = await Promise.all([
      startApp('app', env, children),
      startApp('app-no-aggregator', { ...env, AGGREGATOR: '0' }, children),
      redisUrl
        ? startApp('app-redis', { ...env, REDIS_URL: redisUrl, KEY_PREFIX: redisPrefix }, children)
        : null,
      startLoader(children),
      Child.start('poll-clients', CLIENTS, { loader: 'ts-node' }).then((child) => {
        children.push(child);
        return child;
      }),
      startApp('fastify', { ...env, HTTP_PLATFORM: 'fastify' }, children),
    ]);

    // Row 1, in-memory index, with the no-op interceptor reference.
    rows.push(await notModifiedRow(memory, load, 'in-memory', { ...rate, reference: true }, log));

    // Row 1 with the Redis index (every 304 asks Redis for the feed head), in shorter runs.
    if (redisApp) {
      const row = await notModifiedRow(
        redisApp,
        load,
        'Redis',
        { ...rate, seconds: redisSeconds, reference: false },
        log,
      );
      rows.push(row);
      await redisApp.child.stop();
    }

    // The 304 path on Fastify vs Express, then the Fastify app stops.
    rows.push(await platformRow(memory, onFastify, load, rate, log));
    await onFastify.child.stop();

    // Row 2.
    rows.push(
      await aggregatorRow(memory, noAggregator, clients, writer, { runs: opts.runs, pollers }, log),
    );
    await noAggregator.child.stop();

    // Row 3.
    rows.push(
      ...(await shortVsLongRows(
        memory,
        clients,
        writer,
        {
          runs: opts.runs,
          seconds: followSeconds,
          feeds: [
            { run: 0, perSecond: 5 },
            { run: 0, perSecond: 0.5 },
          ],
        },
        log,
      )),
    );
    log(`${BENCH}: done in ${((Date.now() - began) / 1000).toFixed(0)} s`);
    return {
      rows,
      notes: notes(
        rows,
        { ...opts, connections, pollers, followSeconds, redisSeconds },
        version,
        redisUrl,
      ),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await writer.end().catch(() => undefined);
    await db.drop();
    if (redisUrl) await dropRedisKeys(redisUrl, redisPrefix).catch(() => undefined);
  }
}

function notes(
  rows: BenchRow[],
  opts: HttpRatesOptions & {
    connections: number;
    pollers: number;
    followSeconds: number;
    redisSeconds: number;
  },
  version: string,
  redisUrl: string | null,
): string[] {
  const out: string[] = [];
  const fixed = (n: number, d = 0) => n.toFixed(d);
  for (const row of rows.filter((r) => r.row.startsWith('304 path'))) {
    const d = row.details as {
      index: string;
      secondsPerRun: number;
      dataSourceQueriesDuring304Runs: number;
      moduleStatementsPerSecond: { during304: number; duringHello: number };
      allAnswersAsExpected: boolean;
      bare304Reference?: { median: number; ratioToHello: number };
      appCpuUsPerRequest: Record<string, number>;
    };
    const cpu = d.appCpuUsPerRequest;
    const ref = d.bare304Reference;
    out.push(
      `304 path, ${d.index} index: ${d.dataSourceQueriesDuring304Runs} DataSource queries during ` +
        `the 304 runs; module statements ${fixed(d.moduleStatementsPerSecond.during304, 1)}/s ` +
        `(304 runs) vs ${fixed(d.moduleStatementsPerSecond.duringHello, 1)}/s (hello runs); ` +
        (ref
          ? `bare 304 ${fixed(ref.median)} req/s (${fixed(ref.ratioToHello, 2)}× hello); `
          : '') +
        `app CPU per request hello ${fixed(cpu.hello)} µs, 304 path ${fixed(cpu.poll)} µs` +
        (cpu.bare304 === undefined ? '' : `, bare 304 ${fixed(cpu.bare304)} µs`) +
        `; every answer as expected: ${d.allAnswersAsExpected ? 'yes' : 'NO (see the JSON)'}.`,
    );
  }
  if (!redisUrl && opts.redisUrl)
    out.push(`Redis at ${opts.redisUrl} not reachable: no Redis row.`);
  const agg = rows.find((r) => r.row.startsWith('aggregator'));
  if (agg) {
    const d = agg.details as {
      handlerRuns: { on: number[]; off: number[] };
      wakeMs: { on: number[]; off: number[] };
    };
    out.push(
      `Aggregator, ${opts.pollers} pollers: handler runs per wake-up on ${d.handlerRuns.on.join('/')}, ` +
        `off ${d.handlerRuns.off.join('/')}; all answered a median ${fixed(median(d.wakeMs.on))} ms ` +
        `(on) vs ${fixed(median(d.wakeMs.off))} ms (off) after the commit.`,
    );
  }
  const follow = rows.filter((r) => r.details?.changesPerSecond !== undefined);
  if (follow.length) {
    out.push(
      `Short vs long polling: every client received every change: ` +
        `${follow.every((r) => r.details?.everyClientGotEveryChange) ? 'yes' : 'NO'}.`,
    );
  }
  out.push(`PostgreSQL ${version}; Node ${process.version}.`);
  return out;
}

export const scenario: Scenario = { name: 'http-rates', run: httpRates };
