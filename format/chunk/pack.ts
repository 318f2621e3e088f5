// High-level chunk API: per-layer float32 latent [T×D_c] and rope [T×n_kv·r] in, bytes out (and back), using a Codec
// (WASM or the TypeScript reference) to quantize sealed chunks; the unsealed tail is stored raw float32.
import { latentWidth, ropeWidth, type CacheSpec } from "../cache-spec.ts";
import type { Codec, QuantizedBlock } from "../codec/types.ts";
import { specHash } from "../hash/spec-hash.ts";
import { FORMAT_VERSION } from "./constants.ts";
import { decodeChunk } from "./decode.ts";
import { checkChunkCodec, encodeChunk } from "./encode.ts";
import { ChunkError, type ChunkCodec, type ChunkHeader, type ChunkLayer } from "./types.ts";

/** One layer's float32 values: latent row-major [tokens × D_c], rope keys row-major [tokens × n_kv·r]. */
export interface LayerValues {
  readonly latent: Float32Array;
  readonly rope: Float32Array;
}

/** What packChunk stores: a token range × a layer range of a session's cache. */
export interface ChunkInput {
  readonly tokenStart: number;
  /** Modality per token (0 text, 1 image); its length is the token count. */
  readonly modality: Uint8Array;
  /** [t, h, w] per token. */
  readonly positions: Int32Array;
  readonly layerStart: number;
  /** One entry per layer of the range, starting at layerStart. */
  readonly layers: readonly LayerValues[];
}

/** What unpackChunk returns: the header and per-layer float32 values (dequantized when sealed; own memory). */
export interface UnpackedChunk {
  readonly header: ChunkHeader;
  readonly layers: readonly LayerValues[];
}

/**
 * Packs float32 layer values into a chunk: sealed → latent quantized with (bits, group, axis) and rope per the rope
 * policy (fp16, or int8/int4 with one group per KV head); unsealed → raw float32.
 */
export function packChunk(codec: Codec, spec: CacheSpec, params: ChunkCodec, input: ChunkInput): Uint8Array {
  checkChunkCodec(params);
  const tokens = input.modality.length;
  const dc = latentWidth(spec);
  const rw = ropeWidth(spec);
  const layers: ChunkLayer[] = input.layers.map((layer, i) => {
    if (layer.latent.length !== tokens * dc || layer.rope.length !== tokens * rw) {
      throw new ChunkError(
        "invalid_input",
        `layer ${input.layerStart + i}: latent ${layer.latent.length} and rope ${layer.rope.length} values, expected ${tokens}×${dc} and ${tokens}×${rw}`,
      );
    }
    if (!params.sealed) return { kind: "raw", latent: layer.latent, rope: layer.rope };
    return {
      kind: "quantized",
      latent: codec.quantize(layer.latent, tokens, dc, params.bits, params.group, params.axis),
      rope: quantizeRope(codec, spec, params, layer.rope, tokens, rw),
    };
  });
  const header: ChunkHeader = {
    version: FORMAT_VERSION,
    specHash: specHash(spec),
    codec: params,
    tokenStart: input.tokenStart,
    tokenCount: tokens,
    layerStart: input.layerStart,
    layerCount: input.layers.length,
    modality: input.modality,
    positions: input.positions,
  };
  return encodeChunk(spec, { header, layers }, codec.crc32c);
}

function quantizeRope(codec: Codec, spec: CacheSpec, params: ChunkCodec, rope: Float32Array, tokens: number, width: number): QuantizedBlock {
  if (width === 0) {
    // NoPE conversion (r = 0): nothing to store, and codecs reject empty blocks.
    const bits = params.rope === "fp16" ? 16 : params.rope === "int8" ? 8 : 4;
    return { rows: tokens, cols: 0, bits, group: 0, axis: "token", codes: new Uint8Array(0), scales: new Uint16Array(0), zeros: new Uint16Array(0) };
  }
  if (params.rope === "fp16") return codec.toFp16Block(rope, tokens, width);
  return codec.quantize(rope, tokens, width, params.rope === "int8" ? 8 : 4, spec.ropeDims, "token");
}

/** Decodes and validates a chunk of `spec` and returns float32 values (dequantized with `codec` when sealed). */
export function unpackChunk(codec: Codec, bytes: Uint8Array, spec: CacheSpec): UnpackedChunk {
  const chunk = decodeChunk(bytes, spec, codec.crc32c);
  const layers = chunk.layers.map((layer): LayerValues => {
    if (layer.kind === "raw") return { latent: layer.latent.slice(), rope: layer.rope.slice() };
    return {
      latent: codec.dequantize(layer.latent),
      rope: layer.rope.cols === 0 ? new Float32Array(0) : codec.dequantize(layer.rope),
    };
  });
  const h = chunk.header;
  return {
    header: { ...h, modality: h.modality.slice(), positions: h.positions.slice() },
    layers,
  };
}
