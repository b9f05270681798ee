import { Client } from 'pg';
import { startItemsFixture, type ItemsApp, type ItemsFixture } from '../fixtures/items-app';
import { revokedUsers } from '../fixtures/items-feed.controller';

describe('authorization of held requests', () => {
  let fixture: ItemsFixture;
  let items: ItemsApp;
  let writer: Client;

  beforeAll(async () => {
    fixture = await startItemsFixture();
    ({ items, writer } = fixture);
  });

  afterAll(() => fixture?.close());

  async function cursor(user: string): Promise<string> {
    const res = await fetch(`${items.url}/private/1/changes`, { headers: { 'x-user': user } });
    return res.headers.get('poll-cursor')!;
  }

  it('re-checks authorization when a held request wakes: revoked → 403, allowed → 200', async () => {
    const [alice, bob] = [await cursor('alice'), await cursor('bob')];
    const held = (user: string, since: string) =>
      fetch(`${items.url}/private/1/changes?since=${since}&wait=10`, {
        headers: { 'x-user': user },
      });
    const alicePoll = held('alice', alice);
    const bobPoll = held('bob', bob);
    await new Promise((r) => setTimeout(r, 150));
    revokedUsers.add('bob');
    await writer.query("INSERT INTO items (run, body) VALUES (1, 'secret')");
    const [a, b] = await Promise.all([alicePoll, bobPoll]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(403);
    expect(((await b.json()) as { message: string }).message).toMatch(/no longer allowed/);
    revokedUsers.delete('bob');
  });
});
