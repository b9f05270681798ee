import type { Follower } from './follower';
import type { AckedWrite } from './writers';

/** One committed row of the messages table: the truth, read after the writers stopped. */
export interface CommittedRow {
  id: string;
  channel: string;
}

/** The deliveries of the changes committed in one phase, over every follower of their channel. */
export interface PhaseCounts {
  phase: string;
  committed: number;
  /** Follower × change pairs that had to arrive. */
  expected: number;
  delivered: number;
  lost: number;
  /**
   * Seen more than once, but only across a reload the client was told to make (409): in the
   * reload, or once more by the feed after it. Allowed.
   */
  duplicatedOnRefetch: number;
  /** Delivered twice by the feed between two reloads: never allowed. */
  duplicatedOther: number;
}

export interface Classification {
  phases: PhaseCounts[];
  /** Seen by a follower but never committed in its channel (rolled back, other channel, deleted). */
  unexpected: { follower: string; id: string }[];
  /** Writes the database acknowledged that are not in the table (a database-side loss). */
  ackedButMissing: string[];
}

const UNACKNOWLEDGED = 'commit answer lost';

export function emptyCounts(phase: string): PhaseCounts {
  return {
    phase,
    committed: 0,
    expected: 0,
    delivered: 0,
    lost: 0,
    duplicatedOnRefetch: 0,
    duplicatedOther: 0,
  };
}

/**
 * Every (follower, committed change of its channel) pair is delivered, lost or duplicated; every
 * id a follower saw that is not a committed change of its channel is unexpected. Changes are
 * grouped by the phase their commit was acknowledged in.
 */
export function classify(
  committed: CommittedRow[],
  acked: AckedWrite[],
  followers: Follower[],
  phaseOrder: string[],
): Classification {
  const phaseOf = new Map(acked.map((write) => [write.id, write.phase]));
  const committedIds = new Set(committed.map((row) => row.id));
  const byPhase = new Map<string, PhaseCounts>();
  const counts = (phase: string) => {
    let entry = byPhase.get(phase);
    if (!entry) {
      entry = emptyCounts(phase);
      byPhase.set(phase, entry);
    }
    return entry;
  };
  const channelOf = new Map(committed.map((row) => [row.id, row.channel]));
  for (const row of committed) {
    const entry = counts(phaseOf.get(row.id) ?? UNACKNOWLEDGED);
    entry.committed++;
    for (const follower of followers.filter((f) => f.channel === row.channel)) {
      entry.expected++;
      const sightings = follower.seen.get(row.id);
      if (!sightings) {
        entry.lost++;
        continue;
      }
      entry.delivered++;
      const { changeEpochs, refetches } = sightings;
      if (changeEpochs.length + refetches > 1) {
        const repeatedByFeed = new Set(changeEpochs).size < changeEpochs.length;
        if (repeatedByFeed) entry.duplicatedOther++;
        else entry.duplicatedOnRefetch++;
      }
    }
  }
  const unexpected: Classification['unexpected'] = [];
  for (const follower of followers) {
    for (const id of follower.seen.keys()) {
      if (channelOf.get(id) !== follower.channel) unexpected.push({ follower: follower.name, id });
    }
    for (const id of follower.foreign) unexpected.push({ follower: follower.name, id });
  }
  const order = [...phaseOrder, UNACKNOWLEDGED];
  const phases = [...byPhase.values()].sort(
    (a, b) => order.indexOf(a.phase) - order.indexOf(b.phase),
  );
  return {
    phases,
    unexpected,
    ackedButMissing: acked.filter((write) => !committedIds.has(write.id)).map((write) => write.id),
  };
}
