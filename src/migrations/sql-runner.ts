/**
 * What the migrations and trackTable need of TypeORM's QueryRunner (a DataSource or a pg Client
 * fits too). Structural, so the public types do not require typeorm to be installed.
 */
export interface SqlRunner {
  query(sql: string, parameters?: unknown[]): Promise<unknown>;
}
