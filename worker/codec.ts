// The WASM codec inside the Worker (proxy mode). The module is imported at bundle time because workerd refuses to
// compile wasm bytes at run time; one instance per isolate.
import codecSimdModule from "../build/codec.simd.wasm";
import type { Codec } from "../format/codec/types.ts";
import { createWasmCodec } from "../format/codec/wasm.ts";

let codec: Codec | undefined;

export function workerCodec(): Codec {
  codec ??= createWasmCodec(codecSimdModule);
  return codec;
}
