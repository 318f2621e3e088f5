// The WASM builds (SIMD and scalar) against the TypeScript reference: identical codes, scales, zeros, dequantized
// float bits, fp16 blocks, widened values, and identical errors, on many random blocks that hit every kernel path
// (SIMD token batches of 4 groups and their tails, SIMD channel quads, scalar fallbacks, slab boundaries).
import { describe, expect, it } from "vitest";
import { referenceCodec } from "../../format/codec/reference.ts";
import { CODEC_BITS, CodecError, type Axis, type Bits, type Codec } from "../../format/codec/types.ts";
import { blockDifference, firstDifference, floatBits, fp16Value, randomBlock, rng, type Distribution } from "./helpers.ts";
import { TINY_SLAB, wasmCodec } from "./wasm-codecs.ts";

const implementations: ReadonlyArray<readonly [string, Codec]> = [
  ["wasm-simd", wasmCodec(true)],
  ["wasm-scalar", wasmCodec(false)],
  ["wasm-simd, tiny slabs", wasmCodec(true, TINY_SLAB)],
];
const DISTRIBUTIONS: readonly Distribution[] = ["normal", "wide", "outliers", "tiny", "constant-groups", "signed-zeros"];
const BITS: readonly Bits[] = CODEC_BITS;

interface Case {
  rows: number;
  cols: number;
  bits: Bits;
  group: number;
  axis: Axis;
  dist: Distribution;
}

/** Random cases: SIMD-friendly shapes (groups of 16k, widths of 16k) and odd ones, short and long blocks. */
function randomCases(seed: number, count: number): Case[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const axis: Axis = rand() < 0.5 ? "token" : "channel";
    const group = pick([16, 32, 64, 128, 3, 24, 48, 5]);
    const groupsAlong = 1 + Math.floor(rand() * 5);
    const across = pick([1, 2, 7, 16, 32, 48, 17, 256]);
    const extent = rand() < 0.15 ? Math.max(1, Math.floor(group / 2)) : group * groupsAlong; // effective group < group
    const [rows, cols] = axis === "token" ? [across, extent] : [extent, across];
    cases.push({ rows, cols, bits: pick(BITS), group, axis, dist: pick(DISTRIBUTIONS) });
  }
  return cases;
}

function errorOf(fn: () => unknown): CodecError | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof CodecError) return error;
    throw error;
  }
  return undefined;
}

/** Every finite fp16 value, the midpoints to its neighbour and their float32 neighbours, both signs (|x| ≤ 65504). */
function fp16Boundaries(): Float32Array {
  const values: number[] = [];
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 0x7bff; h++) {
    for (const base of [fp16Value(h), (fp16Value(h) + fp16Value(h + 1)) / 2]) {
      for (const sign of [1, -1]) {
        f[0] = sign * base;
        const bits = u[0];
        for (const delta of [-1, 0, 1]) {
          u[0] = bits + delta;
          if (Number.isFinite(f[0]) && Math.abs(f[0]) <= 65504) values.push(f[0]);
        }
      }
    }
  }
  return Float32Array.from(values);
}

describe("WASM builds are bit-identical to the reference", () => {
  const boundaries = fp16Boundaries();

  const cases = randomCases(20260101, 300);

  for (const [name, codec] of implementations) {
    it(`${name}: quantize and dequantize on ${cases.length} random blocks`, () => {
      const rand = rng(42);
      for (const c of cases) {
        const x = randomBlock(rand, c.rows * c.cols, c.dist);
        const expected = referenceCodec.quantize(x, c.rows, c.cols, c.bits, c.group, c.axis);
        const actual = codec.quantize(x, c.rows, c.cols, c.bits, c.group, c.axis);
        const diff = blockDifference(actual, expected);
        if (diff) expect.fail(`${JSON.stringify(c)}: ${diff}`);
        const i = firstDifference(floatBits(codec.dequantize(actual)), floatBits(referenceCodec.dequantize(expected)));
        if (i >= 0) expect.fail(`${JSON.stringify(c)}: dequantized element ${i} differs`);
      }
    });

    it(`${name}: a 1024×256 latent (many slabs, group 64, token and channel)`, () => {
      const x = randomBlock(rng(1), 1024 * 256, "outliers");
      for (const axis of ["token", "channel"] as const) {
        for (const bits of BITS) {
          const expected = referenceCodec.quantize(x, 1024, 256, bits, 64, axis);
          const actual = codec.quantize(x, 1024, 256, bits, 64, axis);
          expect(blockDifference(actual, expected)).toBe("");
          expect(firstDifference(floatBits(codec.dequantize(actual)), floatBits(referenceCodec.dequantize(expected)))).toBe(-1);
        }
      }
    });

    it(`${name}: the same error code and message for NaN, ±Inf and out-of-range values anywhere`, () => {
      const rand = rng(77);
      for (const c of randomCases(99, 150)) {
        const x = randomBlock(rand, c.rows * c.cols, "normal");
        const bad = [NaN, Infinity, -Infinity, 65505, -1e9][Math.floor(rand() * 5)];
        x[Math.floor(rand() * x.length)] = bad;
        if (rand() < 0.5) x[Math.floor(rand() * x.length)] = [NaN, 7e4][Math.floor(rand() * 2)]; // sometimes two
        const expected = errorOf(() => referenceCodec.quantize(x, c.rows, c.cols, c.bits, c.group, c.axis));
        const actual = errorOf(() => codec.quantize(x, c.rows, c.cols, c.bits, c.group, c.axis));
        expect(expected).toBeDefined();
        expect({ code: actual?.code, message: actual?.message }).toEqual({ code: expected?.code, message: expected?.message });
      }
    });

    it(`${name}: fp16 rounding at every fp16 boundary (fp16 blocks, and group mins/maxes on them)`, () => {
      const expected = referenceCodec.toFp16Block(boundaries, 1, boundaries.length);
      expect(blockDifference(codec.toFp16Block(boundaries, 1, boundaries.length), expected)).toBe("");
      // Groups of 16 whose min and max are boundary values, so zeros and steps land on and around fp16 boundaries.
      const rand = rng(31);
      const groups = 40_000;
      const x = new Float32Array(groups * 16);
      for (let gi = 0; gi < groups; gi++) {
        const a = boundaries[Math.floor(rand() * boundaries.length)];
        const b = rand() < 0.5 ? boundaries[Math.floor(rand() * boundaries.length)] : Math.fround(a + Math.abs(a) * rand() * 2 ** -8);
        for (let i = 0; i < 16; i++) x[gi * 16 + i] = i === 0 ? a : i === 15 ? b : Math.fround(a + (b - a) * rand());
      }
      for (const bits of BITS) {
        for (const axis of ["token", "channel"] as const) {
          const [rows, cols] = axis === "token" ? [groups / 16, 256] : [16, groups];
          expect(blockDifference(codec.quantize(x, rows, cols, bits, 16, axis), referenceCodec.quantize(x, rows, cols, bits, 16, axis))).toBe("");
        }
      }
    });

    it(`${name}: fp16 blocks and widening`, () => {
      const rand = rng(5);
      for (const dist of DISTRIBUTIONS) {
        const x = randomBlock(rand, 37 * 64 + 5, dist);
        const expected = referenceCodec.toFp16Block(x, 1, x.length);
        const actual = codec.toFp16Block(x, 1, x.length);
        expect(blockDifference(actual, expected)).toBe("");
        expect(firstDifference(floatBits(codec.dequantize(actual)), floatBits(referenceCodec.dequantize(expected)))).toBe(-1);
      }
      const h = Uint16Array.from({ length: 70_001 }, () => Math.floor(rand() * 65536));
      for (const kind of ["f16", "bf16"] as const) {
        expect(firstDifference(floatBits(codec.widen(h, kind)), floatBits(referenceCodec.widen(h, kind)))).toBe(-1);
      }
    });
  }
});
