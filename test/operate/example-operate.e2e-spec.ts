import { Client } from 'pg';
import { startExampleOnFreshDatabase, type RunningExample } from '../support/example-app';
import { waitFor } from '../support/wait-for';
import { scrape, type Scrape } from '../support/prometheus-text';

const USER1 = { authorization: 'Bearer key-1' };
const USER2 = { authorization: 'Bearer key-2' };

interface HealthBody {
  status: string;
  info: Record<string, Record<string, unknown>>;
  error: Record<string, Record<string, unknown>>;
  details: Record<string, Record<string, unknown>>;
}

interface OpenApiOperation {
  parameters: { name: string; in: string }[];
  responses: Record<string, unknown>;
}

/**
 * Operating the example app over real HTTP: /metrics figures move when polls are held, woken,
 * timed out and rejected; /health (Terminus) reports the reader, Redis and Postgres and turns
 * degraded when an open transaction holds the commit horizon; /docs-json documents the feeds.
 */
describe('example app: metrics, health and OpenAPI', () => {
  let run: RunningExample;
  let psql: Client;
  const pending: AbortController[] = [];

  beforeAll(async () => {
    run = await startExampleOnFreshDatabase({
      POLL_MAX_HELD_PER_CLIENT: '2',
      HEALTH_HORIZON_STALL_MS: '1000',
    });
    psql = new Client(run.db.config);
    await psql.connect();
  });

  afterEach(() => {
    for (const controller of pending.splice(0)) controller.abort();
  });

  afterAll(async () => {
    await psql?.end();
    await run?.close();
  });

  const metrics = () => scrape(`${run.url}/metrics`);
  const call = (path: string, headers: Record<string, string> = USER1) =>
    fetch(`${run.url}${path}`, { headers });

  /** A request that may be held; aborted after the test unless it has answered. */
  function start(path: string, headers: Record<string, string> = USER1) {
    const controller = new AbortController();
    pending.push(controller);
    return fetch(`${run.url}${path}`, { headers, signal: controller.signal });
  }

  async function head(channel: string): Promise<string> {
    const res = await call(`/channels/${channel}/changes`);
    expect(res.status).toBe(200);
    await res.body?.cancel();
    return res.headers.get('poll-cursor')!;
  }

  const insert = (channel: string, body = 'hi') =>
    psql.query("INSERT INTO messages (channel, author, body) VALUES ($1, 'psql', $2)", [
      channel,
      body,
    ]);

  const heldMessages = async () =>
    (await metrics()).value('polling_held_requests', { feed: 'messages' });

  function delta(before: Scrape, after: Scrape, name: string, labels?: Record<string, string>) {
    return after.value(name, labels) - before.value(name, labels);
  }

  it('serves /metrics without a key, in the Prometheus text format', async () => {
    const m = await metrics();
    for (const name of [
      'polling_held_requests',
      'polling_reader_leader',
      'polling_reader_live',
      'polling_reader_held_back_rows',
      'polling_reader_oldest_transaction_seconds',
      'polling_aggregator_runs_total',
      'polling_aggregator_shared_total',
      'polling_delivery_delay_seconds_count',
      'polling_index_generations_total',
    ]) {
      expect(m.has(name)).toBe(true);
    }
    expect(m.value('polling_reader_leader')).toBe(1);
    expect(m.value('polling_reader_live')).toBe(1);
    expect(m.value('polling_index_generations_total')).toBeGreaterThanOrEqual(1);
    expect(m.value('polling_held_requests', { feed: 'tasks' })).toBe(0);
  });

  it('a held poll shows in the gauge; a commit wakes it: wake-up, response and delay are counted', async () => {
    const since = await head('ops-wake');
    const before = await metrics();
    const poll = start(`/channels/ops-wake/changes?since=${since}&wait=20`);
    await waitFor(async () => (await heldMessages()) === 1, { message: 'held gauge reaches 1' });

    await insert('ops-wake');
    const res = await poll;
    expect(res.status).toBe(200);
    expect(res.headers.get('poll-wake')).toBe('change');
    await res.json();

    const after = await metrics();
    expect(after.value('polling_held_requests', { feed: 'messages' })).toBe(0);
    expect(
      delta(before, after, 'polling_wakeups_total', { feed: 'messages', reason: 'change' }),
    ).toBe(1);
    expect(
      delta(before, after, 'polling_responses_total', {
        feed: 'messages',
        kind: 'long',
        status: '200',
      }),
    ).toBe(1);
    expect(delta(before, after, 'polling_delivery_delay_seconds_count')).toBe(1);
    const delay = delta(before, after, 'polling_delivery_delay_seconds_sum');
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThan(10);
  });

  it('counts a timeout (204) and a 304 of a short poll', async () => {
    const since = await head('ops-timeout');
    const before = await metrics();
    const timedOut = await call(`/channels/ops-timeout/changes?since=${since}&wait=1`);
    expect(timedOut.status).toBe(204);
    expect(timedOut.headers.get('poll-wake')).toBe('timeout');

    const notModified = await fetch(
      `${run.url}/channels/ops-timeout/changes?since=${since}&wait=0`,
      {
        headers: { ...USER1, 'if-none-match': `"${since}"` },
      },
    );
    expect(notModified.status).toBe(304);

    const after = await metrics();
    expect(delta(before, after, 'polling_wakeups_total', { reason: 'timeout' })).toBe(1);
    expect(delta(before, after, 'polling_responses_total', { kind: 'long', status: '204' })).toBe(
      1,
    );
    expect(delta(before, after, 'polling_responses_total', { kind: 'short', status: '304' })).toBe(
      1,
    );
    expect(delta(before, after, 'polling_delivery_delay_seconds_count')).toBe(0);
  });

  it('counts rejections by reason: 429 beyond the per-client held limit, 400 for a bad cursor', async () => {
    const since = await head('ops-limit');
    const before = await metrics();
    const held = [0, 1].map(() =>
      start(`/channels/ops-limit/changes?since=${since}&wait=20`, USER2),
    );
    await waitFor(async () => (await heldMessages()) === 2, { message: 'two polls held' });

    const refused = await call(`/channels/ops-limit/changes?since=${since}&wait=20`, USER2);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    const bad = await call('/channels/ops-limit/changes?since=not-a-cursor');
    expect(bad.status).toBe(400);

    let after = await metrics();
    expect(
      delta(before, after, 'polling_rejected_total', {
        reason: 'client_held_limit',
        status: '429',
      }),
    ).toBe(1);
    expect(
      delta(before, after, 'polling_rejected_total', { reason: 'bad_request', status: '400' }),
    ).toBe(1);
    expect(delta(before, after, 'polling_responses_total', { status: '429' })).toBe(1);

    // The two held polls go away with their clients: counted as "closed", the gauge drops.
    for (const controller of pending.splice(0)) controller.abort();
    await Promise.allSettled(held);
    await waitFor(async () => (await heldMessages()) === 0, { message: 'held gauge back to 0' });
    after = await metrics();
    expect(delta(before, after, 'polling_wakeups_total', { reason: 'closed' })).toBe(2);
  });

  it('counts shared handler runs: two identical held polls woken by one change cost one run', async () => {
    const since = await head('ops-share');
    const before = await metrics();
    const polls = [0, 1].map(() => start(`/channels/ops-share/changes?since=${since}&wait=20`));
    await waitFor(async () => (await heldMessages()) === 2, { message: 'two polls held' });
    await insert('ops-share');
    const answers = await Promise.all(polls);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    await Promise.all(answers.map((r) => r.json()));

    const after = await metrics();
    expect(delta(before, after, 'polling_aggregator_runs_total')).toBe(1);
    expect(delta(before, after, 'polling_aggregator_shared_total')).toBe(1);
    expect(delta(before, after, 'polling_wakeups_total', { reason: 'change' })).toBe(2);
  });

  async function health(): Promise<{ status: number; body: HealthBody }> {
    const res = await fetch(`${run.url}/health`);
    return { status: res.status, body: (await res.json()) as HealthBody };
  }

  it('/health (Terminus, no key): reader up and leading, Redis (not configured) and Postgres up', async () => {
    let answer = await health();
    await waitFor(async () => (answer = await health()).status === 200, {
      intervalMs: 100,
      message: 'health answers 200',
    });
    expect(answer.body.status).toBe('ok');
    expect(answer.body.info.reader).toMatchObject({
      status: 'up',
      state: 'ok',
      live: true,
      role: 'leader',
      heldBackRows: 0,
    });
    expect(answer.body.info.redis).toMatchObject({ status: 'up', configured: false });
    expect(answer.body.info.postgres).toMatchObject({ status: 'up' });
  });

  it('reports the reader degraded while an open transaction holds the horizon past the threshold', async () => {
    const long = new Client(run.db.config);
    await long.connect();
    try {
      await long.query('BEGIN');
      await long.query(
        "INSERT INTO messages (channel, author, body) VALUES ('ops-stall', 'psql', 'still open')",
      );
      await insert('ops-stall', 'committed behind it');

      let answer = await health();
      await waitFor(async () => (answer = await health()).status === 503, {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: 'health turns 503 once the horizon is stuck for more than 1 s',
      });
      expect(answer.body.status).toBe('error');
      expect(answer.body.error.reader).toMatchObject({
        status: 'down',
        state: 'degraded',
        live: true,
        role: 'leader',
      });
      expect(answer.body.error.reader.heldBackRows).toBeGreaterThanOrEqual(1);
      expect(answer.body.error.reader.stalledForMs).toBeGreaterThan(1000);
      // Both ages are taken when asked: the transaction that holds the horizon began before the
      // changes behind it, so it is at least as old as the stall.
      expect(answer.body.error.reader.oldestOpenTransactionMs).toBeGreaterThanOrEqual(
        Number(answer.body.error.reader.stalledForMs),
      );
      expect(String(answer.body.error.reader.message)).toMatch(/held back/);
      expect(answer.body.info.postgres).toMatchObject({ status: 'up' });

      const m = await metrics();
      expect(m.value('polling_reader_held_back_rows')).toBeGreaterThanOrEqual(1);
      expect(m.value('polling_reader_stalled_seconds')).toBeGreaterThan(1);
      expect(m.value('polling_reader_oldest_transaction_seconds')).toBeGreaterThan(1);
    } finally {
      await long.query('COMMIT').catch(() => undefined);
      await long.end();
    }
    await waitFor(async () => (await health()).status === 200, {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: 'health recovers once the transaction commits',
    });
    expect((await metrics()).value('polling_reader_stalled_seconds')).toBe(0);
  });

  it('serves the OpenAPI document: the long-poll feed documents since, wait, Prefer, If-None-Match and its answers', async () => {
    const ui = await fetch(`${run.url}/docs`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);

    const res = await fetch(`${run.url}/docs-json`);
    expect(res.status).toBe(200);
    const document = (await res.json()) as {
      paths: Record<string, Record<string, OpenApiOperation>>;
    };
    const changes = document.paths['/channels/{channel}/changes'].get;
    const parameters = changes.parameters.map((p) => `${p.in}:${p.name}`);
    expect(parameters).toEqual(
      expect.arrayContaining([
        'path:channel',
        'query:since',
        'query:wait',
        'header:Prefer',
        'header:If-None-Match',
      ]),
    );
    expect(Object.keys(changes.responses)).toEqual(
      expect.arrayContaining(['200', '204', '304', '400', '409', '429', '503']),
    );
    expect(document.paths['/poll'].post.responses).toHaveProperty('204');
    // The metrics route is the library's and stays out of the app's document.
    expect(document.paths['/metrics']).toBeUndefined();
  });
});
