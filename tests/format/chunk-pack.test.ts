// packChunk / unpackChunk with the TypeScript reference codec: the chunk carries exactly what the codec produced, and
// the values come back within the codec's error bound (docs/codec.md: |x − x̂| ≤ s/2 per group).
import { describe, expect, it } from "vitest";
import { qwen25vl7bSpec, validateCacheSpec, type CacheSpec } from "../../format/cache-spec.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import type { Axis, Bits, RopePolicy } from "../../format/codec/types.ts";
import { readChunkHeader } from "../../format/chunk/decode.ts";
import { packChunk, unpackChunk, type ChunkInput, type LayerValues } from "../../format/chunk/pack.ts";
import { ChunkError, type ChunkCodec } from "../../format/chunk/types.ts";
import { rng } from "./chunk-fixtures.ts";

/** Gaussian-ish values with a few large outliers, like rotated keys. */
function values(n: number, seed: number): Float32Array {
  const next = rng(seed);
  const u = () => (next() + 1) / 4294967297;
  return new Float32Array(n).map((_, i) => {
    const g = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
    return i % 37 === 5 ? g * 20 : g;
  });
}

function input(spec: CacheSpec, tokens: number, layerStart: number, layerCount: number, seed: number): ChunkInput {
  const dc = spec.kvHeads * spec.dKv;
  const rw = spec.kvHeads * spec.ropeDims;
  const layers: LayerValues[] = [];
  for (let l = 0; l < layerCount; l++) layers.push({ latent: values(tokens * dc, seed + 2 * l), rope: values(tokens * rw, seed + 2 * l + 1) });
  return {
    tokenStart: 192,
    modality: new Uint8Array(tokens).map((_, i) => (i >= 4 && i < 20 ? 1 : 0)),
    positions: new Int32Array(3 * tokens).map((_, i) => 10 + Math.floor(i / 3) + (i % 3)),
    layerStart,
    layers,
  };
}

/** Largest |x − x̂| allowed for a min-max block of `bits`: half a step of the block's range, with fp16 slack. */
function bound(x: Float32Array, bits: number): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const slack = Math.max(Math.abs(lo), Math.abs(hi)) * 2 ** -9;
  return (((hi - lo + slack) / (2 ** bits - 1)) * 0.5) * 1.01 + 1e-6;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length} differ`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const spec = qwen25vl7bSpec(32);
const TOKENS = 64;

describe("packChunk / unpackChunk (reference codec)", () => {
  const combos: ChunkCodec[] = [];
  for (const bits of [8, 4, 2] as Bits[])
    for (const axis of ["token", "channel"] as Axis[])
      for (const rope of ["fp16", "int8", "int4"] as RopePolicy[]) combos.push({ sealed: true, bits, group: 64, axis, rope });

  for (const codec of combos) {
    it(`sealed int${codec.bits} ${codec.axis} axis, rope ${codec.rope}: bit-exact codec output, values within bound`, () => {
      const x = input(spec, TOKENS, 3, 2, 11);
      const bytes = packChunk(referenceCodec, spec, codec, x);
      expect(packChunk(referenceCodec, spec, codec, x)).toEqual(bytes);
      const out = unpackChunk(referenceCodec, bytes, spec);
      expect(out.header).toMatchObject({ tokenStart: 192, tokenCount: TOKENS, layerStart: 3, layerCount: 2, codec });
      expect(out.header.modality).toEqual(x.modality);
      expect(out.header.positions).toEqual(x.positions);
      for (let l = 0; l < 2; l++) {
        const inL = x.layers[l];
        const got = out.layers[l];
        // Exactly what the codec alone gives.
        const direct = referenceCodec.dequantize(referenceCodec.quantize(inL.latent, TOKENS, 128, codec.bits, 64, codec.axis));
        expect(got.latent).toEqual(direct);
        const ropeBits = codec.rope === "fp16" ? 16 : codec.rope === "int8" ? 8 : 4;
        if (ropeBits === 16) {
          let worst = 0; // round-to-nearest fp16: relative error ≤ 2^-11, absolute ≤ 2^-25 in the subnormal range
          for (let i = 0; i < inL.rope.length; i++) {
            worst = Math.max(worst, Math.abs(got.rope[i] - inL.rope[i]) - (Math.abs(inL.rope[i]) * 2 ** -11 + 2 ** -25));
          }
          expect(worst).toBeLessThanOrEqual(0);
        } else {
          // One group per KV head (r = 32 values): the bound of each head's slice of each token.
          let worst = -Infinity;
          for (let t = 0; t < TOKENS; t++)
            for (let h = 0; h < 4; h++) {
              const at = t * 128 + h * 32;
              const slice = inL.rope.subarray(at, at + 32);
              worst = Math.max(worst, maxAbsDiff(got.rope.subarray(at, at + 32), slice) - bound(slice, ropeBits));
            }
          expect(worst).toBeLessThanOrEqual(0);
        }
        // A block-wide bound holds for every group inside it.
        expect(maxAbsDiff(got.latent, inL.latent)).toBeLessThanOrEqual(bound(inL.latent, codec.bits));
      }
    });
  }

  it("stores the unsealed tail raw: values come back exactly, in their own memory", () => {
    const x = input(spec, 5, 0, 28, 3);
    const codec: ChunkCodec = { sealed: false, bits: 4, group: 64, axis: "token", rope: "fp16" };
    const bytes = packChunk(referenceCodec, spec, codec, x);
    expect(bytes.length).toBe(readChunkHeader(bytes).byteLength);
    const out = unpackChunk(referenceCodec, bytes, spec);
    for (let l = 0; l < 28; l++) {
      expect(out.layers[l].latent).toEqual(x.layers[l].latent);
      expect(out.layers[l].rope).toEqual(x.layers[l].rope);
      expect(out.layers[l].latent.buffer).not.toBe(bytes.buffer);
    }
  });

  it("stores nothing for a NoPE conversion (r = 0) under every rope policy", () => {
    const nope = validateCacheSpec({ ...spec, ropeDims: 0 });
    for (const rope of ["fp16", "int8", "int4"] as RopePolicy[]) {
      const codec: ChunkCodec = { sealed: true, bits: 8, group: 64, axis: "token", rope };
      const out = unpackChunk(referenceCodec, packChunk(referenceCodec, nope, codec, input(nope, 8, 0, 1, 5)), nope);
      expect(out.layers[0].rope).toHaveLength(0);
      expect(out.layers[0].latent).toHaveLength(8 * 128);
    }
  });

  it("rejects wrong shapes, another spec and corruption with typed errors", () => {
    const codec: ChunkCodec = { sealed: true, bits: 4, group: 64, axis: "token", rope: "int8" };
    const x = input(spec, 8, 0, 1, 9);
    const short = { ...x, layers: [{ latent: x.layers[0].latent.subarray(1), rope: x.layers[0].rope }] };
    expect(() => packChunk(referenceCodec, spec, codec, short)).toThrowError(expect.objectContaining({ code: "invalid_input" }));
    const bytes = packChunk(referenceCodec, spec, codec, x);
    expect(() => unpackChunk(referenceCodec, bytes, qwen25vl7bSpec(64))).toThrowError(expect.objectContaining({ code: "spec_mismatch" }));
    const bad = bytes.slice();
    bad[bad.length - 40] ^= 0x10;
    expect(() => unpackChunk(referenceCodec, bad, spec)).toThrow(ChunkError);
    expect(() => unpackChunk(referenceCodec, bad, spec)).toThrowError(expect.objectContaining({ code: "checksum_mismatch" }));
  });
});
