import { BadRequestException } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import { thrownBy } from '../../test/support/thrown';
import { PageCursorCodec } from './page-cursor.codec';

const SORT = 'createdAt:desc,id:asc';

/** The message of the 400 a client gets. */
function rejection(decode: () => unknown): string {
  const error = thrownBy(decode, BadRequestException);
  expect(error.getStatus()).toBe(400);
  return error.message;
}

describe('PageCursorCodec', () => {
  const codec = new PageCursorCodec('articles', 'secret');

  it('decodes what it encoded: NULLs, unicode, commas and dots in values', () => {
    const values = ['2024-01-02T03:04:05.678Z', null, 'ünïcødé, "quoted". \n', ''];
    const text = codec.encode(SORT, { values });
    expect(text).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/); // URL-safe as it is
    expect(codec.decode(text, SORT, values.length, 'after')).toEqual({ values });
  });

  it('refuses a cursor made for another sort, endpoint or secret', () => {
    const text = codec.encode(SORT, { values: ['a', '1'] });
    const altered = /altered, or made for another sort or endpoint/;
    expect(rejection(() => codec.decode(text, 'createdAt:asc,id:asc', 2, 'after'))).toMatch(
      altered,
    );
    expect(
      rejection(() => new PageCursorCodec('users', 'secret').decode(text, SORT, 2, 'after')),
    ).toMatch(altered);
    expect(
      rejection(() => new PageCursorCodec('articles', 'other').decode(text, SORT, 2, 'after')),
    ).toMatch(altered);
  });

  it('refuses a cursor whose payload or MAC was altered', () => {
    const text = codec.encode(SORT, { values: ['a', '1'] });
    const [payload, mac] = text.split('.');
    const otherPayload = Buffer.from(JSON.stringify(['a', '2'])).toString('base64url');
    const flipped = mac[0] === 'A' ? `B${mac.slice(1)}` : `A${mac.slice(1)}`;
    for (const tampered of [`${otherPayload}.${mac}`, `${payload}.${flipped}`]) {
      expect(rejection(() => codec.decode(tampered, SORT, 2, 'before'))).toMatch(
        /^before was altered/,
      );
    }
  });

  it('refuses garbage with a 400 that names the parameter', () => {
    const valid = codec.encode(SORT, { values: ['a', '1'] });
    for (const text of [
      undefined,
      ['a', 'b'],
      42,
      '',
      'x'.repeat(4097),
      'no-dot',
      `${valid}.extra`,
      `.${valid.split('.')[1]}`,
      `${valid.split('.')[0]}.short`,
      `${valid}A`, // MAC one character too long
    ]) {
      expect(rejection(() => codec.decode(text, SORT, 2, 'after'))).toMatch(/^after /);
    }
  });

  it('refuses a genuine cursor of another width (a sort with more or fewer columns)', () => {
    const text = codec.encode(SORT, { values: ['a', '1'] });
    expect(rejection(() => codec.decode(text, SORT, 3, 'after'))).toMatch(/not a cursor/);
  });

  it('refuses a correctly signed payload that is not a list of strings (a leaked secret is not a 500)', () => {
    const sign = (payload: string) =>
      createHmac('sha256', 'secret')
        .update(`articles\n${SORT}\n${payload}`)
        .digest('base64url')
        .slice(0, 22);
    for (const json of ['{"a":1}', '[1,2]', '["a",{}]', 'not json', '']) {
      const payload = Buffer.from(json).toString('base64url') || 'AA';
      const text = `${payload}.${sign(payload)}`;
      expect(rejection(() => codec.decode(text, SORT, 2, 'after'))).toMatch(/not a cursor/);
    }
  });
});
