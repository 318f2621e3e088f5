// The host side of the WASM codec (format/codec/wasm.ts, node.ts): loading from bytes or a compiled module, the async
// loader, rejecting what is not a codec module, and memory growth for rows wider than the default slab.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CODEC_WASM_URLS, loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import { CodecError } from "../../format/codec/types.ts";
import { createWasmCodec, DEFAULT_SLAB_ELEMENTS, loadWasmCodec } from "../../format/codec/wasm.ts";
import { blockDifference, firstDifference, floatBits, randomBlock, rng } from "./helpers.ts";
import "./wasm-codecs.ts"; // builds the modules when assembly/ changed

const simdBytes = new Uint8Array(readFileSync(CODEC_WASM_URLS.simd));

describe("WASM codec wrapper", () => {
  it("loads from bytes, from a compiled module and asynchronously", async () => {
    expect(createWasmCodec(simdBytes).kind).toBe("wasm-simd");
    expect(createWasmCodec(new WebAssembly.Module(simdBytes)).kind).toBe("wasm-simd");
    expect((await loadWasmCodec(simdBytes)).kind).toBe("wasm-simd");
    expect(loadNodeCodec().kind).toBe("wasm-simd"); // Node 20 validates wasm SIMD
    expect(loadNodeCodec({ simd: false }).kind).toBe("wasm-scalar");
  });

  it("rejects bytes that are not a codec module with wasm_unavailable", async () => {
    expect(() => createWasmCodec(new Uint8Array([0, 97, 115, 109, 9, 9]))).toThrow(CodecError);
    await expect(loadWasmCodec(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: "wasm_unavailable" });
    const emptyModule = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
    expect(() => createWasmCodec(emptyModule)).toThrow(/missing exports .*quantize/);
    expect(() => createWasmCodec(simdBytes, { slabElements: 3 })).toThrow(/slabElements/);
  });

  it("grows wasm memory for rows wider than the slab and rebuilds its views", () => {
    const codec = createWasmCodec(simdBytes);
    const small = randomBlock(rng(1), 4 * 256, "normal");
    const before = codec.quantize(small, 4, 256, 4, 64, "token");
    const cols = DEFAULT_SLAB_ELEMENTS * 3; // one row needs a slab three times the default
    const wide = randomBlock(rng(2), 2 * cols, "outliers");
    for (const axis of ["token", "channel"] as const) {
      const actual = codec.quantize(wide, 2, cols, 2, 64, axis);
      const expected = referenceCodec.quantize(wide, 2, cols, 2, 64, axis);
      expect(blockDifference(actual, expected)).toBe("");
      expect(firstDifference(floatBits(codec.dequantize(actual)), floatBits(referenceCodec.dequantize(expected)))).toBe(-1);
    }
    expect(blockDifference(codec.quantize(small, 4, 256, 4, 64, "token"), before)).toBe("");
  });
});
