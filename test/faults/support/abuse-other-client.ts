import { setTimeout as sleep } from 'node:timers/promises';
import { exchange, freshAgent, now, type Answer } from './abuse-http';
import { Tally } from './abuse-stats';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

export interface PhaseSamples {
  /** Latency of every short poll and write, and the wake delay of every long poll (ms). */
  latencies: number[];
  statuses: Tally;
  /** The first few answers that were not the expected ones, for a failure message. */
  unexpected: string[];
}

/** Samples by phase, as sent between processes. */
export type SamplesReport = Record<
  string,
  { latencies: number[]; statuses: Record<string, number>; unexpected: string[] }
>;

const MAX_NOTES = 5;

export const emptySamples = (): PhaseSamples => ({
  latencies: [],
  statuses: new Tally(),
  unexpected: [],
});

// Gives the long poll time to be held before the write that wakes it.
const HOLD_BEFORE_WRITE_MS = 30;
const PAUSE_MS = 20;
// A request of the other client that takes this long is a failure, not a slow sample.
const GIVE_UP_MS = 15_000;

/** Tallies an unexpected outcome and keeps its first few descriptions. */
function note(samples: PhaseSamples, outcome: number | string, text: string): void {
  samples.statuses.add(outcome);
  if (samples.unexpected.length < MAX_NOTES) samples.unexpected.push(text.slice(0, 300));
}

/**
 * A well-behaved client with its own API key doing real work in a loop while others abuse the
 * server: a short poll with its cursor (If-None-Match → 304), then a long poll (200) woken by a
 * message it writes (201); any other answer is noted as unexpected. Samples are filed under the
 * phase current when each request started. It runs in a process of its own
 * (abuse-other-client-main.ts), so the abusers' work in the test process does not delay its event
 * loop: its latencies are the server's.
 */
export class OtherClient {
  private readonly phases = new Map<string, PhaseSamples>();
  private readonly agent = freshAgent();
  private current!: PhaseSamples;
  private cursor = '';
  private running: Promise<void> | null = null;
  private stopping = false;

  constructor(
    private readonly url: string,
    private readonly apiKey: string,
    private readonly channel: string,
  ) {
    this.enter('setup');
  }

  /** Files the following samples under `phase`. */
  enter(phase: string): void {
    if (!this.phases.has(phase)) this.phases.set(phase, emptySamples());
    this.current = this.phases.get(phase)!;
  }

  /** Every phase's samples so far. */
  report(): SamplesReport {
    const report: SamplesReport = {};
    for (const [phase, { latencies, statuses, unexpected }] of this.phases) {
      report[phase] = { latencies, statuses: statuses.toJSON(), unexpected };
    }
    return report;
  }

  async start(): Promise<void> {
    if (!this.cursor) {
      const head = await this.call('GET', this.changesUrl(), {}, 200);
      this.cursor = (JSON.parse(head!.body) as ChangesBody).cursor;
    }
    this.stopping = false;
    this.running = this.loop();
  }

  /** Ends the loop after its current iteration (nothing of this client is held then). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    this.running = null;
  }

  destroy(): void {
    this.agent.destroy();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.shortPoll();
        await this.wakeOwnLongPoll();
      } catch (error) {
        // E.g. a 200 whose body is not the JSON it should be: noted, and the loop goes on.
        note(this.current, 'error:loop', (error as Error).message);
      }
      await sleep(PAUSE_MS);
    }
  }

  private changesUrl(query = ''): string {
    return `${this.url}/channels/${this.channel}/changes${query}`;
  }

  private async shortPoll(): Promise<void> {
    const inm = { 'if-none-match': `"${this.cursor}"` };
    await this.call('GET', this.changesUrl(`?since=${this.cursor}&wait=0`), inm, 304);
  }

  private async wakeOwnLongPoll(): Promise<void> {
    const samples = this.current;
    const poll = this.call('GET', this.changesUrl(`?since=${this.cursor}&wait=10`), {}, 200, false);
    await sleep(HOLD_BEFORE_WRITE_MS);
    const wrote = now();
    const write = await this.call('POST', `${this.url}/channels/${this.channel}/messages`, {}, 201);
    const answer = await poll;
    if (!write || !answer) return;
    const body = JSON.parse(answer.body) as ChangesBody;
    const id = String((JSON.parse(write.body) as { id: string | number }).id);
    if (!body.changes.some((change) => String(change.id) === id)) {
      note(samples, 'missed', `the long poll answered without message ${id}: ${answer.body}`);
    }
    samples.latencies.push(answer.at - wrote);
    this.cursor = body.cursor;
  }

  /** One request, its status tallied; resolves null unless it got `expected`. */
  private async call(
    method: string,
    url: string,
    headers: Record<string, string>,
    expected: number,
    timed = true,
  ): Promise<Answer | null> {
    const samples = this.current;
    const started = now();
    const body = method === 'POST' ? JSON.stringify({ body: 'still here' }) : undefined;
    const allHeaders: Record<string, string> = { authorization: this.apiKey, ...headers };
    if (body) allHeaders['content-type'] = 'application/json';
    try {
      const answer = await exchange(url, {
        method,
        headers: allHeaders,
        body,
        agent: this.agent,
        timeoutMs: GIVE_UP_MS,
      }).answer;
      if (timed) samples.latencies.push(answer.at - started);
      if (answer.status === expected) {
        samples.statuses.add(answer.status);
        return answer;
      }
      note(samples, answer.status, `${method} ${url} → ${answer.status} ${answer.body}`);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'timeout';
      note(samples, `error:${code}`, `${method} ${url} → ${(error as Error).message}`);
    }
    return null;
  }
}
