// Block quantization in MatMulNBits layout: exact codes for hand-made blocks, the per-block error bound against the
// f64 reference, and the bytes run through onnxruntime-web's own com.microsoft.MatMulNBits (wasm EP) compared with our
// f64 dequantized matmul and with the unquantized product; with f16 T1 the scales initializer is our f16 bytes as is.
// Planted bugs seen failing before commit: nibbles swapped in the writer (exact-code, round-trip and
// ORT-vs-unquantized tests fail), nibbles swapped in the reader codeAt (ORT vs reference fails).
import * as ort from "onnxruntime-web";
import { describe, expect, it } from "vitest";
import {
  codeAt,
  dequantizeMatMulNBits,
  matMulNBitsReference,
  quantizeMatMulNBits,
  zeroPointAt,
  type MatMulNBitsWeight,
  type NBits,
  type QuantBlock,
} from "../../checkpoint/bundle/matmul-nbits.ts";
import { floatToHalf } from "../../checkpoint/dtype.ts";
import { f16ToF32 } from "../../format/codec/fp16.ts";
import { matMulNBitsModel } from "./onnx-matmul-nbits.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randomWeights = (n: number, seed: number) => {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() - 0.5) * 0.2 + (r() < 0.01 ? 1.5 : 0));
};

describe("quantizeMatMulNBits: exact codes", () => {
  it("4-bit symmetric: ramp block with known scale, codes low nibble first", () => {
    // one block of 32: x_k = (k − 16)·0.25 → m = −4 (largest magnitude), scale = −4/−8 = 0.5, code = round(x/0.5) + 8
    const w = Float32Array.from({ length: 32 }, (_, k) => (k - 16) * 0.25);
    const q = quantizeMatMulNBits(w, { n: 1, k: 32, bits: 4, block: 32 });
    expect(f16ToF32(q.scales[0])).toBe(0.5);
    expect(q.zeroPoints).toBeNull();
    const expected = Array.from({ length: 32 }, (_, k) => Math.min(15, Math.max(0, roundEven((k - 16) * 0.5) + 8)));
    expect(Array.from({ length: 32 }, (_, k) => codeAt(q, 0, k))).toEqual(expected);
    // raw bytes: byte i = code(2i) | code(2i+1) << 4
    expect(q.b[0]).toBe(expected[0] | (expected[1] << 4));
    expect(q.b[5]).toBe(expected[10] | (expected[11] << 4));
    expect(q.b.length).toBe(16);
  });

  it("4-bit asymmetric with zero points packed low-first across blocks; K padding holds the zero point", () => {
    // K = 40, block 32 → 2 blocks; block 0 = 0..31 in [0, 15] step 1 → scale 1, zp 0; block 1 = −8 … (8 elems) → zp > 0
    const w = new Float32Array(40);
    for (let k = 0; k < 32; k++) w[k] = k % 16;
    for (let k = 32; k < 40; k++) w[k] = -(k - 32) * (15 / 7) / 2; // [0, −7.5]
    const q = quantizeMatMulNBits(w, { n: 1, k: 40, bits: 4, block: 32 }, { zeroPoints: true });
    expect(f16ToF32(q.scales[0])).toBe(1);
    expect(zeroPointAt(q, 0, 0)).toBe(0);
    expect(f16ToF32(q.scales[1])).toBe(0.5);
    expect(zeroPointAt(q, 0, 1)).toBe(15);
    expect(q.zeroPoints).toEqual(Uint8Array.of(0 | (15 << 4)));
    for (let k = 0; k < 32; k++) expect(codeAt(q, 0, k)).toBe(k % 16);
    for (let k = 32; k < 40; k++) expect(codeAt(q, 0, k)).toBe(roundEven((-(k - 32) * (15 / 7)) / 2 / 0.5) + 15);
    // padding of block 1 (k = 40..63) is the block's zero point → dequantizes to 0
    for (let i = 8; i < 32; i++) {
      const byte = q.b[16 + (i >> 1)];
      expect((i & 1) === 0 ? byte & 15 : byte >> 4).toBe(15);
    }
    const d = dequantizeMatMulNBits(q);
    for (let k = 0; k < 32; k++) expect(d[k]).toBe(w[k]);
  });

  it("8-bit: one byte per code, zero points one byte per block", () => {
    const w = Float32Array.from({ length: 64 }, (_, k) => (k - 32) / 32);
    const q = quantizeMatMulNBits(w, { n: 1, k: 64, bits: 8, block: 64 });
    expect(f16ToF32(q.scales[0])).toBe(1 / 128); // m = −1 → scale = −1/−128
    for (let k = 0; k < 64; k++) expect(q.b[k]).toBe((k - 32) * 4 + 128);
    const qa = quantizeMatMulNBits(w, { n: 1, k: 64, bits: 8, block: 64 }, { zeroPoints: true });
    expect(qa.zeroPoints!.length).toBe(1);
  });
});

function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const CASES: Array<{ bits: NBits; block: QuantBlock; zp: boolean; n: number; k: number }> = [
  { bits: 4, block: 32, zp: false, n: 24, k: 96 },
  { bits: 4, block: 32, zp: true, n: 24, k: 100 },
  { bits: 4, block: 64, zp: false, n: 16, k: 200 },
  { bits: 4, block: 128, zp: true, n: 8, k: 320 },
  { bits: 8, block: 32, zp: false, n: 16, k: 96 },
  { bits: 8, block: 128, zp: true, n: 12, k: 260 },
];

describe("round trip against the f64 reference", () => {
  for (const c of CASES) {
    it(`int${c.bits} block ${c.block}${c.zp ? " asymmetric" : ""}: every element within its block's bound`, () => {
      const w = randomWeights(c.n * c.k, c.n * 1000 + c.k);
      const q = quantizeMatMulNBits(w, { n: c.n, k: c.k, bits: c.bits, block: c.block }, { zeroPoints: c.zp });
      const d = dequantizeMatMulNBits(q);
      const kb = Math.ceil(c.k / c.block);
      let worstRatio = 0;
      for (let row = 0; row < c.n; row++) {
        for (let kk = 0; kk < c.k; kk++) {
          const s = Math.abs(f16ToF32(q.scales[row * kb + Math.floor(kk / c.block)]));
          const err = Math.abs(d[row * c.k + kk] - w[row * c.k + kk]);
          // half a step for rounding; clamping at the top code (symmetric: +|m|) costs at most one step
          const bound = (codeAt(q, row, kk) === (1 << c.bits) - 1 ? 1 : 0.5) * s * (1 + 1e-6) + 1e-12;
          expect(err).toBeLessThanOrEqual(bound);
          worstRatio = Math.max(worstRatio, s > 0 ? err / s : 0);
        }
      }
      expect(worstRatio).toBeGreaterThan(0.3); // the bound is tight, not vacuous
    });
  }
});

describe("layout checked by onnxruntime-web's MatMulNBits (wasm EP)", () => {
  for (const c of CASES) {
    it(`int${c.bits} block ${c.block}${c.zp ? " zero points" : ""}, N=${c.n} K=${c.k}`, async () => {
      const w = randomWeights(c.n * c.k, 7 + c.k);
      const q: MatMulNBitsWeight = quantizeMatMulNBits(w, { n: c.n, k: c.k, bits: c.bits, block: c.block }, { zeroPoints: c.zp });
      const m = 3;
      const a = randomWeights(m * c.k, 99 + c.n);
      ort.env.wasm.numThreads = 1;
      const session = await ort.InferenceSession.create(matMulNBitsModel(q, m), { executionProviders: ["wasm"] });
      const out = await session.run({ A: new ort.Tensor("float32", a, [m, c.k]) });
      await session.release();
      const y = out.Y.data as Float32Array;
      const ref = matMulNBitsReference(a, m, q);
      let maxAbs = 0;
      let maxRef = 0;
      for (let i = 0; i < ref.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(y[i] - ref[i]));
        maxRef = Math.max(maxRef, Math.abs(ref[i]));
      }
      expect(out.Y.dims).toEqual([m, c.n]);
      expect(maxAbs / maxRef).toBeLessThan(1e-5);
      // and ORT's product is within the quantization bound of the unquantized f64 product A·Wᵀ (this is what catches
      // a writer that packs codes in the wrong order while our reader agrees with ORT's)
      const kb = Math.ceil(c.k / c.block);
      for (let i = 0; i < m; i++) {
        for (let row = 0; row < c.n; row++) {
          let exact = 0;
          let bound = 0;
          for (let kk = 0; kk < c.k; kk++) {
            exact += a[i * c.k + kk] * w[row * c.k + kk];
            bound += Math.abs(a[i * c.k + kk]) * Math.abs(f16ToF32(q.scales[row * kb + Math.floor(kk / c.block)]));
          }
          expect(Math.abs(y[i * c.n + row] - exact)).toBeLessThanOrEqual(bound * 1.0001 + 1e-6);
        }
      }
    });
  }
});

describe("the same bytes, scales included, through MatMulNBits with f16 T1 (wasm EP)", () => {
  for (const c of CASES) {
    it(`int${c.bits} block ${c.block}${c.zp ? " zero points" : ""}: our f16 scale bytes as the initializer`, async () => {
      const w = randomWeights(c.n * c.k, 11 + c.k);
      const q = quantizeMatMulNBits(w, { n: c.n, k: c.k, bits: c.bits, block: c.block }, { zeroPoints: c.zp });
      const m = 2;
      const a16 = Uint16Array.from(randomWeights(m * c.k, 5 + c.n), (x) => floatToHalf(x * 4));
      ort.env.wasm.numThreads = 1;
      const session = await ort.InferenceSession.create(matMulNBitsModel(q, m, "float16"), { executionProviders: ["wasm"] });
      const out = await session.run({ A: new ort.Tensor("float16", a16, [m, c.k]) });
      await session.release();
      expect(out.Y.type).toBe("float16");
      const y = out.Y.data as Uint16Array;
      const ref = matMulNBitsReference(Float64Array.from(a16, f16ToF32), m, q);
      let maxAbs = 0;
      let maxRef = 0;
      for (let i = 0; i < ref.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(f16ToF32(y[i]) - ref[i]));
        maxRef = Math.max(maxRef, Math.abs(ref[i]));
      }
      expect(maxAbs / maxRef).toBeLessThan(4e-3); // f16 output and f16 accumulation on ORT's side
    });
  }
});
