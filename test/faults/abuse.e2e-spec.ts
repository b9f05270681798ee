import { Agent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parsePrometheusText } from '../support/prometheus-text';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { OtherClientProcess } from './support/abuse-other-process';
import {
  exchange,
  freshAgent,
  pool,
  postLarge,
  rawExchange,
  slowSocket,
  type Answer,
  type Exchange,
  type RawAnswer,
} from './support/abuse-http';
import {
  formatTable,
  HEAP_PROBE_OPTIONS,
  heapAfterGc,
  metricLabels,
  rssMb,
  Tally,
  type HeapReading,
  type PhaseRow,
} from './support/abuse-stats';
import { ensureExampleBuilt, ExampleProcess } from './support/example-process';

/*
 * Abuse against ONE example process (its own OS process, in-memory index) while another client
 * (user2, in a process of its own) keeps polling and writing: slow headers, oversized headers,
 * 1,000 held polls from one key, a flood of bad cursors, 10 MB batch bodies, 10,000 aborted polls.
 * Per phase: the other client's p99 stays bounded, nobody sees a 5xx, and the process's memory
 * returns near its baseline.
 */

// Short slow-client timeouts (the example's defaults are 10 s / 30 s) so slowloris ends in seconds.
const HEADERS_TIMEOUT_MS = 2000;
const REQUEST_TIMEOUT_MS = 3000;
// Node enforces them on a 1 s check (example-app.ts): allow that, plus a loaded 2-core machine.
const TIMEOUT_SLACK_MS = 2500;
const PER_CLIENT_LIMIT = 32; // POLL_MAX_HELD_PER_CLIENT's default
// 40 extra keys: a wave of 1,000 aborted polls stays under 32 held per key.
const ABUSER_KEYS = Array.from({ length: 40 }, (_, i) => `key-a${i}`);
const API_KEYS = ['user1:key-1', 'user2:key-2', ...ABUSER_KEYS.map((k, i) => `abuser${i}:${k}`)];

// The other client's p99, measured here (2 cores shared by the server, the abusers and it):
// 25–55 ms alone; 25–185 ms under slow or oversized headers and 10 MB bodies; 0.3–1.1 s while the
// server works through 1,000 new connections at once or a 50-wide flood, as its requests queue
// behind them (about 1,000 answers/s here). Other processes on the machine slow every phase, the
// baseline too: a phase's bound is a multiple of the baseline p99 of the same run, at least the
// quiet-machine figure (500 ms, 2 s). A starved client waits out its 10 s hold (or gives up after
// 15 s), so the bound never exceeds half that hold, whatever the load.
const BOUNDS = {
  steady: { floorMs: 500, timesBaseline: 10 },
  flood: { floorMs: 2000, timesBaseline: 40 },
} as const;
const STARVED_MS = 5000;
// Answers of the other client a phase needs for its p99 to mean something. The baseline lasts
// until it has BASELINE_SAMPLES (a loaded machine answers fewer per second), at least 2 s.
const MIN_SAMPLES = 5;
const BASELINE_SAMPLES = 30;
const SAMPLES_TIMEOUT_MS = 20_000;
// V8 heap + external memory after a full GC, the leak check: measured +1–3.5 MB over the baseline
// after any phase (compiled code, caches) and flat over 60,000 aborted polls. 10 MB is well
// under what 10,000 leaked polls (several KB each) or one kept 10 MB body would add.
const HEAP_MARGIN_MB = 10;
// RSS keeps high-water marks (V8's grown young generation, malloc's freed pages): measured
// +70…+125 MB after 10,000 aborted polls, levelling off near +115 MB over 60,000. Only a runaway
// exceeds +200 MB; the heap reading above is the precise check.
const RSS_MARGIN_MB = 200;
// Buffers of sockets that are still closing take a moment to be freed (~2 s for 10 MB bodies).
const MEMORY_SETTLE_MS = 5000;

const USER1 = { authorization: 'Bearer key-1' };
const JSON_TYPE = { 'content-type': 'application/json' };

interface ChangesBody {
  changes: unknown[];
  cursor: string;
}

interface ErrorBody {
  statusCode: number;
  message: unknown;
}

/** The JSON body after a raw answer's headers, or null when it is not JSON. */
function rawJson(answer: RawAnswer): ErrorBody | null {
  try {
    return JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4)) as ErrorBody;
  } catch {
    return null;
  }
}

function jsonOf(answer: Answer): ErrorBody | null {
  try {
    return JSON.parse(answer.body) as ErrorBody;
  } catch {
    return null;
  }
}

/** A 4xx answer in the JSON error shape with a message, e.g. `{statusCode: 400, message}`. */
function isJsonError(body: ErrorBody | null, status: number): boolean {
  return body?.statusCode === status && typeof body.message === 'string' && body.message !== '';
}

describe('abuse against one example process', () => {
  let db: TestDatabase;
  let app: ExampleProcess;
  let other: OtherClientProcess;
  let baseline: (HeapReading & { rssMb: number }) | undefined;
  let baselineP99Ms: number | undefined;
  let heapReadings = 0;
  const agent = freshAgent();
  const rows: PhaseRow[] = [];
  const abuserStatuses = new Tally();

  const url = (path: string) => `${app.url}${path}`;

  async function metrics(): Promise<string> {
    return (await exchange(url('/metrics'), { agent, timeoutMs: 10_000 }).answer).body;
  }

  const heldNow = async () => parsePrometheusText(await metrics()).value('polling_held_requests');

  async function headCursor(channel: string, headers = USER1): Promise<string> {
    const answer = await exchange(url(`/channels/${channel}/changes`), { headers, agent }).answer;
    expect(answer.status).toBe(200);
    return (JSON.parse(answer.body) as ChangesBody).cursor;
  }

  /** Nothing but the other client's own long poll is held (it holds one at most). */
  async function drained(timeoutMs = 10_000): Promise<void> {
    await waitFor(async () => (await heldNow()) <= 1, {
      timeoutMs,
      intervalMs: 50,
      message: 'held polls did not drain',
    });
  }

  const heap = () => heapAfterGc(app.pid!, ++heapReadings, () => app.recentOutput);

  const nearBaseline = (memory: HeapReading) =>
    memory.heapMb < baseline!.heapMb + HEAP_MARGIN_MB &&
    memory.externalMb < baseline!.externalMb + HEAP_MARGIN_MB;

  /**
   * Heap readings until memory is back near the baseline (buffers of sockets still closing take a
   * moment to go), at most MEMORY_SETTLE_MS; the last reading.
   */
  async function settledMemory(): Promise<HeapReading> {
    const deadline = Date.now() + MEMORY_SETTLE_MS;
    for (;;) {
      const memory = await heap();
      if (!baseline || nearBaseline(memory) || Date.now() > deadline) return memory;
      await sleep(250);
    }
  }

  /** The other client's p99 bound in a phase of this kind (see BOUNDS). */
  function p99Bound(kind: keyof typeof BOUNDS | 'baseline'): number {
    if (kind === 'baseline') return STARVED_MS;
    const { floorMs, timesBaseline } = BOUNDS[kind];
    return Math.min(STARVED_MS, Math.max(floorMs, timesBaseline * baselineP99Ms!));
  }

  /** Waits until the other client has `count` answers in this phase (a starved one never does). */
  async function otherAnswers(name: string, count: number): Promise<void> {
    await waitFor(
      async () => {
        await other.refresh();
        return other.samples(name).latencies.length >= count;
      },
      {
        timeoutMs: SAMPLES_TIMEOUT_MS,
        intervalMs: 250,
        message: `the other client got fewer than ${count} answers in "${name}": starved`,
      },
    );
  }

  /** Runs one abuse phase while the other client works; records and checks its row. */
  async function phase(
    name: string,
    kind: keyof typeof BOUNDS | 'baseline',
    abuse: () => Promise<Tally>,
  ): Promise<PhaseRow> {
    await other.enter(name);
    const tally = await abuse();
    await drained();
    await otherAnswers(name, kind === 'baseline' ? BASELINE_SAMPLES : MIN_SAMPLES);
    const memory = await settledMemory();
    await other.refresh();
    const samples = other.samples(name);
    const p99BoundMs = p99Bound(kind);
    const row: PhaseRow = {
      phase: name,
      abuserRequests: tally.total,
      abuserStatuses: tally.toString(),
      otherRequests: samples.latencies.length,
      otherP99Ms: other.p99(name),
      otherBoundMs: p99BoundMs,
      rssMb: rssMb(app.pid!),
      heapMb: memory.heapMb,
      externalMb: memory.externalMb,
    };
    rows.push(row);
    for (const outcome of tally.outcomes()) abuserStatuses.add(outcome, tally.get(outcome));

    expect(app.running).toBe(true);
    expect(tally.serverErrors()).toEqual([]);
    expect({ phase: name, unexpected: samples.unexpected }).toEqual({
      phase: name,
      unexpected: [],
    });
    expect(row.otherP99Ms).toBeLessThan(p99BoundMs);
    if (kind === 'baseline') baselineP99Ms = row.otherP99Ms;
    if (baseline) expectNearBaseline(row.rssMb, memory);
    else baseline = { ...memory, rssMb: row.rssMb };
    return row;
  }

  function expectNearBaseline(rss: number, memory: HeapReading): void {
    expect(memory.heapMb).toBeLessThan(baseline!.heapMb + HEAP_MARGIN_MB);
    expect(memory.externalMb).toBeLessThan(baseline!.externalMb + HEAP_MARGIN_MB);
    expect(rss).toBeLessThan(baseline!.rssMb + RSS_MARGIN_MB);
  }

  beforeAll(async () => {
    ensureExampleBuilt();
    db = await createTestDatabase();
    app = await ExampleProcess.start('abuse', {
      DATABASE_URL: db.url,
      MIGRATE_ON_START: '1',
      API_KEYS: API_KEYS.join(','),
      HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      NODE_OPTIONS: HEAP_PROBE_OPTIONS,
    });
    other = await OtherClientProcess.start(app.url, 'Bearer key-2', 'other');
  }, 60_000);

  afterAll(async () => {
    await other?.close();
    agent.destroy();
    if (app) {
      const exit = await app.stop();
      if (exit.code !== 0 && exit.signal !== 'SIGTERM') console.log(app.recentOutput);
    }
    await db?.drop();
    console.log(`abuse phases (other client = user2 polling and writing):\n${formatTable(rows)}`);
  }, 30_000);

  it('baseline: the other client alone', async () => {
    // Warm-up traffic first, so the baseline includes what any served app holds.
    await phase('baseline', 'baseline', async () => {
      await sleep(2000);
      return new Tally();
    });
  }, 40_000);

  it('slowloris: 300 sockets drip header bytes, 50 drip a body; all get 408 and close', async () => {
    await phase('slowloris', 'steady', async () => {
      const headers = `GET /channels/general/changes HTTP/1.1\r\nHost: x\r\nX-Slow: `;
      const body =
        'POST /poll HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer key-1\r\n' +
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{';
      const sockets = [
        ...Array.from({ length: 300 }, () => slowSocket(app.port, headers, 1000)),
        ...Array.from({ length: 50 }, () => slowSocket(app.port, body, 1000)),
      ];
      // Fail rather than hang: sockets still open then are destroyed and show as "no answer".
      const guard = setTimeout(
        () => sockets.forEach((s) => s.destroy()),
        REQUEST_TIMEOUT_MS + TIMEOUT_SLACK_MS + 3000,
      );
      const answers = await Promise.all(sockets.map((s) => s.done));
      clearTimeout(guard);
      const tally = new Tally();
      answers.forEach((a) => tally.add(a.status ?? 'no answer'));
      expect(tally.toString()).toBe('408×350');
      expect(answers.every((a) => isJsonError(rawJson(a), 408))).toBe(true);
      const slowest = (list: RawAnswer[]) => Math.max(...list.map((a) => a.closedAfterMs));
      expect(slowest(answers.slice(0, 300))).toBeLessThan(HEADERS_TIMEOUT_MS + TIMEOUT_SLACK_MS);
      expect(slowest(answers.slice(300))).toBeLessThan(REQUEST_TIMEOUT_MS + TIMEOUT_SLACK_MS);
      return tally;
    });
  }, 20_000);

  it('headers over 16 KB: 431 in JSON on an answered connection, not a reset', async () => {
    await phase('headers > 16 KB', 'steady', async () => {
      const get = (extra: string, query = '') =>
        `GET /channels/general/changes${query} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
      const requests = [
        get(`Authorization: Bearer key-1\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n`),
        get(Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'b'.repeat(50)}\r\n`).join('')),
        get('', `?since=${'c'.repeat(64 * 1024)}`),
        get(`Cookie: ${'d'.repeat(1024 * 1024)}\r\n`),
      ];
      const tally = new Tally();
      const wrong: string[] = [];
      await pool(400, 10, async (i) => {
        const answer = await rawExchange(app.port, requests[i % requests.length]);
        tally.add(answer.status ?? 'reset');
        if (answer.status !== 431 || !isJsonError(rawJson(answer), 431)) {
          wrong.push(`request ${i % requests.length}: ${answer.text.slice(0, 80)}`);
        }
      });
      expect(wrong).toEqual([]);
      return tally;
    });
  }, 15_000);

  it('1,000 held polls from one key: 32 held, the rest 429 + Retry-After; user2 unaffected', async () => {
    await phase('1,000 held, one key', 'flood', async () => {
      const cursor = await headCursor('abuse-held');
      const polls = freshAgent();
      const answers: Answer[] = [];
      const failed: string[] = [];
      const exchanges = Array.from({ length: 1000 }, () =>
        exchange(url(`/channels/abuse-held/changes?since=${cursor}&wait=30`), {
          headers: USER1,
          agent: polls,
        }),
      );
      exchanges.forEach((e) =>
        e.answer.then(
          (a) => answers.push(a),
          (error: Error) => failed.push(error.message),
        ),
      );
      const rejected = 1000 - PER_CLIENT_LIMIT;
      await waitFor(() => answers.length + failed.length >= rejected, {
        timeoutMs: 15_000,
        intervalMs: 50,
        message: 'the polls over the per-client limit were not all answered',
      });
      await waitFor(async () => (await heldNow()) >= PER_CLIENT_LIMIT, { timeoutMs: 5000 });
      await sleep(1000); // the other client works against a server holding user1's polls
      expect(answers.length).toBe(rejected); // nothing beyond the limit is held
      expect(failed).toEqual([]);
      const tooMany = answers.filter((a) => a.status === 429);
      expect(tooMany).toHaveLength(rejected);
      expect(tooMany.every((a) => Number(a.headers['retry-after']) >= 1)).toBe(true);
      expect(tooMany.every((a) => isJsonError(jsonOf(a), 429))).toBe(true);
      expect(jsonOf(tooMany[0])?.message).toMatch(/too many held requests/);

      // A write of user1 wakes exactly the held ones.
      const write = exchange(url('/channels/abuse-held/messages'), {
        method: 'POST',
        headers: { ...USER1, ...JSON_TYPE },
        body: JSON.stringify({ body: 'wake up' }),
        agent,
      });
      expect((await write.answer).status).toBe(201);
      await Promise.allSettled(exchanges.map((e) => e.answer));
      polls.destroy();
      const tally = new Tally();
      answers.forEach((a) => tally.add(a.status));
      failed.forEach(() => tally.add('error'));
      expect(tally.toString()).toBe(`200×${PER_CLIENT_LIMIT} 429×${rejected}`);
      return tally;
    });
  }, 30_000);

  it('a flood of 3,000 bad cursors and bad batch bodies: 400 in JSON, never 500', async () => {
    await phase('bad cursors', 'flood', async () => {
      const good = await headCursor('general');
      const [generation, position, mac] = good.split('.');
      const flipped = `${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}`;
      const changes = (query: string) => ({ path: `/channels/general/changes?${query}` });
      const batch = (body: string) => ({ path: '/poll', body });
      const bad = [
        changes('since=garbage'),
        changes(`since=${flipped}`),
        changes(`since=${generation}.${Number(position) + 1000}.${mac}`),
        changes(`since=x${generation.slice(1)}.${position}.${mac}`),
        changes('since='),
        changes(`since=${good}&since=${good}`),
        changes('since[a]=1'),
        changes('since=%FF%FE%00'),
        changes(`since=${'x'.repeat(4000)}`),
        changes(`since=${good}&wait=abc`),
        changes(`since=${good}&wait=-1`),
        changes(`since=${good}&wait=1e3`),
        batch(JSON.stringify({ feeds: { '/channels/general/changes': 'garbage' } })),
        batch(JSON.stringify({ feeds: { '/channels/general/changes': flipped }, wait: 5 })),
        batch(JSON.stringify({ feeds: 5 })),
        batch('{"feeds":'),
      ];
      const keepAlive = new Agent({ keepAlive: true, maxSockets: 50 });
      const tally = new Tally();
      const wrong: string[] = [];
      await pool(3000, 50, async (i) => {
        const { path, body } = { body: undefined, ...bad[i % bad.length] };
        const answer = await exchange(url(path), {
          method: body === undefined ? 'GET' : 'POST',
          headers: { ...USER1, ...JSON_TYPE },
          body,
          agent: keepAlive,
          timeoutMs: 10_000,
        }).answer.catch((error: Error) => ({ status: `error ${error.message}`, body: '' }));
        tally.add(answer.status);
        if (answer.status !== 400 || !isJsonError(jsonOf(answer as Answer), 400)) {
          wrong.push(`${path} ${body ?? ''}: ${answer.status} ${answer.body.slice(0, 80)}`);
        }
      });
      keepAlive.destroy();
      expect(wrong.slice(0, 5)).toEqual([]);
      return tally;
    });
  }, 30_000);

  it('batch bodies of 10 MB: 413 in JSON, the process neither crashes nor keeps them', async () => {
    await phase('10 MB bodies', 'steady', async () => {
      const cursor = 'a'.repeat(10 * 1024 * 1024);
      const body = Buffer.from(JSON.stringify({ feeds: { '/channels/general/changes': cursor } }));
      const targets = ['/poll', '/poll', '/poll', '/poll', '/channels/general/messages'];
      const tally = new Tally();
      const wrong: string[] = [];
      await pool(12, 2, async (i) => {
        const path = targets[i % targets.length];
        const chunked = i % 2 === 1;
        const headers = { ...USER1, ...JSON_TYPE };
        const answer = await postLarge(url(path), headers, body, chunked, agent).catch(
          (error: Error) => ({ status: `error ${error.message}`, body: '' }),
        );
        tally.add(answer.status);
        const json = jsonOf(answer as Answer);
        if (!isJsonError(json, 413) || !/too large/.test(String(json?.message))) {
          wrong.push(`${path} chunked=${chunked}: ${answer.status} ${answer.body.slice(0, 80)}`);
        }
      });
      expect(wrong).toEqual([]);
      return tally;
    });
  }, 30_000);

  it('10,000 long and batch polls aborted by their clients: the held count returns to 0', async () => {
    const WAVES = 10;
    const WAVE = 1000;
    let closedBefore = 0;
    await phase('10,000 aborted', 'flood', async () => {
      const channels = Array.from({ length: 10 }, (_, i) => `abort-${i}`);
      const cursors = await Promise.all(channels.map((c) => headCursor(c)));
      closedBefore = parsePrometheusText(await metrics()).value('polling_wakeups_total', {
        reason: 'closed',
      });
      const tally = new Tally();
      for (let wave = 0; wave < WAVES; wave++) {
        const polls = freshAgent();
        const exchanges = Array.from({ length: WAVE }, (_, i) =>
          abortablePoll(i, channels[i % 10], cursors[i % 10], polls),
        );
        const answered: number[] = [];
        exchanges.forEach((e) =>
          e.answer.then(
            (a) => answered.push(a.status),
            () => undefined,
          ),
        );
        // Abort only once every poll is held: each one exercises the held request's clean-up.
        await waitFor(async () => (await heldNow()) >= WAVE, {
          timeoutMs: 15_000,
          intervalMs: 50,
          message: `wave ${wave}: not all ${WAVE} polls were held`,
        });
        exchanges.forEach((e) => e.abort());
        await Promise.allSettled(exchanges.map((e) => e.answer));
        polls.destroy();
        // The next wave reuses the keys: their aborted polls must be released first (else 429).
        await drained(5000);
        answered.forEach((status) => tally.add(status));
        tally.add('aborted', WAVE - answered.length);
      }
      return tally;
    });

    // Pause the other client: with its long poll done, nothing at all may be held.
    await other.pause();
    try {
      await waitFor(async () => (await heldNow()) === 0, { timeoutMs: 5000, intervalMs: 50 });
      const text = await metrics();
      const closed =
        parsePrometheusText(text).value('polling_wakeups_total', { reason: 'closed' }) -
        closedBefore;
      // Each aborted held poll ends as one `closed` wakeup. The held gauge also counts the other
      // client's long poll, so the last poll of a wave may have been aborted just before it was
      // held: allow one per wave.
      expect(closed).toBeLessThanOrEqual(WAVES * WAVE);
      expect(closed).toBeGreaterThanOrEqual(WAVES * (WAVE - 1));
    } finally {
      await other.resume();
    }
  }, 50_000);

  /** Poll i of a wave: every tenth is a batch poll, the rest long polls; keys rotate. */
  function abortablePoll(i: number, channel: string, cursor: string, polls: Agent): Exchange {
    const headers = { authorization: `Bearer ${ABUSER_KEYS[i % ABUSER_KEYS.length]}` };
    if (i % 10 !== 0) {
      return exchange(url(`/channels/${channel}/changes?since=${cursor}&wait=30`), {
        headers,
        agent: polls,
      });
    }
    return exchange(url('/poll'), {
      method: 'POST',
      headers: { ...headers, ...JSON_TYPE },
      body: JSON.stringify({ feeds: { [`/channels/${channel}/changes`]: cursor }, wait: 30 }),
      agent: polls,
    });
  }

  it('no 5xx anywhere, the process is healthy and back near its baseline memory', async () => {
    await other.enter('final');
    await sleep(500);
    await other.pause();
    await other.refresh();
    const text = await metrics();
    // The server's own count of poll answers, including those to clients that had gone.
    const answers = metricLabels(text, 'polling_responses_total');
    expect(answers.filter((labels) => /status="5\d\d"/.test(labels))).toEqual([]);
    expect(parsePrometheusText(text).value('polling_rejected_total', { status: '503' })).toBe(0);
    expect(abuserStatuses.serverErrors()).toEqual([]);
    // Every phase of the other client, also those whose test failed before checking it.
    for (const name of other.phases()) {
      const { unexpected } = other.samples(name);
      expect({ phase: name, unexpected }).toEqual({ phase: name, unexpected: [] });
    }
    // An unhandled exception (a 500 of any route) is logged by Nest as ERROR.
    expect(app.recentOutput).not.toMatch(/\bERROR\b/);
    const health = await exchange(url('/health'), { agent }).answer;
    expect(health.status).toBe(200);
    expect(app.running).toBe(true);
    expectNearBaseline(rssMb(app.pid!), await settledMemory());
  }, 15_000);
});
