// The codec inside workerd: the .wasm modules are imported at bundle time (workerd forbids compiling wasm bytes at
// run time) and must produce output bit-identical to the TypeScript reference computed in the same isolate.
import { describe, expect, it } from "vitest";
import codecSimdModule from "../../build/codec.simd.wasm";
import codecScalarModule from "../../build/codec.wasm";
import { referenceCodec } from "../../format/codec/reference.ts";
import { CodecError, type Axis, type Bits, type QuantizedBlock } from "../../format/codec/types.ts";
import { createWasmCodec } from "../../format/codec/wasm.ts";

/** Deterministic latent-like values with a few outliers (xorshift32; no test helpers from Node-only files). */
function latent(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  return Float32Array.from({ length: n }, () => (next() < 0.01 ? 500 : 1) * (next() + next() + next() - 1.5));
}

function expectSameBlock(actual: QuantizedBlock, expected: QuantizedBlock): void {
  expect({ ...actual, codes: [...actual.codes], scales: [...actual.scales], zeros: [...actual.zeros] }).toEqual({
    ...expected,
    codes: [...expected.codes],
    scales: [...expected.scales],
    zeros: [...expected.zeros],
  });
}

const floatBits = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

describe("codec in workerd", () => {
  it("imports the .wasm files as compiled modules", () => {
    expect(codecSimdModule).toBeInstanceOf(WebAssembly.Module);
    expect(codecScalarModule).toBeInstanceOf(WebAssembly.Module);
  });

  for (const [kind, module] of [["wasm-simd", codecSimdModule], ["wasm-scalar", codecScalarModule]] as const) {
    it(`${kind}: quantize/dequantize are bit-identical to the reference`, () => {
      const codec = createWasmCodec(module);
      expect(codec.kind).toBe(kind);
      const cases: Array<[number, number, Bits, number, Axis]> = [
        [96, 256, 4, 64, "token"],
        [96, 256, 8, 32, "token"],
        [64, 256, 2, 64, "channel"],
        [128, 48, 4, 128, "channel"],
        [33, 64, 4, 64, "token"], // rope keys: one group per KV head (g = r)
        [10, 6, 2, 3, "token"],
      ];
      cases.forEach(([rows, cols, bits, group, axis], i) => {
        const x = latent(rows * cols, 17 + i);
        const expected = referenceCodec.quantize(x, rows, cols, bits, group, axis);
        const actual = codec.quantize(x, rows, cols, bits, group, axis);
        expectSameBlock(actual, expected);
        expect(floatBits(codec.dequantize(actual))).toEqual(floatBits(referenceCodec.dequantize(expected)));
      });
    });

    it(`${kind}: fp16 blocks, widening and errors match the reference`, () => {
      const codec = createWasmCodec(module);
      const x = latent(1000, 3);
      expectSameBlock(codec.toFp16Block(x, 10, 100), referenceCodec.toFp16Block(x, 10, 100));
      const h = Uint16Array.from({ length: 4099 }, (_, i) => (i * 40503) & 0xffff);
      expect(floatBits(codec.widen(h, "f16"))).toEqual(floatBits(referenceCodec.widen(h, "f16")));
      expect(floatBits(codec.widen(h, "bf16"))).toEqual(floatBits(referenceCodec.widen(h, "bf16")));
      x[517] = NaN;
      const error = (() => {
        try {
          codec.quantize(x, 10, 100, 4, 50, "token");
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(CodecError);
      expect(error).toMatchObject({ code: "nonfinite", message: expect.stringMatching(/group 10 \(row 5, cols 0\.\.49\)/) });
    });
  }
});
