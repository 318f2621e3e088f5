// Loads the SIMD and scalar codec builds for Node tests, (re)building them first when assembly/ changed, so
// `npx vitest run tests/codec` works without a separate `npm run build:wasm`.
import { buildWasm } from "../../scripts/build-wasm.mjs";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import type { Codec } from "../../format/codec/types.ts";

await buildWasm();

/** Small slabs push every block through many slab boundaries (rows per slab rounded for 2-bit byte alignment). */
export const TINY_SLAB = 16;

export function wasmCodec(simd: boolean, slabElements?: number): Codec {
  return loadNodeCodec({ simd, slabElements });
}
