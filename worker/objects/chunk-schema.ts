// SQL schema of one ChunkObject (rows, the chunks they pack, holds) and its versioned migration.
import { hasColumn, migrateToVersion, sqlRun } from "../sql.ts";

/** v2: `uncompressed` column (bf16 GQA size of the row's chunks) so freed rows report what they held. v3: `members`. */
export const CHUNK_SCHEMA_VERSION = 3;

/** Creates or upgrades the tables; a no-op when the stored schema version is current. */
export function migrateChunkSchema(storage: DurableObjectStorage): void {
  migrateToVersion(storage, CHUNK_SCHEMA_VERSION, (sql) => {
    sqlRun(
      sql,
      "CREATE TABLE IF NOT EXISTS chunks (key TEXT PRIMARY KEY, bytes BLOB NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, uncompressed INTEGER NOT NULL DEFAULT 0)",
    );
    // v1 tables lack the column; their rows report 0 uncompressed bytes when freed (the gauge clamps at 0).
    if (!hasColumn(sql, "chunks", "uncompressed")) sqlRun(sql, "ALTER TABLE chunks ADD COLUMN uncompressed INTEGER NOT NULL DEFAULT 0");
    sqlRun(sql, "CREATE TABLE IF NOT EXISTS holds (key TEXT NOT NULL, holder TEXT NOT NULL, tag TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (key, holder, tag))");
    sqlRun(sql, "CREATE INDEX IF NOT EXISTS holds_by_holder ON holds (holder, tag)");
    sqlRun(sql, "CREATE INDEX IF NOT EXISTS holds_by_expiry ON holds (expires_at) WHERE expires_at IS NOT NULL");
    // v3: rows written before packing hold one chunk each, under the chunk's own key.
    sqlRun(sql, "CREATE TABLE IF NOT EXISTS members (chunk TEXT PRIMARY KEY, row_key TEXT NOT NULL, at INTEGER NOT NULL, length INTEGER NOT NULL)");
    sqlRun(sql, "CREATE INDEX IF NOT EXISTS members_by_row ON members (row_key)");
    sqlRun(sql, "INSERT OR IGNORE INTO members (chunk, row_key, at, length) SELECT key, key, 0, size FROM chunks");
  });
}
