/** The reader's position in the change log: the (xid, id) of the last row it consumed. */
export interface ChangeLogCursor {
  xid: string;
  id: string;
}

export const CHANGE_LOG_START: ChangeLogCursor = { xid: '0', id: '0' };

export interface ChangeLogRow {
  xid: string;
  id: string;
  feed: string;
  resourceId: string;
  /** When the change committed, in this process's clock (epoch ms); see ChangeLogQueries.read. */
  committedAt?: number;
}
