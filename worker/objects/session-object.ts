// One session's metadata: the session row, its turns (token ranges, per-token modality/positions, media) and the chunk
// references of each turn. Chunk bytes live in ChunkObject shards; this object only holds keys. One alarm per object
// implements the idle TTL and the cleanup of an interrupted fork.
import { DurableObject } from "cloudflare:workers";
import type { MediaSpan } from "../../format/wire/messages.ts";
import type { Env } from "../env.ts";
import { CHUNK_SHARDS, chunkObjectName, shardOf } from "../keys.ts";
import { blobBytes, sqlOne, sqlRows, sqlRun } from "../sql.ts";
import type { AppendContext, ChunkRef, CommitOutcome, ForkSnapshot, SessionMeta, SessionState, TurnRecord } from "./session-types.ts";

const SCHEMA_VERSION = 1;

/** An interrupted fork (holds added, session never activated) is cleaned up by the alarm after this long. */
export const FORK_LEASE_MS = 5 * 60 * 1000;

type SessionRow = {
  id: string;
  tenant: string;
  state: string;
  meta: string;
  expires_at: number;
};

type TurnRow = {
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

type RefRow = {
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
};

export interface ManifestData {
  readonly meta: SessionMeta;
  readonly turns: ReadonlyArray<Omit<TurnRecord, "tokenIds" | "modality" | "positions" | "media" | "tag"> & { chunks: number }>;
  readonly bytesStored: number;
}

export interface Resolved {
  readonly meta: SessionMeta;
  readonly head: number;
  readonly tokens: number;
  readonly refs: readonly ChunkRef[];
}

const toBytes = (a: Uint32Array | Int32Array | Uint8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();

function refFromRow(r: RefRow): ChunkRef {
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
  };
}

function turnFromRow(r: TurnRow): TurnRecord {
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

export class SessionObject extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  /** Schema present. Lookups of unknown or deleted sessions never write storage: only create/initFork build it. */
  #ready = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      if (sqlOne(this.#sql, "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'session'") !== null) this.#migrate();
    });
  }

  #migrate(): void {
    this.#ready = true;
    sqlRun(this.#sql, "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
    const v = sqlOne<{ v: number }>(this.#sql, "SELECT v FROM meta WHERE k = 'schema_version'");
    if (v !== null && v.v >= SCHEMA_VERSION) return;
    this.ctx.storage.transactionSync(() => {
      sqlRun(
        this.#sql,
        "CREATE TABLE IF NOT EXISTS session (one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL, tenant TEXT NOT NULL, state TEXT NOT NULL, meta TEXT NOT NULL, expires_at INTEGER NOT NULL)",
      );
      sqlRun(
        this.#sql,
        `CREATE TABLE IF NOT EXISTS turns (seq INTEGER PRIMARY KEY, tag TEXT NOT NULL, token_start INTEGER NOT NULL, token_count INTEGER NOT NULL,
          token_ids BLOB NOT NULL, modality BLOB NOT NULL, positions BLOB NOT NULL, media TEXT NOT NULL, next_position INTEGER NOT NULL,
          bytes_stored INTEGER NOT NULL, bytes_uncompressed INTEGER NOT NULL, created_at INTEGER NOT NULL)`,
      );
      sqlRun(
        this.#sql,
        `CREATE TABLE IF NOT EXISTS refs (seq INTEGER NOT NULL, slot INTEGER NOT NULL, layer_start INTEGER NOT NULL, layer_count INTEGER NOT NULL,
          sealed INTEGER NOT NULL, token_start INTEGER NOT NULL, token_count INTEGER NOT NULL, chunk_key TEXT NOT NULL, bytes INTEGER NOT NULL,
          prefix TEXT NOT NULL, PRIMARY KEY (seq, slot, layer_start))`,
      );
      sqlRun(this.#sql, "CREATE INDEX IF NOT EXISTS refs_by_slot ON refs (slot, seq)");
      sqlRun(this.#sql, "INSERT INTO meta (k, v) VALUES ('schema_version', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", SCHEMA_VERSION);
    });
  }

  /** Creates the session; false when this object already holds one. */
  async create(meta: SessionMeta): Promise<boolean> {
    this.#migrate();
    if (sqlOne(this.#sql, "SELECT 1 AS x FROM session") !== null) return false;
    this.#writeSession(meta, "active");
    await this.ctx.storage.setAlarm(meta.expiresAt);
    return true;
  }

  /** Session metadata (extends the TTL), or null when there is no live session. */
  async touch(): Promise<SessionMeta | null> {
    return this.#live(true);
  }

  async appendContext(): Promise<AppendContext | null> {
    const meta = await this.#live(true);
    if (meta === null) return null;
    const { head, tokens, nextPosition } = this.#headState();
    const c = meta.chunkTokens;
    const tailStart = Math.floor(tokens / c) * c;
    const n = tokens - tailStart;
    const tailTokenIds = new Uint32Array(n);
    const tailModality = new Uint8Array(n);
    const tailPositions = new Int32Array(3 * n);
    const tailMedia: MediaSpan[] = [];
    if (n > 0) {
      const rows = sqlRows<TurnRow>(this.#sql, "SELECT * FROM turns WHERE token_start + token_count > ? ORDER BY seq", tailStart);
      for (const t of rows.map(turnFromRow)) {
        const from = Math.max(t.tokenStart, tailStart);
        const i0 = from - t.tokenStart;
        const cnt = t.tokenStart + t.tokenCount - from;
        tailTokenIds.set(t.tokenIds.subarray(i0, i0 + cnt), from - tailStart);
        tailModality.set(t.modality.subarray(i0, i0 + cnt), from - tailStart);
        tailPositions.set(t.positions.subarray(3 * i0, 3 * (i0 + cnt)), 3 * (from - tailStart));
        for (const m of t.media) if (m.start + m.length > tailStart) tailMedia.push(m);
      }
    }
    const prevSlot = tailStart / c - 1;
    const prev =
      prevSlot < 0
        ? null
        : sqlOne<{ prefix: string }>(this.#sql, "SELECT prefix FROM refs WHERE slot = ? AND token_count = ? ORDER BY seq DESC LIMIT 1", prevSlot, c);
    if (prevSlot >= 0 && prev === null) throw new Error(`session ${meta.id}: slot ${prevSlot} has no full chunk although it is filled`);
    return { meta, head, tokens, nextPosition, tailStart, tailTokenIds, tailModality, tailPositions, tailMedia, prevPrefix: prev?.prefix ?? null };
  }

  /**
   * Commits a turn atomically: the head must still be expectedSeq − 1 (else conflict, nothing written). The caller has
   * made the holds of every ref permanent before calling, so a visible turn never lacks a chunk.
   */
  commitTurn(expectedSeq: number, turn: TurnRecord, refs: readonly ChunkRef[]): CommitOutcome {
    if (this.#readSession() === null) return { status: "not_found" };
    return this.ctx.storage.transactionSync((): CommitOutcome => {
      const { head, tokens } = this.#headState();
      if (head !== expectedSeq - 1 || turn.seq !== expectedSeq || turn.tokenStart !== tokens) return { status: "conflict", head };
      this.#insertTurn(turn, refs);
      return { status: "ok" };
    });
  }

  async manifest(): Promise<ManifestData | null> {
    const meta = await this.#live(true);
    if (meta === null) return null;
    const counts = new Map(sqlRows<{ seq: number; n: number }>(this.#sql, "SELECT seq, COUNT(*) AS n FROM refs GROUP BY seq").map((r) => [r.seq, r.n]));
    const turns = sqlRows<Omit<TurnRow, "token_ids" | "modality" | "positions" | "media" | "tag">>(
      this.#sql,
      "SELECT seq, token_start, token_count, next_position, bytes_stored, bytes_uncompressed, created_at FROM turns ORDER BY seq",
    ).map((r) => ({
      seq: r.seq,
      tokenStart: r.token_start,
      tokenCount: r.token_count,
      nextPosition: r.next_position,
      bytesStored: r.bytes_stored,
      bytesUncompressed: r.bytes_uncompressed,
      createdAt: r.created_at,
      chunks: counts.get(r.seq) ?? 0,
    }));
    const stored = this.#resolveRows(0, Number.MAX_SAFE_INTEGER, 0, Number.MAX_SAFE_INTEGER).reduce((s, r) => s + r.bytes, 0);
    return { meta, turns, bytesStored: stored };
  }

  /** The newest chunk of every slot overlapping tokens [from, to) and layers [layerStart, layerEnd), in restore order. */
  async resolve(from: number, to: number, layerStart: number, layerEnd: number): Promise<Resolved | null> {
    const meta = await this.#live(true);
    if (meta === null) return null;
    const { head, tokens } = this.#headState();
    const c = meta.chunkTokens;
    const end = Math.min(to, tokens);
    const refs = from >= end ? [] : this.#resolveRows(Math.floor(from / c), Math.floor((end - 1) / c), layerStart, layerEnd).map(refFromRow);
    return { meta, head, tokens, refs };
  }

  /** Drops turns after `toSeq` and releases the holds only they had. */
  async truncate(toSeq: number): Promise<{ status: "ok"; head: number; tokens: number } | { status: "not_found" } | { status: "bad_seq"; head: number }> {
    const meta = await this.#live(true);
    if (meta === null) return { status: "not_found" };
    const dropped = this.ctx.storage.transactionSync(() => {
      const { head } = this.#headState();
      if (toSeq > head) return null;
      const rows = sqlRows<{ tag: string; chunk_key: string }>(
        this.#sql,
        "SELECT t.tag AS tag, r.chunk_key AS chunk_key FROM turns t JOIN refs r ON r.seq = t.seq WHERE t.seq > ?",
        toSeq,
      );
      sqlRun(this.#sql, "DELETE FROM refs WHERE seq > ?", toSeq);
      sqlRun(this.#sql, "DELETE FROM turns WHERE seq > ?", toSeq);
      return rows;
    });
    if (dropped === null) return { status: "bad_seq", head: this.#headState().head };
    // After the turns are gone: a crash here leaks holds (freed when the session is deleted), never loses a chunk.
    const byShardTag = new Set(dropped.map((d) => `${shardOf(d.chunk_key)}\u0000${d.tag}`));
    await Promise.all(
      [...byShardTag].map((st) => {
        const [shard, tag] = st.split("\u0000");
        return this.#chunks(meta.tenant, Number(shard)).release(meta.id, tag);
      }),
    );
    const { head, tokens } = this.#headState();
    return { status: "ok", head, tokens };
  }

  /** Turns 1..atSeq and their refs, for a fork. */
  async snapshot(atSeq: number): Promise<ForkSnapshot | { status: "bad_seq"; head: number } | null> {
    const meta = await this.#live(true);
    if (meta === null) return null;
    const { head } = this.#headState();
    if (atSeq > head) return { status: "bad_seq", head };
    const turns = sqlRows<TurnRow>(this.#sql, "SELECT * FROM turns WHERE seq <= ? ORDER BY seq", atSeq).map(turnFromRow);
    const refs = sqlRows<RefRow>(this.#sql, "SELECT * FROM refs WHERE seq <= ? ORDER BY seq, slot, layer_start", atSeq).map((r) => ({
      ...refFromRow(r),
      seq: r.seq,
    }));
    return { meta, turns, refs };
  }

  /**
   * Becomes a fork: writes the copied turns as a pending session (alarm armed), adds this session's holds on the
   * parent's chunks (no bytes copied), then activates. A crash before activation leaves a pending session whose alarm
   * releases the holds. Returns the keys that no longer exist (the parent was deleted meanwhile): the fork is undone.
   */
  async initFork(meta: SessionMeta, snapshot: ForkSnapshot): Promise<{ status: "ok" } | { status: "exists" } | { status: "missing"; keys: string[] }> {
    this.#migrate();
    if (sqlOne(this.#sql, "SELECT 1 AS x FROM session") !== null) return { status: "exists" };
    this.ctx.storage.transactionSync(() => {
      this.#writeSession(meta, "pending");
      for (const t of snapshot.turns) {
        this.#insertTurn(
          t,
          snapshot.refs.filter((r) => r.seq === t.seq),
        );
      }
    });
    await this.ctx.storage.setAlarm(Date.now() + FORK_LEASE_MS);
    const tagOf = new Map(snapshot.turns.map((t) => [t.seq, t.tag]));
    const perShard = new Map<number, Array<{ key: string; tag: string }>>();
    for (const r of snapshot.refs) {
      const list = perShard.get(shardOf(r.key)) ?? [];
      list.push({ key: r.key, tag: tagOf.get(r.seq) ?? "" });
      perShard.set(shardOf(r.key), list);
    }
    const missing = (await Promise.all([...perShard].map(([shard, entries]) => this.#chunks(meta.tenant, shard).hold(entries, meta.id)))).flat();
    if (missing.length > 0) {
      await this.destroy();
      return { status: "missing", keys: missing };
    }
    sqlRun(this.#sql, "UPDATE session SET state = 'active'");
    await this.ctx.storage.setAlarm(meta.expiresAt);
    return { status: "ok" };
  }

  /** Deletes the session: hidden at once, then every hold of this session released, then all storage (alarm included). */
  async destroy(): Promise<boolean> {
    const row = this.#readSession();
    if (row === null) {
      await this.ctx.storage.deleteAll();
      this.#ready = false;
      return false;
    }
    const wasLive = row.state === "active" && row.expires_at > Date.now();
    sqlRun(this.#sql, "UPDATE session SET state = 'deleting'");
    // Releasing on every shard (not only the referenced keys) also frees holds leaked by an interrupted commit.
    await Promise.all(Array.from({ length: CHUNK_SHARDS }, (_, shard) => this.#chunks(row.tenant, shard).release(row.id, null)));
    await this.ctx.storage.deleteAll();
    this.#ready = false;
    return wasLive;
  }

  /** TTL and interrupted forks. Idempotent: a retried alarm finds nothing or finishes the deletion. */
  override async alarm(): Promise<void> {
    const row = this.#readSession();
    if (row === null) return;
    if (row.state === "active" && row.expires_at > Date.now()) {
      await this.ctx.storage.setAlarm(row.expires_at);
      return;
    }
    await this.destroy();
  }

  #chunks(tenant: string, shard: number) {
    return this.env.CHUNKS.get(this.env.CHUNKS.idFromName(chunkObjectName(tenant, shard)));
  }

  #readSession(): SessionRow | null {
    if (!this.#ready) return null;
    return sqlOne<SessionRow>(this.#sql, "SELECT id, tenant, state, meta, expires_at FROM session");
  }

  /** The live session's meta (state active, not expired), extending its TTL when `extend`. */
  async #live(extend: boolean): Promise<SessionMeta | null> {
    const row = this.#readSession();
    const now = Date.now();
    if (row === null || row.state !== "active" || row.expires_at <= now) return null;
    const meta = JSON.parse(row.meta) as SessionMeta;
    const expiresAt = now + meta.ttlMs;
    // Extend only by a noticeable step: a write per read would double the cost of restores.
    if (extend && expiresAt - row.expires_at > Math.min(60_000, meta.ttlMs / 10)) {
      sqlRun(this.#sql, "UPDATE session SET expires_at = ?", expiresAt);
      await this.ctx.storage.setAlarm(expiresAt);
      return { ...meta, expiresAt };
    }
    return { ...meta, expiresAt: row.expires_at };
  }

  #writeSession(meta: SessionMeta, state: SessionState): void {
    sqlRun(
      this.#sql,
      "INSERT INTO session (one, id, tenant, state, meta, expires_at) VALUES (1, ?, ?, ?, ?, ?)",
      meta.id,
      meta.tenant,
      state,
      JSON.stringify(meta),
      meta.expiresAt,
    );
  }

  #headState(): { head: number; tokens: number; nextPosition: number } {
    const last = sqlOne<{ seq: number; end: number; next_position: number }>(
      this.#sql,
      "SELECT seq, token_start + token_count AS end, next_position FROM turns ORDER BY seq DESC LIMIT 1",
    );
    return last === null ? { head: 0, tokens: 0, nextPosition: 0 } : { head: last.seq, tokens: last.end, nextPosition: last.next_position };
  }

  #insertTurn(t: TurnRecord, refs: readonly ChunkRef[]): void {
    sqlRun(
      this.#sql,
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
      sqlRun(
        this.#sql,
        `INSERT INTO refs (seq, slot, layer_start, layer_count, sealed, token_start, token_count, chunk_key, bytes, prefix)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        t.seq,
        r.slot,
        r.layerStart,
        r.layerCount,
        r.sealed ? 1 : 0,
        r.tokenStart,
        r.tokenCount,
        r.key,
        r.bytes,
        r.prefix,
      );
    }
  }

  /** For each slot in [slotFrom, slotTo], the refs of the newest turn that uploaded it, filtered by layer overlap. */
  #resolveRows(slotFrom: number, slotTo: number, layerStart: number, layerEnd: number): RefRow[] {
    return sqlRows<RefRow>(
      this.#sql,
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
