import type { ObjectLiteral, Repository } from 'typeorm';

export type FeedChange<T> = { id: string; op: 'upsert'; row: T } | { id: string; op: 'delete' };

/**
 * Turns a PollContext's changed ids into upserts (the row as it is now) and deletes (no row any
 * more), in the order of `changedIds`. One query; none when nothing changed.
 */
export async function loadFeedChanges<T extends ObjectLiteral>(
  repository: Repository<T>,
  changedIds: readonly string[],
  keyProperty = 'id',
): Promise<FeedChange<T>[]> {
  if (changedIds.length === 0) return [];
  const column = repository.metadata.findColumnWithPropertyPath(keyProperty);
  if (!column) {
    throw new Error(`nestjs-polling: ${repository.metadata.name} has no property "${keyProperty}"`);
  }
  const rows = await repository
    .createQueryBuilder('row')
    .where(`row.${column.propertyPath} IN (:...ids)`, { ids: changedIds })
    .getMany();
  const byId = new Map(rows.map((row) => [String(column.getEntityValue(row)), row]));
  return changedIds.map((id) => {
    const row = byId.get(id);
    return row ? { id, op: 'upsert', row } : { id, op: 'delete' };
  });
}
