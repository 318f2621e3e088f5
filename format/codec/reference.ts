// Plain-TypeScript reference codec (kind "reference"): the contract of docs/codec.md written out step by step with
// Math.fround after every float32 operation. The WASM builds must match it bit for bit (codes, scales, zeros, floats).
// Double rounding is harmless here: f64 carries ≥ 2·24 + 2 bits, so fround(a op b) is the float32 result of + − × ÷.
import { crc32c } from "../hash/crc32c.ts";
import { f16IsNonFinite, f16ToF32, f16ToF32Bits, f32ToF16Bits, F16_MAX } from "./fp16.ts";
import {
  checkLength,
  checkShape,
  checkWidenArgs,
  dequantizeLayout,
  fp16BlockElements,
  fp16OverflowError,
  negativeScaleError,
  nonfiniteElementError,
  nonfiniteFp16Error,
  nonfiniteGroupError,
  nonfiniteStoredGroupError,
  outOfRangeGroupError,
  outputArray,
  quantizeLayout,
  type BlockLayout,
} from "./layout.ts";
import { CodecError, type Axis, type Bits, type Codec, type GroupSize, type QuantizedBlock } from "./types.ts";

const fround = Math.fround;

/** Round half to even (Math.round rounds halves up). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Row-major element indices of group `gi`, in order. */
function groupElements(layout: BlockLayout, gi: number): number[] {
  const { cols, group: g } = layout;
  const out = new Array<number>(g);
  if (layout.axis === "token") {
    // Groups of g consecutive channels tile each row, so group gi is the contiguous run starting at gi·g.
    for (let i = 0; i < g; i++) out[i] = gi * g + i;
  } else {
    const k = Math.floor(gi / cols);
    const c = gi % cols;
    for (let i = 0; i < g; i++) out[i] = (k * g + i) * cols + c;
  }
  return out;
}

/** ORs code q of element e into the packed array (element 2k in the low nibble, 4k in bits 0–1, …). */
function packCode(codes: Uint8Array, e: number, q: number, bits: Bits): void {
  const perByte = 8 / bits;
  codes[Math.floor(e / perByte)] |= q << ((e % perByte) * bits);
}

function unpackCode(codes: Uint8Array, e: number, bits: Bits): number {
  const perByte = 8 / bits;
  return (codes[Math.floor(e / perByte)] >> ((e % perByte) * bits)) & ((1 << bits) - 1);
}

function quantize(input: Float32Array, rows: number, cols: number, bits: Bits, group: GroupSize | number, axis: Axis): QuantizedBlock {
  const layout = quantizeLayout(input, rows, cols, bits, group, axis);
  const codes = new Uint8Array(layout.codeBytes);
  const scales = new Uint16Array(layout.groups);
  const zeros = new Uint16Array(layout.groups);
  const qmax = 2 ** bits - 1;
  for (let gi = 0; gi < layout.groups; gi++) {
    const elements = groupElements(layout, gi);
    let m = Infinity;
    let M = -Infinity;
    for (const e of elements) {
      m = Math.min(m, input[e]);
      M = Math.max(M, input[e]);
    }
    if (!Number.isFinite(m) || !Number.isFinite(M)) throw nonfiniteGroupError(layout, gi);
    if (M > F16_MAX || m < -F16_MAX) throw outOfRangeGroupError(layout, gi);
    // −0 counts as +0, so z and s never depend on which zero a min/max reduction keeps.
    m += 0;
    M += 0;

    const zBits = f32ToF16Bits(m, "down"); // never above any value of the group
    const z = f16ToF32(zBits);
    const sBits = f32ToF16Bits(fround(fround(M - z) / qmax), "up"); // never too small to reach M
    const s = f16ToF32(sBits);
    const inv = s === 0 ? 0 : fround(1 / s); // s = 0: constant fp16-exact group, every code 0
    scales[gi] = sBits;
    zeros[gi] = zBits;

    for (const e of elements) {
      const q = roundHalfEven(fround(fround(input[e] - z) * inv));
      packCode(codes, e, Math.min(Math.max(q, 0), qmax), bits);
    }
  }
  return { rows, cols, bits, group: layout.group, axis, codes, scales, zeros };
}

function dequantizeCodes(block: QuantizedBlock, out: Float32Array | undefined): Float32Array {
  const layout = dequantizeLayout(block);
  const result = outputArray(out, layout.rows * layout.cols);
  const bits = layout.bits;
  for (let gi = 0; gi < layout.groups; gi++) {
    const sBits = block.scales[gi];
    const zBits = block.zeros[gi];
    if (f16IsNonFinite(sBits) || f16IsNonFinite(zBits)) throw nonfiniteStoredGroupError(layout, gi);
    if ((sBits & 0x8000) !== 0) throw negativeScaleError(layout, gi);
    const s = f16ToF32(sBits);
    const z = f16ToF32(zBits);
    for (const e of groupElements(layout, gi)) {
      result[e] = fround(fround(unpackCode(block.codes, e, bits) * s) + z);
    }
  }
  return result;
}

function dequantizeFp16(block: QuantizedBlock, out: Float32Array | undefined): Float32Array {
  const n = fp16BlockElements(block);
  const result = outputArray(out, n);
  const bitsOut = new Uint32Array(result.buffer, result.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const h = block.codes[2 * i] | (block.codes[2 * i + 1] << 8);
    if (f16IsNonFinite(h)) throw nonfiniteFp16Error(i);
    bitsOut[i] = f16ToF32Bits(h);
  }
  return result;
}

function toFp16Block(input: Float32Array, rows: number, cols: number): QuantizedBlock {
  checkShape(rows, cols);
  if (!(input instanceof Float32Array)) throw new CodecError("invalid_shape", "input must be a Float32Array");
  checkLength("input", input.length, rows * cols);
  const codes = new Uint8Array(2 * input.length);
  for (let i = 0; i < input.length; i++) {
    const x = input[i];
    if (!Number.isFinite(x)) throw nonfiniteElementError(i);
    const h = f32ToF16Bits(x, "nearest-even");
    if ((h & 0x7fff) === 0x7c00) throw fp16OverflowError(i);
    codes[2 * i] = h & 0xff; // little-endian on the wire
    codes[2 * i + 1] = h >>> 8;
  }
  return { rows, cols, bits: 16, group: 0, axis: "token", codes, scales: new Uint16Array(0), zeros: new Uint16Array(0) };
}

function widen(input: Uint16Array, kind: "f16" | "bf16", out?: Float32Array): Float32Array {
  checkWidenArgs(input, kind);
  const result = outputArray(out, input.length);
  // Written as bits so NaN payloads survive (a JS number may canonicalise them).
  const bitsOut = new Uint32Array(result.buffer, result.byteOffset, input.length);
  for (let i = 0; i < input.length; i++) {
    bitsOut[i] = kind === "f16" ? f16ToF32Bits(input[i]) : (input[i] << 16) >>> 0;
  }
  return result;
}

/** The reference codec. Slow (plain loops); use it to check the WASM builds, not to serve traffic. */
export const referenceCodec: Codec = {
  kind: "reference",
  quantize,
  toFp16Block,
  dequantize: (block, out) => (block.bits === 16 ? dequantizeFp16(block, out) : dequantizeCodes(block, out)),
  widen,
  crc32c,
};
