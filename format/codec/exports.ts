// The raw exports of build/codec.simd.wasm and build/codec.wasm (assembly/index*.ts), typed for the wrapper.

/** Status codes returned by the wasm exports (assembly/status.ts). */
export const WasmStatus = {
  ok: 0,
  nonfinite: 1,
  outOfRange: 2,
  invalidShape: 3,
  invalidParams: 4,
  noMemory: 5,
} as const;

/** Axis codes of the wasm exports (assembly/common.ts). */
export const WasmAxis = { token: 0, channel: 1 } as const;

/** Every export of the codec module. Pointers are byte offsets into `memory`. */
export interface CodecExports {
  readonly memory: WebAssembly.Memory;
  /** 1 in the SIMD build, 0 in the scalar build. */
  readonly HAS_SIMD: WebAssembly.Global;
  /** Ensures `bytes` of scratch at the returned (16-byte aligned) pointer; 0 when memory cannot grow. */
  reserve(bytes: number): number;
  /** Group (quantize/dequantize) or element (fp16 paths) index behind the last non-OK status. */
  errorIndex(): number;
  quantize(inPtr: number, rows: number, cols: number, bits: number, group: number, axis: number, codesPtr: number, scalesPtr: number, zerosPtr: number): number;
  dequantize(codesPtr: number, scalesPtr: number, zerosPtr: number, rows: number, cols: number, bits: number, group: number, axis: number, outPtr: number): number;
  toFp16(inPtr: number, n: number, outPtr: number): number;
  fromFp16(inPtr: number, n: number, outPtr: number): number;
  widenF16(inPtr: number, n: number, outPtr: number): void;
  widenBf16(inPtr: number, n: number, outPtr: number): void;
  /** CRC-32C of n bytes at ptr continuing from `previous` (u32; returned as a signed i32 by the JS API). */
  crc32c(ptr: number, n: number, previous: number): number;
}

const FUNCTION_EXPORTS = ["reserve", "errorIndex", "quantize", "dequantize", "toFp16", "fromFp16", "widenF16", "widenBf16", "crc32c"] as const;

/** Narrows an instance's exports to CodecExports, or returns what is missing. */
export function checkCodecExports(exports: WebAssembly.Exports): { ok: true; exports: CodecExports } | { ok: false; missing: string[] } {
  const missing: string[] = FUNCTION_EXPORTS.filter((name) => typeof exports[name] !== "function");
  if (!(exports.memory instanceof WebAssembly.Memory)) missing.push("memory");
  if (!(exports.HAS_SIMD instanceof WebAssembly.Global)) missing.push("HAS_SIMD");
  return missing.length === 0 ? { ok: true, exports: exports as unknown as CodecExports } : { ok: false, missing };
}
