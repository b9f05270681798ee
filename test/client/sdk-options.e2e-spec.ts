import type { AddressInfo } from 'node:net';
import { Client } from 'pg';
import { followFeed, followFeeds } from '../../src/client';
import { HOST_APP_CONFIGS } from '../host-apps/host-app-configs';
import { startHostApp, type HostApp } from '../host-apps/host-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * The SDK in Node against a real app whose responses are wrapped in an envelope ({data}) by a
 * global interceptor: relative routes with `baseUrl`, `select` to unwrap, bad URLs fail at once.
 */
interface Ids {
  ids: string[];
  cursor: string;
}

describe('SDK options: baseUrl, select, URLs that cannot work', () => {
  let db: TestDatabase;
  let writer: Client;
  let host: HostApp;
  let baseUrl: string;
  const stop = new AbortController();

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    const envelope = HOST_APP_CONFIGS.find((c) => c.name === 'response envelope interceptor')!;
    host = await startHostApp(envelope, db);
    const { port } = host.app.getHttpServer().address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
  }, 30_000);

  afterAll(async () => {
    stop.abort();
    await host?.close();
    await writer?.end();
    await db?.drop();
  });

  const insert = async (run: number): Promise<string> =>
    (await writer.query('INSERT INTO items (run) VALUES ($1) RETURNING id', [run])).rows[0].id;

  it('followFeed: a relative url with baseUrl, and select unwraps the envelope', async () => {
    const bodies: Ids[] = [];
    const run = followFeed<Ids>({
      baseUrl,
      url: '/runs/1/changes',
      wait: 10,
      signal: stop.signal,
      select: (body) => (body as { data: unknown }).data,
      onChanges: (body) => void bodies.push(body),
    });
    await waitFor(() => bodies.length === 1, { message: 'the head answer arrived' });
    const id = await insert(1);
    await waitFor(() => bodies.length === 2, { message: 'the change arrived' });
    expect(bodies[1]).toEqual({ ids: [id], cursor: expect.any(String) });
    expect(bodies[0].ids).toEqual([]);
    void run.catch(() => undefined);
  });

  it('followFeeds: select unwraps the batch answer and each feed body', async () => {
    const changes: [string, Ids][] = [];
    const heads = new Map<string, string>();
    void followFeeds<Ids>({
      baseUrl,
      url: '/poll',
      feeds: { '/runs/2/changes': null },
      wait: 10,
      signal: stop.signal,
      select: (body) => (body as { data: unknown }).data,
      onChanges: (feed, body, info) => {
        heads.set(feed, info.cursor);
        changes.push([feed, body]);
      },
    }).catch(() => undefined);
    await waitFor(() => heads.size === 1, { message: 'the head answer arrived' });
    const id = await insert(2);
    await waitFor(() => changes.length === 2, { message: 'the change arrived' });
    expect(changes[1]).toEqual(['/runs/2/changes', { ids: [id], cursor: expect.any(String) }]);
  });

  it.each([
    ['a relative url without baseUrl (Node has no page)', { url: '/runs/3/changes' }, /baseUrl/],
    ['a url that cannot be parsed', { url: 'http://[::1' }, /not an absolute URL|not a valid URL/],
    ['a baseUrl that is not absolute', { url: '/x', baseUrl: 'localhost:3000/' }, /baseUrl/],
  ])('%s is a TypeError at once, not retries', async (_name, urls, message) => {
    const errors: unknown[] = [];
    const started = Date.now();
    const follow = followFeed({
      ...urls,
      signal: stop.signal,
      onChanges: () => undefined,
      onError: (error) => void errors.push(error),
    });
    await expect(follow).rejects.toThrow(TypeError);
    await expect(follow).rejects.toThrow(message);
    expect(errors).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(
      followFeeds({ ...urls, feeds: { '/a': null }, signal: stop.signal, onChanges: () => {} }),
    ).rejects.toThrow(message);
  });
});
