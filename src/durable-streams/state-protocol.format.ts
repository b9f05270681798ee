import type { DurableStreamOptions, StreamFormat, StreamRead } from './durable-stream.metadata';

/** A State Protocol change message (insert/update/delete of one row). */
export interface ChangeMessage {
  type: string;
  key: string;
  value?: unknown;
  headers: { operation: 'insert' | 'update' | 'delete' };
}

/**
 * The State Protocol format: the handler returns rows (all of them for a read from the stream's
 * start, else the rows of `poll.changedIds` that still exist). A read from the start is one
 * insert per row; after an offset each changed id is an update (its row as it is now) or, with
 * no row any more, a delete. The index keeps the latest change per row, not its history, so a
 * row created after the client's offset is an update too: materializers treat it as a put.
 */
export function stateProtocolFormat(
  options: Pick<DurableStreamOptions, 'feed' | 'type' | 'key'>,
): StreamFormat {
  const type = options.type ?? options.feed;
  const keyProperty = options.key ?? 'id';
  const keyOf = (row: unknown): string => {
    const key = (row as Record<string, unknown> | null)?.[keyProperty];
    if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'bigint') {
      throw new Error(`nestjs-polling: a @DurableStream row has no "${keyProperty}" key`);
    }
    return String(key);
  };
  return {
    contentType: () => 'application/json',
    batch(answer: unknown, read: StreamRead) {
      if (!Array.isArray(answer)) {
        throw new Error('nestjs-polling: a @DurableStream handler must return an array of rows');
      }
      const messages: unknown[] = [];
      if (read.reset) messages.push({ headers: { control: 'reset', offset: read.nextOffset } });
      if (read.poll.since === null) {
        for (const row of answer) {
          messages.push(change(type, keyOf(row), 'insert', row));
        }
        return { json: messages };
      }
      const rows = new Map(answer.map((row) => [keyOf(row), row]));
      for (const id of read.poll.changedIds) {
        const row = rows.get(id);
        messages.push(
          row === undefined ? change(type, id, 'delete') : change(type, id, 'update', row),
        );
      }
      return { json: messages };
    },
  };
}

function change(
  type: string,
  key: string,
  operation: ChangeMessage['headers']['operation'],
  value?: unknown,
): ChangeMessage {
  return value === undefined
    ? { type, key, headers: { operation } }
    : { type, key, value, headers: { operation } };
}
