import { FeedCursorCodec } from '../http-polling/feed-cursor';
import { streamCursor } from './stream-cursor';
import { StreamOffsets } from './stream-offset';

describe('StreamOffsets', () => {
  const offsets = new StreamOffsets(new FeedCursorCodec('secret'));

  it('round-trips a cursor, and knows the sentinels -1 and now', () => {
    const offset = offsets.encode({ generation: 'mxaxylk1049fb2', position: 42 });
    expect(offsets.decode(offset)).toEqual({
      kind: 'at',
      cursor: { generation: 'mxaxylk1049fb2', position: 42 },
    });
    expect(offsets.decode('-1')).toEqual({ kind: 'start' });
    expect(offsets.decode('now')).toEqual({ kind: 'now' });
  });

  it('sorts as text the way positions and generations (base-36 time first) do', () => {
    const made = [
      { generation: 'zz', position: 5 },
      { generation: 'zz', position: 16 },
      { generation: 'zz', position: 2 ** 40 },
      { generation: '100', position: 1 }, // 36^2: a later generation than 'zz'
      { generation: 'mxaxylk1049fb2', position: 0 },
    ].map((cursor) => offsets.encode(cursor));
    expect([...made].sort()).toEqual(made);
    for (const offset of made) expect(offset).not.toMatch(/[,&=?/]/);
  });

  it('refuses anything it did not issue: altered, foreign, malformed', () => {
    const offset = offsets.encode({ generation: 'g1', position: 7 });
    const altered = offset.replace(/_0+7_/, '_00000000000008_');
    const foreign = new StreamOffsets(new FeedCursorCodec('other')).encode({
      generation: 'g1',
      position: 7,
    });
    for (const bad of [
      altered,
      foreign,
      '',
      '0',
      'a,b',
      'now ',
      '-2',
      offset.slice(1),
      offset + 'x',
    ]) {
      expect(offsets.decode(bad)).toBeNull();
    }
  });
});

describe('streamCursor', () => {
  const at = Date.UTC(2026, 0, 1);
  const current = Math.floor((at - Date.UTC(2024, 9, 9)) / 20_000);

  it('is the current 20 s interval, or past the echoed cursor when that is not behind', () => {
    expect(streamCursor(null, at)).toBe(String(current));
    expect(streamCursor(String(current - 5), at)).toBe(String(current));
    expect(streamCursor('garbage', at)).toBe(String(current));
    for (let i = 0; i < 50; i++) {
      const next = Number(streamCursor(String(current), at));
      expect(next).toBeGreaterThan(current);
      expect(next).toBeLessThanOrEqual(current + 180);
    }
  });
});
