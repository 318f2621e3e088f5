// Hand-made chunk inputs for the format tests: a tiny spec and quantized blocks whose shapes are derived here from
// docs/codec.md (independently of format/chunk/layout.ts), filled with deterministic, valid values.
import { validateCacheSpec, type CacheSpec } from "../../format/cache-spec.ts";
import type { Axis, BlockBits, QuantizedBlock } from "../../format/codec/types.ts";
import { FORMAT_VERSION } from "../../format/chunk/constants.ts";
import type { ChunkCodec, ChunkLayer, DecodedChunk } from "../../format/chunk/types.ts";
import { specHash } from "../../format/hash/spec-hash.ts";

/** 3 layers, 1 KV head of dim 8, d_kv 6 (D_c 6), r 2: small enough to flip every bit of a chunk. */
export const TINY_SPEC: CacheSpec = validateCacheSpec({
  layers: 3,
  heads: 2,
  kvHeads: 1,
  headDim: 8,
  ropeDims: 2,
  dKv: 6,
  latentSpaces: 2,
  mropeSection: [1, 1, 2],
});

/** Deterministic xorshift32 stream. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** A quantized block with valid random codes (unused tail bits zero), finite non-negative scales and finite zeros. */
export function makeBlock(rows: number, cols: number, bits: BlockBits, group: number, axis: Axis, seed: number): QuantizedBlock {
  const next = rng(seed);
  const count = rows * cols;
  const codes = new Uint8Array(Math.ceil((count * bits) / 8));
  for (let i = 0; i < codes.length; i++) codes[i] = next() & 0xff;
  if (bits === 16) {
    // fp16 values: keep the exponent below 31 so every value is finite.
    for (let i = 1; i < codes.length; i += 2) codes[i] &= 0xbb;
  } else {
    const used = (count * bits) % 8;
    if (used !== 0) codes[codes.length - 1] &= (1 << used) - 1;
  }
  const groups = bits === 16 ? 0 : count / group;
  const scales = new Uint16Array(groups).map(() => next() & 0x3bff);
  const zeros = new Uint16Array(groups).map(() => next() & 0xbbff);
  return { rows, cols, bits, group, axis, codes, scales, zeros };
}

/** The blocks a sealed chunk of TINY_SPEC-like geometry needs. */
export function makeQuantizedLayer(spec: CacheSpec, codec: ChunkCodec, tokens: number, seed: number): ChunkLayer {
  const dc = spec.kvHeads * spec.dKv;
  const rw = spec.kvHeads * spec.ropeDims;
  const g = Math.min(codec.group, codec.axis === "token" ? dc : tokens);
  const latent = makeBlock(tokens, dc, codec.bits, g, codec.axis, seed);
  const rope =
    codec.rope === "fp16"
      ? makeBlock(tokens, rw, 16, 0, "token", seed + 1)
      : makeBlock(tokens, rw, codec.rope === "int8" ? 8 : 4, spec.ropeDims, "token", seed + 1);
  return { kind: "quantized", latent, rope };
}

export function makeRawLayer(spec: CacheSpec, tokens: number, seed: number): ChunkLayer {
  const next = rng(seed);
  const f = (n: number) => new Float32Array(n).map(() => ((next() % 20001) - 10000) / 997);
  return { kind: "raw", latent: f(tokens * spec.kvHeads * spec.dKv), rope: f(tokens * spec.kvHeads * spec.ropeDims) };
}

/** A whole chunk of `spec`: tokens [tokenStart, +tokens), layers [layerStart, +layerCount). */
export function makeChunk(
  spec: CacheSpec,
  codec: ChunkCodec,
  opts: { tokenStart?: number; tokens?: number; layerStart?: number; layerCount?: number; seed?: number } = {},
): DecodedChunk {
  const tokens = opts.tokens ?? 3;
  const layerStart = opts.layerStart ?? 1;
  const layerCount = opts.layerCount ?? 2;
  const seed = opts.seed ?? 7;
  const modality = new Uint8Array(tokens).map((_, i) => (i % 3 === 1 ? 1 : 0));
  const positions = new Int32Array(3 * tokens).map((_, i) => (i % 3 === 0 ? 100 + (i / 3) : -((i * 7) % 5)));
  const layers: ChunkLayer[] = [];
  for (let l = 0; l < layerCount; l++) {
    layers.push(codec.sealed ? makeQuantizedLayer(spec, codec, tokens, seed + 10 * l) : makeRawLayer(spec, tokens, seed + 10 * l));
  }
  return {
    header: {
      version: FORMAT_VERSION,
      specHash: specHash(spec),
      codec,
      tokenStart: opts.tokenStart ?? 64,
      tokenCount: tokens,
      layerStart,
      layerCount,
      modality,
      positions,
    },
    layers,
  };
}

/** Bit-at-a-time CRC-32C (RFC 3720 §B.4 definition), the reference the table-driven version is checked against. */
export function bitwiseCrc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
