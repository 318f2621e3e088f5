// One append, HTTP body or WebSocket alike: control frame → planned units → each chunk verified and put under a leased
// upload hold → holds confirmed → turn committed in SessionObject (expectedSeq check) → upload tag kept as the turn's
// tag. Cross-DO writes are not atomic, so the order guarantees: a crash leaves no visible turn (leased rows reaped by
// the ChunkObject alarm) or a visible turn whose chunks are all held — never a visible turn with a missing chunk.
import { hexToBytes } from "@noble/hashes/utils.js";
import { FrameError, FrameType, type FrameReader } from "../../format/wire/frames.ts";
import { ControlDecodeError, decodeAppendControl } from "../../format/wire/control-msgpack.ts";
import { bf16GqaBytes } from "../../format/size/bytes-per-token.ts";
import type { AppendResult, AppendStaged } from "../../format/wire/messages.ts";
import type { Env } from "../env.ts";
import { ApiError, badRequest, notFound, tooLarge, turnConflict } from "../errors.ts";
import { sessionObjectName, type KeyContext } from "../keys.ts";
import { MAX_APPEND_BODY_BYTES, MAX_MEDIA_PER_TURN, MAX_STAGED_TURN_TOKENS, MAX_TURN_TOKENS, UPLOAD_LEASE_MS } from "../limits.ts";
import { toCacheSpec, type ChunkRef, type TurnRecord } from "../objects/session-types.ts";
import { chunkShardStub } from "../objects/stubs.ts";
import type { WaitUntil } from "../telemetry/index.ts";
import { chunkBytesFor } from "./chunk-bytes.ts";
import { parseControl, type TurnInput } from "./control.ts";
import { planUploads, type TokenWindow, type UploadUnit } from "./plan.ts";
import { pausePoint } from "../testing/pause-points.ts";
import { recordAppendChunks, type ChunkOutcome } from "./telemetry.ts";
import { checkTenantQuota } from "./tenant-quota.ts";

export interface AppendTarget {
  readonly env: Env;
  readonly tenant: string;
  readonly sessionId: string;
  readonly salt: Uint8Array;
  /** The request's execution context: telemetry flushes run under its waitUntil. */
  readonly ctx: WaitUntil;
}

function concat<T extends Uint8Array | Uint32Array | Int32Array>(a: T, b: T, make: (n: number) => T): T {
  const out = make(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Maps framing failures to API errors. */
export function frameErrorToApi(e: FrameError): ApiError {
  return e.code === "too_large" ? tooLarge(e.message) : badRequest(e.message, e.code);
}

/** What one append request did: committed a turn (final part or a turn of one request), or staged a part of one. */
export type AppendOutcome = { readonly kind: "committed"; readonly result: AppendResult } | { readonly kind: "staged"; readonly staged: AppendStaged };

/**
 * Reads one turn (or one part of a long turn) from `reader` and commits (or stages) it. With `requireEnd` the stream
 * must end after the last chunk (HTTP body); without it the reader stays positioned for the next turn (WebSocket).
 */
export async function appendTurn(t: AppendTarget, reader: FrameReader, requireEnd: boolean): Promise<AppendOutcome> {
  const session = t.env.SESSIONS.get(t.env.SESSIONS.idFromName(sessionObjectName(t.tenant, t.sessionId)));
  // The session first (an unknown session is 404 whatever the body); a continuation part asks again with its stage.
  let ctx = await session.appendContext(null);
  if (ctx === null) throw notFound();
  const first = await nextFrame(reader);
  if (first === null) throw badRequest("empty append: the first frame must be the MessagePack control message");
  if (first.type !== FrameType.control) throw badRequest(`the first frame must be the MessagePack control message (type 1), got type ${first.type}`);
  let control;
  try {
    control = decodeAppendControl(first.payload, { maxTokens: MAX_TURN_TOKENS, maxMedia: MAX_MEDIA_PER_TURN });
  } catch (e) {
    if (e instanceof ControlDecodeError) throw badRequest(e.message, "bad_control");
    throw e;
  }
  const stage = control.stage ?? null;
  const final = control.final !== false;
  if (stage !== null) ctx = await session.appendContext(stage);
  if (ctx === null) throw notFound();
  if (ctx === "stage_unknown") {
    // Whatever is left of it (e.g. the session was truncated under it) can never commit: drop it now.
    if (stage !== null) await session.dropStage(stage).catch(() => undefined);
    throw new ApiError(409, "turn_conflict", `staged turn ${stage} is gone (its lease ended, a newer first part replaced it, or another writer committed): append the turn again from its first part`, "stage_unknown");
  }
  const { meta } = ctx;
  const spec = toCacheSpec(meta.spec);
  let input: TurnInput;
  try {
    input = parseControl(control, ctx.tokens);
    if (input.expectedSeq !== ctx.head + 1) throw turnConflict(ctx.head, input.expectedSeq);
    const turnStart = ctx.staged?.tokenStart ?? ctx.tokens;
    const turnTokens = ctx.tokens + input.tokenIds.length - turnStart;
    if (turnTokens > MAX_STAGED_TURN_TOKENS) throw tooLarge(`a turn has at most ${MAX_STAGED_TURN_TOKENS} tokens, this one would have ${turnTokens}`);
    if (!final && (ctx.tokens + input.tokenIds.length) % meta.chunkTokens !== 0) {
      throw badRequest(`a part that is not final must end at a slot boundary (a multiple of ${meta.chunkTokens} session tokens), this one ends at ${ctx.tokens + input.tokenIds.length}`, "part_boundary");
    }
    // The quota counts staged chunks too (they are rows on the shards).
    await checkTenantQuota(t.env, t.tenant);
  } catch (e) {
    // A refused part drops the whole staged turn, its earlier parts included: a long turn is all or nothing.
    if (stage !== null) await session.dropStage(stage).catch(() => undefined);
    throw e;
  }

  const window: TokenWindow = {
    base: ctx.tailStart,
    tokenIds: concat(ctx.tailTokenIds, input.tokenIds, (n) => new Uint32Array(n)),
    modality: concat(ctx.tailModality, input.modality, (n) => new Uint8Array(n)),
    positions: concat(ctx.tailPositions, input.positions, (n) => new Int32Array(n)),
    media: [...ctx.tailMedia, ...input.media],
  };
  const keyCtx: KeyContext = {
    modelId: meta.model.id,
    conversion: meta.model.conversion,
    specHash: meta.specHash,
    codec: meta.codec,
    storage: meta.storage,
    chunkTokens: meta.chunkTokens,
    salt: t.salt,
  };
  const units = await planUploads(spec, keyCtx, window, ctx);
  const specHash = hexToBytes(meta.specHash);

  // A staged turn's parts share one upload tag (its holds on every shard), so the final part confirms them all at once.
  const tag = stage ?? `upload:${crypto.randomUUID()}`;
  // The upload lease runs from the last batch: each put leases its rows (and its shard's earlier rows of this upload)
  // for UPLOAD_LEASE_MS from now, and once half a lease has passed since the other shards were renewed, they are
  // renewed too. A body slower than that between two batches loses its rows to the alarm, and confirm() refuses it.
  let renewedAt = Date.now();
  const shards = new Set<number>(ctx.staged?.rows.map((r) => r.shard) ?? []);
  if (ctx.staged !== null && shards.size > 0) {
    // The earlier parts' rows: leased from now on again, while this part uploads.
    const leaseUntil = renewedAt + UPLOAD_LEASE_MS;
    await Promise.all([...shards].map((s) => chunkShardStub(t.env, t.tenant, s).renew(t.sessionId, tag, leaseUntil)));
  }
  const chunks = (shard: number) => chunkShardStub(t.env, t.tenant, shard);
  const refs: ChunkRef[] = [];
  const outcomes: ChunkOutcome[] = [];
  let bytes = 0;
  let committed = false;
  let kept = false;
  try {
    // The chunks of one row group's full slots go to their shard in one put, so they pack into one row; a partial
    // (tail) slot's chunks go alone, as the next turn replaces them. One put is in flight while the next batch is
    // read and verified: network read and DO write overlap.
    let inFlight: Promise<void> = Promise.resolve();
    let batch: Array<{ unit: UploadUnit; bytes: Uint8Array; uncompressed: number }> = [];
    const putBatch = async () => {
      const b = batch;
      batch = [];
      await inFlight;
      const shard = b[0].unit.shard;
      const now = Date.now();
      const leaseUntil = now + UPLOAD_LEASE_MS;
      if (now - renewedAt > UPLOAD_LEASE_MS / 2) {
        await Promise.all([...shards].filter((s) => s !== shard).map((s) => chunks(s).renew(t.sessionId, tag, leaseUntil)));
        renewedAt = now;
      }
      shards.add(shard);
      inFlight = chunks(shard)
        .putChunks(
          b.map((x) => ({ key: x.unit.key, bytes: x.bytes, uncompressed: x.uncompressed })),
          t.sessionId,
          tag,
          leaseUntil,
        )
        .then((places) => {
          places.forEach((p, i) => {
            const { unit, bytes: chunk, uncompressed } = b[i];
            refs.push({ ...unit, sealed: unit.codec.sealed, bytes: chunk.length, row: p.row, offset: p.offset });
            outcomes.push({ slot: unit.slot, tokens: unit.tokenCount, bytes: chunk.length, bytesUncompressed: uncompressed, created: p.created });
          });
        });
    };
    const full = (u: UploadUnit) => u.tokenCount === meta.chunkTokens;
    await pausePoint(t.env, "append.beforeUpload", t.sessionId);
    for (const [i, unit] of units.entries()) {
      const frame = await nextFrame(reader);
      if (frame === null) throw badRequest(`body ended before the chunk for tokens ${unit.tokenStart}+${unit.tokenCount}, layers ${unit.layerStart}+${unit.layerCount} (${i} of ${units.length} chunks received)`, "truncated");
      const chunk = chunkBytesFor(frame, unit, spec, specHash, window);
      batch.push({ unit, bytes: chunk, uncompressed: bf16GqaBytes(spec, unit.tokenCount, unit.layerCount) });
      bytes += chunk.length;
      const next = units[i + 1];
      if (next === undefined || !full(unit) || !full(next) || next.group !== unit.group || next.shard !== unit.shard) await putBatch();
    }
    await inFlight;
    if (requireEnd && (await nextFrame(reader)) !== null) throw badRequest(`unexpected frame after the ${units.length} chunks of the turn`);

    let maxPosition = ctx.nextPosition - 1;
    for (const p of input.positions) if (p > maxPosition) maxPosition = p;
    const turn: TurnRecord = {
      seq: input.expectedSeq,
      tag,
      tokenStart: ctx.tokens,
      tokenCount: input.tokenIds.length,
      tokenIds: input.tokenIds,
      modality: input.modality,
      positions: input.positions,
      media: input.media,
      nextPosition: maxPosition + 1,
      bytesStored: bytes,
      bytesUncompressed: bf16GqaBytes(spec, input.tokenIds.length, spec.layers),
      createdAt: Date.now(),
    };
    const counts = { chunksStored: outcomes.filter((o) => o.created).length, chunksReused: outcomes.filter((o) => !o.created).length };

    if (!final) {
      // Staged: the holds stay leased (an abandoned turn's rows are reaped by the shards when the lease ends).
      await pausePoint(t.env, "append.beforeStage", t.sessionId);
      const leaseUntil = Date.now() + UPLOAD_LEASE_MS;
      await Promise.all([...shards].map((s) => chunks(s).renew(t.sessionId, tag, leaseUntil)));
      const staged = await session.stagePart(stage, turn, refs, counts, leaseUntil);
      if (staged.status === "not_found") throw notFound("the session was deleted during the append");
      if (staged.status === "conflict") {
        if (staged.reason === "stage_unknown") throw new ApiError(409, "turn_conflict", `staged turn ${stage} is gone: append the turn again from its first part`, "stage_unknown");
        throw turnConflict(staged.head, input.expectedSeq);
      }
      kept = true;
      recordAppendChunks(t.env, t.ctx, t.sessionId, outcomes);
      const s = staged.staged;
      return { kind: "staged", staged: { staged: true, stage: tag, seq: s.seq, tokenStart: s.tokenStart, tokenCount: s.tokenCount, bytes: s.bytesStored, leaseExpiresAt: s.leaseUntil } };
    }

    await pausePoint(t.env, "append.beforeConfirm", t.sessionId);
    // Every row the refs point into must still be held by this upload; a lease that ran out lost them to the alarm.
    const rows = [...refs.map((r) => ({ shard: r.shard, row: r.row })), ...(ctx.staged?.rows ?? [])];
    const lost = (
      await Promise.all([...shards].map((s) => chunks(s).confirm(t.sessionId, tag, [...new Set(rows.filter((r) => r.shard === s).map((r) => r.row))])))
    ).flat();
    if (lost.length > 0) {
      throw new ApiError(409, "turn_conflict", `the upload outlived its lease (${UPLOAD_LEASE_MS / 60_000} min between two batches): ${lost.length} of its rows were released; append the turn again`, "upload_lease_expired");
    }
    await pausePoint(t.env, "append.beforeCommit", t.sessionId);
    const outcome = await session.commitTurn(input.expectedSeq, turn, refs, counts, stage);
    if (outcome.status === "not_found") throw notFound("the session was deleted during the append");
    if (outcome.status === "conflict") {
      if (outcome.reason === "stage_unknown") throw new ApiError(409, "turn_conflict", `staged turn ${stage} is gone: append the turn again from its first part`, "stage_unknown");
      throw turnConflict(outcome.head, input.expectedSeq);
    }
    committed = true;
    recordAppendChunks(t.env, t.ctx, t.sessionId, outcomes);
    const w = outcome.turn;
    return {
      kind: "committed",
      result: {
        seq: turn.seq,
        tokenStart: w.tokenStart,
        tokenCount: w.tokenCount,
        chunksStored: w.chunksStored,
        chunksReused: w.chunksReused,
        bytes: w.bytesStored,
        nextPosition: w.nextPosition,
      },
    };
  } finally {
    if (!committed && !kept) {
      // Nothing of a rejected turn stays: drop its holds now rather than at lease expiry; a failed part drops the
      // whole staged turn (its earlier parts too), so a long turn is all or nothing.
      if (shards.size > 0) await Promise.all([...shards].map((s) => chunks(s).release(t.sessionId, tag))).catch(() => undefined);
      if (stage !== null) await session.dropStage(stage).catch(() => undefined);
    }
  }
}

async function nextFrame(reader: FrameReader) {
  try {
    const frame = await reader.next();
    if (reader.bytesRead > MAX_APPEND_BODY_BYTES) throw tooLarge(`append body above ${MAX_APPEND_BODY_BYTES} bytes: split the turn`);
    return frame;
  } catch (e) {
    if (e instanceof FrameError) throw frameErrorToApi(e);
    throw e;
  }
}
