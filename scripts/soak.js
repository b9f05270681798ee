#!/usr/bin/env node
// npm run test:soak -- 900: the fault suite's rounds repeated for 900 s (default 600, or
// SOAK_SECONDS), through jest so it runs the same spec and prints the same table.
const { spawnSync } = require('node:child_process');

const raw = process.argv[2] ?? process.env.SOAK_SECONDS ?? '600';
if (!/^[0-9]+$/.test(raw) || Number(raw) <= 0) {
  console.error(`test:soak: the duration must be a whole number of seconds > 0, got "${raw}"`);
  process.exit(2);
}
const jest = require.resolve('jest/bin/jest');
const run = spawnSync(
  process.execPath,
  [jest, '--runInBand', 'test/faults/fault-campaign.e2e-spec.ts'],
  { stdio: 'inherit', env: { ...process.env, SOAK_SECONDS: raw } },
);
process.exit(run.status ?? 1);
