import { Client } from 'pg';
import { createItemsTable, insertItem } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { HOST_APP_CONFIGS, type HostAppConfig } from './host-app-configs';
import { startHostApp, type HostApp } from './host-app';
import type { HostAnswer } from './host-client';

/*
 * The library inside ordinary Nest 11 apps set up the way real apps are (global prefix, URI
 * versioning, an envelope interceptor, an app-wide filter and ValidationPipe, compression, helmet,
 * ::1, a unix socket, HTTPS, trust proxy). In each: a long poll, a 304, a batch poll (with a feed
 * whose partition comes from a header) and SSE deliver a change, and bad input is a 4xx in JSON.
 */

interface FeedAnswer {
  ids: string[];
  cursor: string;
}

interface BatchAnswer {
  feeds: Record<string, { status: number; cursor: string; body: unknown }>;
}

const WAIT = 'wait=10';
// Each change is written at once: an answer takes well under this, a stuck batch fails in it.
const TEST_TIMEOUT_MS = 15_000;

/** The status, or a failure that shows what came instead. */
function expectStatus(answer: HostAnswer, status: number): void {
  if (answer.status !== status) {
    throw new Error(`expected ${status}, got ${answer.status}: ${answer.text.slice(0, 300)}`);
  }
}

describe.each(HOST_APP_CONFIGS.map((config) => [config.name, config] as const))(
  'host app: %s',
  (_name: string, config: HostAppConfig) => {
    let db: TestDatabase;
    let writer: Client;
    let host: HostApp;
    let nextRun = 1;
    const base = config.base;
    const unwrap = (body: unknown) => (config.unwrap ? config.unwrap(body) : body);
    const json = (answer: HostAnswer) => unwrap(JSON.parse(answer.text)) as unknown;

    beforeAll(async () => {
      db = await createTestDatabase();
      await createItemsTable(db);
      writer = new Client(db.config);
      await writer.connect();
      host = await startHostApp(config, db);
    }, 30_000);

    afterAll(async () => {
      await host?.close();
      await writer?.end();
      await db?.drop();
    });

    const insert = (run: number) => insertItem(writer, run, 'host app');

    /** The feed's head cursor (the route answers 200 with it). */
    async function head(path: string, headers: Record<string, string> = {}): Promise<string> {
      const answer = await host.client.get(`${base}${path}`, headers);
      expectStatus(answer, 200);
      const cursor = answer.headers['poll-cursor'];
      expect(typeof cursor).toBe('string');
      return cursor as string;
    }

    it('a long poll delivers a change', async () => {
      const run = nextRun++;
      const cursor = await head(`/runs/${run}/changes`);
      const poll = host.client.get(`${base}/runs/${run}/changes?since=${cursor}&${WAIT}`);
      const id = await insert(run);
      const answer = await poll;
      expectStatus(answer, 200);
      expect(json(answer)).toMatchObject({ ids: [id] });
    });

    it('answers 304 to If-None-Match with the current cursor', async () => {
      const run = nextRun++;
      const cursor = await head(`/runs/${run}/changes`);
      const answer = await host.client.get(`${base}/runs/${run}/changes?since=${cursor}&wait=0`, {
        'if-none-match': `"${cursor}"`,
      });
      expect({ status: answer.status, text: answer.text }).toEqual({ status: 304, text: '' });
    });

    /**
     * Batch polls `feeds` (path → cursor) while a row of `run` is written: only `changing` is in
     * the answer, with the new row.
     */
    async function expectBatchDelivers(
      feeds: Record<string, string>,
      changing: string,
      run: number,
      headers: Record<string, string> = {},
    ): Promise<void> {
      const poll = host.client.send('POST', `${base}/poll`, { headers, json: { feeds, wait: 10 } });
      const id = await insert(run);
      const answer = await poll;
      expectStatus(answer, 200);
      const changed = (json(answer) as BatchAnswer).feeds;
      expect(Object.keys(changed)).toEqual([changing]);
      expect(changed[changing].status).toBe(200);
      expect(unwrap(changed[changing].body)).toMatchObject({ ids: [id] });
    }

    it(
      'a batch poll delivers a change',
      async () => {
        const [run, quiet] = [nextRun++, nextRun++];
        const changing = `${base}/runs/${run}/changes`;
        const feeds = {
          [changing]: await head(`/runs/${run}/changes`),
          [`${base}/runs/${quiet}/changes`]: await head(`/runs/${quiet}/changes`),
        };
        await expectBatchDelivers(feeds, changing, run);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'a batch poll delivers a change on a feed partitioned by a header',
      async () => {
        const mine = nextRun++;
        const headers = { 'x-run': String(mine) };
        const feeds = { [`${base}/mine/changes`]: await head('/mine/changes', headers) };
        await expectBatchDelivers(feeds, `${base}/mine/changes`, mine, headers);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'SSE delivers a change: the event id is the cursor, the data the feed answer',
      async () => {
        const run = nextRun++;
        const stream = await host.client.stream(`${base}/runs/${run}/stream`);
        try {
          expect(stream.status).toBe(200);
          expect(stream.res.headers['content-type']).toMatch(/^text\/event-stream/);
          const id = await insert(run);
          const event = await stream.next((e) => e.data?.includes(`"${id}"`) ?? false);
          const data = JSON.parse(event.data!) as FeedAnswer;
          expect(data).toEqual({ ids: [id], cursor: expect.any(String) });
          expect(event.id).toBe(data.cursor);
        } finally {
          stream.close();
        }
      },
      TEST_TIMEOUT_MS,
    );

    it('bad input answers 4xx in JSON', async () => {
      const answers = [
        await host.client.get(`${base}/runs/1/changes?since=not-a-cursor`),
        await host.client.send('POST', `${base}/poll`, { json: { feeds: 'nope' } }),
        await host.client.send('POST', `${base}/poll`, {
          json: { feeds: { [`${base}/no/such/feed`]: null } },
        }),
      ];
      for (const answer of answers) {
        expectStatus(answer, 400);
        expect(answer.headers['content-type']).toMatch(/^application\/json/);
        expect(JSON.parse(answer.text)).toEqual(expect.any(Object));
      }
    });
  },
);
