import { ValidationPipe } from '@nestjs/common';
import { Client } from 'pg';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { createItemsTable, insertItem } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { batch, expectStatus, startApp, type Started } from './feed-app';
import { MemberFeedsController, slowRuns } from './member-feeds';
import { ScopedBatchController } from './scoped-feeds';

/*
 * Feed routes as real apps write them, inside a batch poll, in an app with a global
 * ValidationPipe: a handler that throws or rejects after a wake-up, one that takes long while the
 * client leaves, parameter pipes, a validated query DTO, a custom parameter decorator and @Req().
 */

let db: TestDatabase;
let writer: Client;
let host: Started;
let held: HeldRequests;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
  host = await startApp(
    db,
    { controllers: [MemberFeedsController, ScopedBatchController] },
    (app) =>
      app.useGlobalPipes(
        new ValidationPipe({ transform: true, forbidNonWhitelisted: true, whitelist: true }),
      ),
  );
  held = host.app.get(HeldRequests);
}, 30_000);

afterAll(async () => {
  await host?.close();
  await writer?.end();
  await db?.drop();
});

const insert = (run: number) => insertItem(writer, run, 'member');

async function cursors(keys: string[]): Promise<Record<string, string>> {
  const start = await batch(host.url, Object.fromEntries(keys.map((k) => [k, null])));
  expectStatus(start, 200);
  return Object.fromEntries(keys.map((k) => [k, start.feeds[k].cursor!]));
}

it.each([
  ['boom', 'after a wake-up', 21],
  ['reject', 'after a wake-up', 20],
  ['boom', 'at the first look', 28],
  ['reject', 'at the first look', 29],
])('a feed whose handler fails (%s) %s is a 500 for that feed only', async (route, when, run) => {
  const failing = `/members/${run}/${route}`;
  const fine = `/members/${run}/typed`;
  const since = await cursors([failing, fine]);
  let id: string;
  let answer: Awaited<ReturnType<typeof batch>>;
  if (when === 'after a wake-up') {
    const poll = batch(host.url, since, {}, 10);
    await waitFor(() => held.size === 1);
    id = await insert(run);
    answer = await poll;
  } else {
    // Both feeds changed (and the change is indexed) before the batch arrives: both handlers run
    // in its first look.
    id = await insert(run);
    const indexed = await batch(host.url, { [fine]: since[fine] }, {}, 5);
    expect(indexed.feeds[fine]).toMatchObject({ status: 200, body: { ids: [id] } });
    answer = await batch(host.url, since, {}, 10);
  }
  expectStatus(answer, 200);
  expect(answer.feeds[failing]).toEqual({
    status: 500,
    body: { statusCode: 500, message: 'Internal server error' },
  });
  expect(answer.feeds[fine]).toMatchObject({ status: 200, body: { ids: [id] } });
  expect(held.size).toBe(0);
});

it('releases the held slot when the client leaves while a slow handler runs', async () => {
  const key = '/members/22/slow';
  const since = await cursors([key]);
  const stop = new AbortController();
  const poll = fetch(`${host.url}/poll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ feeds: since, wait: 10 }),
    signal: stop.signal,
  }).catch((error: unknown) => error);
  await waitFor(() => held.size === 1);
  const started = slowRuns.started;
  await insert(22);
  await waitFor(() => slowRuns.started === started + 1, { message: 'the handler runs' });
  stop.abort();
  await poll;
  slowRuns.release();
  await waitFor(() => held.size === 0, { message: `${held.size} still held` });
  expect(held.feedCount).toBe(0);
});

it('releases the held slot when the client leaves a held batch', async () => {
  const since = await cursors(['/members/23/typed', '/members/24/typed']);
  const stop = new AbortController();
  const poll = fetch(`${host.url}/poll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ feeds: since, wait: 30 }),
    signal: stop.signal,
  }).catch((error: unknown) => error);
  await waitFor(() => held.size === 1);
  stop.abort();
  await poll;
  await waitFor(() => held.size === 0 && held.feedCount === 0);
});

describe('pipes, a query DTO, a custom decorator and @Req() in a feed route', () => {
  it('get their values from the feed request', async () => {
    const key = '/members/25/typed?kind=a';
    const answer = await batch(host.url, { [key]: null }, { 'x-tenant': 't9' });
    expectStatus(answer, 200);
    expect(answer.feeds[key].body).toEqual({
      run: 25,
      kind: 'a',
      tenant: 't9',
      path: '/members/25/typed',
      ids: [],
    });
  });

  it.each([
    ['a parameter pipe', '/members/abc/typed'],
    ['the query DTO', '/members/26/typed?kind=z'],
    ['the whitelist', '/members/26/typed?extra=1'],
  ])('refuse bad input with 400, as the GET does (%s)', async (_name, key) => {
    const get = await fetch(`${host.url}${key}`);
    expect(get.status).toBe(400);
    const answer = await batch(host.url, { [key]: null });
    expectStatus(answer, 400);
  });
});

describe('oversized batches', () => {
  it('refuses 1,000 feeds with 400 (more than maxFeeds)', async () => {
    const feeds = Object.fromEntries(
      Array.from({ length: 1000 }, (_, i) => [`/members/${i}/typed`, null]),
    );
    const answer = await batch(host.url, feeds);
    expectStatus(answer, 400);
    expect(JSON.parse(answer.text)).toMatchObject({ statusCode: 400 });
  });

  it('refuses a 10 MB body with 413 in JSON, and keeps serving', async () => {
    const res = await fetch(`${host.url}/poll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ feeds: { '/members/1/typed': 'x'.repeat(10 * 1024 * 1024) } }),
    });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    await res.arrayBuffer();
    expectStatus(await batch(host.url, { '/members/27/typed': null }), 200);
  });
});
