import { describe, expect, it } from "vitest";
import { llama2_7bSpec, llavaNext8bSpec, qwen25vl7bSpec, type CacheSpec } from "../../format/cache-spec.ts";
import type { Axis, Bits, RopePolicy } from "../../format/codec/types.ts";
import { decodeChunk } from "../../format/chunk/decode.ts";
import { encodeChunk } from "../../format/chunk/encode.ts";
import { chunkLayout, geometryOfSpec } from "../../format/chunk/layout.ts";
import { planChunkLayerRanges, plannedChunkBytes } from "../../format/chunk/plan.ts";
import { ChunkError, MAX_CHUNK_BYTES, type ChunkCodec } from "../../format/chunk/types.ts";
import { makeChunk } from "./chunk-fixtures.ts";

const RAW: ChunkCodec = { sealed: false, bits: 4, group: 64, axis: "token", rope: "fp16" };

describe("planChunkLayerRanges", () => {
  it("splits the LLaVA-NeXT d_kv 128 raw tail (10.5 MB per 64 tokens) into 7 ranges under 1.8 MB", () => {
    const spec = llavaNext8bSpec(128);
    // One layer raw: 64 × (1024 + 256) × 4 = 327,680 B; 5 fit in 1.8 MB with the 916 B of framing, so ⌈32/5⌉ = 7.
    expect(chunkLayout(geometryOfSpec(spec), RAW, 64, 1).layerStride).toBe(327_680);
    const ranges = planChunkLayerRanges(spec, RAW, 64);
    expect(ranges.map((r) => r.layerCount)).toEqual([5, 5, 5, 5, 4, 4, 4]);
    expect(ranges.map((r) => r.layerStart)).toEqual([0, 5, 10, 15, 20, 24, 28]);
    expect(plannedChunkBytes(spec, RAW, 64)).toBe(32 * 327_680 + 7 * (80 + 64 + 768 + 4));
  });

  it("keeps every planned chunk of every preset, d_kv and codec within MAX_CHUNK_BYTES and covers all layers once", () => {
    const specs: CacheSpec[] = [];
    for (const d of [32, 64, 128]) specs.push(qwen25vl7bSpec(d), llavaNext8bSpec(d));
    for (const d of [16, 32, 64]) specs.push(llama2_7bSpec(d));
    const codecs: ChunkCodec[] = [RAW];
    for (const bits of [8, 4, 2] as Bits[])
      for (const axis of ["token", "channel"] as Axis[])
        for (const rope of ["fp16", "int8", "int4"] as RopePolicy[]) codecs.push({ sealed: true, bits, group: 64, axis, rope });
    for (const spec of specs) {
      for (const codec of codecs) {
        for (const tokens of [1, 64, 128]) {
          if (codec.sealed && codec.axis === "channel" && tokens % Math.min(64, tokens) !== 0) continue;
          const ranges = planChunkLayerRanges(spec, codec, tokens);
          let next = 0;
          for (const r of ranges) {
            expect(r.layerStart).toBe(next);
            next += r.layerCount;
            expect(chunkLayout(geometryOfSpec(spec), codec, tokens, r.layerCount).byteLength).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
          }
          expect(next).toBe(spec.layers);
          // Fewest ranges: ⌈L / fit⌉ where fit is the most layers one chunk can hold (found by search here).
          let fit = 1;
          while (fit < spec.layers && chunkLayout(geometryOfSpec(spec), codec, tokens, fit + 1).byteLength <= MAX_CHUNK_BYTES) fit++;
          expect(ranges).toHaveLength(Math.ceil(spec.layers / fit));
        }
      }
    }
  });

  it("a sealed Qwen d_kv 64 int4 chunk of 64 tokens holds all 28 layers in one chunk", () => {
    const codec: ChunkCodec = { sealed: true, bits: 4, group: 64, axis: "token", rope: "fp16" };
    expect(planChunkLayerRanges(qwen25vl7bSpec(64), codec, 64)).toEqual([{ layerStart: 0, layerCount: 28 }]);
  });

  it("a planned raw LLaVA chunk encodes under the limit and decodes", () => {
    const spec = llavaNext8bSpec(128);
    const [first] = planChunkLayerRanges(spec, RAW, 64);
    const chunk = makeChunk(spec, RAW, { tokens: 64, layerStart: first.layerStart, layerCount: first.layerCount });
    const bytes = encodeChunk(spec, chunk);
    expect(bytes.length).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
    expect(decodeChunk(bytes, spec).layers).toHaveLength(5);
    // The whole model in one chunk is refused.
    const all = makeChunk(spec, RAW, { tokens: 64, layerStart: 0, layerCount: 6 });
    expect(() => encodeChunk(spec, all)).toThrowError(expect.objectContaining({ code: "too_large" }));
  });

  it("throws too_large when one layer alone does not fit", () => {
    expect(() => planChunkLayerRanges(llavaNext8bSpec(128), RAW, 64, 300_000)).toThrow(ChunkError);
    expect(() => planChunkLayerRanges(llavaNext8bSpec(128), RAW, 64, 300_000)).toThrowError(expect.objectContaining({ code: "too_large" }));
  });
});
