// Status codes returned by every exported codec function (no exceptions cross the wasm boundary).
// The JS wrapper (format/codec/wasm.ts) maps them to CodecError codes; keep both lists in sync.

export const STATUS_OK: i32 = 0;
/** An input value (or a stored scale/zero/fp16 value) is NaN or ±Inf. */
export const STATUS_NONFINITE: i32 = 1;
/** A value lies outside the finite fp16 range, or a stored scale is negative. */
export const STATUS_OUT_OF_RANGE: i32 = 2;
/** rows/cols/group do not describe a valid block. */
export const STATUS_INVALID_SHAPE: i32 = 3;
/** bits or axis is not one of the supported values. */
export const STATUS_INVALID_PARAMS: i32 = 4;
/** memory.grow failed. */
export const STATUS_NO_MEMORY: i32 = 5;

/** Index of the group (quantize/dequantize) or element (fp16 paths) that produced the last non-OK status. */
let lastErrorIndex: i32 = -1;

export function setErrorIndex(index: i32): void {
  lastErrorIndex = index;
}

/** Index of the group or element behind the last non-OK status (for error messages). */
export function errorIndex(): i32 {
  return lastErrorIndex;
}
