import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { followFeed, followFeeds } from '../../src/client';
import {
  backoffBounds,
  backoffDelay,
  parseRetryAfter,
  retryAfterDelay,
} from '../../src/client/backoff';
import { isRetryableStatus } from '../../src/client/errors';
import { waitParam, withQuery } from '../../src/client/http';
import { intervalBounds, nextInterval, parsePollInterval } from '../../src/client/short-poll';

describe('client building blocks', () => {
  it('backoffDelay: full jitter below min(max, base · 2^(attempt−1))', () => {
    const bounds = { baseMs: 100, maxMs: 1000 };
    const ceilings = [1, 2, 3, 4, 5, 6, 60].map((a) => backoffDelay(a, bounds, () => 0.999999));
    expect(ceilings).toEqual([99, 199, 399, 799, 999, 999, 999]);
    expect(backoffDelay(3, bounds, () => 0)).toBe(0);
    expect(backoffDelay(3, bounds, () => 0.5)).toBe(200);
    // An injected random outside [0, 1) cannot break the bounds.
    expect(backoffDelay(1, bounds, () => 7)).toBe(99);
    expect(backoffDelay(1, bounds, () => NaN)).toBe(0);
    expect(() => backoffBounds({ baseMs: 0 })).toThrow(TypeError);
    expect(() => backoffBounds({ baseMs: 500, maxMs: 100 })).toThrow(TypeError);
    expect(backoffBounds({ baseMs: 50_000 })).toEqual({ baseMs: 50_000, maxMs: 50_000 });
  });

  it('parseRetryAfter: delta-seconds or HTTP-date; retryAfterDelay never earlier', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('5', now)).toBe(5000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:07 GMT', now)).toBe(7000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-3', now)).toBeNull();
    expect(retryAfterDelay(1000, () => 0)).toBe(1000);
    expect(retryAfterDelay(1000, () => 0.999999)).toBe(1199);
  });

  it('retries 408, 429 and 5xx; other statuses are final', () => {
    expect([408, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 410, 413, 422].some(isRetryableStatus)).toBe(false);
  });

  it('nextInterval: the Poll-Interval hint when present, else shorter after data, longer after none', () => {
    const bounds = intervalBounds({ minMs: 500, maxMs: 8000 });
    expect(nextInterval(1000, { moved: false, hintMs: 3000 }, bounds)).toBe(3000);
    expect(nextInterval(1000, { moved: true, hintMs: 60_000 }, bounds)).toBe(8000);
    expect(nextInterval(1000, { moved: true, hintMs: 0 }, bounds)).toBe(500);
    const idle: number[] = [];
    let interval = bounds.minMs;
    for (let i = 0; i < 6; i++)
      idle.push((interval = nextInterval(interval, { moved: false, hintMs: null }, bounds)));
    expect(idle).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    const busy: number[] = [];
    for (let i = 0; i < 5; i++)
      busy.push((interval = nextInterval(interval, { moved: true, hintMs: null }, bounds)));
    expect(busy).toEqual([4000, 2000, 1000, 500, 500]);
    expect(
      nextInterval(0, { moved: false, hintMs: null }, intervalBounds({ minMs: 0, maxMs: 10 })),
    ).toBe(2);
    expect(parsePollInterval('30')).toBe(30_000);
    expect(parsePollInterval('1.5')).toBe(1500);
    expect(parsePollInterval('-1')).toBeNull();
    expect(parsePollInterval('abc')).toBeNull();
    expect(parsePollInterval(null)).toBeNull();
    expect(() => intervalBounds({ minMs: 10, maxMs: 5 })).toThrow(TypeError);
  });

  it('builds query strings and waits the server accepts', () => {
    expect(withQuery('/feed', { since: 'a.b+c', wait: '25' })).toBe('/feed?since=a.b%2Bc&wait=25');
    expect(withQuery('/feed?x=1', { since: 's' })).toBe('/feed?since=s&x=1');
    // One cache key per feed, cursor and wait however the app ordered its own parameters.
    const canonical = '/feed?a=2&b=1&since=s&tag=x&tag=y&wait=25';
    expect(withQuery('/feed?b=1&tag=x&a=2&tag=y', { since: 's', wait: '25' })).toBe(canonical);
    expect(withQuery('/feed?tag=x&tag=y&a=2&b=1', { since: 's', wait: '25' })).toBe(canonical);
    expect(withQuery('/feed?', { since: 's' })).toBe('/feed?since=s');
    expect(withQuery('/feed#top', { since: 's' })).toBe('/feed?since=s');
    expect(waitParam(0.1 + 0.2)).toBe('0.3');
    expect(waitParam(1e-7)).toBe('0');
    expect(waitParam(1e21)).toBe('3600');
    expect(() => waitParam(-1)).toThrow(TypeError);
    expect(() => waitParam(NaN)).toThrow(TypeError);
  });

  it('rejects invalid options before any request', async () => {
    const signal = new AbortController().signal;
    const onChanges = () => undefined;
    await expect(followFeed({ url: '', signal, onChanges })).rejects.toThrow('url');
    await expect(
      followFeed({ url: 'http://x', signal, onChanges, mode: 'medium' as 'long' }),
    ).rejects.toThrow('mode');
    await expect(followFeed({ url: 'http://x', signal, onChanges, wait: -1 })).rejects.toThrow(
      'wait',
    );
    await expect(
      followFeed({ url: 'http://x', signal: undefined as unknown as AbortSignal, onChanges }),
    ).rejects.toThrow('signal');
    await expect(followFeeds({ url: 'http://x', feeds: {}, signal, onChanges })).rejects.toThrow(
      'feeds',
    );
  });

  it('src/client imports only its own files, with .js extensions', () => {
    const dir = join(__dirname, '..', '..', 'src', 'client');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(join(dir, file), 'utf8');
      const specifiers = [
        ...source.matchAll(/\bfrom\s+'([^']+)'|\bimport\s*\(\s*'([^']+)'|\brequire\(\s*'([^']+)'/g),
      ].map((m) => m[1] ?? m[2] ?? m[3]);
      for (const specifier of specifiers) {
        expect(`${file}: ${specifier}`).toMatch(/: \.\/[a-z-]+\.js$/);
      }
    }
  });
});
