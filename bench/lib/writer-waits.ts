import type { Client } from 'pg';

export interface WriterWaits {
  /** Gate samples taken during the load, and the share that found it armed (writers NOTIFY). */
  gateSamples: number;
  armedShare: number;
  /**
   * What the load's backends (application_name 'pgbench') were doing, as a share of all backend
   * samples: `CPU` (active, no wait event), `Lock:object` (the notify lock), `LWLock:WALWrite`,
   * `Client:ClientRead` (waiting for pgbench) ...
   */
  waits: Record<string, number>;
}

const SAMPLE_MS = 20;

/**
 * Runs `load` while sampling, every 20 ms, the wake gate and the wait events of pgbench's
 * backends: where writers spend their time. The same sampler runs beside every load of a
 * comparison, so each pays the same for it.
 */
export async function sampleWriters<T>(
  probe: Client,
  load: () => Promise<T>,
): Promise<{ result: T; writers: WriterWaits }> {
  let sampling = true;
  let gateSamples = 0;
  let armed = 0;
  let backendSamples = 0;
  const counts: Record<string, number> = {};
  const sampler = (async () => {
    while (sampling) {
      const { rows } = await probe.query<{ armed: boolean | null; wait: string; n: number }>(
        `SELECT (SELECT last_value <> 0 FROM polling_wake_gate) AS armed, w.wait, w.n
           FROM (SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait, count(*)::int AS n
                   FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'pgbench'
                  GROUP BY 1) w`,
      );
      if (rows.length) {
        gateSamples += 1;
        if (rows[0].armed) armed += 1; // any reader's bit (wake-gate.ts)
      }
      for (const { wait, n } of rows) {
        counts[wait] = (counts[wait] ?? 0) + n;
        backendSamples += n;
      }
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  try {
    const result = await load();
    return {
      result,
      writers: {
        gateSamples,
        armedShare: gateSamples ? armed / gateSamples : 0,
        waits: Object.fromEntries(
          Object.entries(counts)
            .sort((a, b) => b[1] - a[1])
            .map(([wait, n]) => [wait, n / Math.max(1, backendSamples)]),
        ),
      },
    };
  } finally {
    sampling = false;
    await sampler;
  }
}

/** The main wait events as text: `CPU 55%, Client:ClientRead 30%, ...` (those ≥ 2%). */
export function describeWaits(waits: Record<string, number>): string {
  return Object.entries(waits)
    .filter(([, share]) => share >= 0.02)
    .map(([wait, share]) => `${wait} ${(100 * share).toFixed(0)}%`)
    .join(', ');
}
