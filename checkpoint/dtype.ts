// Element types of safetensors and their conversion to and from the runtime's Float32Array / Int32Array.

import { f16ToF32 } from "../format/codec/fp16.ts";
import { CheckpointError } from "./errors.ts";

export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isSafetensorsDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** Dtypes this project writes: float weights in three precisions, int32 for index tensors. */
export type WritableDtype = "F32" | "F16" | "BF16" | "I32";

// Bytes come from file reads at arbitrary offsets: typed views need the element alignment, so copy when misaligned.
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  if (bytes.byteOffset % align === 0) return bytes;
  return bytes.slice();
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Float → IEEE half, round to nearest even, overflow to ±Infinity. */
export function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1) !== 0)) m += 1;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  let out = sign | (e << 10) | m;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) !== 0)) out += 1; // carries into the exponent correctly
  return out;
}

/** Float → bfloat16 bits, round to nearest even (NaN stays NaN). */
export function floatToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}

/** Decodes `count` little-endian elements of a float dtype (F64/F32/F16/BF16) to Float32Array. */
export function decodeFloat32(bytes: Uint8Array, dtype: SafetensorsDtype, count: number, label: string): Float32Array {
  const need = count * DTYPE_BYTES[dtype];
  if (bytes.byteLength !== need) {
    throw new CheckpointError("bad_header", `${label}: expected ${need} bytes for ${count} × ${dtype}, got ${bytes.byteLength}`);
  }
  switch (dtype) {
    case "F32": {
      const b = aligned(bytes, 4);
      return new Float32Array(b.buffer, b.byteOffset, count).slice();
    }
    case "F64": {
      const b = aligned(bytes, 8);
      return Float32Array.from(new Float64Array(b.buffer, b.byteOffset, count));
    }
    case "BF16": {
      const b = aligned(bytes, 2);
      const src = new Uint16Array(b.buffer, b.byteOffset, count);
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = src[i] << 16;
      return out;
    }
    case "F16": {
      const b = aligned(bytes, 2);
      const src = new Uint16Array(b.buffer, b.byteOffset, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = f16ToF32(src[i]);
      return out;
    }
    default:
      throw new CheckpointError("unsupported_dtype", `${label}: dtype ${dtype} is not a float type (F64, F32, F16, BF16)`);
  }
}

/** Decodes an integer dtype (I64 within ±2^53, I32, I16, I8, U8, BOOL) to Int32Array, rejecting values outside int32. */
export function decodeInt32(bytes: Uint8Array, dtype: SafetensorsDtype, count: number, label: string): Int32Array {
  const need = count * DTYPE_BYTES[dtype];
  if (bytes.byteLength !== need) {
    throw new CheckpointError("bad_header", `${label}: expected ${need} bytes for ${count} × ${dtype}, got ${bytes.byteLength}`);
  }
  switch (dtype) {
    case "I32": {
      const b = aligned(bytes, 4);
      return new Int32Array(b.buffer, b.byteOffset, count).slice();
    }
    case "I64": {
      const b = aligned(bytes, 8);
      const src = new BigInt64Array(b.buffer, b.byteOffset, count);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) {
          throw new CheckpointError("unsupported_dtype", `${label}: I64 value ${v} at ${i} does not fit int32`);
        }
        out[i] = Number(v);
      }
      return out;
    }
    case "I16": {
      const b = aligned(bytes, 2);
      return Int32Array.from(new Int16Array(b.buffer, b.byteOffset, count));
    }
    case "I8":
      return Int32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, count));
    case "U8":
    case "BOOL":
      return Int32Array.from(bytes);
    default:
      throw new CheckpointError("unsupported_dtype", `${label}: dtype ${dtype} is not an integer type`);
  }
}

/** Encodes values as little-endian bytes of `dtype` (floats rounded to nearest even for F16/BF16). */
export function encodeTensor(data: Float32Array | Float64Array | Int32Array, dtype: WritableDtype, label: string): Uint8Array {
  const n = data.length;
  if (dtype === "I32") {
    if (!(data instanceof Int32Array)) {
      throw new CheckpointError("unsupported_dtype", `${label}: I32 output needs an Int32Array`);
    }
    return new Uint8Array(data.slice().buffer);
  }
  if (data instanceof Int32Array) {
    throw new CheckpointError("unsupported_dtype", `${label}: ${dtype} output needs float data, got Int32Array`);
  }
  if (dtype === "F32") {
    const out = data instanceof Float32Array ? data.slice() : Float32Array.from(data);
    return new Uint8Array(out.buffer);
  }
  const out = new Uint16Array(n);
  if (dtype === "F16") for (let i = 0; i < n; i++) out[i] = floatToHalf(data[i]);
  else for (let i = 0; i < n; i++) out[i] = floatToBf16(data[i]);
  return new Uint8Array(out.buffer);
}
