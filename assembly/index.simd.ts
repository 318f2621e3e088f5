// SIMD entry (build/codec.simd.wasm): v128 kernels where the block's layout fits 16-value vectors, the scalar
// kernels otherwise. Exports exactly the API of index.ts, and its output is bit-identical to it.
import { AXIS_TOKEN, checkBlock } from "./common";
import { dequantizeChannelScalar, dequantizeTokenScalar, quantizeChannelScalar, quantizeTokenScalar } from "./scalar";
import {
  dequantizeChannelSimd,
  dequantizeTokenSimd,
  fromFp16Simd,
  quantizeChannelSimd,
  quantizeTokenSimd,
  toFp16Simd,
  widenBf16Simd,
  widenF16Simd,
} from "./simd";
import { STATUS_OK } from "./status";

export const HAS_SIMD = true;
export { reserve } from "./common";
export { errorIndex } from "./status";
export { crc32c } from "./crc32c";

// Token axis: a group must fill whole 16-value steps. Channel axis: 16 whole columns per step, which also keeps
// every row's packed codes byte-aligned for 2-bit codes.
// @ts-ignore: decorator
@inline
function simdFits(cols: i32, g: i32, axis: i32): bool {
  return axis == AXIS_TOKEN ? (g & 15) == 0 : (cols & 15) == 0;
}

export function quantize(inPtr: usize, rows: i32, cols: i32, bits: i32, g: i32, axis: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  const status = checkBlock(rows, cols, bits, g, axis);
  if (status != STATUS_OK) return status;
  if (axis == AXIS_TOKEN) {
    const nGroups = (rows * cols) / g;
    if (simdFits(cols, g, axis)) return quantizeTokenSimd(inPtr, nGroups, g, bits, codesPtr, scalesPtr, zerosPtr);
    return quantizeTokenScalar(inPtr, nGroups, g, bits, codesPtr, scalesPtr, zerosPtr);
  }
  if (simdFits(cols, g, axis)) return quantizeChannelSimd(inPtr, rows, cols, g, bits, codesPtr, scalesPtr, zerosPtr);
  return quantizeChannelScalar(inPtr, rows, cols, g, bits, codesPtr, scalesPtr, zerosPtr);
}

export function dequantize(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, rows: i32, cols: i32, bits: i32, g: i32, axis: i32, outPtr: usize): i32 {
  const status = checkBlock(rows, cols, bits, g, axis);
  if (status != STATUS_OK) return status;
  if (axis == AXIS_TOKEN) {
    const nGroups = (rows * cols) / g;
    if (simdFits(cols, g, axis)) return dequantizeTokenSimd(codesPtr, scalesPtr, zerosPtr, nGroups, g, bits, outPtr);
    return dequantizeTokenScalar(codesPtr, scalesPtr, zerosPtr, nGroups, g, bits, outPtr);
  }
  if (simdFits(cols, g, axis)) return dequantizeChannelSimd(codesPtr, scalesPtr, zerosPtr, rows, cols, g, bits, outPtr);
  return dequantizeChannelScalar(codesPtr, scalesPtr, zerosPtr, rows, cols, g, bits, outPtr);
}

export function toFp16(inPtr: usize, n: i32, outPtr: usize): i32 {
  return toFp16Simd(inPtr, n, outPtr);
}

export function fromFp16(inPtr: usize, n: i32, outPtr: usize): i32 {
  return fromFp16Simd(inPtr, n, outPtr);
}

export function widenF16(inPtr: usize, n: i32, outPtr: usize): void {
  widenF16Simd(inPtr, n, outPtr);
}

export function widenBf16(inPtr: usize, n: i32, outPtr: usize): void {
  widenBf16Simd(inPtr, n, outPtr);
}
