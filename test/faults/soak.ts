/**
 * The fault suite as a soak: rounds of every fault until the duration has passed.
 *   npm run test:soak -- 900     (seconds; default 600, or SOAK_SECONDS)
 * Prints the classification table; exits 1 when a change was lost, duplicated without a refetch,
 * unexpected, a follower was slower than the catch-up limit, or a fault's own check failed.
 */
import { CATCH_UP_LIMIT_MS, runCampaign } from './support/campaign';
import { formatCampaign } from './support/report';

async function main(): Promise<void> {
  const raw = process.argv[2] ?? process.env.SOAK_SECONDS ?? '600';
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new Error(`duration must be a positive number of seconds, got "${raw}"`);
  }
  const started = Date.now();
  const result = await runCampaign({
    durationMs: seconds * 1000,
    log: (line) => console.log(`[${Math.round((Date.now() - started) / 1000)} s] ${line}`),
  });
  console.log(formatCampaign(result));
  const { phases, unexpected, ackedButMissing } = result.classification;
  const violations = [
    ...phases.filter((p) => p.lost > 0).map((p) => `${p.phase}: ${p.lost} lost`),
    ...phases
      .filter((p) => p.duplicatedOther > 0)
      .map((p) => `${p.phase}: ${p.duplicatedOther} duplicated`),
    ...(unexpected.length > 0 ? [`${unexpected.length} unexpected`] : []),
    ...(ackedButMissing.length > 0
      ? [`${ackedButMissing.length} acknowledged writes missing`]
      : []),
    ...result.runs
      .filter((r) => !r.skipped && (r.catchUpMs === null || r.catchUpMs > CATCH_UP_LIMIT_MS))
      .map((r) => `round ${r.round} ${r.fault}: caught up in ${r.catchUpMs ?? 'never'} ms`),
    ...result.runs.flatMap((r) => r.failures.map((f) => `round ${r.round} ${r.fault}: ${f}`)),
    ...result.followers
      .filter((f) => f.stoppedWith)
      .map((f) => `${f.name} stopped: ${f.stoppedWith}`),
  ];
  console.log(
    violations.length === 0
      ? 'soak: all checks held'
      : `soak: FAILED\n  ${violations.join('\n  ')}`,
  );
  process.exitCode = violations.length === 0 ? 0 : 1;
}

main().catch((error: Error) => {
  console.error(error);
  process.exit(1);
});
