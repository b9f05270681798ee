import { BadRequestException } from '@nestjs/common';
import { thrownBy } from '../../test/support/thrown';
import type { PollingRequest } from '../polling-request.interface';
import {
  MAX_PARTITION_LENGTH,
  holdMs,
  readPartition,
  readSince,
  readWait,
} from './poll-request.parser';

/** Only what the parsers read of a request: the raw URL, headers and route params. */
function request(url: string, headers: Record<string, string | string[]> = {}, params = {}) {
  return { originalUrl: url, url, headers, params } as unknown as PollingRequest;
}

const rejection = (read: () => unknown) => thrownBy(read, BadRequestException).message;

describe('readSince', () => {
  it('is null without since, and the decoded value with it', () => {
    expect(readSince(request('/items'))).toBeNull();
    expect(readSince(request('/items?limit=5'))).toBeNull();
    expect(readSince(request('/items?since=g1.5.abc'))).toBe('g1.5.abc');
    expect(readSince(request('/items?since=g1%2E5'))).toBe('g1.5');
  });

  it('refuses an empty, repeated or bracketed since', () => {
    expect(rejection(() => readSince(request('/items?since=')))).toMatch(/must not be empty/);
    expect(rejection(() => readSince(request('/items?since=a&since=b')))).toMatch(/at most once/);
    expect(rejection(() => readSince(request('/items?since[a]=1')))).toMatch(/single plain value/);
  });

  it('reads the raw URL, so a query parser that dropped since[x] cannot hide it', () => {
    const req = { ...request('/items?since[x]=1'), query: {} } as unknown as PollingRequest;
    expect(() => readSince(req)).toThrow(BadRequestException);
  });
});

describe('readWait', () => {
  it('reads plain decimal seconds from ?wait=, with up to 3 decimals', () => {
    for (const [text, seconds] of [
      ['0', 0],
      ['25', 25],
      ['2.5', 2.5],
      ['0.125', 0.125],
      ['999999999999999', 999999999999999],
    ] as const) {
      expect(readWait(request(`/items?wait=${text}`))).toEqual({ seconds, fromPrefer: false });
    }
  });

  it('refuses signs, exponents, too many decimals or digits, and words', () => {
    for (const text of [
      '',
      '-1',
      '+1',
      '1e3',
      '0x10',
      '1.2345',
      '1.',
      '.5',
      '01',
      'abc',
      'Infinity',
      '1000000000000000',
    ]) {
      expect(rejection(() => readWait(request(`/items?wait=${encodeURIComponent(text)}`)))).toMatch(
        /^wait must be a number of seconds/,
      );
    }
  });

  it('reads RFC 7240 Prefer: wait=N when there is no ?wait=', () => {
    const prefer = (value: string | string[]) => readWait(request('/items', { prefer: value }));
    expect(prefer('wait=10')).toEqual({ seconds: 10, fromPrefer: true });
    expect(prefer('respond-async, Wait = 3 ')).toEqual({ seconds: 3, fromPrefer: true });
    expect(prefer('wait="4"; x=y')).toEqual({ seconds: 4, fromPrefer: true });
    expect(prefer(['respond-async', 'wait=7'])).toEqual({ seconds: 7, fromPrefer: true });
    expect(prefer('respond-async')).toEqual({ seconds: null, fromPrefer: false });
    expect(rejection(() => prefer('wait=soon'))).toMatch(/^Prefer: wait must be a number/);
  });

  it('lets ?wait= win over Prefer, and is null with neither', () => {
    expect(readWait(request('/items?wait=1', { prefer: 'wait=9' }))).toEqual({
      seconds: 1,
      fromPrefer: false,
    });
    expect(readWait(request('/items'))).toEqual({ seconds: null, fromPrefer: false });
  });
});

describe('holdMs', () => {
  it('uses the default when none was asked for, and clamps to the maximum', () => {
    expect(holdMs({ seconds: null, fromPrefer: false }, 25, 55)).toBe(25_000);
    expect(holdMs({ seconds: 0, fromPrefer: false }, 25, 55)).toBe(0);
    expect(holdMs({ seconds: 0.125, fromPrefer: true }, 25, 55)).toBe(125);
    expect(holdMs({ seconds: 55, fromPrefer: false }, 25, 55)).toBe(55_000);
    expect(holdMs({ seconds: 999999999999999, fromPrefer: false }, 25, 55)).toBe(55_000);
  });
});

describe('readPartition', () => {
  it('reads a route parameter or a function of the request, numbers as text', () => {
    expect(readPartition(request('/t/7', {}, { team: 'red' }), 'team')).toBe('red');
    expect(readPartition(request('/t/7'), () => 7)).toBe('7');
    const longest = 'x'.repeat(MAX_PARTITION_LENGTH);
    expect(readPartition(request('/t'), () => longest)).toBe(longest);
  });

  it('refuses a missing, empty, oversized or control-character partition', () => {
    const from = (value: unknown) => () => readPartition(request('/t'), () => value as string);
    expect(rejection(() => readPartition(request('/t'), 'team'))).toMatch(/partition is missing/);
    expect(rejection(from(undefined))).toMatch(/partition is missing/);
    expect(rejection(from({ id: 1 }))).toMatch(/partition is missing/);
    for (const value of ['', 'x'.repeat(MAX_PARTITION_LENGTH + 1), 'a\nb', 'a\u0000', 'a\u007f']) {
      expect(rejection(from(value))).toMatch(/must be 1 to 200 characters/);
    }
  });
});
