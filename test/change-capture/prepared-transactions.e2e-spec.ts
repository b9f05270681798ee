import { Client } from 'pg';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { startPollingApp } from '../support/polling-app';
import { OwnedPostgres } from '../support/owned-postgres';

// Far above the idle poll cadence: a change that takes this long came by the backstop read.
const BACKSTOP_MS = 10_000;
const WRITERS = 4;
const ROUNDS = 8;

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

describe('two-phase commit on tracked tables (max_prepared_transactions > 0)', () => {
  let owned: OwnedPostgres | null = null;
  let url: string;
  let items: ItemsApp;

  beforeAll(async () => {
    const started = await OwnedPostgres.start();
    if ('skipped' in started) {
      console.warn(`prepared-transactions skipped: ${started.skipped}`);
      return;
    }
    owned = started;
    url = await owned.createDatabase('prepared');
    const setup = new Client({ connectionString: url });
    await setup.connect();
    await setup.query(
      'CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)',
    );
    await setup.end();
    items = await startItemsApp(url, { reader: { backstopMs: BACKSTOP_MS } });
  }, 120_000);

  afterAll(async () => {
    await items?.close();
    await owned?.destroy();
  });

  it('PREPARE TRANSACTION never fails while the reader idles and wakes, and each change arrives after COMMIT PREPARED', async () => {
    if (!owned) return;
    const delays: number[] = [];
    const writer = async (w: number) => {
      const client = new Client({ connectionString: url });
      await client.connect();
      try {
        const run = 100 + w;
        for (let round = 0; round < ROUNDS; round++) {
          const head = await fetch(`${items.url}/runs/${run}/changes`);
          const { cursor } = (await head.json()) as ChangesBody;
          // Idle spells of different lengths, so the reader is caught both awake and idle.
          await new Promise((r) => setTimeout(r, 60 + ((round * 53 + w * 29) % 180)));
          const gid = `polling_2pc_${w}_${round}`;
          await client.query('BEGIN');
          const { rows } = await client.query(
            'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
            [run, 'prepared'],
          );
          await client.query(`PREPARE TRANSACTION '${gid}'`);
          // Prepared, not committed: nothing is delivered yet.
          const early = await fetch(`${items.url}/runs/${run}/changes?since=${cursor}&wait=0`);
          expect(early.status === 204 ? [] : ((await early.json()) as ChangesBody).changes).toEqual(
            [],
          );
          await client.query(`COMMIT PREPARED '${gid}'`);
          const committedAt = performance.now();
          const res = await fetch(`${items.url}/runs/${run}/changes?since=${cursor}&wait=20`);
          delays.push(performance.now() - committedAt);
          expect(res.status).toBe(200);
          expect(((await res.json()) as ChangesBody).changes.map((c) => c.id)).toEqual([
            rows[0].id,
          ]);
        }
      } finally {
        await client.end();
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    expect(delays).toHaveLength(WRITERS * ROUNDS);
    // Delivered by the reader's idle polling, long before its backstop.
    expect(Math.max(...delays)).toBeLessThan(BACKSTOP_MS / 5);
  }, 120_000);

  it('an app that starts (installSchema: true) while a prepared write on a tracked table waits for its outcome starts at once, blocks no writer, and delivers nothing of it after ROLLBACK PREPARED', async () => {
    if (!owned) return;
    const inDoubt = new Client({ connectionString: url });
    const other = new Client({ connectionString: url, statement_timeout: 10_000 });
    await inDoubt.connect();
    await other.connect();
    let second: Promise<ItemsApp> | null = null;
    try {
      const head = await fetch(`${items.url}/runs/300/changes`);
      const { cursor } = (await head.json()) as ChangesBody;
      // A transaction manager prepared this write and has not decided yet (it holds the
      // table's row-exclusive lock until COMMIT / ROLLBACK PREPARED, across restarts).
      await inDoubt.query('BEGIN');
      await inDoubt.query(`INSERT INTO items (run, body) VALUES (300, 'in doubt')`);
      await inDoubt.query(`PREPARE TRANSACTION 'polling_in_doubt'`);

      // A deploy: a new instance starts and re-runs the tracking it is configured with.
      second = startItemsApp(url, { reader: { backstopMs: BACKSTOP_MS } });
      const started = await Promise.race([
        second.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 15_000)),
      ]);
      const writeStart = performance.now();
      await other.query(`INSERT INTO items (run, body) VALUES (301, 'meanwhile')`);
      const writeMs = performance.now() - writeStart;
      expect({ started, writeBlocked: writeMs > 2000 }).toEqual({
        started: true,
        writeBlocked: false,
      });

      await other.query(`ROLLBACK PREPARED 'polling_in_doubt'`);
      const { rows } = await other.query(
        `INSERT INTO items (run, body) VALUES (300, 'after') RETURNING id`,
      );
      const res = await fetch(`${items.url}/runs/300/changes?since=${cursor}&wait=20`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as ChangesBody).changes.map((c) => c.id)).toEqual([rows[0].id]);
    } finally {
      await other.query(`ROLLBACK PREPARED 'polling_in_doubt'`).catch(() => undefined); // already resolved above unless the test failed before
      await (await second?.catch(() => null))?.close();
      await inDoubt.end();
      await other.end();
    }
  }, 120_000);

  it('a start that must change the tracking while a prepared write holds the table gives up within its lock timeout and leaves writers unblocked', async () => {
    if (!owned) return;
    const inDoubt = new Client({ connectionString: url });
    const other = new Client({ connectionString: url, statement_timeout: 15_000 });
    await inDoubt.connect();
    await other.connect();
    try {
      await inDoubt.query('BEGIN');
      await inDoubt.query(`INSERT INTO items (run, body) VALUES (400, 'in doubt')`);
      await inDoubt.query(`PREPARE TRANSACTION 'polling_in_doubt_2'`);
      // A deploy that renames the feed: its triggers must be replaced, which needs the table lock.
      const start = startPollingApp({
        postgres: { url },
        tables: [{ table: 'items', partition: 'run', feed: 'items_renamed' }],
        installSchema: true,
        reader: { queryTimeoutMs: 4000 },
      }).then(
        async (app) => (await app.close(), null),
        (e: Error) => e,
      );
      await new Promise((r) => setTimeout(r, 500)); // its DDL is waiting for the lock now
      const writeStart = performance.now();
      const wrote = await other
        .query(`INSERT INTO items (run, body) VALUES (401, 'meanwhile')`)
        .then(
          () => 'ok',
          (e: Error) => e.message,
        );
      const writeMs = performance.now() - writeStart;
      expect(wrote).toBe('ok');
      expect(writeMs).toBeLessThan(4000);
      expect((await start)?.message).toMatch(/lock timeout/);
    } finally {
      await other.query(`ROLLBACK PREPARED 'polling_in_doubt_2'`).catch(() => undefined);
      await inDoubt.end();
      await other.end();
    }
  }, 120_000);
});
