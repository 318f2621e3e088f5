// The model kernels' CPU references against known numbers and independent code (no GPU): the MatMulNBits reading of
// hand-packed bytes, the test quantizer's round trip.
import { describe, expect, it } from "vitest";
import { dequantizeWeightsRef, linearRef } from "../../kernels/matmul-nbits.ref.ts";
import { linearCall, uploadWeights, validateWeights, type GpuWeights, type NBitsWeights } from "../../kernels/matmul-nbits.ts";
import { rmsNormCall, swigluCall } from "../../kernels/norm-act.ts";
import { rotaryCall } from "../../kernels/rotary.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { KernelInputError } from "../../kernels/errors.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";
import { quantizeNBits } from "./nbits-quantizer.ts";
import { sampleRef, samplerHash, samplerUniform, type SamplingParams } from "../../kernels/sampling.ref.ts";
import { bannedMask, samplingCall } from "../../kernels/sampling.ts";
import { argmaxExcluding } from "../../runtime/decoder-session.ts";
import { mropeTables, rotaryRef, visionRotaryTables } from "../../kernels/rotary.ref.ts";
import { pairStreams, ropeInvFreq, ropeTables, rotatePairs } from "../../runtime/rope.ts";

describe("MatMulNBits reference", () => {
  it("should read hand-packed int4 codes low nibble first, with the default zero point 8 and f16 scales", () => {
    // Row 0: K = 3 in one 32-block: bytes 0x21, 0x03 → codes 1, 2, 3 (the rest is padding); scale 1.0 (0x3c00).
    // Row 1: codes 15, 0, 8; scale 0.5 (0x3800).
    const data = new Uint8Array(2 * 16);
    data[0] = 0x21;
    data[1] = 0x03;
    data[16] = 0x0f;
    data[17] = 0x08;
    const w: NBitsWeights = { kind: "nbits", n: 2, k: 3, bits: 4, block: 32, data, scales: Uint16Array.of(0x3c00, 0x3800) };
    expect(Array.from(dequantizeWeightsRef(w))).toEqual([-7, -6, -5, 3.5, -4, 0]);
    expect(Array.from(linearRef(w, [1, 10, 100], 1, [0.25, 0]))).toEqual([-7 - 60 - 500 + 0.25, 3.5 - 40]);
  });

  it("should read 4-bit zero points packed low-first per row, and 8-bit zero points as bytes", () => {
    // 3 blocks of 32 → zero-point row stride ⌈3/2⌉ = 2 bytes: block 0 low nibble, block 1 high nibble, block 2 next byte.
    const data = new Uint8Array(3 * 16).fill(0x55); // every code 5
    const w: NBitsWeights = { kind: "nbits", n: 1, k: 96, bits: 4, block: 32, data, scales: Uint16Array.of(0x3c00, 0x3c00, 0x3c00), zeroPoints: Uint8Array.of(0x31, 0x07) };
    const d = dequantizeWeightsRef(w);
    expect([d[0], d[32], d[64]]).toEqual([4, 2, -2]);
    const w8: NBitsWeights = { kind: "nbits", n: 1, k: 40, bits: 8, block: 32, data: new Uint8Array(64).fill(200), scales: Uint16Array.of(0x3c00, 0x4000), zeroPoints: Uint8Array.of(100, 190) };
    const d8 = dequantizeWeightsRef(w8);
    expect([d8[0], d8[39]]).toEqual([100, 20]);
  });

  it("should reject B, scales or zero points whose sizes do not match the shape", () => {
    const ok = quantizeNBits(new Float32Array(64), 2, 32, 4, 32, true);
    expect(() => validateWeights({ ...ok, data: ok.data.subarray(1) })).toThrow(KernelInputError);
    expect(() => validateWeights({ ...ok, scales: ok.scales.subarray(1) })).toThrow(KernelInputError);
    expect(() => validateWeights({ ...ok, zeroPoints: new Uint8Array(3) })).toThrow(KernelInputError);
  });

  for (const [bits, zp] of [[4, false], [4, true], [8, false], [8, true]] as const) {
    it(`should round-trip the test quantizer within half a step (int${bits}, ${zp ? "zero points" : "symmetric"})`, () => {
      const rnd = mulberry32(bits + (zp ? 10 : 0));
      const n = 5;
      const k = 150;
      const w = Float32Array.from({ length: n * k }, () => rnd() * 2 - 1);
      const q = quantizeNBits(w, n, k, bits, 64, zp);
      const d = dequantizeWeightsRef(q);
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(d[i] - w[i]));
      const maxStep = 2 / (bits === 4 ? (zp ? 15 : 7) : zp ? 255 : 127);
      expect(worst).toBeLessThanOrEqual(maxStep / 2 + 1e-3);
      expect(worst).toBeGreaterThan(0);
    });
  }
});

describe("rotary reference", () => {
  it("should equal the CPU runtime's M-RoPE (model/rope.ts) on MLA kept pairs", () => {
    const headDim = 32;
    const section: [number, number, number] = [4, 6, 6];
    const pairs = [[0, 5, 12], [2, 7, 15]];
    const tokens = 5;
    const heads = 4;
    const rnd = mulberry32(3);
    const positions = Int32Array.from({ length: 3 * tokens }, () => Math.floor(rnd() * 4000));
    const x = Float64Array.from({ length: tokens * heads * 6 }, () => rnd() * 2 - 1);
    const ours = rotaryRef(x, { tokens, heads, headStride: 6, offset: 0, pairs }, mropeTables(headDim, 1e6, section), positions);
    const tables = ropeTables(positions, tokens, ropeInvFreq(headDim, 1e6), pairStreams(headDim, section));
    const theirs = Float64Array.from(x);
    for (let t = 0; t < tokens; t++) for (let h = 0; h < heads; h++) rotatePairs(theirs, (t * heads + h) * 6, Int32Array.from(pairs[h >> 1]), tables, t);
    expect(Array.from(ours)).toEqual(Array.from(theirs));
  });

  it("should follow Qwen2.5-VL's vision rotary: angles cat(rows·inv_freq, cols·inv_freq), duplicated, rotate_half", () => {
    const d = 16;
    const theta = 1e4;
    const rows = [3, 0];
    const cols = [1, 5];
    const x = Float64Array.from({ length: 2 * d }, (_, i) => Math.sin(i + 1));
    const ours = rotaryRef(x, { tokens: 2, heads: 1, headStride: d, offset: 0, pairs: [Array.from({ length: d / 2 }, (_, i) => i)] }, visionRotaryTables(d, theta), [...rows, ...cols]);
    // HF: inv_freq = 1/θ^(arange(0, d/2, 2)/(d/2)); freqs = cat(h·inv_freq, w·inv_freq); emb = cat(freqs, freqs);
    // out = x·cos(emb) + rotate_half(x)·sin(emb), rotate_half(x) = cat(−x2, x1).
    const inv = Array.from({ length: d / 4 }, (_, j) => 1 / theta ** ((2 * j) / (d / 2)));
    for (let t = 0; t < 2; t++) {
      const freqs = [...inv.map((f) => rows[t] * f), ...inv.map((f) => cols[t] * f)];
      const emb = [...freqs, ...freqs];
      const v = Array.from(x.subarray(t * d, (t + 1) * d));
      const rh = [...v.slice(d / 2).map((a) => -a), ...v.slice(0, d / 2)];
      for (let e = 0; e < d; e++) expect(ours[t * d + e]).toBeCloseTo(v[e] * Math.cos(emb[e]) + rh[e] * Math.sin(emb[e]), 12);
    }
  });
});

describe("sampling reference", () => {
  const freq = (logits: number[], p: Omit<SamplingParams, "step">, n: number): number[] => {
    const counts = new Array<number>(logits.length).fill(0);
    const l = Float32Array.from(logits);
    for (let step = 0; step < n; step++) counts[sampleRef(l, null, { ...p, step }).id]++;
    return counts.map((c) => c / n);
  };

  it("should be greedy like the CPU runtime's argmaxExcluding (lowest index on ties, banned ids skipped)", () => {
    const rnd = mulberry32(9);
    for (let trial = 0; trial < 20; trial++) {
      const l = Float32Array.from({ length: 64 }, () => Math.round(rnd() * 8));
      const banned = [Math.floor(rnd() * 64), Math.floor(rnd() * 64)];
      const got = sampleRef(l, bannedMask(64, banned), { temperature: 0, topK: 0, topP: 1, seed: 1, step: trial }).id;
      expect(got).toBe(argmaxExcluding(l, 0, 64, banned));
    }
  });

  it("should draw with softmax(l/T) frequencies, and keep only the top-k / top-p ids", () => {
    const l = [3, 2, 1, 0];
    const z = l.map((v) => Math.exp(v / 2));
    const s = z.reduce((a, b) => a + b);
    const plain = freq(l, { temperature: 2, topK: 0, topP: 1, seed: 5 }, 20000);
    plain.forEach((f, i) => expect(Math.abs(f - z[i] / s)).toBeLessThan(0.015));
    // top-k 2 at T = 1: only ids 0, 1 with e^1 : 1.
    const k2 = freq(l, { temperature: 1, topK: 2, topP: 1, seed: 6 }, 20000);
    expect(k2[2] + k2[3]).toBe(0);
    expect(Math.abs(k2[0] - Math.E / (Math.E + 1))).toBeLessThan(0.015);
    // top-p 0.7 at T = 1: probabilities .644 .237 .087 .032 → the smallest prefix reaching 0.7 is {0, 1}.
    const p7 = freq(l, { temperature: 1, topK: 0, topP: 0.7, seed: 7 }, 20000);
    expect(p7[2] + p7[3]).toBe(0);
    expect(p7[1]).toBeGreaterThan(0.2);
  });

  it("should keep every id tied with the k-th largest logit", () => {
    const l = [5, 4, 4, 4, 1];
    const k2 = freq(l, { temperature: 1, topK: 2, topP: 1, seed: 8 }, 4000);
    expect(k2[4]).toBe(0);
    for (const i of [1, 2, 3]) expect(k2[i]).toBeGreaterThan(0.05);
  });

  it("should be range-safe: logits of 1e4 and ±90 at T 0.5 give finite, correct draws", () => {
    const big = freq([1e4, 1e4 - 1, 1e4 - 50], { temperature: 1, topK: 0, topP: 1, seed: 2 }, 5000);
    expect(Math.abs(big[0] - Math.E / (Math.E + 1))).toBeLessThan(0.02);
    expect(big[2]).toBe(0);
    expect(freq([90, -90, 89.5], { temperature: 0.5, topK: 0, topP: 1, seed: 3 }, 5000)[1]).toBe(0);
  });

  it("should give a uniform 24-bit u from the counter hash (mean ½, every decile used)", () => {
    const deciles = new Array<number>(10).fill(0);
    let mean = 0;
    for (let step = 0; step < 10000; step++) {
      const u = samplerUniform(42, step);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      mean += u / 10000;
      deciles[Math.floor(u * 10)]++;
    }
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    for (const d of deciles) expect(Math.abs(d - 1000)).toBeLessThan(120);
    expect(samplerHash(1, 0)).not.toBe(samplerHash(2, 0));
  });
});

describe("weight upload limits", () => {
  it("should reject a tensor larger than the device's maxStorageBufferBindingSize before allocating anything", () => {
    let allocated = 0;
    const ctx = {
      device: { limits: { maxStorageBufferBindingSize: 1000 } },
      storageBuffer: () => {
        allocated++;
        throw new Error("must not allocate");
      },
    } as unknown as GpuContext;
    const w = quantizeNBits(new Float32Array(64 * 64), 64, 64, 4, 32, false);
    expect(() => uploadWeights(ctx, w)).toThrow(/maxStorageBufferBindingSize \(1000\); split the weight along N/);
    expect(allocated).toBe(0);
  });
});

describe("model kernel calls: bad input", () => {
  // Validation runs before any GPU work: a stub context and buffers that only have a size suffice.
  const ctx = { device: { limits: { maxComputeWorkgroupsPerDimension: 65535, maxStorageBufferBindingSize: 1 << 27 } } } as unknown as GpuContext;
  const buf = (size: number): GPUBuffer => ({ size }) as unknown as GPUBuffer;
  const w: GpuWeights = { format: { kind: "f32" }, n: 10, k: 20, buffers: [buf(800)], bytes: 800, destroy: () => {} };

  it("should reject linear buffers smaller than the shapes, and a part that does not fit its y row", () => {
    expect(() => linearCall(ctx, w, buf(79), 1, buf(40))).toThrow(KernelInputError);
    expect(() => linearCall(ctx, w, buf(80), 1, buf(39))).toThrow(/y holds 39 bytes/);
    expect(() => linearCall(ctx, w, buf(80), 0, buf(40))).toThrow(/positive integer/);
    expect(() => linearCall(ctx, w, buf(80), 1, buf(400), null, "gemv", { yStride: 15, yOffset: 6 })).toThrow(/do not fit a y row of 15/);
    // K = 20: one lane per row (gemvLanes), 256 rows per workgroup; K = 2048 f32: 32 lanes, 8 rows per workgroup
    expect(linearCall(ctx, w, buf(160), 2, buf(80)).grid).toEqual([1, 1, 2]);
    const long: GpuWeights = { ...w, n: 20, k: 2048, buffers: [buf(20 * 2048 * 4)] };
    expect(linearCall(ctx, long, buf(2048 * 4), 1, buf(80)).grid).toEqual([3, 1, 1]);
  });

  it("should reject sampling parameters outside their ranges and a short banned mask", () => {
    const b = { logits: buf(400), banned: null, out: buf(4) };
    const p = { temperature: 1, topK: 0, topP: 1, seed: 1, step: 0 };
    expect(() => samplingCall(ctx, b, 100, { ...p, topK: -1 })).toThrow(/top-k/);
    expect(() => samplingCall(ctx, b, 100, { ...p, topP: 0 })).toThrow(/top-p/);
    expect(() => samplingCall(ctx, b, 100, { ...p, temperature: Number.NaN })).toThrow(/temperature/);
    expect(() => samplingCall(ctx, { ...b, banned: buf(8) }, 100, p)).toThrow(/banned mask/);
    expect(() => bannedMask(100, [100])).toThrow(KernelInputError);
  });

  it("should reject rotary slices that pass the head and pair groups that do not divide the heads", () => {
    const rot = { freq: buf(64), pairs: buf(16), k: 2, groups: 3, streamCount: 1, destroy: () => {} };
    expect(() => rotaryCall(ctx, rot, buf(4096), buf(64), { tokens: 2, heads: 4, headStride: 8, offset: 0 })).toThrow(/do not split into 3/);
    expect(() => rotaryCall(ctx, { ...rot, groups: 2 }, buf(4096), buf(64), { tokens: 2, heads: 4, headStride: 8, offset: 5 })).toThrow(/passes the head stride/);
  });

  it("should reject RMSNorm with a negative eps and SwiGLU layouts that read past their buffers", () => {
    expect(() => rmsNormCall(ctx, buf(400), buf(400), buf(400), 1, 100, -1)).toThrow(/eps/);
    expect(() => swigluCall(ctx, buf(400), buf(400), buf(200), { rows: 1, width: 50, gateStride: 100, upStride: 100, upOffset: 60 })).toThrow(KernelInputError);
  });
});
