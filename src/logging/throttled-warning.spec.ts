import { ThrottledWarning } from './throttled-warning';

describe('ThrottledWarning', () => {
  afterEach(() => jest.useRealTimers());

  it('logs once per interval and then says how many it left out', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const lines: string[] = [];
    const warning = new ThrottledWarning({ warn: (m: string) => lines.push(m) }, 10_000);
    for (let i = 0; i < 500; i++) warning.warn('change index unavailable: down');
    expect(lines).toEqual(['change index unavailable: down']);

    jest.setSystemTime(1_000_000 + 10_000);
    warning.warn('change index unavailable: still down');
    expect(lines).toEqual([
      'change index unavailable: down',
      'change index unavailable: still down (499 more since the last report)',
    ]);
  });
});
