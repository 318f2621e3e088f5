// The TS fp16 conversions (format/codec/fp16.ts, mirrored by assembly/fp16.ts) against the oracle built from the
// IEEE definition in helpers.ts: directed and nearest-even rounding on every fp16 boundary and on random float32s.
import { describe, expect, it } from "vitest";
import { f16ToF32, f32ToF16Bits, type F16Rounding } from "../../format/codec/fp16.ts";
import { fp16Value, oracleRoundDown, oracleRoundNearestEven, oracleRoundUp, rng } from "./helpers.ts";

const ORACLE: Record<F16Rounding, (x: number) => number> = { down: oracleRoundDown, up: oracleRoundUp, "nearest-even": oracleRoundNearestEven };

/** float32 neighbours of x: the values just below and above, and x itself. */
function f32Neighbours(x: number): number[] {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const out: number[] = [f[0]];
  for (const delta of [-1, 1]) {
    const v = new Float32Array(1);
    new Uint32Array(v.buffer)[0] = u[0] + delta;
    out.push(v[0]);
  }
  return out.filter(Number.isFinite);
}

function check(x: number, rounding: F16Rounding): void {
  const expected = ORACLE[rounding](x);
  const actual = fp16Value(f32ToF16Bits(x, rounding)); // overflow bits read as ±Inf
  if (actual !== expected) expect.fail(`${rounding}(${x}) = ${actual}, expected ${expected}`);
}

describe("fp16 conversions", () => {
  it("round every fp16 value, its midpoints and their float32 neighbours as the oracle does", () => {
    for (let h = 0; h <= 0x7bff; h++) {
      const v = fp16Value(h);
      const next = h < 0x7bff ? fp16Value(h + 1) : 65536;
      for (const sign of [1, -1]) {
        for (const base of [v, (v + next) / 2, v + (next - v) / 4]) {
          for (const x of f32Neighbours(sign * base)) {
            if (Math.abs(x) > 65536) continue; // directed overflow is rejected before conversion (out_of_range)
            for (const rounding of ["down", "up", "nearest-even"] as const) {
              if (rounding !== "nearest-even" && Math.abs(x) > 65504) continue;
              check(x, rounding);
            }
          }
        }
      }
    }
  });

  it("round random float32 values of every magnitude", () => {
    const rand = rng(123);
    for (let i = 0; i < 200_000; i++) {
      const x = Math.fround((rand() < 0.5 ? -1 : 1) * 2 ** (-160 + 176 * rand()));
      if (Math.abs(x) > 65504) continue;
      for (const rounding of ["down", "up", "nearest-even"] as const) check(x, rounding);
    }
  });

  it("keep signed zeros and overflow to ±Inf bits", () => {
    expect(f32ToF16Bits(0, "down")).toBe(0);
    expect(f32ToF16Bits(-0, "up")).toBe(0x8000);
    expect(f32ToF16Bits(1e-40, "up")).toBe(0x0001); // float32 subnormal → smallest fp16 subnormal
    expect(f32ToF16Bits(-1e-40, "down")).toBe(0x8001);
    expect(f32ToF16Bits(1e-40, "down")).toBe(0);
    expect(f32ToF16Bits(65519.99, "nearest-even")).toBe(0x7bff);
    expect(f32ToF16Bits(65520, "nearest-even")).toBe(0x7c00);
    expect(f32ToF16Bits(-65520, "nearest-even")).toBe(0xfc00);
    expect(f32ToF16Bits(65504.004, "up")).toBe(0x7c00);
  });

  it("widen exactly", () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = fp16Value(h);
      if (!Object.is(f16ToF32(h), v) && !(Number.isNaN(v) && Number.isNaN(f16ToF32(h)))) expect.fail(`f16ToF32(${h})`);
    }
  });
});
