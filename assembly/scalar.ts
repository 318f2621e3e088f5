// Scalar quantize/pack and unpack/dequantize kernels for any shape. The SIMD build falls back to these when a
// block's group or width does not fit its vector layout; the scalar build uses only these.
import { f16ToF32, f32ToF16, ROUND_NEAREST_EVEN } from "./fp16";
import { groupInverse, groupParams, groupScale, groupScaleBits, groupZero, groupZeroBits, storedGroupParams } from "./group";
import { setErrorIndex, STATUS_NONFINITE, STATUS_OK, STATUS_OUT_OF_RANGE } from "./status";

/** q = clamp(round_half_even(f32(f32(x − z) · inv)), 0, Q). x ≥ m ≥ z, so the lower clamp never fires. */
// @ts-ignore: decorator
@inline
export function quantizeValue(x: f32, z: f32, inv: f32, qmax: f32): u32 {
  const r = nearest<f32>((x - z) * inv);
  return <u32>min<f32>(max<f32>(r, 0), qmax);
}

/**
 * Packed code layout over the row-major element index e (docs/codec.md):
 *   bits 8:  byte e                           = q_e
 *   bits 4:  byte e>>1, bits 4·(e&1)..+3      e.g. byte 0 = | q1 q1 q1 q1 | q0 q0 q0 q0 |
 *   bits 2:  byte e>>2, bits 2·(e&3)..+1      e.g. byte 0 = | q3 q3 | q2 q2 | q1 q1 | q0 q0 |
 * The code area must be zeroed before ORing codes in.
 */
// @ts-ignore: decorator
@inline
function orCode(codesPtr: usize, e: usize, q: u32, bits: i32): void {
  const bitPos = e * <usize>bits;
  const p = codesPtr + (bitPos >>> 3);
  store<u8>(p, load<u8>(p) | <u8>(q << <u32>(bitPos & 7)));
}

// @ts-ignore: decorator
@inline
function readCode(codesPtr: usize, e: usize, bits: i32): u32 {
  const bitPos = e * <usize>bits;
  return (<u32>load<u8>(codesPtr + (bitPos >>> 3)) >>> <u32>(bitPos & 7)) & ((<u32>1 << bits) - 1);
}

/** Token axis: the block is `nGroups` contiguous groups of `g` values (rows never split a group). */
export function quantizeTokenScalar(inPtr: usize, nGroups: i32, g: i32, bits: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  const qmax = <f32>((1 << bits) - 1);
  memory.fill(codesPtr, 0, (<usize>nGroups * <usize>g * <usize>bits + 7) >>> 3);
  for (let gi = 0; gi < nGroups; gi++) {
    const base = inPtr + (<usize>gi * <usize>g << 2);
    let m = Infinity as f32;
    let M = -Infinity as f32;
    for (let i = 0; i < g; i++) {
      const x = load<f32>(base + (<usize>i << 2));
      m = min<f32>(m, x);
      M = max<f32>(M, x);
    }
    const status = groupParams(m, M, qmax);
    if (status != STATUS_OK) {
      setErrorIndex(gi);
      return status;
    }
    store<u16>(scalesPtr + (<usize>gi << 1), <u16>groupScaleBits);
    store<u16>(zerosPtr + (<usize>gi << 1), <u16>groupZeroBits);
    const z = groupZero;
    const inv = groupInverse;
    const e0 = <usize>gi * <usize>g;
    for (let i = 0; i < g; i++) {
      const q = quantizeValue(load<f32>(base + (<usize>i << 2)), z, inv, qmax);
      orCode(codesPtr, e0 + <usize>i, q, bits);
    }
  }
  return STATUS_OK;
}

/** Channel axis: groups of `g` consecutive rows inside one column; scales are [rows/g][cols]. */
export function quantizeChannelScalar(inPtr: usize, rows: i32, cols: i32, g: i32, bits: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  const qmax = <f32>((1 << bits) - 1);
  memory.fill(codesPtr, 0, (<usize>rows * <usize>cols * <usize>bits + 7) >>> 3);
  const rowBlocks = rows / g;
  for (let k = 0; k < rowBlocks; k++) {
    for (let c = 0; c < cols; c++) {
      let m = Infinity as f32;
      let M = -Infinity as f32;
      for (let r = k * g; r < (k + 1) * g; r++) {
        const x = load<f32>(inPtr + ((<usize>r * <usize>cols + <usize>c) << 2));
        m = min<f32>(m, x);
        M = max<f32>(M, x);
      }
      const gi = k * cols + c;
      const status = groupParams(m, M, qmax);
      if (status != STATUS_OK) {
        setErrorIndex(gi);
        return status;
      }
      store<u16>(scalesPtr + (<usize>gi << 1), <u16>groupScaleBits);
      store<u16>(zerosPtr + (<usize>gi << 1), <u16>groupZeroBits);
      const z = groupZero;
      const inv = groupInverse;
      for (let r = k * g; r < (k + 1) * g; r++) {
        const e = <usize>r * <usize>cols + <usize>c;
        orCode(codesPtr, e, quantizeValue(load<f32>(inPtr + (e << 2)), z, inv, qmax), bits);
      }
    }
  }
  return STATUS_OK;
}

/** x̂ = f32(f32(q · s) + z) for contiguous token-axis groups. */
export function dequantizeTokenScalar(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, nGroups: i32, g: i32, bits: i32, outPtr: usize): i32 {
  for (let gi = 0; gi < nGroups; gi++) {
    const status = storedGroupParams(load<u16>(scalesPtr + (<usize>gi << 1)), load<u16>(zerosPtr + (<usize>gi << 1)));
    if (status != STATUS_OK) {
      setErrorIndex(gi);
      return status;
    }
    const s = groupScale;
    const z = groupZero;
    const e0 = <usize>gi * <usize>g;
    for (let i = 0; i < g; i++) {
      const e = e0 + <usize>i;
      store<f32>(outPtr + (e << 2), <f32>readCode(codesPtr, e, bits) * s + z);
    }
  }
  return STATUS_OK;
}

export function dequantizeChannelScalar(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, rows: i32, cols: i32, g: i32, bits: i32, outPtr: usize): i32 {
  const rowBlocks = rows / g;
  for (let k = 0; k < rowBlocks; k++) {
    for (let c = 0; c < cols; c++) {
      const gi = k * cols + c;
      const status = storedGroupParams(load<u16>(scalesPtr + (<usize>gi << 1)), load<u16>(zerosPtr + (<usize>gi << 1)));
      if (status != STATUS_OK) {
        setErrorIndex(gi);
        return status;
      }
      const s = groupScale;
      const z = groupZero;
      for (let r = k * g; r < (k + 1) * g; r++) {
        const e = <usize>r * <usize>cols + <usize>c;
        store<f32>(outPtr + (e << 2), <f32>readCode(codesPtr, e, bits) * s + z);
      }
    }
  }
  return STATUS_OK;
}

/** float32 → fp16 (round-to-nearest-even) for the `fp16` rope policy, elements [from, to). */
export function toFp16ScalarRange(inPtr: usize, from: i32, to: i32, outPtr: usize): i32 {
  for (let i = from; i < to; i++) {
    const x = load<f32>(inPtr + (<usize>i << 2));
    if (x - x != 0) {
      setErrorIndex(i);
      return STATUS_NONFINITE;
    }
    const h = f32ToF16(x, ROUND_NEAREST_EVEN);
    if ((h & 0x7fff) == 0x7c00) {
      setErrorIndex(i);
      return STATUS_OUT_OF_RANGE;
    }
    store<u16>(outPtr + (<usize>i << 1), <u16>h);
  }
  return STATUS_OK;
}

export function toFp16Scalar(inPtr: usize, n: i32, outPtr: usize): i32 {
  return toFp16ScalarRange(inPtr, 0, n, outPtr);
}

/** fp16 block → float32, rejecting ±Inf/NaN (an fp16 block from toFp16 never holds them). */
export function fromFp16Scalar(inPtr: usize, n: i32, outPtr: usize): i32 {
  for (let i = 0; i < n; i++) {
    const h = <u32>load<u16>(inPtr + (<usize>i << 1));
    if ((h & 0x7c00) == 0x7c00) {
      setErrorIndex(i);
      return STATUS_NONFINITE;
    }
    store<f32>(outPtr + (<usize>i << 2), f16ToF32(h));
  }
  return STATUS_OK;
}

/** fp16 bit patterns → float32, exact, NaN/Inf passed through. */
export function widenF16Scalar(inPtr: usize, n: i32, outPtr: usize): void {
  for (let i = 0; i < n; i++) {
    store<f32>(outPtr + (<usize>i << 2), f16ToF32(<u32>load<u16>(inPtr + (<usize>i << 1))));
  }
}

/** bfloat16 bit patterns → float32: bf16 is the top half of a float32. */
export function widenBf16Scalar(inPtr: usize, n: i32, outPtr: usize): void {
  for (let i = 0; i < n; i++) {
    store<u32>(outPtr + (<usize>i << 2), <u32>load<u16>(inPtr + (<usize>i << 1)) << 16);
  }
}
