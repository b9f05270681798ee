import { Client } from 'pg';
import { PollingHealthIndicator } from '../../src';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

const HOUR_MS = 3_600_000;

/**
 * The stall's and the oldest transaction's ages were differences of wall-clock readings taken at
 * different times: when the host's clock is stepped (NTP, a VM resumed), a stall of seconds read
 * as none at all (health up for the next hour after a step back) or as an hour (503 after a step
 * forward).
 */
describe('reader lag across a wall-clock step', () => {
  let db: TestDatabase;
  let app: ItemsApp;
  let long: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    long = new Client(db.config);
    await long.connect();
    app = await startItemsApp(db.url, { health: { horizonStallMs: 300 } });
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await long?.query('ROLLBACK').catch(() => undefined);
    await long?.end();
    await app?.close();
    await db?.drop();
  });

  /** An open writing transaction holds the horizon while another write commits behind it. */
  async function holdTheHorizon(run: number): Promise<void> {
    await long.query('BEGIN');
    await long.query('INSERT INTO items (run) VALUES ($1)', [run]);
    const writer = new Client(db.config);
    await writer.connect();
    await writer.query('INSERT INTO items (run) VALUES ($1)', [run + 1]);
    await writer.end();
  }

  it('keeps reporting the stall, with ages that did not jump, after the clock steps', async () => {
    const health = app.app.get(PollingHealthIndicator);
    await holdTheHorizon(8);
    await waitFor(() => health.reader().reader.state === 'degraded', {
      timeoutMs: 10_000,
      message: 'health never reported the stall',
    });
    const before = health.reader().reader;

    const realNow = Date.now.bind(Date);
    const stepped = (offsetMs: number) => {
      const spy = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + offsetMs);
      try {
        return health.reader().reader;
      } finally {
        spy.mockRestore();
      }
    };
    const back = stepped(-HOUR_MS);
    const ahead = stepped(HOUR_MS);

    for (const answer of [back, ahead]) {
      expect(answer).toMatchObject({ status: 'down', state: 'degraded' });
      expect(Number(answer.stalledForMs)).toBeGreaterThanOrEqual(Number(before.stalledForMs));
      expect(Number(answer.stalledForMs)).toBeLessThan(HOUR_MS);
      expect(Number(answer.oldestOpenTransactionMs)).toBeGreaterThanOrEqual(
        Number(before.oldestOpenTransactionMs),
      );
      expect(Number(answer.oldestOpenTransactionMs)).toBeLessThan(HOUR_MS);
    }
  }, 30_000);

  it('measures a stall that begins after the clock stepped back (the reader keeps its chores)', async () => {
    await long.query('ROLLBACK').catch(() => undefined);
    const health = app.app.get(PollingHealthIndicator);
    await waitFor(() => health.reader().reader.state === 'ok', {
      timeoutMs: 10_000,
      message: 'the first stall never ended',
    });
    const realNow = Date.now.bind(Date);
    // The host's clock goes back an hour (NTP, a VM resumed) while the app runs.
    const spy = jest.spyOn(Date, 'now').mockImplementation(() => realNow() - HOUR_MS);
    try {
      await holdTheHorizon(10);
      // Its lag checks ran on the wall clock: after the step none was due for an hour.
      await waitFor(() => health.reader().reader.state === 'degraded', {
        timeoutMs: 10_000,
        message: 'health never reported the stall that began after the step',
      });
    } finally {
      spy.mockRestore();
      await long.query('ROLLBACK').catch(() => undefined);
    }
  }, 30_000);
});
