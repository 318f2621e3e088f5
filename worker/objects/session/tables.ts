// Row access to one SessionObject's tables: the session row, the head of the turn log, turn/ref inserts and the ref
// resolution every read path shares. Holds whether the schema exists, so lookups of unknown sessions never write.
import { sqlOne, sqlRows, sqlRun } from "../../sql.ts";
import type { ChunkRef, SessionMeta, SessionState, TurnRecord } from "../session-types.ts";
import { hasSessionSchema, migrateSessionSchema, REF_COLUMNS, refValues, toBytes, type RefRow, type SessionRow } from "./schema.ts";

export interface HeadState {
  readonly head: number;
  readonly tokens: number;
  readonly nextPosition: number;
}

export class SessionTables {
  readonly sql: SqlStorage;
  /** Schema present. Only create/initFork build it; lookups of unknown or deleted sessions leave storage empty. */
  #ready = false;

  constructor(readonly storage: DurableObjectStorage) {
    this.sql = storage.sql;
  }

  /** At construction: adopts (and upgrades) an existing schema, creates nothing. */
  open(): void {
    if (hasSessionSchema(this.sql)) this.ensureSchema();
  }

  /** Creates or upgrades the schema (the create and fork paths). */
  ensureSchema(): void {
    this.#ready = true;
    migrateSessionSchema(this.storage);
  }

  /** After deleteAll: the object is empty again. */
  forget(): void {
    this.#ready = false;
  }

  readSession(): SessionRow | null {
    if (!this.#ready) return null;
    return sqlOne<SessionRow>(this.sql, "SELECT id, tenant, state, meta, expires_at FROM session");
  }

  hasSession(): boolean {
    return sqlOne(this.sql, "SELECT 1 AS x FROM session") !== null;
  }

  writeSession(meta: SessionMeta, state: SessionState): void {
    sqlRun(
      this.sql,
      "INSERT INTO session (one, id, tenant, state, meta, expires_at) VALUES (1, ?, ?, ?, ?, ?)",
      meta.id,
      meta.tenant,
      state,
      JSON.stringify(meta),
      meta.expiresAt,
    );
  }

  setState(state: SessionState): void {
    sqlRun(this.sql, "UPDATE session SET state = ?", state);
  }

  setExpiry(expiresAt: number): void {
    sqlRun(this.sql, "UPDATE session SET expires_at = ?", expiresAt);
  }

  headState(): HeadState {
    const last = sqlOne<{ seq: number; end: number; next_position: number }>(
      this.sql,
      "SELECT seq, token_start + token_count AS end, next_position FROM turns ORDER BY seq DESC LIMIT 1",
    );
    return last === null ? { head: 0, tokens: 0, nextPosition: 0 } : { head: last.seq, tokens: last.end, nextPosition: last.next_position };
  }

  insertTurn(t: TurnRecord, refs: readonly ChunkRef[]): void {
    sqlRun(
      this.sql,
      `INSERT INTO turns (seq, tag, token_start, token_count, token_ids, modality, positions, media, next_position, bytes_stored,
        bytes_uncompressed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      t.seq,
      t.tag,
      t.tokenStart,
      t.tokenCount,
      toBytes(t.tokenIds),
      toBytes(t.modality),
      toBytes(t.positions),
      JSON.stringify(t.media),
      t.nextPosition,
      t.bytesStored,
      t.bytesUncompressed,
      t.createdAt,
    );
    for (const r of refs) {
      sqlRun(this.sql, `INSERT INTO refs (seq, ${REF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.seq, ...refValues(r));
    }
  }

  /** For each slot in [slotFrom, slotTo], the refs of the newest turn that uploaded it, filtered by layer overlap. */
  resolveRows(slotFrom: number, slotTo: number, layerStart: number, layerEnd: number): RefRow[] {
    return sqlRows<RefRow>(
      this.sql,
      `SELECT r.* FROM refs r JOIN (SELECT slot, MAX(seq) AS seq FROM refs WHERE slot BETWEEN ? AND ? GROUP BY slot) m
        ON r.slot = m.slot AND r.seq = m.seq
        WHERE r.layer_start < ? AND r.layer_start + r.layer_count > ? ORDER BY r.slot, r.layer_start`,
      slotFrom,
      slotTo,
      layerEnd,
      layerStart,
    );
  }
}
