// Turns of any length inside the SessionObject: a turn longer than one request is staged part by part in
// `staged_parts` / `staged_refs` (schema v3), tables no reader looks at — manifest, restore, fork, truncate and the
// head all read `turns` and `refs` only — and its last part moves every part into one turn row and its refs in one
// transaction. A staged turn lives under a lease (its chunks' upload holds are leased with the same tag on the shards):
// a part that comes after it, a new first part for the same session, or a turn committed by another writer drops it.
import { sqlOne, sqlRows, sqlRun } from "../../sql.ts";
import { chunkShardStub } from "../stubs.ts";
import type { ChunkRef, PartCounts, StagedTurn, StageOutcome, TurnRecord } from "../session-types.ts";
import type { SessionHost } from "./host.ts";
import { REF_COLUMNS, refFromRow, refValues, toBytes, turnFromRow, type RefRow, type TurnRow } from "./schema.ts";

type StagedPartRow = TurnRow & { tag: string; part: number; chunks_stored: number; chunks_reused: number; lease_until: number };

/** The staged turn of upload `tag` (null when there is none or its lease ended). */
export function stagedTurn(host: SessionHost, tag: string, now = Date.now()): StagedTurn | null {
  const { sql } = host.tables;
  const parts = sqlRows<StagedPartRow>(sql, "SELECT * FROM staged_parts WHERE tag = ? ORDER BY part", tag);
  if (parts.length === 0) return null;
  const leaseUntil = Math.min(...parts.map((p) => p.lease_until));
  if (leaseUntil <= now) return null;
  const last = parts[parts.length - 1];
  const rows = sqlRows<{ shard: number; row_key: string }>(sql, "SELECT DISTINCT shard, row_key FROM staged_refs WHERE tag = ?", tag);
  return {
    tag,
    seq: parts[0].seq,
    tokenStart: parts[0].token_start,
    tokenCount: last.token_start + last.token_count - parts[0].token_start,
    parts: parts.length,
    nextPosition: last.next_position,
    bytesStored: parts.reduce((s, p) => s + p.bytes_stored, 0),
    bytesUncompressed: parts.reduce((s, p) => s + p.bytes_uncompressed, 0),
    chunksStored: parts.reduce((s, p) => s + p.chunks_stored, 0),
    chunksReused: parts.reduce((s, p) => s + p.chunks_reused, 0),
    leaseUntil,
    rows: rows.map((r) => ({ shard: r.shard, row: r.row_key })),
  };
}

/** The prefix of a filled slot among the staged refs of `tag` (null when the staged parts do not fill it). */
export function stagedPrefixOfFullSlot(host: SessionHost, tag: string, slot: number, chunkTokens: number): string | null {
  return sqlOne<{ prefix: string }>(host.tables.sql, "SELECT prefix FROM staged_refs WHERE tag = ? AND slot = ? AND token_count = ? LIMIT 1", tag, slot, chunkTokens)?.prefix ?? null;
}

/** Removes the staged rows of `tags`; returns the (tag, shard) pairs whose holds are to be released. */
function deleteStaged(host: SessionHost, tags: readonly string[]): Array<{ tag: string; shard: number }> {
  const { sql } = host.tables;
  const out: Array<{ tag: string; shard: number }> = [];
  for (const tag of tags) {
    for (const r of sqlRows<{ shard: number }>(sql, "SELECT DISTINCT shard FROM staged_refs WHERE tag = ?", tag)) out.push({ tag, shard: r.shard });
    sqlRun(sql, "DELETE FROM staged_refs WHERE tag = ?", tag);
    sqlRun(sql, "DELETE FROM staged_parts WHERE tag = ?", tag);
  }
  return out;
}

/** Releases the chunk holds of dropped staged turns (rows nothing else holds are freed by their shards). */
async function releaseDropped(host: SessionHost, tenant: string, sessionId: string, dropped: ReadonlyArray<{ tag: string; shard: number }>): Promise<void> {
  // Best effort: a hold left behind is leased and reaped by its shard's alarm when the lease ends.
  await Promise.all(dropped.map((d) => chunkShardStub(host.env, tenant, d.shard).release(sessionId, d.tag))).catch(() => undefined);
}

/** Tags of staged turns that can never commit: lease over, or staged for a seq other than head + 1. */
function staleTags(host: SessionHost, head: number, now: number): string[] {
  return sqlRows<{ tag: string }>(
    host.tables.sql,
    "SELECT tag FROM staged_parts GROUP BY tag HAVING MIN(lease_until) <= ? OR MIN(seq) != ? OR MAX(seq) != ?",
    now,
    head + 1,
    head + 1,
  ).map((r) => r.tag);
}

/** Arms the alarm for the end of the earliest staged lease when that comes before the alarm already set. */
export async function armForLeases(host: SessionHost): Promise<void> {
  const next = sqlOne<{ t: number | null }>(host.tables.sql, "SELECT MIN(lease_until) AS t FROM staged_parts")?.t ?? null;
  if (next === null) return;
  const current = await host.ctx.storage.getAlarm();
  if (current === null || current > next) await host.ctx.storage.setAlarm(next);
}

/**
 * Stages one part: `stage` null begins a staged turn (dropping any other staged turn of this session: the newer
 * uploader wins, the older one's next part gets turn_conflict), else continues the staged turn `stage`, whose staged
 * tokens must end where this part starts. Head must be seq − 1. Every part renews the staged turn's lease.
 */
export async function stagePart(
  host: SessionHost,
  stage: string | null,
  part: TurnRecord,
  refs: readonly ChunkRef[],
  counts: PartCounts,
  leaseUntil: number,
): Promise<StageOutcome> {
  const { ctx, tables } = host;
  const row = tables.readSession();
  if (row === null || row.state !== "active" || row.expires_at <= Date.now()) return { status: "not_found" };
  const now = Date.now();
  let dropped: Array<{ tag: string; shard: number }> = [];
  const outcome = ctx.storage.transactionSync((): StageOutcome => {
    const { head, tokens } = tables.headState();
    if (part.seq !== head + 1) return { status: "conflict", head };
    let number = 1;
    if (stage === null) {
      if (part.tokenStart !== tokens) return { status: "conflict", head };
      dropped = deleteStaged(host, sqlRows<{ tag: string }>(tables.sql, "SELECT DISTINCT tag FROM staged_parts WHERE tag != ?", part.tag).map((r) => r.tag));
    } else {
      const current = stagedTurn(host, stage, now);
      if (current === null || current.seq !== part.seq) return { status: "conflict", head, reason: "stage_unknown" };
      if (current.tokenStart + current.tokenCount !== part.tokenStart) return { status: "conflict", head, reason: "stage_unknown" };
      number = current.parts + 1;
    }
    sqlRun(
      tables.sql,
      `INSERT INTO staged_parts (tag, part, seq, token_start, token_count, token_ids, modality, positions, media, next_position, bytes_stored,
        bytes_uncompressed, chunks_stored, chunks_reused, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      part.tag,
      number,
      part.seq,
      part.tokenStart,
      part.tokenCount,
      toBytes(part.tokenIds),
      toBytes(part.modality),
      toBytes(part.positions),
      JSON.stringify(part.media),
      part.nextPosition,
      part.bytesStored,
      part.bytesUncompressed,
      counts.chunksStored,
      counts.chunksReused,
      leaseUntil,
    );
    sqlRun(tables.sql, "UPDATE staged_parts SET lease_until = ? WHERE tag = ?", leaseUntil, part.tag);
    for (const r of refs) {
      sqlRun(tables.sql, `INSERT OR REPLACE INTO staged_refs (tag, ${REF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, part.tag, ...refValues(r));
    }
    const staged = stagedTurn(host, part.tag, now);
    if (staged === null) throw new Error("staged turn vanished inside its own transaction");
    return { status: "ok", staged };
  });
  await releaseDropped(host, row.tenant, row.id, dropped);
  if (outcome.status === "ok") await armForLeases(host);
  return outcome;
}

/**
 * Inside the commit transaction: the staged parts of `tag` followed by the final part as one turn, and the refs of
 * them all; the staged rows are deleted. Null when the staged turn is gone (lease over, dropped) or does not end where
 * the final part starts.
 */
export function mergeStaged(host: SessionHost, tag: string, final: TurnRecord, finalRefs: readonly ChunkRef[]): { turn: TurnRecord; refs: ChunkRef[]; counts: PartCounts } | null {
  const { sql } = host.tables;
  const staged = stagedTurn(host, tag);
  if (staged === null || staged.seq !== final.seq || staged.tokenStart + staged.tokenCount !== final.tokenStart) return null;
  const parts = sqlRows<StagedPartRow>(sql, "SELECT * FROM staged_parts WHERE tag = ? ORDER BY part", tag).map((r) => ({ ...turnFromRow(r), chunksStored: r.chunks_stored, chunksReused: r.chunks_reused }));
  const all = [...parts, final];
  const n = all.reduce((s, p) => s + p.tokenCount, 0);
  const tokenIds = new Uint32Array(n);
  const modality = new Uint8Array(n);
  const positions = new Int32Array(3 * n);
  let at = 0;
  for (const p of all) {
    tokenIds.set(p.tokenIds, at);
    modality.set(p.modality, at);
    positions.set(p.positions, 3 * at);
    at += p.tokenCount;
  }
  const refs = [...sqlRows<RefRow>(sql, "SELECT *, 0 AS seq FROM staged_refs WHERE tag = ? ORDER BY slot, layer_start", tag).map(refFromRow), ...finalRefs];
  const turn: TurnRecord = {
    seq: final.seq,
    tag,
    tokenStart: staged.tokenStart,
    tokenCount: n,
    tokenIds,
    modality,
    positions,
    media: all.flatMap((p) => p.media),
    nextPosition: final.nextPosition,
    bytesStored: staged.bytesStored + final.bytesStored,
    bytesUncompressed: staged.bytesUncompressed + final.bytesUncompressed,
    createdAt: final.createdAt,
  };
  deleteStaged(host, [tag]);
  return { turn, refs, counts: { chunksStored: staged.chunksStored, chunksReused: staged.chunksReused } };
}

/** Drops the staged turn `tag` (a part failed: nothing of the turn stays) and releases its holds. */
export async function dropStage(host: SessionHost, tag: string): Promise<void> {
  const row = host.tables.readSession();
  if (row === null) return;
  const dropped = host.ctx.storage.transactionSync(() => deleteStaged(host, [tag]));
  await releaseDropped(host, row.tenant, row.id, dropped);
}

/**
 * Drops staged turns that can no longer commit (lease over, or the head moved past their seq) and releases their holds;
 * run by the alarm and after every commit. Returns how many it dropped.
 */
export async function dropStaleStages(host: SessionHost): Promise<number> {
  const row = host.tables.readSession();
  if (row === null) return 0;
  const dropped = host.ctx.storage.transactionSync(() => {
    const tags = staleTags(host, host.tables.headState().head, Date.now());
    return { tags: tags.length, holds: deleteStaged(host, tags) };
  });
  await releaseDropped(host, row.tenant, row.id, dropped.holds);
  await armForLeases(host);
  return dropped.tags;
}
