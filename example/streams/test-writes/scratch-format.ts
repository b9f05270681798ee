import type { PollingRequest as Request } from '../../../src';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { StreamBatch, StreamFormat, StreamRead } from '../../../src';
import { SCRATCH_STREAMS } from './scratch-tables';

/** One append as stored: its id and bytes (for a JSON stream, the JSON array of its messages). */
export interface AppendRow {
  id: string;
  body: Buffer;
}

export const mediaType = (contentType: string) => contentType.split(';')[0].trim().toLowerCase();
export const isJson = (contentType: string) => mediaType(contentType) === 'application/json';

/** The stream's content type, or null when no PUT created it. */
export async function streamContentType(db: DataSource, name: string): Promise<string | null> {
  const rows: { content_type: string }[] = await db.query(
    `SELECT content_type FROM ${SCRATCH_STREAMS} WHERE name = $1`,
    [name],
  );
  return rows[0]?.content_type ?? null;
}

/**
 * A scratch stream's content is what was appended, in append order: the JSON messages of a JSON
 * stream, the bytes of any other. The handler returns the appends of the read (all of them from
 * the start, else those of `changedIds`); appends never change, so each id is one append.
 */
@Injectable()
export class ScratchFormat implements StreamFormat {
  /** Each request's stream content type, read once. */
  private readonly types = new WeakMap<Request, string | null>();

  constructor(@Inject(DataSource) private readonly db: DataSource) {}

  async contentType(req: Request): Promise<string | null> {
    if (!this.types.has(req)) {
      this.types.set(req, await streamContentType(this.db, String(req.params.name)));
    }
    return this.types.get(req)!;
  }

  batch(answer: unknown, read: StreamRead): StreamBatch {
    const rows = answer as AppendRow[];
    const byId = new Map(rows.map((row) => [row.id, row]));
    const ordered =
      read.poll.since === null
        ? rows
        : read.poll.changedIds.flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));
    const json = this.types.get(read.request);
    if (json !== undefined && json !== null && isJson(json)) {
      return { json: ordered.flatMap((row) => JSON.parse(row.body.toString('utf8')) as unknown[]) };
    }
    return { bytes: Buffer.concat(ordered.map((row) => row.body)) };
  }
}
