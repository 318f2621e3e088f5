// Content-addressed chunk rows of one tenant shard, with holds: a row lives while any (holder, tag) holds it.
// A row packs one or more chunks (up to the row budget) so a restore reads few, large rows; `members` says where each
// chunk lives. Holder = a session id; tag = the upload that produced the turn (leased until the turn commits, then
// permanent). Dedupe is per chunk: a chunk whose key is already a member is not stored again, its row gets one more hold.
// Expired upload leases are reaped by the alarm.
import { DurableObject } from "cloudflare:workers";
import { MAX_ROW_BYTES } from "../limits.ts";
import { blobBytes, paramBatches, sqlOne, sqlRows, sqlRun } from "../sql.ts";
import { migrateChunkSchema } from "./chunk-schema.ts";

/** A chunk for putChunks: its key, verified bytes and the bf16 GQA size of its tokens × layers (format/size `bf16GqaBytes`). */
export interface ChunkPut {
  readonly key: string;
  readonly bytes: Uint8Array;
  readonly uncompressed: number;
}

/** Where a chunk lives: its row and byte offset there. `created` is false when it was stored before (dedupe). */
export interface ChunkPlace {
  readonly row: string;
  readonly offset: number;
  readonly created: boolean;
}

/** Bytes [offset, offset + length) of a row. */
export interface RowSpan {
  readonly row: string;
  readonly offset: number;
  readonly length: number;
}

/** What a release dropped: holds, and the rows (with their chunks, stored and uncompressed-equivalent bytes) left unheld. */
export interface ReleaseResult {
  readonly holds: number;
  readonly rows: number;
  readonly chunks: number;
  readonly bytes: number;
  readonly bytesUncompressed: number;
}

/** A row a fork holds, with the chunks its refs expect there (chunk key, offset and length in the row). */
export interface HoldEntry {
  readonly key: string;
  readonly tag: string;
  readonly members: ReadonlyArray<{ readonly chunk: string; readonly at: number; readonly length: number }>;
}

export interface ChunkStats {
  readonly rows: number;
  readonly chunks: number;
  readonly bytes: number;
  readonly holds: number;
  readonly leasedHolds: number;
}

export class ChunkObject extends DurableObject<unknown> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    // DDL inside blockConcurrencyWhile: no request sees a half-created schema.
    void ctx.blockConcurrencyWhile(async () => migrateChunkSchema(ctx.storage));
  }

  /**
   * Stores the chunks not stored yet, packed in order into rows of at most MAX_ROW_BYTES (a new row is keyed by its
   * first chunk's key), and adds a hold of (holder, tag), leased until `leaseUntil` (ms), on every row that holds one
   * of `chunks`. Returns where each chunk lives, in order.
   */
  async putChunks(chunks: readonly ChunkPut[], holder: string, tag: string, leaseUntil: number): Promise<ChunkPlace[]> {
    const places: ChunkPlace[] = [];
    this.ctx.storage.transactionSync(() => {
      let pack: Array<{ chunk: ChunkPut; index: number }> = [];
      let packBytes = 0;
      const writePack = () => {
        if (pack.length === 0) return;
        const row = pack[0].chunk.key;
        const bytes = new Uint8Array(packBytes);
        let at = 0;
        let uncompressed = 0;
        for (const { chunk, index } of pack) {
          bytes.set(chunk.bytes, at);
          sqlRun(this.#sql, "INSERT INTO members (chunk, row_key, at, length) VALUES (?, ?, ?, ?)", chunk.key, row, at, chunk.bytes.length);
          places[index] = { row, offset: at, created: true };
          at += chunk.bytes.length;
          uncompressed += chunk.uncompressed;
        }
        sqlRun(this.#sql, "INSERT INTO chunks (key, bytes, size, created_at, uncompressed) VALUES (?, ?, ?, ?, ?)", row, bytes, bytes.length, Date.now(), uncompressed);
        pack = [];
        packBytes = 0;
      };
      chunks.forEach((chunk, index) => {
        const m = sqlOne<{ row_key: string; at: number }>(this.#sql, "SELECT row_key, at FROM members WHERE chunk = ?", chunk.key);
        if (m !== null) {
          places[index] = { row: m.row_key, offset: m.at, created: false };
          return;
        }
        if (packBytes + chunk.bytes.length > MAX_ROW_BYTES) writePack();
        pack.push({ chunk, index });
        packBytes += chunk.bytes.length;
      });
      writePack();
      for (const row of new Set(places.map((p) => p.row))) {
        sqlRun(this.#sql, "INSERT INTO holds (key, holder, tag, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", row, holder, tag, leaseUntil);
      }
      // The upload is alive: the lease of its earlier rows here runs from now on too.
      sqlRun(this.#sql, "UPDATE holds SET expires_at = ? WHERE holder = ? AND tag = ? AND expires_at IS NOT NULL AND expires_at < ?", leaseUntil, holder, tag, leaseUntil);
    });
    await this.#armAlarm(leaseUntil);
    return places;
  }

  /**
   * Makes the leased holds of (holder, tag) on `rows` permanent: the turn that uses them is about to commit. All or
   * nothing: when any of `rows` has no such hold left (the lease ran out and the alarm reaped it), nothing is confirmed
   * and the rows without a hold are returned, so the caller refuses the turn instead of committing refs to gone rows.
   */
  confirm(holder: string, tag: string, rows: readonly string[]): string[] {
    return this.ctx.storage.transactionSync((): string[] => {
      const lost = [...new Set(rows)].filter((row) => sqlOne(this.#sql, "SELECT 1 AS x FROM holds WHERE key = ? AND holder = ? AND tag = ?", row, holder, tag) === null);
      if (lost.length === 0) sqlRun(this.#sql, "UPDATE holds SET expires_at = NULL WHERE holder = ? AND tag = ?", holder, tag);
      return lost;
    });
  }

  /**
   * Extends the leased holds of (holder, tag) to `leaseUntil` (an upload still in progress). Returns how many leased
   * holds it extended.
   */
  renew(holder: string, tag: string, leaseUntil: number): number {
    return sqlRows(this.#sql, "UPDATE holds SET expires_at = ? WHERE holder = ? AND tag = ? AND expires_at IS NOT NULL AND expires_at < ? RETURNING key", leaseUntil, holder, tag, leaseUntil).length;
  }

  /**
   * Adds permanent holds on rows that must exist already, as the refs that point into them expect (fork: the parent
   * holds them). Each ref names a chunk and its offset in the row; a row that is gone, or was re-created with other
   * chunks at those offsets (the parent truncated and appended again), does not match. Returns the row keys that do
   * not match; nothing is held when any does not.
   */
  hold(entries: readonly HoldEntry[], holder: string): string[] {
    const missing: string[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const e of entries) {
        const matches =
          sqlOne(this.#sql, "SELECT 1 AS x FROM chunks WHERE key = ?", e.key) !== null &&
          e.members.every(
            (m) => sqlOne(this.#sql, "SELECT 1 AS x FROM members WHERE chunk = ? AND row_key = ? AND at = ? AND length = ?", m.chunk, e.key, m.at, m.length) !== null,
          );
        if (!matches) missing.push(e.key);
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

  /**
   * The bytes of each span, in order (null where the row is missing; shorter when the row is): one RPC for the spans a
   * restore needs from this shard. substr keeps the rest of a row out of the RPC.
   */
  readSpans(spans: readonly RowSpan[]): Array<Uint8Array | null> {
    return spans.map((s) => {
      const row = sqlOne<{ b: ArrayBuffer }>(this.#sql, "SELECT substr(bytes, ?, ?) AS b FROM chunks WHERE key = ?", s.offset + 1, s.length, s.row);
      return row === null ? null : blobBytes(row.b);
    });
  }

  stats(): ChunkStats {
    const c = sqlOne<{ rows: number; bytes: number | null }>(this.#sql, "SELECT COUNT(*) AS rows, SUM(size) AS bytes FROM chunks");
    const m = sqlOne<{ chunks: number }>(this.#sql, "SELECT COUNT(*) AS chunks FROM members");
    const h = sqlOne<{ holds: number; leased: number | null }>(
      this.#sql,
      "SELECT COUNT(*) AS holds, SUM(CASE WHEN expires_at IS NULL THEN 0 ELSE 1 END) AS leased FROM holds",
    );
    return { rows: c?.rows ?? 0, chunks: m?.chunks ?? 0, bytes: c?.bytes ?? 0, holds: h?.holds ?? 0, leasedHolds: h?.leased ?? 0 };
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

  /** Deletes the rows among `keys` that no hold references, with their members; returns what they held. */
  #collect(keys: string[]): Omit<ReleaseResult, "holds"> {
    let rows = 0;
    let chunks = 0;
    let bytes = 0;
    let bytesUncompressed = 0;
    for (const batch of paramBatches(keys, 1)) {
      const marks = batch.map(() => "?").join(", ");
      const sql = `DELETE FROM chunks WHERE key IN (${marks}) AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = chunks.key) RETURNING key, size, uncompressed`;
      const freed = sqlRows<{ key: string; size: number; uncompressed: number }>(this.#sql, sql, ...batch);
      for (const r of freed) {
        rows++;
        bytes += r.size;
        bytesUncompressed += r.uncompressed;
        chunks += sqlRun(this.#sql, "DELETE FROM members WHERE row_key = ?", r.key);
      }
    }
    return { rows, chunks, bytes, bytesUncompressed };
  }

  async #armAlarm(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}
