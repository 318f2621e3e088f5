// The append path inside the SessionObject: what an append needs to know first (head, and the tokens of the unfilled
// last slot that its chunks re-cover), and the atomic commit of a turn against the expected sequence number.
import type { MediaSpan } from "../../../format/wire/messages.ts";
import { sqlOne, sqlRows } from "../../sql.ts";
import { rowGroupSlots } from "../../row-groups.ts";
import { toCacheSpec, type AppendContext, type ChunkRef, type CommitOutcome, type PartCounts, type TurnRecord } from "../session-types.ts";
import type { SessionHost } from "./host.ts";
import { turnFromRow, type TurnRow } from "./schema.ts";
import { dropStaleStages, mergeStaged, stagedPrefixOfFullSlot, stagedTurn } from "./staged.ts";
import { liveSession } from "./ttl.ts";

/** The chain prefix of a filled slot (null when the slot is not filled). */
function prefixOfFullSlot(sql: SqlStorage, slot: number, chunkTokens: number): string | null {
  return sqlOne<{ prefix: string }>(sql, "SELECT prefix FROM refs WHERE slot = ? AND token_count = ? ORDER BY seq DESC LIMIT 1", slot, chunkTokens)?.prefix ?? null;
}

/**
 * What an append needs first. With `stage` (a part after the first of a long turn) the session is seen as it will be
 * once the staged parts commit: its tokens and next position run on past them; "stage_unknown" when that staged turn is
 * gone (lease over, dropped by a newer first part or a commit) or is not for head + 1.
 */
export async function appendContext(host: SessionHost, stage: string | null = null): Promise<AppendContext | "stage_unknown" | null> {
  const meta = await liveSession(host, true);
  if (meta === null) return null;
  const { sql } = host.tables;
  const committed = host.tables.headState();
  const head = committed.head;
  const staged = stage === null ? null : stagedTurn(host, stage);
  if (stage !== null && (staged === null || staged.seq !== head + 1 || staged.tokenStart !== committed.tokens)) return "stage_unknown";
  const tokens = staged === null ? committed.tokens : staged.tokenStart + staged.tokenCount;
  const nextPosition = staged === null ? committed.nextPosition : staged.nextPosition;
  const c = meta.chunkTokens;
  const tailStart = Math.floor(tokens / c) * c;
  const n = tokens - tailStart;
  const tailTokenIds = new Uint32Array(n);
  const tailModality = new Uint8Array(n);
  const tailPositions = new Int32Array(3 * n);
  const tailMedia: MediaSpan[] = [];
  if (n > 0) {
    const rows = sqlRows<TurnRow>(sql, "SELECT * FROM turns WHERE token_start + token_count > ? ORDER BY seq", tailStart);
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
  // Staged parts end at a slot boundary, so a continuation has no tail; their filled slots' prefixes are staged refs.
  const filledPrefix = (slot: number): string => {
    const p = (staged === null ? null : stagedPrefixOfFullSlot(host, staged.tag, slot, c)) ?? prefixOfFullSlot(sql, slot, c);
    if (p === null) throw new Error(`session ${meta.id}: slot ${slot} has no full chunk although it is filled`);
    return p;
  };
  const tailSlot = tailStart / c;
  const groupSlots = rowGroupSlots(toCacheSpec(meta.spec), meta.codec, meta.storage, c);
  const anchorSlot = Math.floor(tailSlot / groupSlots) * groupSlots;
  return {
    meta,
    head,
    tokens,
    nextPosition,
    tailStart,
    tailTokenIds,
    tailModality,
    tailPositions,
    tailMedia,
    prevPrefix: tailSlot > 0 ? filledPrefix(tailSlot - 1) : null,
    groupSlots,
    groupAnchor: anchorSlot < tailSlot ? filledPrefix(anchorSlot) : null,
    staged,
  };
}

/**
 * Commits a turn atomically into the live session: the head must still be expectedSeq − 1 (else conflict, nothing
 * written); a session that is not active and unexpired is not_found. With `stage`, the staged parts of that upload and
 * this final part become one turn (conflict "stage_unknown" when the staged turn is gone). The caller has made the holds
 * of every ref (staged ones included) permanent before calling, so a visible turn never lacks a chunk.
 */
export async function commitTurn(host: SessionHost, expectedSeq: number, turn: TurnRecord, refs: readonly ChunkRef[], counts: PartCounts, stage: string | null = null): Promise<CommitOutcome> {
  const { tables } = host;
  // Only into an active, unexpired session: a session being deleted (or expired, or a fork not yet active) takes no
  // turn, so the append is refused and releases its holds instead of leaving holds that nothing frees.
  const row = tables.readSession();
  if (row === null || row.state !== "active" || row.expires_at <= Date.now()) return { status: "not_found" };
  const outcome = host.ctx.storage.transactionSync((): CommitOutcome => {
    const { head, tokens } = tables.headState();
    if (head !== expectedSeq - 1 || turn.seq !== expectedSeq) return { status: "conflict", head };
    let whole = turn;
    let allRefs = refs;
    let before: PartCounts = { chunksStored: 0, chunksReused: 0 };
    if (stage !== null) {
      const merged = mergeStaged(host, stage, turn, refs);
      if (merged === null) return { status: "conflict", head, reason: "stage_unknown" };
      ({ turn: whole, refs: allRefs, counts: before } = merged);
    }
    if (whole.tokenStart !== tokens) return { status: "conflict", head };
    tables.insertTurn(whole, allRefs);
    return {
      status: "ok",
      turn: {
        tokenStart: whole.tokenStart,
        tokenCount: whole.tokenCount,
        bytesStored: whole.bytesStored,
        chunksStored: before.chunksStored + counts.chunksStored,
        chunksReused: before.chunksReused + counts.chunksReused,
        nextPosition: whole.nextPosition,
      },
    };
  });
  // A staged turn of another uploader for this seq can no longer commit: drop it now rather than at its lease end.
  if (outcome.status === "ok" && sqlOne(tables.sql, "SELECT 1 AS x FROM staged_parts LIMIT 1") !== null) await dropStaleStages(host);
  return outcome;
}
