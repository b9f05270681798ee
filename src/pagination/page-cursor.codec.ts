import { BadRequestException } from '@nestjs/common';
import { createHmac, timingSafeEqual } from 'node:crypto';

const MAX_LENGTH = 4096;
const MAC_LENGTH = 22; // 128 bits, base64url

/** The position of one row in one sort of one endpoint: the row's sort values and key, as text. */
export interface PagePosition {
  values: (string | null)[];
}

/**
 * Page cursors: base64url(JSON) plus an HMAC over the endpoint name, the sort and the payload, so
 * a cursor altered, or made for another sort or endpoint, is a 400.
 */
export class PageCursorCodec {
  constructor(
    private readonly name: string,
    private readonly secret: string,
  ) {}

  encode(sortSignature: string, position: PagePosition): string {
    const payload = Buffer.from(JSON.stringify(position.values)).toString('base64url');
    return `${payload}.${this.mac(sortSignature, payload)}`;
  }

  decode(text: unknown, sortSignature: string, width: number, param: string): PagePosition {
    if (typeof text !== 'string' || text.length === 0 || text.length > MAX_LENGTH) {
      throw new BadRequestException(`${param} must be a cursor from this endpoint`);
    }
    const [payload, mac, extra] = text.split('.');
    if (extra !== undefined || !payload || !mac || mac.length !== MAC_LENGTH) {
      throw new BadRequestException(`${param} is not a cursor from this endpoint`);
    }
    const expected = Buffer.from(this.mac(sortSignature, payload));
    if (!timingSafeEqual(expected, Buffer.from(mac.padEnd(MAC_LENGTH).slice(0, MAC_LENGTH)))) {
      throw new BadRequestException(
        `${param} was altered, or made for another sort or endpoint: start again from the first page`,
      );
    }
    let values: unknown;
    try {
      values = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw new BadRequestException(`${param} is not a cursor from this endpoint`);
    }
    const valid =
      Array.isArray(values) &&
      values.length === width &&
      values.every((v) => v === null || typeof v === 'string');
    if (!valid) throw new BadRequestException(`${param} is not a cursor from this endpoint`);
    return { values: values as (string | null)[] };
  }

  private mac(sortSignature: string, payload: string): string {
    return createHmac('sha256', this.secret)
      .update(`${this.name}\n${sortSignature}\n${payload}`)
      .digest('base64url')
      .slice(0, MAC_LENGTH);
  }
}
