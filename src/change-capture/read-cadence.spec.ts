import { MAX_READ_PAUSE_MS, MIN_READ_PAUSE_MS, pauseAfterRead } from './read-cadence';

describe('pauseAfterRead', () => {
  it('keeps the minimum pause after a fast read (latency on an idle machine is unchanged)', () => {
    expect(pauseAfterRead(0)).toBe(MIN_READ_PAUSE_MS);
    expect(pauseAfterRead(0.4)).toBe(MIN_READ_PAUSE_MS);
  });

  it('pauses three times as long as a slow read took: the loop is busy at most a quarter of the time', () => {
    expect(pauseAfterRead(2)).toBe(6);
    expect(pauseAfterRead(5)).toBe(15);
  });

  it('never pauses longer than the latency bound, however slow the read', () => {
    expect(pauseAfterRead(40)).toBe(MAX_READ_PAUSE_MS);
    expect(pauseAfterRead(10_000)).toBe(MAX_READ_PAUSE_MS);
  });
});
