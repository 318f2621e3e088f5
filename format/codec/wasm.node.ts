// Node convenience loader for the codec modules in build/ (made by `npm run build:wasm`). Node-only: the Worker imports
// the .wasm as a module instead, so nothing the Worker imports may import this file (worker/tsconfig.json excludes it).
import { readFileSync } from "node:fs";
import { createWasmCodec, type WasmCodecOptions } from "./wasm.ts";
import { CodecError, type Codec } from "./types.ts";

const moduleUrl = import.meta.url;

export const CODEC_WASM_URLS = {
  simd: new URL("../../build/codec.simd.wasm", moduleUrl),
  scalar: new URL("../../build/codec.wasm", moduleUrl),
} as const;

export interface NodeCodecOptions extends WasmCodecOptions {
  /** true: SIMD build; false: scalar build; absent: SIMD when this Node validates it, else scalar. */
  readonly simd?: boolean;
}

function readModuleBytes(url: URL): Uint8Array<ArrayBuffer> {
  try {
    return new Uint8Array(readFileSync(url));
  } catch (cause) {
    throw new CodecError("wasm_unavailable", `cannot read ${url.pathname} (${String(cause)}); run \`npm run build:wasm\``);
  }
}

/** Loads build/codec.simd.wasm or build/codec.wasm synchronously. */
export function loadNodeCodec(opts: NodeCodecOptions = {}): Codec {
  let simd = opts.simd;
  let bytes: Uint8Array<ArrayBuffer> | undefined;
  if (simd === undefined) {
    bytes = readModuleBytes(CODEC_WASM_URLS.simd);
    simd = WebAssembly.validate(bytes);
  }
  if (simd) return createWasmCodec(bytes ?? readModuleBytes(CODEC_WASM_URLS.simd), opts);
  return createWasmCodec(readModuleBytes(CODEC_WASM_URLS.scalar), opts);
}
