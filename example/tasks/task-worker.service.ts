import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import { EXAMPLE_CONFIG, type ExampleConfig } from '../config';

const PICK_EVERY_MS = 200;
/** A task left `running` this long (its worker died) is picked again. */
const STALE_RUNNING = '30 seconds';

/**
 * Picks pending tasks and completes them after a short delay: the "wait for an async job" case.
 * `FOR UPDATE SKIP LOCKED` lets several app instances share the queue.
 */
@Injectable()
export class TaskWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('TaskWorker');
  private timer: NodeJS.Timeout | null = null;
  private readonly working = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    @Inject(DataSource) private readonly db: DataSource,
    @Inject(EXAMPLE_CONFIG) private readonly config: ExampleConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.schedule();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.working]);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const work = this.pickAndRun()
        .catch((error: Error) => this.logger.warn(`task worker: ${error.message}`))
        .finally(() => {
          this.working.delete(work);
          this.schedule();
        });
      this.working.add(work);
    }, PICK_EVERY_MS);
  }

  private async pickAndRun(): Promise<void> {
    // A CTE so the driver returns the rows themselves (not [rows, count] as for a bare UPDATE).
    const [task] = (await this.db.query(
      `WITH picked AS (
         UPDATE tasks SET status = 'running', updated_at = now()
         WHERE id = (SELECT id FROM tasks
                     WHERE status = 'pending'
                        OR (status = 'running' AND updated_at < now() - interval '${STALE_RUNNING}')
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, input)
       SELECT * FROM picked`,
    )) as { id: string; input: string }[];
    if (!task) return;
    await new Promise((resolve) => setTimeout(resolve, this.config.taskDelayMs));
    const failed = /fail/i.test(task.input);
    await this.db.query(
      `UPDATE tasks SET status = $2, result = $3, updated_at = now() WHERE id = $1`,
      [
        task.id,
        failed ? 'failed' : 'done',
        failed ? 'the input asked to fail' : [...task.input].reverse().join(''),
      ],
    );
  }
}
