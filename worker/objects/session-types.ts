// Records exchanged between the Worker and SessionObject over RPC (structured clone: typed arrays travel as is).
import type { CacheSpec } from "../../format/cache-spec.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import type { MediaSpan, ModelRef, SessionStorage } from "../../format/wire/messages.ts";

export type SessionState = "active" | "pending" | "deleting";

/** A cache spec as it comes back over RPC (tuples arrive as arrays); turn it back with toCacheSpec. */
export type StoredSpec = Omit<CacheSpec, "mropeSection"> & { readonly mropeSection: readonly number[] | null };

export function toCacheSpec(s: StoredSpec): CacheSpec {
  const m = s.mropeSection;
  return { ...s, mropeSection: m === null ? null : [m[0], m[1], m[2]] };
}

export interface SessionMeta {
  readonly id: string;
  readonly tenant: string;
  readonly spec: StoredSpec;
  readonly specHash: string;
  readonly model: ModelRef;
  readonly codec: CodecParams;
  readonly storage: SessionStorage;
  readonly chunkTokens: number;
  readonly ttlMs: number;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly parent: { readonly id: string; readonly seq: number } | null;
}

/** A committed turn. Per-token arrays are stored as little-endian bytes (u32 token ids, u8 modality, i32×3 positions). */
export interface TurnRecord {
  readonly seq: number;
  /** Upload tag: the holds of this turn's chunks are (key, session, tag). */
  readonly tag: string;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly tokenIds: Uint32Array;
  readonly modality: Uint8Array;
  readonly positions: Int32Array;
  readonly media: readonly MediaSpan[];
  readonly nextPosition: number;
  readonly bytesStored: number;
  readonly bytesUncompressed: number;
  readonly createdAt: number;
}

/** One chunk a turn uploaded: a slot × a layer range, and where it is stored. */
export interface ChunkRef {
  readonly slot: number;
  readonly layerStart: number;
  readonly layerCount: number;
  readonly sealed: boolean;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly key: string;
  readonly bytes: number;
  /** Slot prefix hash the key derives from (the chain input of the next slot). */
  readonly prefix: string;
  /** The ChunkObject shard, the row there that holds the chunk (several chunks may share a row) and its offset in it. */
  readonly shard: number;
  readonly row: string;
  readonly offset: number;
}

/** What an append needs before reading chunks: the head and the tokens of the unfilled last slot. */
export interface AppendContext {
  readonly meta: SessionMeta;
  readonly head: number;
  readonly tokens: number;
  readonly nextPosition: number;
  /** First token of the last, unfilled slot (= tokens when the last slot is full). */
  readonly tailStart: number;
  readonly tailTokenIds: Uint32Array;
  readonly tailModality: Uint8Array;
  readonly tailPositions: Int32Array;
  /** Media spans overlapping [tailStart, tokens). */
  readonly tailMedia: readonly MediaSpan[];
  /** Prefix hash of the slot before the tail slot (null at slot 0). */
  readonly prevPrefix: string | null;
  /** Slots per row group (worker/row-groups.ts), the G that `groupAnchor` was found with. */
  readonly groupSlots: number;
  /**
   * Prefix hash of the first slot of the tail slot's row group when that slot lies before the tail (its anchor:
   * worker/row-groups.ts), else null (the append computes it).
   */
  readonly groupAnchor: string | null;
  /** The staged turn this append continues (a part after the first), or null. */
  readonly staged: StagedTurn | null;
}

/**
 * A turn being appended in parts (docs/api.md "Turns of any length"): the parts staged so far, invisible to every
 * reader until the last part commits them as one turn. Its chunks are held under the upload `tag` with leased holds.
 */
export interface StagedTurn {
  readonly tag: string;
  readonly seq: number;
  /** First token of the turn, and the tokens staged so far (the next part starts at tokenStart + tokenCount). */
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly parts: number;
  readonly nextPosition: number;
  readonly bytesStored: number;
  readonly bytesUncompressed: number;
  readonly chunksStored: number;
  readonly chunksReused: number;
  /** Ms since the epoch: after this the staged turn is dropped (its leased holds are reaped by the shards too). */
  readonly leaseUntil: number;
  /** The (shard, row) pairs the staged refs point into: the final part confirms their holds. */
  readonly rows: ReadonlyArray<{ readonly shard: number; readonly row: string }>;
}

/** Counts of one part's chunks (what the final AppendResult sums over the parts). */
export interface PartCounts {
  readonly chunksStored: number;
  readonly chunksReused: number;
}

export type StageOutcome = { status: "ok"; staged: StagedTurn } | { status: "conflict"; head: number; reason?: string } | { status: "not_found" };

export interface ForkSnapshot {
  readonly meta: SessionMeta;
  readonly turns: readonly TurnRecord[];
  readonly refs: ReadonlyArray<ChunkRef & { readonly seq: number }>;
}

export type CommitOutcome =
  | { status: "ok"; turn: { tokenStart: number; tokenCount: number; bytesStored: number; chunksStored: number; chunksReused: number; nextPosition: number } }
  | { status: "conflict"; head: number; reason?: string }
  | { status: "not_found" };
