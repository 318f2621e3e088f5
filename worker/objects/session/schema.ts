// SQL schema of one SessionObject (session row, turns, chunk refs), its versioned migration, and row ↔ record mapping.
import type { MediaSpan } from "../../../format/wire/messages.ts";
import { CHUNK_SHARDS } from "../../keys.ts";
import { blobBytes, hasColumn, migrateToVersion, sqlOne, sqlRun, type SqlValue } from "../../sql.ts";
import type { ChunkRef, TurnRecord } from "../session-types.ts";

/**
 * v2: refs name the shard, row and offset that hold each chunk (rows may pack several chunks). v3: staged turns (a turn
 * appended in several requests: `staged_parts` and `staged_refs`, invisible to readers until the last part commits).
 */
export const SCHEMA_VERSION = 3;

export type SessionRow = {
  id: string;
  tenant: string;
  state: string;
  meta: string;
  expires_at: number;
};

export type TurnRow = {
  seq: number;
  tag: string;
  token_start: number;
  token_count: number;
  token_ids: ArrayBuffer;
  modality: ArrayBuffer;
  positions: ArrayBuffer;
  media: string;
  next_position: number;
  bytes_stored: number;
  bytes_uncompressed: number;
  created_at: number;
};

export type RefRow = {
  seq: number;
  slot: number;
  layer_start: number;
  layer_count: number;
  sealed: number;
  token_start: number;
  token_count: number;
  chunk_key: string;
  bytes: number;
  prefix: string;
  shard: number;
  row_key: string;
  row_offset: number;
};

/** True when this object's storage already holds the schema (a session was created here once). */
export function hasSessionSchema(sql: SqlStorage): boolean {
  return sqlOne(sql, "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'session'") !== null;
}

/** Creates or upgrades the tables; a no-op when the stored schema version is current. */
export function migrateSessionSchema(storage: DurableObjectStorage): void {
  migrateToVersion(storage, SCHEMA_VERSION, (sql) => {
    sqlRun(
      sql,
      "CREATE TABLE IF NOT EXISTS session (one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL, tenant TEXT NOT NULL, state TEXT NOT NULL, meta TEXT NOT NULL, expires_at INTEGER NOT NULL)",
    );
    sqlRun(
      sql,
      `CREATE TABLE IF NOT EXISTS turns (seq INTEGER PRIMARY KEY, tag TEXT NOT NULL, token_start INTEGER NOT NULL, token_count INTEGER NOT NULL,
        token_ids BLOB NOT NULL, modality BLOB NOT NULL, positions BLOB NOT NULL, media TEXT NOT NULL, next_position INTEGER NOT NULL,
        bytes_stored INTEGER NOT NULL, bytes_uncompressed INTEGER NOT NULL, created_at INTEGER NOT NULL)`,
    );
    sqlRun(
      sql,
      `CREATE TABLE IF NOT EXISTS refs (seq INTEGER NOT NULL, slot INTEGER NOT NULL, layer_start INTEGER NOT NULL, layer_count INTEGER NOT NULL,
        sealed INTEGER NOT NULL, token_start INTEGER NOT NULL, token_count INTEGER NOT NULL, chunk_key TEXT NOT NULL, bytes INTEGER NOT NULL,
        prefix TEXT NOT NULL, shard INTEGER NOT NULL, row_key TEXT NOT NULL, row_offset INTEGER NOT NULL, PRIMARY KEY (seq, slot, layer_start))`,
    );
    // v1 refs: one chunk per row, keyed and sharded by the chunk key's first hex digit (worker/keys.ts shardOf).
    if (!hasColumn(sql, "refs", "shard")) {
      sqlRun(sql, "ALTER TABLE refs ADD COLUMN shard INTEGER NOT NULL DEFAULT 0");
      sqlRun(sql, "ALTER TABLE refs ADD COLUMN row_key TEXT NOT NULL DEFAULT ''");
      sqlRun(sql, "ALTER TABLE refs ADD COLUMN row_offset INTEGER NOT NULL DEFAULT 0");
      sqlRun(sql, `UPDATE refs SET shard = (instr('0123456789abcdef', substr(chunk_key, 1, 1)) - 1) % ${CHUNK_SHARDS}, row_key = chunk_key`);
    }
    sqlRun(sql, "CREATE INDEX IF NOT EXISTS refs_by_slot ON refs (slot, seq)");
    // v3: one row per staged part (same columns as turns, keyed by the upload tag and part number), and its refs.
    sqlRun(
      sql,
      `CREATE TABLE IF NOT EXISTS staged_parts (tag TEXT NOT NULL, part INTEGER NOT NULL, seq INTEGER NOT NULL, token_start INTEGER NOT NULL,
        token_count INTEGER NOT NULL, token_ids BLOB NOT NULL, modality BLOB NOT NULL, positions BLOB NOT NULL, media TEXT NOT NULL,
        next_position INTEGER NOT NULL, bytes_stored INTEGER NOT NULL, bytes_uncompressed INTEGER NOT NULL, chunks_stored INTEGER NOT NULL,
        chunks_reused INTEGER NOT NULL, lease_until INTEGER NOT NULL, PRIMARY KEY (tag, part))`,
    );
    sqlRun(
      sql,
      `CREATE TABLE IF NOT EXISTS staged_refs (tag TEXT NOT NULL, slot INTEGER NOT NULL, layer_start INTEGER NOT NULL, layer_count INTEGER NOT NULL,
        sealed INTEGER NOT NULL, token_start INTEGER NOT NULL, token_count INTEGER NOT NULL, chunk_key TEXT NOT NULL, bytes INTEGER NOT NULL,
        prefix TEXT NOT NULL, shard INTEGER NOT NULL, row_key TEXT NOT NULL, row_offset INTEGER NOT NULL, PRIMARY KEY (tag, slot, layer_start))`,
    );
  });
}

/** Little-endian bytes of a typed array, copied (the BLOB column owns them). */
export const toBytes = (a: Uint32Array | Int32Array | Uint8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();

/** The chunk-reference columns of `refs` and `staged_refs`, in the order `refValues` gives their values. */
export const REF_COLUMNS = "slot, layer_start, layer_count, sealed, token_start, token_count, chunk_key, bytes, prefix, shard, row_key, row_offset";

/** A chunk reference as the values of REF_COLUMNS (the inverse of refFromRow). */
export function refValues(r: ChunkRef): SqlValue[] {
  return [r.slot, r.layerStart, r.layerCount, r.sealed ? 1 : 0, r.tokenStart, r.tokenCount, r.key, r.bytes, r.prefix, r.shard, r.row, r.offset];
}

export function refFromRow(r: RefRow): ChunkRef {
  return {
    slot: r.slot,
    layerStart: r.layer_start,
    layerCount: r.layer_count,
    sealed: r.sealed === 1,
    tokenStart: r.token_start,
    tokenCount: r.token_count,
    key: r.chunk_key,
    bytes: r.bytes,
    prefix: r.prefix,
    shard: r.shard,
    row: r.row_key,
    offset: r.row_offset,
  };
}

export function turnFromRow(r: TurnRow): TurnRecord {
  return {
    seq: r.seq,
    tag: r.tag,
    tokenStart: r.token_start,
    tokenCount: r.token_count,
    tokenIds: new Uint32Array(blobBytes(r.token_ids).slice().buffer),
    modality: blobBytes(r.modality).slice(),
    positions: new Int32Array(blobBytes(r.positions).slice().buffer),
    media: JSON.parse(r.media) as MediaSpan[],
    nextPosition: r.next_position,
    bytesStored: r.bytes_stored,
    bytesUncompressed: r.bytes_uncompressed,
    createdAt: r.created_at,
  };
}
