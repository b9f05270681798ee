import { MemoryChangeIndex } from '../../src/change-index/memory-change-index';
import { describeChangeIndexContract } from './change-index.contract';

describeChangeIndexContract('MemoryChangeIndex', async () => ({
  index: new MemoryChangeIndex(),
  cleanup: async () => undefined,
}));

describe('MemoryChangeIndex', () => {
  it('is not shared', () => {
    expect(new MemoryChangeIndex().shared).toBe(false);
  });

  it('compacts superseded log entries and stays correct', async () => {
    const index = new MemoryChangeIndex();
    await index.startGeneration('g', { readerXid: '0', readerId: '0' });
    let head = 0;
    for (let round = 0; round < 200; round++) {
      const changes = ['1', '2', '3'].map((resourceId) => ({ feed: 'a', resourceId }));
      const result = await index.append({
        generation: 'g',
        expectedPosition: head,
        changes,
        readerXid: '1',
        readerId: '1',
      });
      if (!result.ok) throw new Error(result.reason);
      head = result.head.position;
      // The last trim (round 190) leaves the final rounds untouched.
      if (round % 50 === 40) await index.trim(head - 2);
    }
    const log = (index as unknown as { feeds: Map<string, { log: unknown[] }> }).feeds.get('a')!;
    expect(log.log.length).toBeLessThan(200);
    expect(await index.changesSince('a', 'g', head - 3, 10)).toEqual({
      kind: 'changes',
      generation: 'g',
      feedPosition: head,
      complete: true,
      changed: [
        { resourceId: '1', position: head - 2 },
        { resourceId: '2', position: head - 1 },
        { resourceId: '3', position: head },
      ],
    });
    expect(await index.changesSince('a', 'g', head - 4, 10)).toMatchObject({
      changed: [{}, {}, {}],
    });
  });
});
