// Thin SQL helpers for Durable Object SQLite: typed rows, failures rethrown as SqlError naming the statement.
import { WorkerError } from "./errors.ts";

export class SqlError extends WorkerError<"sql_failed"> {
  override readonly name = "SqlError";
  constructor(
    readonly query: string,
    cause: unknown,
  ) {
    super("sql_failed", `SQL failed: ${String(cause)} in: ${query.slice(0, 200)}`, { cause });
  }
}

export type SqlValue = string | number | null | ArrayBuffer | Uint8Array;

/** Runs one statement and returns its rows. */
export function sqlRows<T extends Record<string, SqlStorageValue>>(sql: SqlStorage, query: string, ...params: SqlValue[]): T[] {
  try {
    return sql.exec<T>(query, ...params).toArray();
  } catch (cause) {
    throw new SqlError(query, cause);
  }
}

/** Runs one statement and returns its first row, or null. */
export function sqlOne<T extends Record<string, SqlStorageValue>>(sql: SqlStorage, query: string, ...params: SqlValue[]): T | null {
  const rows = sqlRows<T>(sql, query, ...params);
  return rows.length > 0 ? rows[0] : null;
}

/** Runs a statement for its effect; returns rows written. */
export function sqlRun(sql: SqlStorage, query: string, ...params: SqlValue[]): number {
  try {
    const cursor = sql.exec(query, ...params);
    cursor.toArray();
    return cursor.rowsWritten;
  } catch (cause) {
    throw new SqlError(query, cause);
  }
}

/** D1/DO SQLite accept at most 100 bound parameters per statement (durable-objects/platform/limits). */
export const MAX_BOUND_PARAMS = 100;

/** Splits `items` into batches that keep `paramsPerItem · batch + extra` ≤ MAX_BOUND_PARAMS. */
export function paramBatches<T>(items: readonly T[], paramsPerItem: number, extra = 0): T[][] {
  const size = Math.max(1, Math.floor((MAX_BOUND_PARAMS - extra) / paramsPerItem));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** True when `table` has a column `column` (for upgrades that add columns with ALTER TABLE). */
export function hasColumn(sql: SqlStorage, table: string, column: string): boolean {
  return sqlOne(sql, "SELECT 1 AS x FROM pragma_table_info(?) WHERE name = ?", table, column) !== null;
}

/**
 * Runs `upgrade` in one transaction unless the object's `meta` table already records `version` (or later), then
 * records it. `upgrade` must be idempotent DDL (IF NOT EXISTS, column checks): it also runs on an empty database.
 */
export function migrateToVersion(storage: DurableObjectStorage, version: number, upgrade: (sql: SqlStorage) => void): void {
  const sql = storage.sql;
  sqlRun(sql, "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  const v = sqlOne<{ v: number }>(sql, "SELECT v FROM meta WHERE k = 'schema_version'");
  if (v !== null && v.v >= version) return;
  storage.transactionSync(() => {
    upgrade(sql);
    sqlRun(sql, "INSERT INTO meta (k, v) VALUES ('schema_version', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", version);
  });
}

/** BLOB column → bytes. */
export function blobBytes(v: SqlStorageValue): Uint8Array {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new SqlError("(blob read)", `expected a BLOB, got ${typeof v}`);
}
