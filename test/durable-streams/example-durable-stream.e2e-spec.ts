import { stream, type JsonBatch } from '@durable-streams/client';
import { MaterializedState, type ChangeEvent } from '@durable-streams/state';
import { auth, startExampleFixture, type ExampleFixture } from '../client/support/example-fixture';
import { waitFor } from '../support/wait-for';

/** A State Protocol change message as the example's channel stream sends it. */
type Change = ChangeEvent<{ id: string; channel: string; author: string; body: string }>;

/**
 * The example's channel feed as a Durable Stream, followed by the protocol's own client
 * (`@durable-streams/client`) and materialized by its state package: catch-up, long-poll, SSE,
 * each receiving rows written with SQL outside the app.
 */
describe('example channel feed as a Durable Stream (@durable-streams/client)', () => {
  let fx: ExampleFixture;
  const url = (channel: string) => `${fx.app.url}/v1/stream/channels/${channel}`;

  beforeAll(async () => {
    fx = await startExampleFixture();
  });

  afterAll(async () => {
    await fx?.close();
  });

  /** Follows `channel` live from `offset`, collecting batches until `stop()`. */
  async function follow(channel: string, offset: string, live: 'long-poll' | 'sse') {
    const batches: JsonBatch<Change>[] = [];
    const controller = new AbortController();
    /** `live=` mode and Content-Type of every response the client got. */
    const seen: string[] = [];
    const recording: typeof fetch = async (input, init) => {
      const answer = await fetch(input, init);
      const mode = new URL(String(input)).searchParams.get('live') ?? 'catch-up';
      seen.push(`${mode} ${answer.status} ${answer.headers.get('content-type')}`);
      return answer;
    };
    const res = await stream<Change>({
      fetch: recording,
      url: url(channel),
      headers: auth(),
      offset,
      live,
      json: true,
      signal: controller.signal,
    });
    res.subscribeJson((batch) => {
      batches.push(batch);
    });
    const items = () => batches.flatMap((b) => b.items);
    return { res, batches, items, seen, stop: () => controller.abort() };
  }

  /** Rows of the channel as a plain catch-up read returns them (once the reader indexed them). */
  async function readAll(channel: string): Promise<Change[]> {
    const res = await fetch(url(channel), { headers: auth() });
    return (await res.json()) as Change[];
  }

  async function tableRows(channel: string) {
    const { rows } = await fx.writer.query<{ id: string; body: string }>(
      'SELECT id::text, body FROM messages WHERE channel = $1 ORDER BY id',
      [channel],
    );
    return rows;
  }

  it('catches up from -1, then follows by long-poll and by SSE, receiving rows inserted with SQL', async () => {
    const first = await fx.insert('general', 'one');
    const second = await fx.insert('general', 'two');
    await fx.insert('random', 'elsewhere');
    await waitFor(async () => (await readAll('general')).length === 2);

    // Catch-up: every row of the channel, as inserts, and the offset to follow from.
    const catchUp = await stream<Change>({
      url: url('general'),
      headers: auth(),
      offset: '-1',
      live: false,
    });
    const items = await catchUp.json();
    expect(items.map((m) => [m.type, m.key, m.headers.operation, m.value?.body])).toEqual([
      ['message', first, 'insert', 'one'],
      ['message', second, 'insert', 'two'],
    ]);
    const offset = catchUp.offset;
    expect(offset).toMatch(/^[-0-9a-z]{32}_[0-9a-f]{14}_[\w-]{11}$/);

    // Long-poll: held at the tail until psql inserts a row.
    const longPoll = await follow('general', offset, 'long-poll');
    const sse = await follow('general', offset, 'sse');
    try {
      await new Promise((r) => setTimeout(r, 300)); // both are held at the tail now
      const third = await fx.insert('general', 'three');
      for (const live of [longPoll, sse]) {
        await waitFor(() => live.items().some((m) => m.key === third), {
          message: `${live.res.live} did not receive the row inserted with SQL`,
        });
        const row = live.items().find((m) => m.key === third)!;
        expect(row).toMatchObject({
          type: 'message',
          value: { body: 'three', channel: 'general' },
        });
        expect(row.headers.operation).toBe('update'); // a change after the offset: see the format
        expect(live.items().some((m) => m.value?.channel === 'random')).toBe(false);
        // The client used the transport asked for (it falls back to long-poll if SSE fails);
        // it may catch up with a plain read first.
        const other = live === sse ? 'long-poll ' : 'sse ';
        const expected =
          live === sse ? /^sse 200 text\/event-stream/ : /^long-poll 20[04] application\/json/;
        expect(live.seen.some((s) => expected.test(s))).toBe(true);
        expect(live.seen.filter((s) => s.startsWith(other))).toEqual([]);
        // Offsets only grow, and sort as text.
        const offsets = live.batches.map((b) => b.offset);
        expect([...offsets].sort()).toEqual(offsets);
        expect(offsets.every((o) => o >= offset)).toBe(true);
        const withData = live.batches.filter((b) => b.items.length > 0).map((b) => b.offset);
        expect(withData.every((o) => o > offset)).toBe(true);
      }
    } finally {
      longPoll.stop();
      sse.stop();
    }
  });

  it('materializes the channel with @durable-streams/state, matching the table through updates and deletes', async () => {
    const channel = 'state';
    const ids = [
      await fx.insert(channel, 'a'),
      await fx.insert(channel, 'b'),
      await fx.insert(channel, 'c'),
    ];
    await waitFor(async () => (await readAll(channel)).length === 3);

    const state = new MaterializedState();
    const live = await follow(channel, '-1', 'sse');
    const applied = new Set<JsonBatch<Change>>();
    const apply = () => {
      for (const batch of live.batches) {
        if (!applied.has(batch)) state.applyBatch([...batch.items] as ChangeEvent[]);
        applied.add(batch);
      }
    };
    const matches = async () => {
      apply();
      const rows = await tableRows(channel);
      const materialized = state.getType('message');
      return (
        materialized.size === rows.length &&
        rows.every(
          (row) => (materialized.get(row.id) as { body?: string } | undefined)?.body === row.body,
        )
      );
    };
    try {
      await waitFor(matches, { message: 'the snapshot does not match the table' });
      await fx.writer.query("UPDATE messages SET body = 'b2' WHERE id = $1", [ids[1]]);
      await fx.writer.query('DELETE FROM messages WHERE id = $1', [ids[0]]);
      await fx.insert(channel, 'd');
      await waitFor(matches, { message: 'the materialized channel does not match the table' });
      const operations = live.items().map((m) => m.headers.operation);
      expect(operations).toContain('delete');
      expect(state.getType('message').has(ids[0])).toBe(false);
      expect(state.get('message', ids[1])).toMatchObject({ body: 'b2' });
    } finally {
      live.stop();
    }
  });
});
