import fc from 'fast-check';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  loggedChanges,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

type Action = 'begin' | 'insert' | 'commit' | 'rollback' | 'pause';
interface Step {
  writer: number;
  action: Action;
}

/**
 * Random begin/write/commit/rollback interleavings over 2–8 writer connections, while the reader
 * runs: every committed change must reach the index exactly once, in commit-safe order, and no
 * rolled-back change may appear.
 */
describe('change capture under random writer interleavings', () => {
  let db: TestDatabase;
  let polling: PollingApp;
  let writers: Client[] = [];
  let run = 0;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    polling = await startPollingApp(itemsOptions(db));
    writers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const client = new Client(db.config);
        await client.connect();
        return client;
      }),
    );
  });

  afterAll(async () => {
    await Promise.all(writers.map((w) => w.end()));
    await polling?.close();
    await db?.drop();
  });

  const scenario = fc.integer({ min: 2, max: 8 }).chain((writerCount) =>
    fc.array(
      fc.record<Step>({
        writer: fc.integer({ min: 0, max: writerCount - 1 }),
        action: fc.constantFrom<Action>('begin', 'insert', 'insert', 'commit', 'rollback', 'pause'),
      }),
      { minLength: 1, maxLength: 40 },
    ),
  );

  it('every committed change reaches the index exactly once, in order', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (steps) => {
        run += 1;
        const feed = `items:${run}`;
        const inTx = new Map<number, string[]>();
        const rolledBack = new Set<string>();
        const insert = async (w: number) => {
          const { rows } = await writers[w].query(
            'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
            [run, `writer ${w}`],
          );
          inTx.get(w)?.push(rows[0].id);
        };

        for (const { writer: w, action } of steps) {
          if (action === 'pause') await new Promise((r) => setTimeout(r, 3));
          else if (action === 'insert') await insert(w);
          else if (action === 'begin' && !inTx.has(w)) {
            await writers[w].query('BEGIN');
            inTx.set(w, []);
          } else if ((action === 'commit' || action === 'rollback') && inTx.has(w)) {
            await writers[w].query(action.toUpperCase());
            if (action === 'rollback') inTx.get(w)!.forEach((id) => rolledBack.add(id));
            inTx.delete(w);
          }
        }
        for (const w of inTx.keys()) await writers[w].query('COMMIT');

        const logged = await loggedChanges(writers[0], feed);
        await waitFor(
          async () => (await indexedChanges(polling.index, feed)).length === logged.length,
          {
            message: `index caught up with ${logged.length} changes of ${feed}`,
          },
        );
        const indexed = await indexedChanges(polling.index, feed);
        expect(indexed.map((c) => c.resourceId)).toEqual(logged);
        for (const c of indexed) expect(rolledBack.has(c.resourceId)).toBe(false);

        // Dense positions across the whole run: one position per logged change, none twice.
        const { rows } = await writers[0].query('SELECT count(*)::int AS n FROM polling_changes');
        await waitFor(async () => (await polling.index.head())?.position === rows[0].n, {
          message: 'head position equals the number of logged changes',
        });
      }),
      { numRuns: 30 },
    );
  });
});
