// Byte layout of a chunk, computed only from (geometry, codec, token count, layer count): writers place sections with
// it and readers recompute it and check the declared length, so no length is ever trusted from the wire.
import type { CacheSpec } from "../cache-spec.ts";
import type { Axis, BlockBits } from "../codec/types.ts";
import { CHECKSUM_BYTES, FIXED_HEADER_BYTES, SECTION_ALIGN } from "./constants.ts";
import { ChunkError, type ChunkCodec, type ChunkErrorCode, type ChunkGeometry } from "./types.ts";

/** Layout of one quantized (or fp16) block; offsets are relative to the start of its layer. */
export interface QuantizedBlockLayout {
  readonly kind: "quantized";
  readonly rows: number;
  readonly cols: number;
  readonly bits: BlockBits;
  /** Effective group (0 for fp16). */
  readonly group: number;
  readonly axis: Axis;
  readonly codesOffset: number;
  readonly codesBytes: number;
  /** fp16 values in each of scales and zeros (0 for fp16 blocks). */
  readonly scaleCount: number;
  readonly scalesOffset: number;
  readonly zerosOffset: number;
}

/** Layout of one raw float32 block (unsealed tail). */
export interface RawBlockLayout {
  readonly kind: "raw";
  readonly rows: number;
  readonly cols: number;
  readonly offset: number;
}

export type BlockLayout = QuantizedBlockLayout | RawBlockLayout;

/** Where everything of a chunk lives. Layers are laid out back to back with a constant stride. */
export interface ChunkLayout {
  readonly tokenCount: number;
  readonly layerCount: number;
  readonly latentWidth: number;
  readonly ropeWidth: number;
  readonly modalityOffset: number;
  readonly positionsOffset: number;
  readonly firstLayerOffset: number;
  readonly layerStride: number;
  readonly latent: BlockLayout;
  readonly rope: BlockLayout;
  readonly checksumOffset: number;
  /** Total bytes, checksum included. */
  readonly byteLength: number;
}

/** The geometry a spec implies for its chunks. */
export function geometryOfSpec(spec: CacheSpec): ChunkGeometry {
  return { modelLayers: spec.layers, kvHeads: spec.kvHeads, dKv: spec.dKv, ropeDims: spec.ropeDims };
}

/** Rounds up to the next multiple of SECTION_ALIGN. */
export function alignUp(n: number): number {
  return Math.ceil(n / SECTION_ALIGN) * SECTION_ALIGN;
}

/**
 * Layout of a chunk. Throws ChunkError(`errorCode`) when the combination cannot be stored, e.g. a latent width that
 * is not a multiple of the token-axis group, or a token count that is not a multiple of the channel-axis group.
 */
export function chunkLayout(
  geometry: ChunkGeometry,
  codec: ChunkCodec,
  tokenCount: number,
  layerCount: number,
  errorCode: ChunkErrorCode = "invalid_header",
): ChunkLayout {
  const latentWidth = geometry.kvHeads * geometry.dKv;
  const ropeWidth = geometry.kvHeads * geometry.ropeDims;
  const modalityOffset = FIXED_HEADER_BYTES;
  const positionsOffset = modalityOffset + alignUp(tokenCount);
  const firstLayerOffset = positionsOffset + 12 * tokenCount;

  let latent: BlockLayout;
  let rope: BlockLayout;
  let layerStride: number;
  if (!codec.sealed) {
    latent = { kind: "raw", rows: tokenCount, cols: latentWidth, offset: 0 };
    rope = { kind: "raw", rows: tokenCount, cols: ropeWidth, offset: 4 * tokenCount * latentWidth };
    layerStride = 4 * tokenCount * (latentWidth + ropeWidth);
  } else {
    const extent = codec.axis === "token" ? latentWidth : tokenCount;
    const g = Math.min(codec.group, extent);
    if (extent % g !== 0) {
      const what = codec.axis === "token" ? `latent width ${latentWidth}` : `token count ${tokenCount}`;
      throw new ChunkError(errorCode, `${what} is not a multiple of the ${codec.axis}-axis group ${g}`);
    }
    const latentBlock = quantizedBlockLayout(tokenCount, latentWidth, codec.bits, g, codec.axis, 0);
    const latentEnd = blockEnd(latentBlock);
    const ropeBlock =
      codec.rope === "fp16"
        ? quantizedBlockLayout(tokenCount, ropeWidth, 16, 0, "token", latentEnd)
        : quantizedBlockLayout(tokenCount, ropeWidth, codec.rope === "int8" ? 8 : 4, geometry.ropeDims, "token", latentEnd);
    latent = latentBlock;
    rope = ropeBlock;
    layerStride = blockEnd(ropeBlock);
  }
  const checksumOffset = firstLayerOffset + layerCount * layerStride;
  return {
    tokenCount,
    layerCount,
    latentWidth,
    ropeWidth,
    modalityOffset,
    positionsOffset,
    firstLayerOffset,
    layerStride,
    latent,
    rope,
    checksumOffset,
    byteLength: checksumOffset + CHECKSUM_BYTES,
  };
}

function quantizedBlockLayout(
  rows: number,
  cols: number,
  bits: BlockBits,
  group: number,
  axis: Axis,
  start: number,
): QuantizedBlockLayout {
  const codesBytes = Math.ceil((rows * cols * bits) / 8);
  // fp16 blocks carry no scales; a zero-width block (ropeDims = 0, NoPE) has no groups either.
  const scaleCount = bits === 16 || group === 0 ? 0 : (rows * cols) / group;
  const scalesOffset = start + alignUp(codesBytes);
  const zerosOffset = scalesOffset + alignUp(2 * scaleCount);
  return { kind: "quantized", rows, cols, bits, group, axis, codesOffset: start, codesBytes, scaleCount, scalesOffset, zerosOffset };
}

/** First byte after a block (aligned). */
function blockEnd(b: QuantizedBlockLayout): number {
  return b.zerosOffset + alignUp(2 * b.scaleCount);
}
