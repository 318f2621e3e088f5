// Splits a model's layers into ranges so that no chunk exceeds the DO row budget, whatever the model, codec and
// token count (e.g. LLaVA-NeXT d_kv = 128 raw tail: 10.5 MB per 64 tokens over all layers → several ranges).
import type { CacheSpec } from "../cache-spec.ts";
import { chunkLayout, geometryOfSpec } from "./layout.ts";
import { MAX_CHUNK_BYTES, ChunkError, type ChunkCodec } from "./types.ts";

/** A contiguous range of layers stored in one chunk. */
export interface LayerRange {
  readonly layerStart: number;
  readonly layerCount: number;
}

/**
 * The fewest layer ranges (as equal as possible, earlier ranges one layer longer) such that a chunk of `tokens` tokens
 * for each range is at most `maxBytes`. Deterministic: writer and reader derive the same split.
 * Throws ChunkError("too_large") when even one layer does not fit.
 */
export function planChunkLayerRanges(spec: CacheSpec, codec: ChunkCodec, tokens: number, maxBytes = MAX_CHUNK_BYTES): LayerRange[] {
  const geometry = geometryOfSpec(spec);
  const one = chunkLayout(geometry, codec, tokens, 1, "invalid_input");
  const fixed = one.firstLayerOffset + (one.byteLength - one.checksumOffset);
  const fit = Math.floor((maxBytes - fixed) / one.layerStride);
  if (fit < 1) {
    throw new ChunkError("too_large", `one layer of ${tokens} tokens takes ${one.byteLength} bytes, above ${maxBytes}: use fewer tokens per chunk`);
  }
  const count = Math.ceil(spec.layers / fit);
  const base = Math.floor(spec.layers / count);
  const extra = spec.layers % count;
  const ranges: LayerRange[] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const n = base + (i < extra ? 1 : 0);
    ranges.push({ layerStart: start, layerCount: n });
    start += n;
  }
  return ranges;
}

/** Total bytes of the chunks that store `tokens` tokens of every layer, split per planChunkLayerRanges. */
export function plannedChunkBytes(spec: CacheSpec, codec: ChunkCodec, tokens: number, maxBytes = MAX_CHUNK_BYTES): number {
  const geometry = geometryOfSpec(spec);
  let total = 0;
  for (const r of planChunkLayerRanges(spec, codec, tokens, maxBytes)) {
    total += chunkLayout(geometry, codec, tokens, r.layerCount, "invalid_input").byteLength;
  }
  return total;
}
