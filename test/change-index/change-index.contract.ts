import fc from 'fast-check';
import type {
  AppendBatch,
  ChangeIndex,
  FeedChanges,
  IndexedChange,
} from '../../src/change-index/change-index.interface';

export type ChangeIndexFactory = () => Promise<{
  index: ChangeIndex;
  cleanup: () => Promise<void>;
}>;

const GEN = 'gen-1';
/** The reader checkpoint of a generation that starts at the beginning of the change log. */
const LOG_START = { readerXid: '0', readerId: '0' };

/** The behaviour every ChangeIndex implementation must share. */
export function describeChangeIndexContract(name: string, factory: ChangeIndexFactory): void {
  describe(`${name} (ChangeIndex contract)`, () => {
    let index: ChangeIndex;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ index, cleanup } = await factory());
    });

    afterEach(async () => {
      await index.close();
      await cleanup();
    });

    /** Appends at the current head; fails the test when the index refuses. */
    async function write(changes: IndexedChange[], generation = GEN): Promise<number> {
      const head = await index.head();
      if (!head) throw new Error('no head');
      const result = await index.append(batch(generation, head.position, changes));
      if (!result.ok) throw new Error(`append refused: ${result.reason}`);
      return result.head.position;
    }

    describe('before any generation', () => {
      it('has no head and answers unavailable', async () => {
        expect(await index.head()).toBeNull();
        expect(await index.feedPosition('a')).toEqual({ kind: 'unavailable' });
        expect(await index.changesSince('a', GEN, 0, 10)).toEqual({ kind: 'unavailable' });
        expect(await index.append(batch(GEN, 0, [c('a', '1')]))).toEqual({
          ok: false,
          reason: 'lost',
        });
        await index.trim(5);
        expect(await index.head()).toBeNull();
      });
    });

    describe('startGeneration', () => {
      it('starts at position 0', async () => {
        const head = await index.startGeneration(GEN, LOG_START);
        const expected = { generation: GEN, position: 0, readerXid: '0', readerId: '0', floor: 0 };
        expect(head).toEqual(expected);
        expect(await index.head()).toEqual(expected);
        expect(await index.changesSince('a', GEN, 0, 10)).toEqual({
          kind: 'changes',
          generation: GEN,
          feedPosition: 0,
          complete: true,
          changed: [],
        });
      });

      it('records where the generation starts in the change log, before any append', async () => {
        // A reader that reconnects or takes over before the first append resumes from the head's
        // checkpoint: (0, 0) here would replay the whole retained log into the new generation.
        const start = { readerXid: '18446744073709551615', readerId: '42' };
        expect(await index.startGeneration(GEN, start)).toMatchObject({ position: 0, ...start });
        expect(await index.head()).toEqual({ generation: GEN, position: 0, floor: 0, ...start });
        const appended = await index.append(batch(GEN, 0, [c('a', '1')]));
        expect(appended).toMatchObject({ ok: true, head: { position: 1, readerXid: '1' } });
      });

      it('refuses a checkpoint that is not a pair of decimal strings', async () => {
        const bad = [
          { readerXid: '', readerId: '0' },
          { readerXid: '1', readerId: '-1' },
          undefined,
        ];
        for (const checkpoint of bad) {
          await expect(
            index.startGeneration(GEN, checkpoint as unknown as typeof LOG_START),
          ).rejects.toThrow(RangeError);
        }
        expect(await index.head()).toBeNull();
      });

      it('wipes the previous generation; its cursors must refetch', async () => {
        await index.startGeneration(GEN, LOG_START);
        await write([c('a', '1'), c('b', '2'), c('a', '3')]);
        await index.trim(1);

        const head = await index.startGeneration('gen-2', { readerXid: '900', readerId: '5' });
        expect(head).toEqual({
          generation: 'gen-2',
          position: 0,
          readerXid: '900',
          readerId: '5',
          floor: 0,
        });
        expect(await index.head()).toEqual(head);
        expect(await index.feedPosition('a')).toEqual({
          kind: 'position',
          generation: 'gen-2',
          position: 0,
          floor: 0,
        });
        expect(await index.changesSince('a', GEN, 3, 10)).toEqual({
          kind: 'refetch',
          reason: 'generation',
          generation: 'gen-2',
          feedPosition: 0,
        });
        expect(await index.append(batch(GEN, 3, [c('a', '9')]))).toEqual({
          ok: false,
          reason: 'lost',
        });
        // Old members are gone, not just hidden: the new generation starts clean.
        await write([c('b', '7')], 'gen-2');
        expect(await changed(index, 'a', 'gen-2', 0)).toEqual([]);
        expect(await changed(index, 'b', 'gen-2', 0)).toEqual([{ resourceId: '7', position: 1 }]);
      });
    });

    describe('append', () => {
      beforeEach(async () => {
        await index.startGeneration(GEN, LOG_START);
      });

      it('assigns dense positions in order and moves the head', async () => {
        const first = await index.append({
          ...batch(GEN, 0, [c('a', '1'), c('b', '2'), c('a', '3')]),
          readerXid: '100',
          readerId: '7',
        });
        expect(first).toEqual({
          ok: true,
          head: { generation: GEN, position: 3, readerXid: '100', readerId: '7', floor: 0 },
        });
        const second = await index.append(batch(GEN, 3, [c('b', '4')]));
        expect(second.ok && second.head.position).toBe(4);
        expect(await index.head()).toMatchObject({ generation: GEN, position: 4 });

        expect(await changed(index, 'a', GEN, 0)).toEqual([
          { resourceId: '1', position: 1 },
          { resourceId: '3', position: 3 },
        ]);
        expect(await changed(index, 'b', GEN, 0)).toEqual([
          { resourceId: '2', position: 2 },
          { resourceId: '4', position: 4 },
        ]);
      });

      it('accepts an empty batch: only the reader checkpoint moves', async () => {
        await write([c('a', '1')]);
        const result = await index.append({ ...batch(GEN, 1, []), readerXid: '55', readerId: '9' });
        expect(result).toEqual({
          ok: true,
          head: { generation: GEN, position: 1, readerXid: '55', readerId: '9', floor: 0 },
        });
      });

      it('refuses a stale expectedPosition with conflict and writes nothing', async () => {
        const old = batch(GEN, 0, [c('a', '1'), c('a', '2')]);
        await index.append(old);
        await write([c('a', '1')]); // id 1 moves on to position 3

        expect(await index.append(old)).toEqual({ ok: false, reason: 'conflict' });
        expect(await index.append(batch(GEN, 7, [c('a', '1')]))).toEqual({
          ok: false,
          reason: 'conflict',
        });
        expect(await index.head()).toMatchObject({ position: 3 });
        expect(await changed(index, 'a', GEN, 0)).toEqual([
          { resourceId: '2', position: 2 },
          { resourceId: '1', position: 3 },
        ]);
      });

      it('lets exactly one of two concurrent appends at the same position win', async () => {
        await write([c('a', '1')]);
        const results = await Promise.all([
          index.append(batch(GEN, 1, [c('a', 'x')])),
          index.append(batch(GEN, 1, [c('a', 'y'), c('a', 'z')])),
        ]);
        expect(results.filter((r) => r.ok)).toHaveLength(1);
        expect(results.filter((r) => !r.ok)).toEqual([{ ok: false, reason: 'conflict' }]);
        const winner = results.find((r) => r.ok);
        expect(await index.head()).toMatchObject({ position: winner?.ok && winner.head.position });
      });

      it('refuses another generation with lost', async () => {
        await write([c('a', '1')]);
        expect(await index.append(batch('gen-other', 1, [c('a', '2')]))).toEqual({
          ok: false,
          reason: 'lost',
        });
        expect(await index.head()).toMatchObject({ generation: GEN, position: 1 });
      });

      it('keeps only the latest change per id, across and within batches', async () => {
        await write([c('a', '1'), c('a', '2')]);
        await write([c('a', '1'), c('b', '1'), c('a', '3'), c('a', '3')]);
        expect(await changed(index, 'a', GEN, 0)).toEqual([
          { resourceId: '2', position: 2 },
          { resourceId: '1', position: 3 },
          { resourceId: '3', position: 6 },
        ]);
        expect(await changed(index, 'b', GEN, 0)).toEqual([{ resourceId: '1', position: 4 }]);
      });

      it('validates positions', async () => {
        await expect(index.append(batch(GEN, -1, []))).rejects.toThrow(RangeError);
        await expect(index.append(batch(GEN, 1.5, []))).rejects.toThrow(RangeError);
      });
    });

    describe('changesSince', () => {
      beforeEach(async () => {
        await index.startGeneration(GEN, LOG_START);
        // positions: 1 a/1, 2 b/1, 3 a/2, 4 a/3, 5 b/2, 6 a/4, 7 c/1
        await write([c('a', '1'), c('b', '1'), c('a', '2')]);
        await write([c('a', '3'), c('b', '2'), c('a', '4'), c('c', '1')]);
      });

      it('returns the feed changes strictly after the position', async () => {
        expect(await index.changesSince('a', GEN, 3, 10)).toEqual({
          kind: 'changes',
          generation: GEN,
          feedPosition: 6,
          complete: true,
          changed: [
            { resourceId: '3', position: 4 },
            { resourceId: '4', position: 6 },
          ],
        });
        expect(await changed(index, 'b', GEN, 2)).toEqual([{ resourceId: '2', position: 5 }]);
      });

      it('never moves a cursor backwards', async () => {
        // Feed b last changed at 5; a cursor at the head (7) stays at 7.
        expect(await index.changesSince('b', GEN, 7, 10)).toEqual({
          kind: 'changes',
          generation: GEN,
          feedPosition: 7,
          complete: true,
          changed: [],
        });
        expect(await index.changesSince('unknown', GEN, 7, 10)).toMatchObject({
          feedPosition: 7,
          changed: [],
        });
      });

      it('respects limit: complete false and feedPosition at the last returned change', async () => {
        const page = await index.changesSince('a', GEN, 0, 2);
        expect(page).toEqual({
          kind: 'changes',
          generation: GEN,
          feedPosition: 3,
          complete: false,
          changed: [
            { resourceId: '1', position: 1 },
            { resourceId: '2', position: 3 },
          ],
        });
        expect(await index.changesSince('a', GEN, 3, 2)).toEqual({
          kind: 'changes',
          generation: GEN,
          feedPosition: 6,
          complete: true,
          changed: [
            { resourceId: '3', position: 4 },
            { resourceId: '4', position: 6 },
          ],
        });
      });

      it('asks for a refetch on another generation', async () => {
        expect(await index.changesSince('a', 'gen-0', 3, 10)).toEqual({
          kind: 'refetch',
          reason: 'generation',
          generation: GEN,
          feedPosition: 6,
        });
      });

      it('asks for a refetch when the position is ahead of the head', async () => {
        expect(await index.changesSince('a', GEN, 8, 10)).toEqual({
          kind: 'refetch',
          reason: 'ahead',
          generation: GEN,
          feedPosition: 6,
        });
      });

      it('validates position and limit', async () => {
        await expect(index.changesSince('a', GEN, -1, 10)).rejects.toThrow(RangeError);
        await expect(index.changesSince('a', GEN, 0, 0)).rejects.toThrow(RangeError);
        await expect(index.changesSince('a', GEN, 0, 2.5)).rejects.toThrow(RangeError);
      });
    });

    describe('feedPosition', () => {
      beforeEach(async () => {
        await index.startGeneration(GEN, LOG_START);
      });

      it('is the last position the feed changed at', async () => {
        await write([c('a', '1'), c('b', '1'), c('a', '2'), c('b', '1')]);
        expect(await index.feedPosition('a')).toEqual({
          kind: 'position',
          generation: GEN,
          position: 3,
          floor: 0,
        });
        expect(await index.feedPosition('b')).toMatchObject({ position: 4 });
      });

      it('is 0 for a feed that never changed', async () => {
        await write([c('a', '1')]);
        expect(await index.feedPosition('nothing')).toEqual({
          kind: 'position',
          generation: GEN,
          position: 0,
          floor: 0,
        });
      });
    });

    describe('trim', () => {
      beforeEach(async () => {
        await index.startGeneration(GEN, LOG_START);
        // positions: 1 a/1, 2 b/1, 3 a/2, 4 a/1, 5 q/1 (q stays quiet afterwards), 6 a/3, 7 b/2
        await write([c('a', '1'), c('b', '1'), c('a', '2'), c('a', '1'), c('q', '1')]);
        await write([c('a', '3'), c('b', '2')]);
      });

      it('removes members at or below the position and raises the floor', async () => {
        await index.trim(3);
        expect(await index.head()).toMatchObject({ position: 7, floor: 3 });
        expect(await changed(index, 'a', GEN, 3)).toEqual([
          { resourceId: '1', position: 4 },
          { resourceId: '3', position: 6 },
        ]);
        expect(await changed(index, 'b', GEN, 2)).toEqual([{ resourceId: '2', position: 7 }]);
        // Trimming never lowers the floor.
        await index.trim(2);
        expect(await index.head()).toMatchObject({ floor: 3 });
      });

      it('asks cursors that missed a removed change to refetch', async () => {
        await index.trim(3);
        // a lost its change at 3: cursors below 3 cannot be answered any more.
        expect(await index.changesSince('a', GEN, 2, 10)).toEqual({
          kind: 'refetch',
          reason: 'trimmed',
          generation: GEN,
          feedPosition: 6,
        });
        expect(await index.feedPosition('a')).toMatchObject({ position: 6, floor: 3 });
        // b lost its change at 2 only: a cursor at 2 has seen it.
        expect(await index.feedPosition('b')).toMatchObject({ position: 7, floor: 2 });
        expect(await index.changesSince('b', GEN, 1, 10)).toMatchObject({
          kind: 'refetch',
          reason: 'trimmed',
        });
        expect(await changed(index, 'b', GEN, 2)).toEqual([{ resourceId: '2', position: 7 }]);
      });

      it('drops a feed whose changes all aged out; it answers with the index floor', async () => {
        await index.trim(6);
        // q changed only at 5, now removed: it leaves the index (its memory is freed) and answers
        // like any feed with no indexed change: nothing after the floor, so position = floor = 6.
        expect(await index.feedPosition('q')).toEqual({
          kind: 'position',
          generation: GEN,
          position: 6,
          floor: 6,
        });
        expect(await index.changesSince('q', GEN, 6, 10)).toEqual({
          kind: 'changes',
          generation: GEN,
          feedPosition: 6,
          complete: true,
          changed: [],
        });
        // A cursor below the floor may have missed a change the index no longer knows.
        expect(await index.changesSince('q', GEN, 5, 10)).toMatchObject({
          kind: 'refetch',
          reason: 'trimmed',
          feedPosition: 6,
        });
        expect(await index.feedPosition('never')).toMatchObject({ position: 6, floor: 6 });
      });

      it('starts a feed that re-enters the index at the floor', async () => {
        await index.trim(6);
        await write([c('q', '2')]); // position 8
        expect(await index.feedPosition('q')).toMatchObject({ position: 8, floor: 6 });
        // q's change at 5 is gone: a cursor from before it must refetch, not get only q/2.
        expect(await index.changesSince('q', GEN, 4, 10)).toMatchObject({
          kind: 'refetch',
          reason: 'trimmed',
        });
        expect(await changed(index, 'q', GEN, 6)).toEqual([{ resourceId: '2', position: 8 }]);
      });

      it('keeps a quiet feed answerable from its own floor until the forget line passes it', async () => {
        await index.trim(6, 0);
        // q changed only at 5: its change is gone, its floor stays; a client that polled it
        // (cursor 5, or the index floor 6 it was handed since) has missed nothing.
        expect(await index.feedPosition('q')).toEqual({
          kind: 'position',
          generation: GEN,
          position: 6,
          floor: 5,
        });
        expect(await changed(index, 'q', GEN, 5)).toEqual([]);
        expect(await index.changesSince('q', GEN, 4, 10)).toMatchObject({ reason: 'trimmed' });
        // A feed that never changed: nothing to forget, every cursor of this generation is valid.
        expect(await index.feedPosition('never')).toMatchObject({ position: 6, floor: 0 });
        expect(await changed(index, 'never', GEN, 0)).toEqual([]);
        // The floor keeps rising; cursors handed out meanwhile stay valid until it is forgotten.
        await write([c('a', '4')]); // 8
        await index.trim(8, 5);
        expect(await changed(index, 'q', GEN, 6)).toEqual([]);
        expect(await index.feedPosition('never')).toMatchObject({ position: 8, floor: 5 });
        expect(await index.changesSince('never', GEN, 4, 10)).toMatchObject({
          reason: 'trimmed',
        });
        // Past the forget line q keeps nothing of its own: it answers like any quiet feed.
        expect(await index.feedPosition('q')).toMatchObject({ position: 8, floor: 5 });
        await index.trim(8, 8);
        expect(await index.feedPosition('q')).toMatchObject({ position: 8, floor: 8 });
      });

      it('gives a quiet feed that changes again its own floor back', async () => {
        await index.trim(6, 0);
        await write([c('q', '2'), c('new', '1')]); // 8, 9
        expect(await index.feedPosition('q')).toMatchObject({ position: 8, floor: 5 });
        expect(await changed(index, 'q', GEN, 5)).toEqual([{ resourceId: '2', position: 8 }]);
        // A feed entering for the first time had no change above the forget line (0).
        expect(await index.feedPosition('new')).toMatchObject({ position: 9, floor: 0 });
      });

      it('keeps a feed that never changed untouched before any trim', async () => {
        expect(await index.feedPosition('never')).toMatchObject({ position: 0, floor: 0 });
        expect(await changed(index, 'never', GEN, 0)).toEqual([]);
      });

      it('clamps to the head so later appends stay above the floor', async () => {
        await index.trim(100);
        expect(await index.head()).toMatchObject({ position: 7, floor: 7 });
        expect(await changed(index, 'a', GEN, 7)).toEqual([]);
        await write([c('a', '9')]);
        expect(await changed(index, 'a', GEN, 7)).toEqual([{ resourceId: '9', position: 8 }]);
      });
    });

    describe('expiredPosition', () => {
      beforeEach(async () => {
        await index.startGeneration(GEN, LOG_START);
      });

      async function writeAt(writtenAt: number, changes: IndexedChange[]): Promise<number> {
        const head = (await index.head())!;
        const result = await index.append({ ...batch(GEN, head.position, changes), writtenAt });
        if (!result.ok) throw new Error(`append refused: ${result.reason}`);
        return result.head.position;
      }

      it('finds the last position written before a time, by marks about a second apart', async () => {
        expect(await index.expiredPosition(Date.now())).toBe(0);
        await writeAt(10_000, [c('a', '1')]); // 1
        await writeAt(10_400, [c('a', '2'), c('b', '1')]); // 3: same mark as 1 (within a second)
        await writeAt(12_000, [c('a', '3')]); // 4
        await writeAt(15_000, [c('c', '1')]); // 5
        expect(await index.expiredPosition(10_000)).toBe(0);
        expect(await index.expiredPosition(10_001)).toBe(3);
        expect(await index.expiredPosition(12_000)).toBe(3);
        expect(await index.expiredPosition(14_999)).toBe(4);
        expect(await index.expiredPosition(20_000)).toBe(5);
      });

      it('forgets marks at or below the forget line and after a new generation', async () => {
        await writeAt(10_000, [c('a', '1')]);
        await writeAt(12_000, [c('a', '2')]);
        await index.trim(2, 0);
        expect(await index.expiredPosition(11_000)).toBe(1); // still needed for the forget line
        await index.trim(2, 1);
        expect(await index.expiredPosition(11_000)).toBe(0);
        expect(await index.expiredPosition(13_000)).toBe(2);
        await index.startGeneration('gen-2', LOG_START);
        expect(await index.expiredPosition(13_000)).toBe(0);
      });
    });

    it('matches a simple model over random appends and trims', async () => {
      const op = fc.oneof(
        fc.record({
          kind: fc.constant('append' as const),
          changes: fc.array(
            fc.record({
              feed: fc.constantFrom('a', 'b', 'c'),
              resourceId: fc.constantFrom('1', '2', '3', '4', '5'),
            }),
            { maxLength: 8 },
          ),
        }),
        fc.record({
          kind: fc.constant('trim' as const),
          back: fc.nat({ max: 12 }),
          forgetBack: fc.nat({ max: 12 }),
        }),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { maxLength: 25 }),
          fc.integer({ min: 1, max: 4 }),
          async (ops, limit) => {
            const run = await factory();
            try {
              await checkAgainstModel(run.index, ops, limit);
            } finally {
              await run.index.close();
              await run.cleanup();
            }
          },
        ),
        { numRuns: 25 },
      );
    });
  });
}

type Op =
  { kind: 'append'; changes: IndexedChange[] } | { kind: 'trim'; back: number; forgetBack: number };

interface ModelFeed {
  latest: Map<string, number>;
  max: number;
  floor: number;
}

async function checkAgainstModel(index: ChangeIndex, ops: Op[], limit: number): Promise<void> {
  const feeds = new Map<string, ModelFeed>();
  let head = 0;
  let floor = 0;
  let forgotten = 0;
  // A feed with no indexed change answers with the index floor as position; its floor is its own
  // until the forget line passes it, then the forget line.
  const feed = (name: string): ModelFeed => {
    const state = feeds.get(name);
    if (state && state.latest.size > 0) return state;
    return { latest: new Map(), max: floor, floor: state?.floor ?? forgotten };
  };
  const enter = (name: string): ModelFeed => {
    const state = feeds.get(name) ?? { latest: new Map(), max: 0, floor: forgotten };
    feeds.set(name, state);
    return state;
  };
  await index.startGeneration(GEN, LOG_START);
  for (const op of ops) {
    if (op.kind === 'append') {
      const result = await index.append(batch(GEN, head, op.changes));
      for (const change of op.changes) {
        head += 1;
        const state = enter(change.feed);
        state.latest.set(change.resourceId, head);
        state.max = head;
      }
      expect(result).toMatchObject({ ok: true, head: { position: head } });
    } else {
      const upTo = Math.max(0, head - op.back);
      const forget = Math.max(0, upTo - op.forgetBack);
      await index.trim(upTo, forget);
      floor = Math.max(floor, upTo);
      forgotten = Math.max(forgotten, forget);
      for (const [name, state] of feeds) {
        for (const [id, position] of state.latest) {
          if (position > upTo) continue;
          state.latest.delete(id);
          state.floor = Math.max(state.floor, position);
        }
        if (state.latest.size === 0 && state.floor <= forgotten) feeds.delete(name);
      }
    }
  }
  expect(await index.head()).toMatchObject({ position: head, floor });
  for (const name of ['a', 'b', 'c']) {
    const state = feed(name);
    expect(await index.feedPosition(name)).toEqual({
      kind: 'position',
      generation: GEN,
      position: state.max,
      floor: state.floor,
    });
    const all = [...state.latest]
      .map(([resourceId, position]) => ({ resourceId, position }))
      .sort((x, y) => x.position - y.position);
    for (let cursor = 0; cursor <= head; cursor++) {
      let expected: FeedChanges;
      if (cursor < state.floor) {
        const base = { kind: 'refetch', generation: GEN, feedPosition: state.max } as const;
        expected = { ...base, reason: 'trimmed' };
      } else {
        const after = all.filter((r) => r.position > cursor);
        const complete = after.length <= limit;
        const changed = after.slice(0, limit);
        const feedPosition = complete ? Math.max(cursor, state.max) : changed[limit - 1].position;
        expected = { kind: 'changes', generation: GEN, feedPosition, complete, changed };
      }
      expect(await index.changesSince(name, GEN, cursor, limit)).toEqual(expected);
    }
  }
}

function c(feed: string, resourceId: string): IndexedChange {
  return { feed, resourceId };
}

function batch(
  generation: string,
  expectedPosition: number,
  changes: IndexedChange[],
): AppendBatch {
  return { generation, expectedPosition, changes, readerXid: '1', readerId: '1' };
}

async function changed(index: ChangeIndex, feed: string, generation: string, position: number) {
  const result = await index.changesSince(feed, generation, position, 1000);
  if (result.kind !== 'changes') throw new Error(`expected changes, got ${JSON.stringify(result)}`);
  return result.changed;
}
