import { BadRequestException } from '@nestjs/common';
import { thrownBy } from '../../../test/support/thrown';
import { MAX_CURSOR_LENGTH } from '../feed-cursor';
import { parseBatchRequest } from './batch-request.parser';

const rejection = (body: unknown, maxFeeds = 3) =>
  thrownBy(() => parseBatchRequest(body, maxFeeds), BadRequestException).message;

describe('parseBatchRequest', () => {
  it('reads feeds in their order, null cursors as "start at the head", and wait', () => {
    expect(parseBatchRequest({ feeds: { '/a': 'g1.1.x', '/b?x=1': null }, wait: 2.5 }, 3)).toEqual({
      entries: [
        { key: '/a', since: 'g1.1.x' },
        { key: '/b?x=1', since: null },
      ],
      waitS: 2.5,
    });
    expect(parseBatchRequest({ feeds: { '/a': null } }, 3).waitS).toBeNull();
    expect(parseBatchRequest({ feeds: { '/a': null }, wait: 0 }, 3).waitS).toBe(0);
  });

  it('takes exactly maxFeeds feeds and refuses one more', () => {
    const feeds = (n: number) => Object.fromEntries([...Array(n)].map((_, i) => [`/f${i}`, null]));
    expect(parseBatchRequest({ feeds: feeds(3) }, 3).entries).toHaveLength(3);
    expect(rejection({ feeds: feeds(4) })).toBe('feeds names 4 feeds; the maximum is 3');
  });

  it('refuses a body that is not {feeds, wait}', () => {
    for (const body of [undefined, null, 'feeds', 42, [], [{ feeds: {} }]]) {
      expect(rejection(body)).toMatch(/body must be a JSON object/);
    }
    expect(rejection({ feeds: { '/a': null }, since: 'x' })).toBe('unknown field "since"');
    for (const feeds of [undefined, null, ['/a'], '/a']) {
      expect(rejection({ feeds })).toMatch(/feeds must be an object of path/);
    }
    expect(rejection({ feeds: {} })).toMatch(/at least one feed/);
  });

  it('refuses keys that are not route paths, up to 500 characters', () => {
    const longest = `/${'k'.repeat(499)}`;
    expect(parseBatchRequest({ feeds: { [longest]: null } }, 3).entries[0].key).toBe(longest);
    for (const key of ['a', '', 'http://x/a', `${longest}k`]) {
      expect(rejection({ feeds: { [key]: null } })).toMatch(
        /must be a route path starting with \//,
      );
    }
  });

  it('refuses cursors that are not non-empty strings of at most the cursor length', () => {
    const longest = 'c'.repeat(MAX_CURSOR_LENGTH);
    expect(parseBatchRequest({ feeds: { '/a': longest } }, 3).entries[0].since).toBe(longest);
    for (const since of ['', `${longest}c`, 5, {}, ['g1.1.x'], true]) {
      expect(rejection({ feeds: { '/a': since } })).toMatch(/must be a cursor string or null/);
    }
  });

  it('refuses a wait that is not a number of seconds', () => {
    for (const wait of [-1, '5', null, Infinity, NaN, {}]) {
      expect(rejection({ feeds: { '/a': null }, wait })).toMatch(/^wait must be a number/);
    }
  });
});
