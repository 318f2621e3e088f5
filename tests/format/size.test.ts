import { describe, expect, it } from "vitest";
import { llama2_7bSpec, llavaNext8bSpec, qwen25vl7bSpec } from "../../format/cache-spec.ts";
import { cacheBytesPerToken, paperPercent } from "../../format/size/bytes-per-token.ts";

describe("cacheBytesPerToken: the papers' figures", () => {
  it("reproduces MHA2MLA's Llama-2-7B figures (r = 16 dims)", () => {
    const d64 = cacheBytesPerToken(llama2_7bSpec(64), { bits: 4 });
    expect(d64.originalBf16).toBe(524_288);
    expect(d64.fractions.mla).toBe(0.3125);
    expect(paperPercent(d64.fractions.mla).change).toBe(-68.75);
    expect(paperPercent(d64.fractions.paper).change).toBe(-92.19);
    const d32 = cacheBytesPerToken(llama2_7bSpec(32), { bits: 4 });
    expect(paperPercent(d32.fractions.mla).change).toBe(-81.25);
    expect(paperPercent(d32.fractions.paper).change).toBe(-95.31);
    const d16 = cacheBytesPerToken(llama2_7bSpec(16), { bits: 4 });
    expect(paperPercent(d16.fractions.mla).change).toBe(-87.5);
    expect(d16.fractions.paper).toBe(0.03125);
    expect(paperPercent(d16.fractions.paper).change).toBe(-96.87);
    // Int2 at d_kv 64 is not in the paper; the convention gives 31.25 % × 2/16.
    expect(cacheBytesPerToken(llama2_7bSpec(64), { bits: 2 }).fractions.paper).toBe(0.0390625);
  });

  it("reproduces the MHA2MLA-VLM fractions of docs/method.md §12.2", () => {
    const cases: Array<[number, number, number]> = [
      [32, 0.25, 0.9375],
      [64, 0.375, 0.90625],
      [128, 0.625, 0.84375],
    ];
    for (const [dKv, mla, int4Reduction] of cases) {
      for (const spec of [qwen25vl7bSpec(dKv), llavaNext8bSpec(dKv)]) {
        const r = cacheBytesPerToken(spec, { bits: 4 });
        expect(r.fractions.mla).toBe(mla);
        expect(1 - r.fractions.paper).toBe(int4Reduction);
      }
    }
    expect(cacheBytesPerToken(qwen25vl7bSpec(64), { bits: 4 }).originalBf16).toBe(28_672 * 2);
    expect(cacheBytesPerToken(llavaNext8bSpec(64), { bits: 4 }).originalBf16).toBe(65_536 * 2);
    expect(cacheBytesPerToken(llavaNext8bSpec(32), { bits: 4 }).mlaBf16).toBe(32 * 1024);
    expect(cacheBytesPerToken(llavaNext8bSpec(64), { bits: 4 }).mlaBf16).toBe(48 * 1024);
    expect(cacheBytesPerToken(llavaNext8bSpec(128), { bits: 4 }).mlaBf16).toBe(80 * 1024);
    // Paper-style rounding: remaining % rounded, change derived from it (§12.2 prints −90.63 for the exact −90.625).
    expect(paperPercent(0.09375)).toEqual({ remaining: 9.38, change: -90.62 });
  });
});

describe("cacheBytesPerToken: real bytes", () => {
  it("matches every cell of the docs/method.md §9.4 table in its symmetric convention", () => {
    const table: Array<[typeof qwen25vl7bSpec, number, number, number, number]> = [
      // spec, d_kv, bf16 MLA, int4 latent + bf16 rope, int8 latent + bf16 rope
      [qwen25vl7bSpec, 32, 14_336, 9_072, 10_864],
      [qwen25vl7bSpec, 64, 21_504, 10_976, 14_560],
      [qwen25vl7bSpec, 128, 35_840, 14_784, 21_952],
      [llavaNext8bSpec, 32, 32_768, 20_736, 24_832],
      [llavaNext8bSpec, 64, 49_152, 25_088, 33_280],
      [llavaNext8bSpec, 128, 81_920, 33_792, 50_176],
    ];
    for (const [make, dKv, bf16, int4, int8] of table) {
      const r4 = cacheBytesPerToken(make(dKv), { bits: 4, group: 64, axis: "token", rope: "fp16" });
      expect(r4.mlaBf16).toBe(bf16);
      expect(r4.symmetricTable).toBe(int4);
      expect(cacheBytesPerToken(make(dKv), { bits: 8 }).symmetricTable).toBe(int8);
    }
  });

  it("counts the asymmetric zero point (+2 B per group) and the chunk framing (Qwen d_kv 64, int4, C = 64)", () => {
    const r = cacheBytesPerToken(qwen25vl7bSpec(64), { bits: 4 });
    const groupsPerToken = 28 * (256 / 64);
    expect(r.quantized.latentCodes).toBe(28 * 128);
    expect(r.quantized.latentScales).toBe(groupsPerToken * 4);
    expect(r.quantized.rope).toBe(28 * 128 * 2);
    expect(r.quantized.latentCodes + r.quantized.latentScales + r.quantized.rope).toBe(10_976 + 2 * groupsPerToken);
    // One chunk holds all 28 layers: 80 header + 64 modality + 768 positions + 4 CRC over 64 tokens.
    expect(r.quantized.framing).toBe(916 / 64);
    expect(r.quantized.total).toBe(11_200 + 916 / 64);
    expect(r.mlaRawTail).toBe(2 * 21_504);
  });

  it("amortises channel-axis scales over the chunk and counts rope int8/int4 scales per head", () => {
    const ch = cacheBytesPerToken(qwen25vl7bSpec(64), { bits: 4, axis: "channel", group: 64, chunkTokens: 64 });
    // One fp16 scale + zero per column per 64 rows: 256 × 4 / 64 per token per layer.
    expect(ch.quantized.latentScales).toBe((28 * 256 * 4) / 64);
    const small = cacheBytesPerToken(qwen25vl7bSpec(64), { bits: 4, axis: "channel", group: 64, chunkTokens: 32 });
    expect(small.quantized.latentScales).toBe((28 * 256 * 4) / 32);
    const r8 = cacheBytesPerToken(qwen25vl7bSpec(64), { bits: 4, rope: "int8" });
    expect(r8.quantized.rope).toBe(28 * (128 + 4 * 4));
    const r4 = cacheBytesPerToken(llavaNext8bSpec(32), { bits: 2, rope: "int4" });
    expect(r4.quantized.rope).toBe(32 * (128 + 8 * 4));
    expect(r4.quantized.latentCodes).toBe(32 * 64);
  });
});
