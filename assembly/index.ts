// Scalar entry (no SIMD instructions): the fallback build/codec.wasm for engines without wasm SIMD.
// Exports exactly the API of index.simd.ts; see format/codec/wasm.ts for the host side.
import { AXIS_TOKEN, checkBlock } from "./common";
import {
  dequantizeChannelScalar,
  dequantizeTokenScalar,
  fromFp16Scalar,
  quantizeChannelScalar,
  quantizeTokenScalar,
  toFp16Scalar,
  widenBf16Scalar,
  widenF16Scalar,
} from "./scalar";
import { STATUS_OK } from "./status";

export const HAS_SIMD = false;
export { reserve } from "./common";
export { errorIndex } from "./status";
export { crc32c } from "./crc32c";

/** Quantizes a row-major rows×cols float32 block at inPtr; codes, scales and zeros as in docs/codec.md. */
export function quantize(inPtr: usize, rows: i32, cols: i32, bits: i32, g: i32, axis: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  const status = checkBlock(rows, cols, bits, g, axis);
  if (status != STATUS_OK) return status;
  if (axis == AXIS_TOKEN) return quantizeTokenScalar(inPtr, (rows * cols) / g, g, bits, codesPtr, scalesPtr, zerosPtr);
  return quantizeChannelScalar(inPtr, rows, cols, g, bits, codesPtr, scalesPtr, zerosPtr);
}

/** Dequantizes a packed block into float32 at outPtr. */
export function dequantize(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, rows: i32, cols: i32, bits: i32, g: i32, axis: i32, outPtr: usize): i32 {
  const status = checkBlock(rows, cols, bits, g, axis);
  if (status != STATUS_OK) return status;
  if (axis == AXIS_TOKEN) return dequantizeTokenScalar(codesPtr, scalesPtr, zerosPtr, (rows * cols) / g, g, bits, outPtr);
  return dequantizeChannelScalar(codesPtr, scalesPtr, zerosPtr, rows, cols, g, bits, outPtr);
}

/** float32 → fp16 bits (round-to-nearest-even); rejects NaN/Inf and values that overflow fp16. */
export function toFp16(inPtr: usize, n: i32, outPtr: usize): i32 {
  return toFp16Scalar(inPtr, n, outPtr);
}

/** fp16 block → float32; rejects stored Inf/NaN. */
export function fromFp16(inPtr: usize, n: i32, outPtr: usize): i32 {
  return fromFp16Scalar(inPtr, n, outPtr);
}

export function widenF16(inPtr: usize, n: i32, outPtr: usize): void {
  widenF16Scalar(inPtr, n, outPtr);
}

export function widenBf16(inPtr: usize, n: i32, outPtr: usize): void {
  widenBf16Scalar(inPtr, n, outPtr);
}
