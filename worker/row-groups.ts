// Row groups: the slots of a session are taken in groups of G consecutive slots, G being how many full slots fit in one
// row (at least 1). A group's chunks live on one shard, picked by the group's anchor (the prefix hash of its first
// slot), so one turn's full slots of a group pack into one row and a restore reads them in one span. Equal chains give
// equal anchors and shards, so dedupe still finds a chunk; different sessions' groups spread over the shards.
import type { CacheSpec } from "../format/cache-spec.ts";
import { plannedChunkBytes } from "../format/chunk/plan.ts";
import type { CodecParams } from "../format/codec/types.ts";
import type { SessionStorage } from "../format/wire/messages.ts";
import { MAX_ROW_BYTES } from "./limits.ts";

/** G: full slots of `chunkTokens` tokens per row group. Quantized sessions store full slots sealed, raw ones raw. */
export function rowGroupSlots(spec: CacheSpec, codec: CodecParams, storage: SessionStorage, chunkTokens: number): number {
  const sealed = storage === "quantized";
  const slotBytes = plannedChunkBytes(spec, { sealed, bits: codec.bits, group: codec.group, axis: codec.axis, rope: codec.rope }, chunkTokens);
  return Math.max(1, Math.floor(MAX_ROW_BYTES / slotBytes));
}
