import { CATCH_UP_LIMIT_MS, runCampaign, type CampaignResult } from './support/campaign';
import { formatCampaign } from './support/report';

/**
 * Faults 1–8 of the fault suite, one round, against two built example-app processes sharing a
 * throw-away PostgreSQL cluster and redis-server, with SDK followers behind a load balancer.
 * `npm run test:soak -- <seconds>` (SOAK_SECONDS) repeats the rounds for that long.
 * FAULTS_ONLY=4a,6 runs only the faults whose names start so.
 */
const soakMs = Number(process.env.SOAK_SECONDS ?? 0) * 1000;

describe('fault suite: two instances, writers and SDK followers under faults', () => {
  let result: CampaignResult;

  beforeAll(async () => {
    result = await runCampaign({
      log: (line) => process.stdout.write(`${line}\n`),
      only: process.env.FAULTS_ONLY?.split(','),
      durationMs: soakMs,
    });
    process.stdout.write(`${formatCampaign(result)}\n`);
  }, 170_000 + soakMs);

  it('loses no committed change and delivers nothing that was not committed', () => {
    const lost = result.classification.phases.filter((p) => p.lost > 0);
    expect(lost).toEqual([]);
    expect(result.classification.unexpected).toEqual([]);
    expect(result.classification.ackedButMissing).toEqual([]);
  });

  it('duplicates a change only for a client that was told to refetch', () => {
    expect(result.classification.phases.filter((p) => p.duplicatedOther > 0)).toEqual([]);
  });

  it(`brings every follower to the newest change within ${CATCH_UP_LIMIT_MS} ms of each fault's end`, () => {
    const slow = result.runs.filter(
      (r) => !r.skipped && (r.catchUpMs === null || r.catchUpMs > CATCH_UP_LIMIT_MS),
    );
    expect(slow.map((r) => `${r.fault}: ${r.catchUpMs ?? 'never'} ms`)).toEqual([]);
  });

  it("holds each fault's own checks (one listener, 200 answered polls, health during the stall)", () => {
    expect(result.runs.flatMap((r) => r.failures.map((f) => `${r.fault}: ${f}`))).toEqual([]);
  });

  it('keeps every follower following (no follower gave up)', () => {
    expect(result.followers.filter((f) => f.stoppedWith !== null)).toEqual([]);
    expect(result.classification.phases.reduce((n, p) => n + p.committed, 0)).toBeGreaterThan(100);
  });
});
