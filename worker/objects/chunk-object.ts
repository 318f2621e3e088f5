// Content-addressed chunk rows of one tenant shard, with holds: a row lives while any (holder, tag) holds it.
// Holder = a session id; tag = the upload that produced the turn (leased until the turn commits, then permanent).
// Dedupe = same key ⇒ no new row, one more hold. Expired upload leases are reaped by the alarm.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.ts";
import { blobBytes, paramBatches, sqlOne, sqlRows, sqlRun } from "../sql.ts";

/** v2: `uncompressed` column (bf16 GQA size of the row's tokens × layers) so freed rows report what they held. */
const SCHEMA_VERSION = 2;

export interface PutResult {
  /** False when the key existed (dedupe): the bytes were not stored again. */
  readonly created: boolean;
}

/** What a release dropped: holds, and the rows (with their stored and uncompressed-equivalent bytes) left unheld. */
export interface ReleaseResult {
  readonly holds: number;
  readonly rows: number;
  readonly bytes: number;
  readonly bytesUncompressed: number;
}

export interface ChunkStats {
  readonly rows: number;
  readonly bytes: number;
  readonly holds: number;
  readonly leasedHolds: number;
}

export class ChunkObject extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    // DDL inside blockConcurrencyWhile: no request sees a half-created schema.
    void ctx.blockConcurrencyWhile(async () => this.#migrate());
  }

  #migrate(): void {
    sqlRun(this.#sql, "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
    const v = sqlOne<{ v: number }>(this.#sql, "SELECT v FROM meta WHERE k = 'schema_version'");
    if (v !== null && v.v >= SCHEMA_VERSION) return;
    this.ctx.storage.transactionSync(() => {
      sqlRun(
        this.#sql,
        "CREATE TABLE IF NOT EXISTS chunks (key TEXT PRIMARY KEY, bytes BLOB NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, uncompressed INTEGER NOT NULL DEFAULT 0)",
      );
      // v1 tables lack the column; their rows report 0 uncompressed bytes when freed (the gauge clamps at 0).
      const cols = sqlRows<{ name: string }>(this.#sql, "SELECT name FROM pragma_table_info('chunks')");
      if (!cols.some((c) => c.name === "uncompressed")) sqlRun(this.#sql, "ALTER TABLE chunks ADD COLUMN uncompressed INTEGER NOT NULL DEFAULT 0");
      sqlRun(
        this.#sql,
        "CREATE TABLE IF NOT EXISTS holds (key TEXT NOT NULL, holder TEXT NOT NULL, tag TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (key, holder, tag))",
      );
      sqlRun(this.#sql, "CREATE INDEX IF NOT EXISTS holds_by_holder ON holds (holder, tag)");
      sqlRun(this.#sql, "CREATE INDEX IF NOT EXISTS holds_by_expiry ON holds (expires_at) WHERE expires_at IS NOT NULL");
      sqlRun(this.#sql, "INSERT INTO meta (k, v) VALUES ('schema_version', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", SCHEMA_VERSION);
    });
  }

  /**
   * Stores `bytes` under `key` unless present, and adds a hold leased until `leaseUntil` (ms). `uncompressed` is the
   * bf16 GQA size of the row's tokens × layers (format/size `bf16GqaBytes`), kept for eviction reports.
   */
  async put(key: string, bytes: Uint8Array, holder: string, tag: string, leaseUntil: number, uncompressed: number): Promise<PutResult> {
    let created = false;
    this.ctx.storage.transactionSync(() => {
      if (sqlOne(this.#sql, "SELECT 1 AS x FROM chunks WHERE key = ?", key) === null) {
        sqlRun(
          this.#sql,
          "INSERT INTO chunks (key, bytes, size, created_at, uncompressed) VALUES (?, ?, ?, ?, ?)",
          key,
          bytes,
          bytes.length,
          Date.now(),
          uncompressed,
        );
        created = true;
      }
      sqlRun(this.#sql, "INSERT INTO holds (key, holder, tag, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", key, holder, tag, leaseUntil);
    });
    await this.#armAlarm(leaseUntil);
    return { created };
  }

  /** Makes the leased holds of (holder, tag) permanent: the turn that uses them is about to commit. */
  confirm(holder: string, tag: string): number {
    return sqlRun(this.#sql, "UPDATE holds SET expires_at = NULL WHERE holder = ? AND tag = ?", holder, tag);
  }

  /**
   * Adds permanent holds for keys that must exist already (fork: the parent holds them). Returns the keys that are
   * missing; nothing is held when any is missing.
   */
  hold(entries: ReadonlyArray<{ key: string; tag: string }>, holder: string): string[] {
    const missing: string[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const e of entries) {
        if (sqlOne(this.#sql, "SELECT 1 AS x FROM chunks WHERE key = ?", e.key) === null) missing.push(e.key);
      }
      if (missing.length > 0) return;
      for (const e of entries) {
        sqlRun(this.#sql, "INSERT INTO holds (key, holder, tag, expires_at) VALUES (?, ?, ?, NULL) ON CONFLICT DO UPDATE SET expires_at = NULL", e.key, holder, e.tag);
      }
    });
    return missing;
  }

  /** Drops the holds of `holder` (one tag, or all when null) and every row left without a hold. */
  release(holder: string, tag: string | null): ReleaseResult {
    return this.ctx.storage.transactionSync((): ReleaseResult => {
      const dropped =
        tag === null
          ? sqlRows<{ key: string }>(this.#sql, "DELETE FROM holds WHERE holder = ? RETURNING key", holder)
          : sqlRows<{ key: string }>(this.#sql, "DELETE FROM holds WHERE holder = ? AND tag = ? RETURNING key", holder, tag);
      return { holds: dropped.length, ...this.#collect([...new Set(dropped.map((d) => d.key))]) };
    });
  }

  /** The stored bytes of `key`, or null. */
  get(key: string): Uint8Array | null {
    const row = sqlOne<{ bytes: ArrayBuffer }>(this.#sql, "SELECT bytes FROM chunks WHERE key = ?", key);
    return row === null ? null : blobBytes(row.bytes);
  }

  /**
   * The stored bytes of each key, in order (null where missing): one RPC for the several chunks a restore needs from
   * this shard, instead of one round trip each.
   */
  getMany(keys: readonly string[]): Array<Uint8Array | null> {
    return keys.map((key) => this.get(key));
  }

  stats(): ChunkStats {
    const c = sqlOne<{ rows: number; bytes: number | null }>(this.#sql, "SELECT COUNT(*) AS rows, SUM(size) AS bytes FROM chunks");
    const h = sqlOne<{ holds: number; leased: number | null }>(
      this.#sql,
      "SELECT COUNT(*) AS holds, SUM(CASE WHEN expires_at IS NULL THEN 0 ELSE 1 END) AS leased FROM holds",
    );
    return { rows: c?.rows ?? 0, bytes: c?.bytes ?? 0, holds: h?.holds ?? 0, leasedHolds: h?.leased ?? 0 };
  }

  /** Reaps expired upload leases (a crashed or abandoned append) and re-arms for the next one. Idempotent. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      const dropped = sqlRows<{ key: string }>(this.#sql, "DELETE FROM holds WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING key", now);
      this.#collect([...new Set(dropped.map((d) => d.key))]);
    });
    const next = sqlOne<{ t: number | null }>(this.#sql, "SELECT MIN(expires_at) AS t FROM holds WHERE expires_at IS NOT NULL");
    if (next?.t != null) await this.ctx.storage.setAlarm(next.t);
  }

  /** Deletes the rows among `keys` that no hold references; returns how many, with the bytes they held. */
  #collect(keys: string[]): Omit<ReleaseResult, "holds"> {
    let rows = 0;
    let bytes = 0;
    let bytesUncompressed = 0;
    for (const batch of paramBatches(keys, 1)) {
      const marks = batch.map(() => "?").join(", ");
      const sql = `DELETE FROM chunks WHERE key IN (${marks}) AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = chunks.key) RETURNING size, uncompressed`;
      for (const r of sqlRows<{ size: number; uncompressed: number }>(this.#sql, sql, ...batch)) {
        rows++;
        bytes += r.size;
        bytesUncompressed += r.uncompressed;
      }
    }
    return { rows, bytes, bytesUncompressed };
  }

  async #armAlarm(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}
