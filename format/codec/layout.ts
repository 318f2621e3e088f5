// Argument checks and block geometry shared by the WASM wrapper and the reference codec, so both reject the same
// inputs with the same CodecError code and message before any arithmetic (docs/codec.md).
import { CODEC_BITS_TEXT, CodecError, isBits, type Axis, type Bits, type QuantizedBlock } from "./types.ts";

/** Largest block: keeps every element and bit index inside 32-bit wasm arithmetic (and far above any real chunk). */
export const MAX_BLOCK_ELEMENTS = 2 ** 30;

/** Geometry of a quantized block. */
export interface BlockLayout {
  readonly rows: number;
  readonly cols: number;
  readonly bits: Bits;
  /** Effective group size g = min(group, extent). */
  readonly group: number;
  readonly axis: Axis;
  readonly groups: number;
  readonly codeBytes: number;
}

export function codeByteLength(elements: number, bits: number): number {
  return Math.ceil((elements * bits) / 8);
}

function checkBits(bits: unknown): asserts bits is Bits {
  if (!isBits(bits)) throw new CodecError("invalid_params", `bits must be ${CODEC_BITS_TEXT}, got ${String(bits)}`);
}

function checkAxis(axis: unknown): asserts axis is Axis {
  if (axis !== "token" && axis !== "channel") throw new CodecError("invalid_params", `axis must be "token" or "channel", got ${String(axis)}`);
}

/** rows and cols must be positive integers with rows·cols ≤ MAX_BLOCK_ELEMENTS. */
export function checkShape(rows: number, cols: number): void {
  if (!Number.isInteger(rows) || rows <= 0 || !Number.isInteger(cols) || cols <= 0) {
    throw new CodecError("invalid_shape", `rows and cols must be positive integers, got ${rows}×${cols}`);
  }
  if (rows * cols > MAX_BLOCK_ELEMENTS) {
    throw new CodecError("invalid_shape", `block ${rows}×${cols} exceeds ${MAX_BLOCK_ELEMENTS} elements; split it into chunks`);
  }
}

export function checkLength(what: string, actual: number, expected: number): void {
  if (actual !== expected) throw new CodecError("invalid_shape", `${what} has ${actual} elements, expected ${expected}`);
}

/** Validates quantize arguments and resolves the effective group. */
export function quantizeLayout(input: unknown, rows: number, cols: number, bits: unknown, group: unknown, axis: unknown): BlockLayout {
  checkBits(bits);
  checkAxis(axis);
  if (typeof group !== "number" || !Number.isInteger(group) || group <= 0) {
    throw new CodecError("invalid_params", `group must be a positive integer, got ${String(group)}`);
  }
  checkShape(rows, cols);
  if (!(input instanceof Float32Array)) throw new CodecError("invalid_shape", "input must be a Float32Array");
  checkLength("input", input.length, rows * cols);
  const extent = axis === "token" ? cols : rows;
  const g = Math.min(group, extent);
  if (extent % g !== 0) {
    throw new CodecError("invalid_shape", `${axis === "token" ? "cols" : "rows"} = ${extent} is not a multiple of the group ${g}`);
  }
  return { rows, cols, bits, group: g, axis, groups: (rows * cols) / g, codeBytes: codeByteLength(rows * cols, bits) };
}

/** Validates a quantized block (bits 8/4/2) for dequantize. */
export function dequantizeLayout(block: QuantizedBlock): BlockLayout {
  const { rows, cols, bits, group, axis } = block;
  checkBits(bits);
  checkAxis(axis);
  checkShape(rows, cols);
  const extent = axis === "token" ? cols : rows;
  if (!Number.isInteger(group) || group <= 0 || group > extent || extent % group !== 0) {
    throw new CodecError("invalid_shape", `group ${group} is not an effective group of ${axis === "token" ? "cols" : "rows"} = ${extent}`);
  }
  const layout: BlockLayout = { rows, cols, bits, group, axis, groups: (rows * cols) / group, codeBytes: codeByteLength(rows * cols, bits) };
  checkBlockArrays(block, layout.codeBytes, layout.groups);
  return layout;
}

/** Validates an fp16 block (bits 16): codes are rows·cols little-endian fp16 values, no scales. */
export function fp16BlockElements(block: QuantizedBlock): number {
  checkShape(block.rows, block.cols);
  if (block.group !== 0) throw new CodecError("invalid_params", `an fp16 block has group 0, got ${block.group}`);
  const n = block.rows * block.cols;
  checkBlockArrays(block, 2 * n, 0);
  return n;
}

function checkBlockArrays(block: QuantizedBlock, codeBytes: number, groups: number): void {
  if (!(block.codes instanceof Uint8Array)) throw new CodecError("invalid_shape", "codes must be a Uint8Array");
  if (!(block.scales instanceof Uint16Array) || !(block.zeros instanceof Uint16Array)) {
    throw new CodecError("invalid_shape", "scales and zeros must be Uint16Arrays");
  }
  checkLength("codes", block.codes.length, codeBytes);
  checkLength("scales", block.scales.length, groups);
  checkLength("zeros", block.zeros.length, groups);
}

/** Checks or allocates the float32 output of a rows×cols decode. */
export function outputArray(out: Float32Array | undefined, n: number): Float32Array {
  if (out === undefined) return new Float32Array(n);
  if (!(out instanceof Float32Array)) throw new CodecError("invalid_shape", "out must be a Float32Array");
  checkLength("out", out.length, n);
  return out;
}

/** Human-readable place of group `gi`, for error messages. */
export function describeGroup(layout: BlockLayout, gi: number): string {
  const { cols, group: g } = layout;
  if (layout.axis === "token") {
    const perRow = cols / g;
    const row = Math.floor(gi / perRow);
    const c0 = (gi % perRow) * g;
    return `group ${gi} (row ${row}, cols ${c0}..${c0 + g - 1})`;
  }
  const k = Math.floor(gi / cols);
  return `group ${gi} (col ${gi % cols}, rows ${k * g}..${k * g + g - 1})`;
}

export function nonfiniteGroupError(layout: BlockLayout, gi: number): CodecError {
  return new CodecError("nonfinite", `${describeGroup(layout, gi)} holds NaN or ±Inf; the codec only takes finite values`);
}

export function outOfRangeGroupError(layout: BlockLayout, gi: number): CodecError {
  return new CodecError("out_of_range", `${describeGroup(layout, gi)} holds a value beyond ±65504, which fp16 scales and zeros cannot represent`);
}

export function nonfiniteStoredGroupError(layout: BlockLayout, gi: number): CodecError {
  return new CodecError("nonfinite", `${describeGroup(layout, gi)} has a NaN or ±Inf scale or zero; the block is corrupt`);
}

export function negativeScaleError(layout: BlockLayout, gi: number): CodecError {
  return new CodecError("out_of_range", `${describeGroup(layout, gi)} has a negative scale; the block is corrupt`);
}

export function nonfiniteElementError(index: number): CodecError {
  return new CodecError("nonfinite", `element ${index} is NaN or ±Inf; the codec only takes finite values`);
}

export function fp16OverflowError(index: number): CodecError {
  return new CodecError("out_of_range", `element ${index} rounds beyond ±65504 and does not fit fp16`);
}

export function nonfiniteFp16Error(index: number): CodecError {
  return new CodecError("nonfinite", `fp16 element ${index} is NaN or ±Inf; the block is corrupt`);
}

export function checkWidenArgs(input: unknown, kind: unknown): asserts input is Uint16Array {
  if (kind !== "f16" && kind !== "bf16") throw new CodecError("invalid_params", `kind must be "f16" or "bf16", got ${String(kind)}`);
  if (!(input instanceof Uint16Array)) throw new CodecError("invalid_shape", "input must be a Uint16Array of bit patterns");
}
