// Codec backed by the AssemblyScript module (build/codec.simd.wasm or build/codec.wasm). Works with a compiled
// WebAssembly.Module (what workerd gives for `import m from "x.wasm"`; workerd forbids compiling bytes at run time)
// and with bytes in Node and browsers. Blocks stream through a fixed scratch slab sized to stay cache-resident.
import { checkCodecExports, WasmAxis, WasmStatus, type CodecExports } from "./exports.ts";
import {
  checkLength,
  checkShape,
  checkWidenArgs,
  codeByteLength,
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

/**
 * Default slab: 64 Ki values = 256 KiB of float32 in, plus codes/scales/zeros (≈ 640 KiB in all), which stays in L2
 * while it is copied in, quantized and copied out, and keeps the module far below the 128 MB isolate limit.
 */
export const DEFAULT_SLAB_ELEMENTS = 1 << 16;

/** wasm32 pointers are passed as i32; keep the scratch area well inside 2 GiB so offsets never wrap. */
const MAX_SLAB_BYTES = 2 ** 31 - 2 ** 24;

export interface WasmCodecOptions {
  /** Values per slab (tests use tiny slabs to exercise slab boundaries). Grown automatically for very wide rows. */
  readonly slabElements?: number;
}

/** Byte offsets of the slab regions inside the scratch area, for a capacity of `elements` values. */
interface Slab {
  readonly elements: number;
  readonly floatPtr: number; // elements × f32 (input of quantize/toFp16, output of dequantize/widen)
  readonly codesPtr: number; // elements × 2 bytes (packed codes, or fp16 values)
  readonly scalesPtr: number; // elements × u16 (at most one group per value)
  readonly zerosPtr: number;
}

const align16 = (n: number): number => (n + 15) & ~15;

function errorForStatus(status: number, what: string): CodecError {
  switch (status) {
    case WasmStatus.invalidShape:
      return new CodecError("invalid_shape", `wasm codec rejected the shape of ${what}`);
    case WasmStatus.invalidParams:
      return new CodecError("invalid_params", `wasm codec rejected the parameters of ${what}`);
    case WasmStatus.noMemory:
      return new CodecError("wasm_unavailable", `wasm memory could not grow for ${what}`);
    default:
      return new CodecError("wasm_unavailable", `wasm codec returned unknown status ${status} for ${what}`);
  }
}

/** Rows per slab: a multiple of `unit` rows whose codes start on a byte boundary, filling about `capacity` values. */
function rowsPerSlab(cols: number, unit: number, bits: number, capacity: number): number {
  const valuesPerByte = 8 / bits;
  let base = unit;
  while ((base * cols) % valuesPerByte !== 0) base *= 2; // at most ×4
  return base * Math.max(1, Math.floor(capacity / (base * cols)));
}

class WasmCodec implements Codec {
  readonly kind: "wasm-simd" | "wasm-scalar";
  private readonly ex: CodecExports;
  private readonly defaultElements: number;
  private slab: Slab | undefined;
  private buffer: ArrayBuffer | undefined;
  private u8 = new Uint8Array(0);
  private u16 = new Uint16Array(0);
  private f32 = new Float32Array(0);

  constructor(ex: CodecExports, slabElements: number) {
    this.ex = ex;
    this.kind = ex.HAS_SIMD.value ? "wasm-simd" : "wasm-scalar";
    this.defaultElements = slabElements;
  }

  /** Returns a slab of at least `elements` values, reserving (and growing) scratch memory only when needed. */
  private slabFor(elements: number): Slab {
    let slab = this.slab;
    if (slab === undefined || slab.elements < elements) {
      const n = align16(Math.max(elements, this.defaultElements));
      const bytes = 4 * n + 3 * 2 * n;
      if (bytes > MAX_SLAB_BYTES) {
        throw new CodecError("wasm_unavailable", `a slab of ${elements} values needs ${bytes} bytes of wasm memory (limit ${MAX_SLAB_BYTES}); split rows this wide`);
      }
      const base = this.ex.reserve(bytes);
      if (base === 0) throw new CodecError("wasm_unavailable", `wasm memory could not grow to a ${bytes}-byte slab`);
      slab = { elements: n, floatPtr: base, codesPtr: base + 4 * n, scalesPtr: base + 6 * n, zerosPtr: base + 8 * n };
      this.slab = slab;
    }
    // Views are rebuilt only when memory grew (growth detaches the old ArrayBuffer).
    if (this.buffer !== this.ex.memory.buffer) {
      this.buffer = this.ex.memory.buffer;
      this.u8 = new Uint8Array(this.buffer);
      this.u16 = new Uint16Array(this.buffer);
      this.f32 = new Float32Array(this.buffer);
    }
    return slab;
  }

  quantize(input: Float32Array, rows: number, cols: number, bits: Bits, group: GroupSize | number, axis: Axis): QuantizedBlock {
    const layout = quantizeLayout(input, rows, cols, bits, group, axis);
    const g = layout.group;
    const codes = new Uint8Array(layout.codeBytes);
    const scales = new Uint16Array(layout.groups);
    const zeros = new Uint16Array(layout.groups);
    const step = rowsPerSlab(cols, axis === "token" ? 1 : g, bits, this.defaultElements);
    const slab = this.slabFor(step * cols);
    const { u8, u16, f32 } = this;
    for (let r0 = 0; r0 < rows; r0 += step) {
      const slabRows = Math.min(step, rows - r0);
      const e0 = r0 * cols;
      const n = slabRows * cols;
      const groups0 = e0 / g; // same for both axes: slabs hold whole groups, and groups are numbered in row order
      f32.set(input.subarray(e0, e0 + n), slab.floatPtr >>> 2);
      const status = this.ex.quantize(slab.floatPtr, slabRows, cols, bits, g, WasmAxis[axis], slab.codesPtr, slab.scalesPtr, slab.zerosPtr);
      if (status !== WasmStatus.ok) throw this.groupError(status, layout, groups0 + this.ex.errorIndex(), "quantize");
      const codeBytes = codeByteLength(n, bits);
      codes.set(u8.subarray(slab.codesPtr, slab.codesPtr + codeBytes), (e0 * bits) / 8);
      scales.set(u16.subarray(slab.scalesPtr >>> 1, (slab.scalesPtr >>> 1) + n / g), groups0);
      zeros.set(u16.subarray(slab.zerosPtr >>> 1, (slab.zerosPtr >>> 1) + n / g), groups0);
    }
    return { rows, cols, bits, group: g, axis, codes, scales, zeros };
  }

  dequantize(block: QuantizedBlock, out?: Float32Array): Float32Array {
    if (block.bits === 16) return this.dequantizeFp16(block, out);
    const layout = dequantizeLayout(block);
    const { rows, cols, bits, group: g, axis } = layout;
    const result = outputArray(out, rows * cols);
    const step = rowsPerSlab(cols, axis === "token" ? 1 : g, bits, this.defaultElements);
    const slab = this.slabFor(step * cols);
    const { u8, u16, f32 } = this;
    for (let r0 = 0; r0 < rows; r0 += step) {
      const slabRows = Math.min(step, rows - r0);
      const e0 = r0 * cols;
      const n = slabRows * cols;
      const groups0 = e0 / g;
      const byte0 = (e0 * bits) / 8;
      u8.set(block.codes.subarray(byte0, byte0 + codeByteLength(n, bits)), slab.codesPtr);
      u16.set(block.scales.subarray(groups0, groups0 + n / g), slab.scalesPtr >>> 1);
      u16.set(block.zeros.subarray(groups0, groups0 + n / g), slab.zerosPtr >>> 1);
      const status = this.ex.dequantize(slab.codesPtr, slab.scalesPtr, slab.zerosPtr, slabRows, cols, bits, g, WasmAxis[axis], slab.floatPtr);
      if (status !== WasmStatus.ok) throw this.groupError(status, layout, groups0 + this.ex.errorIndex(), "dequantize");
      result.set(f32.subarray(slab.floatPtr >>> 2, (slab.floatPtr >>> 2) + n), e0);
    }
    return result;
  }

  toFp16Block(input: Float32Array, rows: number, cols: number): QuantizedBlock {
    checkShape(rows, cols);
    if (!(input instanceof Float32Array)) throw new CodecError("invalid_shape", "input must be a Float32Array");
    checkLength("input", input.length, rows * cols);
    const codes = new Uint8Array(2 * input.length);
    const slab = this.slabFor(this.defaultElements);
    for (let i0 = 0; i0 < input.length; i0 += slab.elements) {
      const n = Math.min(slab.elements, input.length - i0);
      this.f32.set(input.subarray(i0, i0 + n), slab.floatPtr >>> 2);
      const status = this.ex.toFp16(slab.floatPtr, n, slab.codesPtr);
      if (status !== WasmStatus.ok) {
        const index = i0 + this.ex.errorIndex();
        if (status === WasmStatus.nonfinite) throw nonfiniteElementError(index);
        if (status === WasmStatus.outOfRange) throw fp16OverflowError(index);
        throw errorForStatus(status, "an fp16 block");
      }
      codes.set(this.u8.subarray(slab.codesPtr, slab.codesPtr + 2 * n), 2 * i0);
    }
    return { rows, cols, bits: 16, group: 0, axis: "token", codes, scales: new Uint16Array(0), zeros: new Uint16Array(0) };
  }

  widen(input: Uint16Array, kind: "f16" | "bf16", out?: Float32Array): Float32Array {
    checkWidenArgs(input, kind);
    const result = outputArray(out, input.length);
    const slab = this.slabFor(this.defaultElements);
    for (let i0 = 0; i0 < input.length; i0 += slab.elements) {
      const n = Math.min(slab.elements, input.length - i0);
      this.u16.set(input.subarray(i0, i0 + n), slab.codesPtr >>> 1);
      if (kind === "f16") this.ex.widenF16(slab.codesPtr, n, slab.floatPtr);
      else this.ex.widenBf16(slab.codesPtr, n, slab.floatPtr);
      copyBits(this.u8, slab.floatPtr, result, i0, n);
    }
    return result;
  }

  // An arrow property, so `codec.crc32c` can be passed around as a plain function (chunk encode/decode take one).
  readonly crc32c = (bytes: Uint8Array, previous = 0): number => {
    // The whole slab (10 bytes per value) is one byte window; longer inputs go through it piece by piece.
    const slab = this.slabFor(this.defaultElements);
    const window = 10 * slab.elements;
    let crc = previous >>> 0;
    for (let i0 = 0; i0 < bytes.length; i0 += window) {
      const piece = bytes.subarray(i0, Math.min(bytes.length, i0 + window));
      this.u8.set(piece, slab.floatPtr);
      crc = this.ex.crc32c(slab.floatPtr, piece.length, crc) >>> 0;
    }
    return crc;
  };

  private dequantizeFp16(block: QuantizedBlock, out: Float32Array | undefined): Float32Array {
    const n = fp16BlockElements(block);
    const result = outputArray(out, n);
    const slab = this.slabFor(this.defaultElements);
    for (let i0 = 0; i0 < n; i0 += slab.elements) {
      const count = Math.min(slab.elements, n - i0);
      this.u8.set(block.codes.subarray(2 * i0, 2 * (i0 + count)), slab.codesPtr);
      const status = this.ex.fromFp16(slab.codesPtr, count, slab.floatPtr);
      if (status === WasmStatus.nonfinite) throw nonfiniteFp16Error(i0 + this.ex.errorIndex());
      if (status !== WasmStatus.ok) throw errorForStatus(status, "an fp16 block");
      copyBits(this.u8, slab.floatPtr, result, i0, count);
    }
    return result;
  }

  private groupError(status: number, layout: BlockLayout, gi: number, op: "quantize" | "dequantize"): CodecError {
    if (op === "quantize") {
      if (status === WasmStatus.nonfinite) return nonfiniteGroupError(layout, gi);
      if (status === WasmStatus.outOfRange) return outOfRangeGroupError(layout, gi);
    } else {
      if (status === WasmStatus.nonfinite) return nonfiniteStoredGroupError(layout, gi);
      if (status === WasmStatus.outOfRange) return negativeScaleError(layout, gi);
    }
    return errorForStatus(status, `a ${layout.rows}×${layout.cols} block`);
  }
}

/** Copies float32 values as raw bytes, so NaN payloads from widen() survive (a Float32Array copy may not). */
function copyBits(memory: Uint8Array, ptr: number, out: Float32Array, index: number, n: number): void {
  new Uint8Array(out.buffer, out.byteOffset + 4 * index, 4 * n).set(memory.subarray(ptr, ptr + 4 * n));
}

/** Runtime compilation, present in Node and browsers; workerd forbids it, and its types leave it out. */
interface WasmCompiler {
  readonly Module: new (bytes: BufferSource) => WebAssembly.Module;
  compile(bytes: BufferSource): Promise<WebAssembly.Module>;
}
const compiler = WebAssembly as unknown as WasmCompiler;

function instantiate(module: WebAssembly.Module, opts: WasmCodecOptions): Codec {
  const slabElements = opts.slabElements ?? DEFAULT_SLAB_ELEMENTS;
  if (!Number.isInteger(slabElements) || slabElements < 16) {
    throw new CodecError("invalid_params", `slabElements must be an integer ≥ 16, got ${slabElements}`);
  }
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort(_msg: number, _file: number, line: number, column: number): never {
        throw new CodecError("wasm_unavailable", `codec wasm aborted at ${line}:${column}`);
      },
    },
  });
  const checked = checkCodecExports(instance.exports);
  if (!checked.ok) throw new CodecError("wasm_unavailable", `not a codec module: missing exports ${checked.missing.join(", ")}`);
  return new WasmCodec(checked.exports, slabElements);
}

/**
 * Creates a codec from a compiled module (workerd: `import m from "./codec.simd.wasm"`) or from module bytes
 * (Node, browsers; compiles synchronously — browsers limit that to small modules on the main thread, so prefer
 * loadWasmCodec there). Throws CodecError("wasm_unavailable") when the engine cannot compile it (e.g. no SIMD).
 */
export function createWasmCodec(source: WebAssembly.Module | BufferSource, opts: WasmCodecOptions = {}): Codec {
  let module: WebAssembly.Module;
  if (source instanceof WebAssembly.Module) module = source;
  else {
    try {
      module = new compiler.Module(source);
    } catch (cause) {
      throw new CodecError("wasm_unavailable", `cannot compile the codec module: ${String(cause)}; use the scalar build where wasm SIMD is missing`);
    }
  }
  return instantiate(module, opts);
}

/** Async variant of createWasmCodec (compiles off the main thread in browsers). */
export async function loadWasmCodec(source: WebAssembly.Module | BufferSource, opts: WasmCodecOptions = {}): Promise<Codec> {
  if (source instanceof WebAssembly.Module) return instantiate(source, opts);
  let module: WebAssembly.Module;
  try {
    module = await compiler.compile(source);
  } catch (cause) {
    throw new CodecError("wasm_unavailable", `cannot compile the codec module: ${String(cause)}; use the scalar build where wasm SIMD is missing`);
  }
  return instantiate(module, opts);
}
