// One behavioural suite for every Codec implementation (as-sha256's getSimdTests pattern): the SIMD build, the
// scalar build and the TypeScript reference all run it. Expected values come from the contract (docs/codec.md) and
// the fp16 oracle in helpers.ts, never from another implementation.
import { describe, expect, it } from "vitest";
import { CODEC_BITS, CodecError, type Axis, type Bits, type Codec, type CodecErrorCode, type QuantizedBlock } from "../../format/codec/types.ts";
import { bitwiseCrc32c } from "../format/chunk-fixtures.ts";
import { bf16Value, floatBits, fp16Value, oracleRoundDown, oracleRoundNearestEven, oracleRoundUp, randomBlock, rng, type Distribution } from "./helpers.ts";

const BITS: readonly Bits[] = CODEC_BITS;
const GROUPS = [32, 64, 128] as const;
const AXES: readonly Axis[] = ["token", "channel"];
const DISTRIBUTIONS: readonly Distribution[] = ["normal", "wide", "outliers", "tiny", "constant-groups", "signed-zeros"];

/** Group index of element e (row-major) in the layout of docs/codec.md. */
function groupOf(block: QuantizedBlock, e: number): number {
  if (block.axis === "token") return Math.floor(e / block.group); // groups of g channels tile each row
  const row = Math.floor(e / block.cols);
  return Math.floor(row / block.group) * block.cols + (e % block.cols);
}

/**
 * Checks one quantized block against the contract: array lengths; each group's zero is the oracle's fp16 round-down
 * of its min and its step the oracle's round-up of f32(f32(M − z) / Q); each element reconstructs within s/2 plus
 * float32 slack. Slack: x − z, ·inv, 1/s, q·s and + z each round once (relative 2^-24), which bounds the extra error
 * by 2^-24·(5·Q·s + 2|x| + 2s) ≤ 2^-21·(Q·s + |x|).
 */
function expectFaithful(x: Float32Array, block: QuantizedBlock, decoded: Float32Array): void {
  const { rows, cols, bits, group: g } = block;
  const qmax = 2 ** bits - 1;
  const groups = (rows * cols) / g;
  expect(block.codes.length).toBe(Math.ceil((rows * cols * bits) / 8));
  expect(block.scales.length).toBe(groups);
  expect(block.zeros.length).toBe(groups);
  const min = new Array<number>(groups).fill(Infinity);
  const max = new Array<number>(groups).fill(-Infinity);
  for (let e = 0; e < x.length; e++) {
    const gi = groupOf(block, e);
    min[gi] = Math.min(min[gi], x[e]);
    max[gi] = Math.max(max[gi], x[e]);
  }
  for (let gi = 0; gi < groups; gi++) {
    const m = min[gi] + 0;
    const z = fp16Value(block.zeros[gi]);
    const s = fp16Value(block.scales[gi]);
    if (z !== oracleRoundDown(m)) expect.fail(`group ${gi}: zero ${z} is not the fp16 round-down of min ${m}`);
    const t = Math.fround(Math.fround(max[gi] + 0 - z) / qmax);
    if (s !== oracleRoundUp(t)) expect.fail(`group ${gi}: step ${s} is not the fp16 round-up of ${t}`);
    if (block.zeros[gi] === 0x8000 || (block.scales[gi] & 0x8000) !== 0) expect.fail(`group ${gi}: negative zero or step bits`);
  }
  expect(decoded.length).toBe(x.length);
  for (let e = 0; e < x.length; e++) {
    const s = fp16Value(block.scales[groupOf(block, e)]);
    const bound = s / 2 + 2 ** -21 * (qmax * s + Math.abs(x[e]));
    const err = Math.abs(x[e] - decoded[e]);
    if (!(err <= bound)) expect.fail(`element ${e}: |${x[e]} − ${decoded[e]}| = ${err} > ${bound} (step ${s})`);
  }
}

function expectCodecError(fn: () => unknown, code: CodecErrorCode, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected CodecError(${code})`).toBeInstanceOf(CodecError);
  const error = caught as CodecError;
  expect(error.name).toBe("CodecError");
  expect(error.code).toBe(code);
  if (message) expect(error.message).toMatch(message);
}

/** Shapes for a requested group: full groups (extent = k·group) and a short extent (effective group = extent). */
function shapesFor(rand: () => number, group: number, axis: Axis): Array<[number, number]> {
  const other = (): number => 1 + Math.floor(rand() * 37);
  const extents = [group, group * (2 + Math.floor(rand() * 3)), Math.max(1, Math.floor(group / (2 + Math.floor(rand() * 5))))];
  return extents.map((extent) => (axis === "token" ? [other(), extent] : [extent, other()]));
}

export function describeCodecSuite(label: string, getCodec: () => Codec): void {
  describe(`codec contract: ${label}`, () => {
    describe("round trip", () => {
      for (const bits of BITS) {
        for (const group of GROUPS) {
          for (const axis of AXES) {
            it(`int${bits}, group ${group}, ${axis} axis: every element within half its group's step`, () => {
              const codec = getCodec();
              const rand = rng(bits * 1000 + group * 10 + (axis === "token" ? 1 : 2));
              for (const [rows, cols] of shapesFor(rand, group, axis)) {
                const dist = DISTRIBUTIONS[Math.floor(rand() * DISTRIBUTIONS.length)];
                const x = randomBlock(rand, rows * cols, dist);
                const block = codec.quantize(x, rows, cols, bits, group, axis);
                expect(block).toMatchObject({ rows, cols, bits, axis, group: Math.min(group, axis === "token" ? cols : rows) });
                expectFaithful(x, block, codec.dequantize(block));
              }
            });
          }
        }
      }

      it("dequantize writes into a caller's array and returns it", () => {
        const codec = getCodec();
        const x = randomBlock(rng(7), 8 * 64, "normal");
        const block = codec.quantize(x, 8, 64, 4, 32, "token");
        const out = new Float32Array(8 * 64).fill(NaN);
        expect(codec.dequantize(block, out)).toBe(out);
        expect(floatBits(out)).toEqual(floatBits(codec.dequantize(block)));
      });

      it("reads and writes typed-array views with an offset", () => {
        const codec = getCodec();
        const backing = randomBlock(rng(8), 1 + 16 * 64, "normal");
        const view = backing.subarray(1);
        const block = codec.quantize(view, 16, 64, 2, 64, "channel");
        expect(block).toEqual(codec.quantize(view.slice(), 16, 64, 2, 64, "channel"));
        const out = new Float32Array(3 + view.length).subarray(3);
        expect(floatBits(codec.dequantize(block, out))).toEqual(floatBits(codec.dequantize(block)));
        const h = Uint16Array.from({ length: 41 }, (_, i) => 0x3c00 + i).subarray(1);
        expect(floatBits(codec.widen(h, "f16", new Float32Array(45).subarray(5)))).toEqual(floatBits(codec.widen(h.slice(), "f16")));
      });

      it("handles odd groups and widths (scalar paths), including 1×1 blocks", () => {
        const codec = getCodec();
        const rand = rng(11);
        for (const [rows, cols, group, axis] of [[1, 1, 32, "token"], [3, 5, 5, "token"], [9, 7, 3, "channel"], [6, 24, 24, "token"], [48, 17, 16, "channel"]] as const) {
          for (const bits of BITS) {
            const x = randomBlock(rand, rows * cols, "normal");
            const block = codec.quantize(x, rows, cols, bits, group, axis);
            expectFaithful(x, block, codec.dequantize(block));
          }
        }
      });
    });

    describe("packed layout", () => {
      it("int4 packs element 2k in the low nibble", () => {
        const x = Float32Array.from({ length: 16 }, (_, i) => i); // z = 0, s = 15/15 = 1, q = x
        const block = getCodec().quantize(x, 1, 16, 4, 16, "token");
        expect([...block.codes]).toEqual([0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
        expect([...block.scales]).toEqual([0x3c00]); // 1.0
        expect([...block.zeros]).toEqual([0]);
      });

      it("codes round half to even", () => {
        // z = 0, s = 1, inv = 1: every x.5 is an exact tie.
        const x = Float32Array.from([0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5, 15]);
        const block = getCodec().quantize(x, 1, 16, 4, 16, "token");
        const codes = [...block.codes].flatMap((b) => [b & 15, b >> 4]);
        expect(codes).toEqual([0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 15]);
      });

      it("int2 packs element 4k in bits 0–1 and uses [rows/g][cols] scales on the channel axis", () => {
        // columns [0,1,2,3] and [3,3,3,0]: both groups have z = 0, s = 1; codes in row-major order 0,3,1,3,2,3,3,0.
        const x = Float32Array.from([0, 3, 1, 3, 2, 3, 3, 0]);
        const block = getCodec().quantize(x, 4, 2, 2, 4, "channel");
        expect([...block.codes]).toEqual([0b11_01_11_00, 0b00_11_11_10]);
        expect([...block.scales]).toEqual([0x3c00, 0x3c00]);
        expect([...block.zeros]).toEqual([0, 0]);
      });

      it("int8 stores one code per byte", () => {
        const x = Float32Array.from({ length: 256 }, (_, i) => 255 - i);
        const block = getCodec().quantize(x, 1, 256, 8, 256, "token");
        expect([...block.codes]).toEqual(Array.from({ length: 256 }, (_, i) => 255 - i));
      });
    });

    describe("edge values", () => {
      it("a constant fp16-exact group gets step 0 and reconstructs exactly", () => {
        const codec = getCodec();
        for (const bits of BITS) {
          const x = new Float32Array(64).fill(0.5);
          const block = codec.quantize(x, 1, 64, bits, 64, "token");
          expect([...block.scales]).toEqual([0]);
          expect([...block.zeros]).toEqual([0x3800]);
          expect(block.codes.every((b) => b === 0)).toBe(true);
          expect([...codec.dequantize(block)]).toEqual([...x]);
        }
      });

      it("a constant group off the fp16 grid gets the tiny step to its fp16 floor", () => {
        const codec = getCodec();
        const x = new Float32Array(32).fill(Math.fround(0.3));
        const block = codec.quantize(x, 1, 32, 4, 32, "token");
        expect(block.scales[0]).toBeGreaterThan(0);
        expectFaithful(x, block, codec.dequantize(block));
      });

      it("zeros and negative zeros quantize to +0 parameters and decode to 0", () => {
        const codec = getCodec();
        const x = Float32Array.from({ length: 64 }, (_, i) => (i % 3 === 0 ? -0 : 0));
        for (const axis of AXES) {
          const block = codec.quantize(x, 8, 8, 2, 8, axis);
          expect([...block.zeros]).toEqual(new Array(8).fill(0));
          expect([...block.scales]).toEqual(new Array(8).fill(0));
          expect(codec.dequantize(block).every((v) => v === 0)).toBe(true);
        }
      });

      it("tiny magnitudes (1e-30, float32 subnormals, fp16 subnormals) stay within half a step", () => {
        const codec = getCodec();
        const values = [1e-30, -1e-30, 1e-40, -1e-40, 2 ** -24, 3 * 2 ** -25, -(2 ** -20), 6e-8, 0];
        const x = Float32Array.from({ length: 64 }, (_, i) => values[i % values.length]);
        for (const bits of BITS) {
          for (const axis of AXES) {
            const block = codec.quantize(x, 8, 8, bits, 8, axis);
            expectFaithful(x, block, codec.dequantize(block));
          }
        }
      });

      it("values at ±65504 are accepted", () => {
        const codec = getCodec();
        const x = Float32Array.from({ length: 64 }, (_, i) => (i % 2 ? 65504 : -65504) * (i % 5 === 0 ? 0.999 : 1));
        for (const bits of BITS) {
          const block = codec.quantize(x, 1, 64, bits, 64, "token");
          expectFaithful(x, block, codec.dequantize(block));
        }
      });

      it("values beyond ±65504 are out_of_range, naming the group", () => {
        const codec = getCodec();
        const justAbove = Math.fround(65504 + 2 ** -8); // next float32 above 65504
        for (const bad of [justAbove, -justAbove, 1e6, -3e38]) {
          const x = new Float32Array(4 * 64).fill(1);
          x[2 * 64 + 33] = bad; // row 2 (token axis: groups 4..5 of row 2 with g = 32)
          expectCodecError(() => codec.quantize(x, 4, 64, 4, 32, "token"), "out_of_range", /group 5 \(row 2, cols 32\.\.63\)/);
        }
      });

      it("NaN and ±Inf are nonfinite, naming the group", () => {
        const codec = getCodec();
        for (const bad of [NaN, Infinity, -Infinity]) {
          const x = new Float32Array(64 * 16).fill(0.25);
          x[40 * 16 + 3] = bad; // channel axis, g = 32: rows 32..63 of column 3 → group 1·16 + 3
          expectCodecError(() => codec.quantize(x, 64, 16, 8, 32, "channel"), "nonfinite", /group 19 \(col 3, rows 32\.\.63\)/);
          expectCodecError(() => codec.quantize(x, 64, 16, 8, 16, "token"), "nonfinite", /group 40 \(row 40, cols 0\.\.15\)/);
        }
      });

      it("the first failing group decides the error", () => {
        const codec = getCodec();
        const x = new Float32Array(4 * 64).fill(1);
        x[3 * 64] = NaN;
        x[1 * 64 + 5] = 7e4;
        expectCodecError(() => codec.quantize(x, 4, 64, 2, 64, "token"), "out_of_range", /group 1 /);
      });
    });

    describe("argument checks", () => {
      const x = new Float32Array(4 * 64);
      it("rejects bad shapes", () => {
        const codec = getCodec();
        expectCodecError(() => codec.quantize(x, 4, 63, 4, 32, "token"), "invalid_shape", /256 elements, expected 252/);
        expectCodecError(() => codec.quantize(x, 0, 64, 4, 32, "token"), "invalid_shape");
        expectCodecError(() => codec.quantize(x, 2.5, 64, 4, 32, "token"), "invalid_shape");
        expectCodecError(() => codec.quantize(new Float32Array(4 * 96), 4, 96, 4, 64, "token"), "invalid_shape", /cols = 96 is not a multiple of the group 64/);
        expectCodecError(() => codec.quantize(new Float32Array(48 * 4), 48, 4, 4, 32, "channel"), "invalid_shape", /rows = 48/);
        expectCodecError(() => codec.quantize(new Float64Array(4 * 64) as unknown as Float32Array, 4, 64, 4, 32, "token"), "invalid_shape");
      });

      it("rejects bad parameters", () => {
        const codec = getCodec();
        expectCodecError(() => codec.quantize(x, 4, 64, 3 as Bits, 32, "token"), "invalid_params", /bits/);
        expectCodecError(() => codec.quantize(x, 4, 64, 16 as Bits, 32, "token"), "invalid_params");
        for (const group of [0, -32, 1.5, NaN]) expectCodecError(() => codec.quantize(x, 4, 64, 4, group, "token"), "invalid_params", /group/);
        expectCodecError(() => codec.quantize(x, 4, 64, 4, 32, "row" as Axis), "invalid_params", /axis/);
      });

      it("rejects malformed or corrupt blocks on dequantize", () => {
        const codec = getCodec();
        const good = codec.quantize(randomBlock(rng(3), 4 * 64, "normal"), 4, 64, 4, 32, "token");
        expectCodecError(() => codec.dequantize({ ...good, codes: good.codes.subarray(1) }), "invalid_shape", /codes/);
        expectCodecError(() => codec.dequantize({ ...good, scales: good.scales.subarray(1) }), "invalid_shape", /scales/);
        expectCodecError(() => codec.dequantize({ ...good, zeros: new Uint16Array(9) }), "invalid_shape", /zeros/);
        expectCodecError(() => codec.dequantize({ ...good, group: 48 }), "invalid_shape", /group 48/);
        expectCodecError(() => codec.dequantize({ ...good, bits: 3 as Bits }), "invalid_params");
        expectCodecError(() => codec.dequantize(good, new Float32Array(10)), "invalid_shape", /out/);
        const withScale = (gi: number, bits: number): QuantizedBlock => ({ ...good, scales: good.scales.map((v, i) => (i === gi ? bits : v)) });
        expectCodecError(() => codec.dequantize(withScale(5, 0x7c00)), "nonfinite", /group 5 /);
        expectCodecError(() => codec.dequantize(withScale(6, 0xbc00)), "out_of_range", /group 6 .*negative scale/);
        expectCodecError(() => codec.dequantize({ ...good, zeros: good.zeros.map((v, i) => (i === 2 ? 0x7e00 : v)) }), "nonfinite", /group 2 /);
      });
    });

    describe("fp16 blocks (rope policy fp16)", () => {
      it("rounds to nearest even and decodes exactly", () => {
        const codec = getCodec();
        const rand = rng(5);
        const x = randomBlock(rand, 16 * 40, "wide");
        // Ties and boundaries: halfway between fp16 neighbours, subnormal ties, the largest values below overflow.
        const specials = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, -(2 ** -25), 65519.99, -65519, 65504, 2 ** -14 - 2 ** -25, 0, -0];
        specials.forEach((v, i) => (x[i] = v));
        const block = codec.toFp16Block(x, 16, 40);
        expect(block).toMatchObject({ rows: 16, cols: 40, bits: 16, group: 0, axis: "token" });
        expect(block.scales.length + block.zeros.length).toBe(0);
        expect(block.codes.length).toBe(2 * x.length);
        const decoded = codec.dequantize(block);
        for (let i = 0; i < x.length; i++) {
          const h = block.codes[2 * i] | (block.codes[2 * i + 1] << 8); // little-endian
          const expected = oracleRoundNearestEven(x[i]);
          if (fp16Value(h) !== expected || decoded[i] !== expected) expect.fail(`element ${i}: ${x[i]} → ${fp16Value(h)} / ${decoded[i]}, expected ${expected}`);
        }
      });

      it("rejects overflow, NaN and Inf, and corrupt fp16 blocks", () => {
        const codec = getCodec();
        const x = new Float32Array(70).fill(1);
        x[61] = 65520; // rounds to Inf under RNE
        expectCodecError(() => codec.toFp16Block(x, 7, 10), "out_of_range", /element 61/);
        x[61] = 1;
        x[69] = NaN;
        expectCodecError(() => codec.toFp16Block(x, 7, 10), "nonfinite", /element 69/);
        expectCodecError(() => codec.toFp16Block(x, 7, 11), "invalid_shape");
        const block = codec.toFp16Block(new Float32Array(70), 7, 10);
        const codes = block.codes.slice();
        codes[2 * 33 + 1] = 0xfc; // −Inf
        expectCodecError(() => codec.dequantize({ ...block, codes }), "nonfinite", /element 33/);
      });
    });

    describe("widening", () => {
      const all = Uint16Array.from({ length: 65536 }, (_, i) => i);

      it("f16 → f32 matches the IEEE definition for all 65536 patterns, NaN payloads kept", () => {
        const out = getCodec().widen(all, "f16");
        const bits = floatBits(out);
        for (let h = 0; h < 65536; h++) {
          const expected = fp16Value(h);
          if (Number.isNaN(expected)) {
            const want = (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0;
            if (bits[h] !== want) expect.fail(`f16 ${h.toString(16)}: NaN bits ${bits[h].toString(16)} ≠ ${want.toString(16)}`);
          } else if (!Object.is(out[h], expected)) expect.fail(`f16 ${h.toString(16)}: ${out[h]} ≠ ${expected}`);
        }
      });

      it("bf16 → f32 matches the definition for all 65536 patterns", () => {
        const out = getCodec().widen(all, "bf16");
        const bits = floatBits(out);
        for (let h = 0; h < 65536; h++) {
          const expected = bf16Value(h);
          if (Number.isNaN(expected) ? bits[h] !== (h << 16) >>> 0 : !Object.is(out[h], expected)) expect.fail(`bf16 ${h.toString(16)}: ${out[h]} ≠ ${expected}`);
        }
      });

      it("quantizing widened input equals quantizing the same float32 values", () => {
        const codec = getCodec();
        const rand = rng(9);
        const h = Uint16Array.from({ length: 32 * 64 }, () => Math.floor(rand() * 0x7800) | (rand() < 0.5 ? 0x8000 : 0)); // finite f16
        for (const kind of ["f16", "bf16"] as const) {
          const widened = codec.widen(h, kind, new Float32Array(h.length));
          const direct = Float32Array.from(h, (v) => (kind === "f16" ? fp16Value(v) : bf16Value(v)));
          if (kind === "bf16" && direct.some((v) => Math.abs(v) > 65504)) continue; // bf16's range exceeds fp16 scales
          expect(codec.quantize(widened, 32, 64, 4, 64, "token")).toEqual(codec.quantize(direct, 32, 64, 4, 64, "token"));
        }
      });

      it("rejects a bad kind or input type", () => {
        const codec = getCodec();
        expectCodecError(() => codec.widen(all, "f8" as "f16"), "invalid_params");
        expectCodecError(() => codec.widen(new Int16Array(4) as unknown as Uint16Array, "f16"), "invalid_shape");
        expectCodecError(() => codec.widen(all, "f16", new Float32Array(3)), "invalid_shape");
      });
    });

    describe("crc32c", () => {
      const next = rng(2024);
      // Long enough for the four-way interleaved path (≥ 1 KiB), several wasm windows with the tiny slabs, odd tails.
      const data = new Uint8Array(70_011).map(() => Math.floor(next() * 256));

      it("matches the RFC 3720 check value and the bit-at-a-time definition at every length class and offset", () => {
        const codec = getCodec();
        expect(codec.crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
        expect(codec.crc32c(new Uint8Array(0))).toBe(0);
        for (const n of [1, 7, 8, 9, 31, 1023, 1024, 1031, 1055, 4096, 65_537, 70_000]) {
          for (const offset of [0, 3]) {
            const view = data.subarray(offset, offset + n);
            expect(codec.crc32c(view), `n=${n} offset=${offset}`).toBe(bitwiseCrc32c(view));
          }
        }
      });

      it("continues from a previous CRC, so split input gives the CRC of the whole", () => {
        const codec = getCodec();
        const whole = bitwiseCrc32c(data);
        for (const cut of [0, 1, 1024, 4099, 35_000, 70_011]) {
          expect(codec.crc32c(data.subarray(cut), codec.crc32c(data.subarray(0, cut))), `cut ${cut}`).toBe(whole);
        }
      });

      it("works as a detached function (chunk encode/decode take it that way)", () => {
        const crc = getCodec().crc32c;
        expect(crc(data.subarray(0, 5000))).toBe(bitwiseCrc32c(data.subarray(0, 5000)));
      });
    });
  });
}
