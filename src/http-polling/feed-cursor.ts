import { createHmac, timingSafeEqual } from 'node:crypto';

/** A position in one feed of one index generation, as a client holds it. */
export interface FeedCursor {
  generation: string;
  position: number;
}

const MAC_LENGTH = 11; // 64 bits of HMAC-SHA256, base64url
const SHAPE = /^([0-9a-z]{1,32})\.(0|[1-9][0-9]{0,15})\.([A-Za-z0-9_-]{11})$/;
export const MAX_CURSOR_LENGTH = 64;

/**
 * Cursors are opaque to clients: `generation.position.mac`. The MAC rejects altered cursors; with
 * the default secret it is only a checksum, with `cursorSecret` it is a signature.
 */
export class FeedCursorCodec {
  constructor(private readonly secret: string) {}

  encode(cursor: FeedCursor): string {
    const body = `${cursor.generation}.${cursor.position}`;
    return `${body}.${this.mac(body)}`;
  }

  /** The cursor, or null when the text is not one this server made. */
  decode(text: string): FeedCursor | null {
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
