// What an append must upload, in order: for each slot the turn touches (the unfilled last slot of the session
// included), the layer ranges of planChunkLayerRanges — sealed chunks for filled slots, a raw tail for the last partial
// one — with the key of each and the shard of its row group (worker/row-groups.ts).
import type { CacheSpec } from "../../format/cache-spec.ts";
import { planChunkLayerRanges } from "../../format/chunk/plan.ts";
import type { ChunkCodec } from "../../format/chunk/types.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import type { MediaSpan } from "../../format/wire/messages.ts";
import { chunkKey, shardOf, slotPrefix, ZERO_PREFIX, type KeyContext } from "../keys.ts";

/** One expected chunk. */
export interface UploadUnit {
  readonly slot: number;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layerStart: number;
  readonly layerCount: number;
  readonly codec: ChunkCodec;
  readonly key: string;
  readonly prefix: string;
  /** Row group (slot ÷ G) and the shard its anchor picks. */
  readonly group: number;
  readonly shard: number;
}

/** Per-token data of [base, end): the session tail followed by the new turn. */
export interface TokenWindow {
  readonly base: number;
  readonly tokenIds: Uint32Array;
  readonly modality: Uint8Array;
  readonly positions: Int32Array;
  readonly media: readonly MediaSpan[];
}

export function chunkCodecOf(codec: CodecParams, sealed: boolean): ChunkCodec {
  return { sealed, bits: codec.bits, group: codec.group, axis: codec.axis, rope: codec.rope };
}

/** Where the window starts in the session's chains: the previous slot's prefix and the row groups (AppendContext). */
export interface ChainStart {
  readonly prevPrefix: string | null;
  /** Slots per row group. */
  readonly groupSlots: number;
  /** The anchor of the first slot's row group when that group starts before the window, else null. */
  readonly groupAnchor: string | null;
}

/** Units for the tokens of `window` (which starts at a slot boundary), chaining keys and row groups from `chain`. */
export async function planUploads(spec: CacheSpec, keyCtx: KeyContext, window: TokenWindow, chain: ChainStart): Promise<UploadUnit[]> {
  const c = keyCtx.chunkTokens;
  const { groupSlots } = chain;
  const end = window.base + window.tokenIds.length;
  const units: UploadUnit[] = [];
  let previous = chain.prevPrefix ?? ZERO_PREFIX;
  let anchor = chain.groupAnchor;
  for (let start = window.base; start < end; start += c) {
    const count = Math.min(c, end - start);
    const sealed = count === c && keyCtx.storage === "quantized";
    const i0 = start - window.base;
    const prefix = await slotPrefix(keyCtx, previous, {
      slot: start / c,
      tokenIds: window.tokenIds.subarray(i0, i0 + count),
      modality: window.modality.subarray(i0, i0 + count),
      positions: window.positions.subarray(3 * i0, 3 * (i0 + count)),
      media: window.media,
    });
    const slot = start / c;
    if (slot % groupSlots === 0) anchor = prefix;
    if (anchor === null) throw new Error(`slot ${slot}: the anchor of its row group is unknown`);
    const shard = shardOf(anchor);
    const codec = chunkCodecOf(keyCtx.codec, sealed);
    for (const r of planChunkLayerRanges(spec, codec, count)) {
      units.push({
        slot,
        tokenStart: start,
        tokenCount: count,
        layerStart: r.layerStart,
        layerCount: r.layerCount,
        codec,
        key: await chunkKey(keyCtx, prefix, sealed, r.layerStart, r.layerCount),
        prefix,
        group: Math.floor(slot / groupSlots),
        shard,
      });
    }
    previous = prefix;
  }
  return units;
}
