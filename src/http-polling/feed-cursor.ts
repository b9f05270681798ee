import { createHmac, timingSafeEqual } from 'node:crypto';

/** A position in one feed of one index generation, as a client holds it. */
export interface FeedCursor {
  generation: string;
  position: number;
}

const MAC_LENGTH = 11; // 64 bits of HMAC-SHA256, base64url
const SHAPE = /^([0-9a-z]{1,32})\.(0|[1-9][0-9]{0,15})\.([A-Za-z0-9_-]{11})$/;
export const MAX_CURSOR_LENGTH = 64;
const CACHE_SIZE = 10_000;

/** A Map that forgets its oldest entry beyond `size` (only valid cursors are ever stored). */
class BoundedCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly size: number) {}
  get(key: K): V | undefined {
    return this.map.get(key);
  }
  set(key: K, value: V): void {
    if (this.map.size >= this.size) this.map.delete(this.map.keys().next().value as K);
    this.map.set(key, value);
  }
}

/**
 * Cursors are opaque to clients: `generation.position.mac`. The MAC rejects altered cursors; with
 * the default secret it is only a checksum, with `cursorSecret` it is a signature.
 */
export class FeedCursorCodec {
  /**
   * Recently encoded and verified cursors. The 304 path encodes the same head and checks the same
   * cursor for every poll of a quiet feed; an HMAC each time was half of that path's own cost.
   */
  private readonly encoded = new BoundedCache<string, string>(CACHE_SIZE);
  private readonly verified = new BoundedCache<string, FeedCursor>(CACHE_SIZE);

  constructor(private readonly secret: string) {}

  encode(cursor: FeedCursor): string {
    const body = `${cursor.generation}.${cursor.position}`;
    let text = this.encoded.get(body);
    if (text === undefined) {
      text = `${body}.${this.mac(body)}`;
      this.encoded.set(body, text);
    }
    return text;
  }

  /** The cursor, or null when the text is not one this server made. */
  decode(text: string): FeedCursor | null {
    const known = this.verified.get(text);
    if (known) return { ...known };
    const cursor = this.verify(text);
    if (cursor) this.verified.set(text, cursor);
    return cursor ? { ...cursor } : null;
  }

  private verify(text: string): FeedCursor | null {
    if (text.length > MAX_CURSOR_LENGTH) return null;
    const match = SHAPE.exec(text);
    if (!match) return null;
    const [, generation, digits, mac] = match;
    const position = Number(digits);
    if (!Number.isSafeInteger(position)) return null;
    const expected = Buffer.from(this.mac(`${generation}.${digits}`));
    if (!timingSafeEqual(expected, Buffer.from(mac))) return null;
    return { generation, position };
  }

  private mac(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url').slice(0, MAC_LENGTH);
  }
}
