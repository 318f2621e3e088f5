// The behavioural suite against build/codec.wasm, with the default slab and with tiny slabs.
import { describe, expect, it } from "vitest";
import { describeCodecSuite } from "./codec-suite.ts";
import { TINY_SLAB, wasmCodec } from "./wasm-codecs.ts";

const codec = wasmCodec(false);
const tinySlabCodec = wasmCodec(false, TINY_SLAB);

describe("wasm scalar build", () => {
  it("reports its kind", () => {
    expect(codec.kind).toBe("wasm-scalar");
  });
});
describeCodecSuite("wasm-scalar", () => codec);
describeCodecSuite("wasm-scalar, tiny slabs", () => tinySlabCodec);
