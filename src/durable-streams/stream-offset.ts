import type { FeedCursor, FeedCursorCodec } from '../http-polling/feed-cursor';

/** What a client may send as `offset`: the stream's start, its tail, or an offset we issued. */
export type RequestedOffset =
  { kind: 'start' } | { kind: 'now' } | { kind: 'at'; cursor: FeedCursor };

const GENERATION_WIDTH = 32; // FeedCursor generations are 1 to 32 of [0-9a-z]
const POSITION_WIDTH = 14; // 2^53 in hex
// '-' sorts below [0-9a-z]: a padded generation compares as its base-36 creation time does.
const SHAPE = /^(-*[0-9a-z]{1,32})_([0-9a-f]{14})_([A-Za-z0-9_-]{11})$/;

/**
 * Durable Streams offsets over our feed cursors: `<generation>_<position>_<mac>`, the generation
 * left-padded with `-` to 32 characters and the position as 14 lowercase hex digits. Fixed widths
 * make offsets sort as text the way positions do (PROTOCOL.md §8: lexicographically sortable,
 * strictly increasing), generations included: a generation starts with its creation time in
 * base 36. The MAC is the feed cursor's, so an altered offset is refused like an altered cursor.
 */
export class StreamOffsets {
  constructor(private readonly cursors: FeedCursorCodec) {}

  encode(cursor: FeedCursor): string {
    const text = this.cursors.encode(cursor);
    const mac = text.slice(text.lastIndexOf('.') + 1);
    const generation = cursor.generation.padStart(GENERATION_WIDTH, '-');
    const position = cursor.position.toString(16).padStart(POSITION_WIDTH, '0');
    return `${generation}_${position}_${mac}`;
  }

  /** From the cursor text FeedChecker answers with. */
  fromCursorText(text: string): string {
    const cursor = this.cursors.decode(text);
    if (!cursor) throw new Error(`nestjs-polling: not a feed cursor: ${text}`);
    return this.encode(cursor);
  }

  /** The offset a client sent; null when it is none of `-1`, `now` or an offset we issued. */
  decode(text: string): RequestedOffset | null {
    if (text === '-1') return { kind: 'start' };
    if (text === 'now') return { kind: 'now' };
    const match = SHAPE.exec(text);
    if (!match || match[1].length !== GENERATION_WIDTH) return null;
    const [, padded, hex, mac] = match;
    const generation = padded.replace(/^-+/, '');
    const position = parseInt(hex, 16);
    const cursor = this.cursors.decode(`${generation}.${position}.${mac}`);
    return cursor ? { kind: 'at', cursor } : null;
  }
}
