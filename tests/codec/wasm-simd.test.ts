// The behavioural suite against build/codec.simd.wasm, with the default slab and with tiny slabs.
import { describe, expect, it } from "vitest";
import { describeCodecSuite } from "./codec-suite.ts";
import { TINY_SLAB, wasmCodec } from "./wasm-codecs.ts";

const codec = wasmCodec(true);
const tinySlabCodec = wasmCodec(true, TINY_SLAB);

describe("wasm SIMD build", () => {
  it("reports its kind", () => {
    expect(codec.kind).toBe("wasm-simd");
  });
});
describeCodecSuite("wasm-simd", () => codec);
describeCodecSuite("wasm-simd, tiny slabs", () => tinySlabCodec);
