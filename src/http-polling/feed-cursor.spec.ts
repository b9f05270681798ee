import { FeedCursorCodec, MAX_CURSOR_LENGTH } from './feed-cursor';

// A null from decode() is what the interceptors turn into
// 400 "since is not a cursor issued by this feed".
describe('FeedCursorCodec', () => {
  const codec = new FeedCursorCodec('secret');

  it('decodes what it encoded, up to the largest safe position', () => {
    for (const cursor of [
      { generation: 'g1', position: 0 },
      { generation: 'abc123', position: 42 },
      { generation: 'z'.repeat(32), position: Number.MAX_SAFE_INTEGER },
    ]) {
      const text = codec.encode(cursor);
      expect(text.length).toBeLessThanOrEqual(MAX_CURSOR_LENGTH);
      expect(codec.decode(text)).toEqual(cursor);
      // A second server with the same secret accepts it (several instances behind a balancer).
      expect(new FeedCursorCodec('secret').decode(text)).toEqual(cursor);
    }
  });

  it('rejects a cursor whose position or generation was altered', () => {
    const text = codec.encode({ generation: 'g1', position: 41 });
    const [generation, position, mac] = text.split('.');
    expect(codec.decode(`${generation}.${Number(position) + 1}.${mac}`)).toBeNull();
    expect(codec.decode(`g2.${position}.${mac}`)).toBeNull();
    const flipped = mac[0] === 'A' ? `B${mac.slice(1)}` : `A${mac.slice(1)}`;
    expect(codec.decode(`${generation}.${position}.${flipped}`)).toBeNull();
  });

  it('rejects a cursor signed with another cursorSecret', () => {
    const text = new FeedCursorCodec('other').encode({ generation: 'g1', position: 7 });
    expect(codec.decode(text)).toBeNull();
  });

  it('rejects garbage without throwing', () => {
    const valid = codec.encode({ generation: 'g1', position: 5 });
    for (const text of [
      '',
      'abc',
      '5',
      'g1.5',
      `${valid}.extra`,
      `${valid}x`,
      ` ${valid}`,
      valid.replace('.5.', '.05.'), // leading zero: one position, one spelling
      valid.replace('.5.', '.-5.'),
      valid.replace('g1', 'G1'),
      'x'.repeat(MAX_CURSOR_LENGTH + 1),
      '{"generation":"g1","position":5}',
    ]) {
      expect(codec.decode(text)).toBeNull();
    }
  });

  it('rejects a position beyond the safe integers even with a well-formed shape', () => {
    const unsafe = codec.encode({ generation: 'g1', position: 2 ** 53 });
    expect(codec.decode(unsafe)).toBeNull();
  });

  it('hands out copies: a caller changing a decoded cursor does not change the next decode', () => {
    const text = codec.encode({ generation: 'g1', position: 3 });
    for (let i = 0; i < 2; i++) codec.decode(text)!.position = 999; // the second one from the cache
    expect(codec.decode(text)).toEqual({ generation: 'g1', position: 3 });
  });
});
