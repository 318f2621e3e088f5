// Block quantization of Linear weights along K in the layout of ONNX Runtime's `com.microsoft.MatMulNBits`, plus the
// f64 reference dequantization. Browser-safe (no Node imports). The byte layout is documented in docs/bundle.md and is
// the contract with the GPU kernels (kernels/) and the onnxruntime-web baseline:
//
//   W [N = out, K = in] (row-major, as a PyTorch Linear stores it)
//   B           uint8 [N, kBlocks, blobSize]   kBlocks = ceil(K / block), blobSize = block·bits/8
//               4-bit: element k in the low nibble, k+1 in the high nibble; 8-bit: one byte per element
//               padding elements of the last block (k ≥ K) hold the zero point, so they dequantize to 0
//   scales      f16 [N, kBlocks]
//   zeroPoints  4-bit: uint8 [N, ceil(kBlocks/2)], block j of row n in byte n·ceil(kBlocks/2) + ⌊j/2⌋, low nibble
//               first; 8-bit: uint8 [N, kBlocks]; absent → symmetric, zero point 2^(bits−1)
//   W[n, k] ≈ (code[n, k] − zp[n, ⌊k/block⌋]) · scale[n, ⌊k/block⌋]

import { floatToHalf } from "../dtype.ts";
import { f16ToF32 } from "../../format/codec/fp16.ts";
import { MlaError } from "../../format/errors.ts";

export type NBits = 4 | 8;
export type QuantBlock = 32 | 64 | 128;
export const QUANT_BLOCKS: readonly QuantBlock[] = [32, 64, 128];

export interface MatMulNBitsGeometry {
  /** Output features (rows of W). */
  readonly n: number;
  /** Input features (columns of W): the quantized axis. */
  readonly k: number;
  readonly bits: NBits;
  readonly block: QuantBlock;
}

export interface MatMulNBitsWeight extends MatMulNBitsGeometry {
  /** [n, kBlocks, blobSize] */
  readonly b: Uint8Array;
  /** [n, kBlocks] IEEE half bits. */
  readonly scales: Uint16Array;
  /** Packed zero points, or null for the symmetric default 2^(bits−1). */
  readonly zeroPoints: Uint8Array | null;
}

export class MatMulNBitsError extends MlaError<"bad_geometry" | "bad_data"> {
  override readonly name = "MatMulNBitsError";
  constructor(
    code: "bad_geometry" | "bad_data",
    message: string,
  ) {
    super(code, message);
  }
}

export const kBlocksOf = (k: number, block: number): number => Math.ceil(k / block);
export const blobSizeOf = (block: number, bits: NBits): number => (block * bits) / 8;
/** Bytes per row of the zero-point array. */
export const zeroPointRowBytes = (kBlocks: number, bits: NBits): number => (bits === 4 ? Math.ceil(kBlocks / 2) : kBlocks);

function checkGeometry(g: MatMulNBitsGeometry): void {
  if (g.bits !== 4 && g.bits !== 8) throw new MatMulNBitsError("bad_geometry", `bits must be 4 or 8, got ${g.bits}`);
  if (!QUANT_BLOCKS.includes(g.block)) throw new MatMulNBitsError("bad_geometry", `block must be 32, 64 or 128, got ${g.block}`);
  if (!Number.isSafeInteger(g.n) || g.n < 1 || !Number.isSafeInteger(g.k) || g.k < 1) {
    throw new MatMulNBitsError("bad_geometry", `N and K must be positive integers, got N=${g.n}, K=${g.k}`);
  }
}

/** Byte sizes of the three arrays of one weight. */
export function matMulNBitsSizes(g: MatMulNBitsGeometry, zeroPoints: boolean): { b: number; scales: number; zeroPoints: number } {
  checkGeometry(g);
  const kb = kBlocksOf(g.k, g.block);
  return { b: g.n * kb * blobSizeOf(g.block, g.bits), scales: g.n * kb * 2, zeroPoints: zeroPoints ? g.n * zeroPointRowBytes(kb, g.bits) : 0 };
}

/**
 * Quantizes W [n, k] (row-major f32) block-wise along k.
 * Symmetric (default): per block, m = the element of largest magnitude, scale = m / −2^(bits−1) in f16 (rounded, then
 * one ulp away from zero if rounding shrank it), so m maps to code 0 (as ORT's and llama.cpp's q4_0 quantizers do); zero point 2^(bits−1).
 * Asymmetric: range [min(0, lo), max(0, hi)], scale = range / (2^bits − 1) in f16 (same rounding), zp = round(−min / scale).
 * Codes are round-half-even of x/scale + zp, clamped to [0, 2^bits − 1]; the scale used is the stored f16 value.
 */
export function quantizeMatMulNBits(
  w: Float32Array,
  g: MatMulNBitsGeometry,
  options: { readonly zeroPoints?: boolean } = {},
): MatMulNBitsWeight {
  checkGeometry(g);
  const { n, k, bits, block } = g;
  if (w.length !== n * k) throw new MatMulNBitsError("bad_data", `weight has ${w.length} elements, expected N·K = ${n}·${k}`);
  const asym = options.zeroPoints === true;
  const kb = kBlocksOf(k, block);
  const blob = blobSizeOf(block, bits);
  const qmax = (1 << bits) - 1;
  const zpDefault = 1 << (bits - 1);
  const b = new Uint8Array(n * kb * blob);
  const scales = new Uint16Array(n * kb);
  const zpRow = zeroPointRowBytes(kb, bits);
  const zeroPoints = asym ? new Uint8Array(n * zpRow) : null;
  const codes = new Uint8Array(block);
  for (let row = 0; row < n; row++) {
    for (let j = 0; j < kb; j++) {
      const k0 = j * block;
      const k1 = Math.min(k, k0 + block);
      const base = row * k;
      let scale: number;
      let zp: number;
      if (asym) {
        let lo = 0;
        let hi = 0;
        for (let kk = k0; kk < k1; kk++) {
          const x = w[base + kk];
          if (!Number.isFinite(x)) throw new MatMulNBitsError("bad_data", `non-finite weight at row ${row}, column ${kk}`);
          if (x < lo) lo = x;
          if (x > hi) hi = x;
        }
        scale = f16AtLeast((hi - lo) / qmax);
        zp = scale === 0 ? zpDefault : Math.min(qmax, Math.max(0, roundHalfEven(-lo / scale)));
      } else {
        let m = 0;
        for (let kk = k0; kk < k1; kk++) {
          const x = w[base + kk];
          if (!Number.isFinite(x)) throw new MatMulNBitsError("bad_data", `non-finite weight at row ${row}, column ${kk}`);
          if (Math.abs(x) > Math.abs(m)) m = x;
        }
        scale = f16AtLeast(m / -zpDefault);
        zp = zpDefault;
      }
      scales[row * kb + j] = floatToHalf(scale);
      codes.fill(zp);
      if (scale !== 0) {
        for (let kk = k0; kk < k1; kk++) codes[kk - k0] = Math.min(qmax, Math.max(0, roundHalfEven(w[base + kk] / scale) + zp));
      }
      const out = (row * kb + j) * blob;
      if (bits === 8) b.set(codes, out);
      else for (let i = 0; i < blob; i++) b[out + i] = codes[2 * i] | (codes[2 * i + 1] << 4);
      if (zeroPoints) {
        if (bits === 8) zeroPoints[row * zpRow + j] = zp;
        else zeroPoints[row * zpRow + (j >> 1)] |= zp << ((j & 1) * 4);
      }
    }
  }
  return { n, k, bits, block, b, scales, zeroPoints };
}

/** The f16 value nearest to x, moved one ulp away from zero if rounding shrank it: |result| ≥ |x|, so the block's range
 * still fits the codes and the per-element error stays within one step (half a step where no clamping happens). */
function f16AtLeast(x: number): number {
  let h = floatToHalf(x);
  if (Math.abs(f16ToF32(h)) < Math.abs(x)) h += 1; // sign bit untouched: +1 on the magnitude bits grows |value|
  return f16ToF32(h);
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The code of element (row, kk), read from B as the layout says. */
export function codeAt(q: MatMulNBitsWeight, row: number, kk: number): number {
  const kb = kBlocksOf(q.k, q.block);
  const blob = blobSizeOf(q.block, q.bits);
  const j = Math.floor(kk / q.block);
  const i = kk % q.block;
  const byteIndex = (row * kb + j) * blob;
  if (q.bits === 8) return q.b[byteIndex + i];
  const byte = q.b[byteIndex + (i >> 1)];
  return (i & 1) === 0 ? byte & 0x0f : byte >> 4;
}

/** The zero point of block j of a row. */
export function zeroPointAt(q: MatMulNBitsWeight, row: number, j: number): number {
  if (q.zeroPoints === null) return 1 << (q.bits - 1);
  const kb = kBlocksOf(q.k, q.block);
  const zpRow = zeroPointRowBytes(kb, q.bits);
  if (q.bits === 8) return q.zeroPoints[row * zpRow + j];
  const byte = q.zeroPoints[row * zpRow + (j >> 1)];
  return (j & 1) === 0 ? byte & 0x0f : byte >> 4;
}

/** f64 reference dequantization: W'[n, k] = (code − zp) · scale, row-major [n, k]. */
export function dequantizeMatMulNBits(q: MatMulNBitsWeight): Float64Array {
  const kb = kBlocksOf(q.k, q.block);
  const out = new Float64Array(q.n * q.k);
  for (let row = 0; row < q.n; row++) {
    for (let j = 0; j < kb; j++) {
      const scale = f16ToF32(q.scales[row * kb + j]);
      const zp = zeroPointAt(q, row, j);
      const k1 = Math.min(q.k, (j + 1) * q.block);
      for (let kk = j * q.block; kk < k1; kk++) out[row * q.k + kk] = (codeAt(q, row, kk) - zp) * scale;
    }
  }
  return out;
}

/** f64 reference of MatMulNBits: Y [m, n] = A [m, k] · W'ᵀ. */
export function matMulNBitsReference(a: Float32Array | Float64Array, m: number, q: MatMulNBitsWeight): Float64Array {
  const w = dequantizeMatMulNBits(q);
  const y = new Float64Array(m * q.n);
  for (let i = 0; i < m; i++) {
    for (let row = 0; row < q.n; row++) {
      let s = 0;
      for (let kk = 0; kk < q.k; kk++) s += a[i * q.k + kk] * w[row * q.k + kk];
      y[i * q.n + row] = s;
    }
  }
  return y;
}
