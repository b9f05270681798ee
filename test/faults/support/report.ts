import type { CampaignResult } from './campaign';
import { emptyCounts } from './classify';

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The classification table the suite prints: one row per phase, then the totals. */
export function formatCampaign(result: CampaignResult): string {
  const { classification, runs } = result;
  const catchUps = (phase: string) =>
    runs
      .filter((r) => r.fault === phase && !r.skipped)
      .map((r) => (r.catchUpMs === null ? 'never' : String(r.catchUpMs)))
      .join(', ');
  const notes = (phase: string) => {
    const run = runs.find((r) => r.fault === phase);
    if (!run) return '';
    if (run.skipped) return `skipped: ${run.skipped}`;
    const failed = runs.filter((r) => r.fault === phase).flatMap((r) => r.failures);
    return [run.note, ...failed.map((f) => `FAILED: ${f}`)].filter(Boolean).join('; ');
  };
  const phases = [...classification.phases];
  for (const run of runs) {
    if (run.skipped && !phases.some((p) => p.phase === run.fault)) {
      phases.push(emptyCounts(run.fault));
    }
  }
  const total = phases.reduce(
    (sum, p) => ({
      committed: sum.committed + p.committed,
      expected: sum.expected + p.expected,
      delivered: sum.delivered + p.delivered,
      lost: sum.lost + p.lost,
      refetch: sum.refetch + p.duplicatedOnRefetch,
      other: sum.other + p.duplicatedOther,
    }),
    { committed: 0, expected: 0, delivered: 0, lost: 0, refetch: 0, other: 0 },
  );
  const rows = phases.map((p) => [
    p.phase,
    String(p.committed),
    String(p.expected),
    String(p.delivered),
    String(p.lost),
    String(p.duplicatedOnRefetch),
    String(p.duplicatedOther),
    catchUps(p.phase),
    notes(p.phase),
  ]);
  rows.push([
    'total',
    String(total.committed),
    String(total.expected),
    String(total.delivered),
    String(total.lost),
    String(total.refetch),
    String(total.other),
    '',
    `unexpected: ${classification.unexpected.length}`,
  ]);
  const header = [
    'phase',
    'committed',
    'deliveries due',
    'delivered',
    'lost',
    'dup (told to refetch)',
    'dup (other)',
    'catch-up ms',
    'note',
  ];
  const followers = result.followers
    .map(
      (f) =>
        `${f.name}: ${f.resyncs} refetch(es), ${f.errors} retried error(s)` +
        [...f.errorKinds].map(([kind, n]) => ` [${n}× ${kind}]`).join('') +
        (f.fellBack ? ', fell back to long polling' : '') +
        (f.stoppedWith ? `, STOPPED: ${f.stoppedWith}` : ''),
    )
    .join('\n  ');
  return [
    `Fault suite on ${result.ownedPostgres}: ${result.writes.acked} acknowledged writes, ` +
      `${result.writes.rolledBack} rolled back, ${result.writes.errors} write errors during faults`,
    table(header, rows),
    `followers:\n  ${followers}`,
    classification.unexpected.length > 0
      ? `unexpected: ${JSON.stringify(classification.unexpected.slice(0, 20))}`
      : '',
    classification.ackedButMissing.length > 0
      ? `acknowledged but not in the table: ${classification.ackedButMissing.slice(0, 20).join(', ')}`
      : '',
  ]
    .filter(Boolean)
    .join('\n');
}
