// fp16 rounding of four float32 lanes at once, in float arithmetic (exact: only power-of-two scaling and integer
// snapping). Gives the same results as the bit-level conversions of fp16.ts, which the bit-exact tests check.
import { ROUND_DOWN, ROUND_UP } from "./fp16";

/**
 * fp16 quantum of each lane: the spacing of fp16 values around |x|, i.e. 2^(e−10) in the normal range and 2^-24
 * among subnormals. Returns the biased float32 exponent of that quantum.
 */
// @ts-ignore: decorator
@inline
function quantumExponent(x: v128): v128 {
  const e = i32x4.shr_u(v128.and(x, i32x4.splat(0x7fffffff)), 23);
  return i32x4.sub(i32x4.max_s(e, i32x4.splat(113)), i32x4.splat(10));
}

/**
 * Rounds finite lanes to fp16 values (as float32), to nearest even, toward −∞ or toward +∞: x / quantum is exact (a
 * power of two), nearest/floor/ceil snaps it to an integer ≤ 2^11 in magnitude, and × quantum is exact again. A carry
 * to 2^11 lands on the next binade's first value, an fp16 value too; above 65504 the result is 65536 (overflow).
 */
// @ts-ignore: decorator
@inline
export function roundToF16x4(x: v128, mode: i32): v128 {
  const qe = quantumExponent(x);
  const quantum = i32x4.shl(qe, 23);
  const inverseQuantum = i32x4.shl(i32x4.sub(i32x4.splat(254), qe), 23);
  const scaled = f32x4.mul(x, inverseQuantum);
  const snapped = mode == ROUND_UP ? f32x4.ceil(scaled) : mode == ROUND_DOWN ? f32x4.floor(scaled) : f32x4.nearest(scaled);
  return f32x4.mul(snapped, quantum);
}

/** fp16 bits of lanes that already hold exact fp16 values (|x| ≤ 65504). */
// @ts-ignore: decorator
@inline
export function f16BitsOfExact(x: v128): v128 {
  const abs = v128.and(x, i32x4.splat(0x7fffffff));
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(0x8000));
  const normal = i32x4.sub(i32x4.shr_u(abs, 13), i32x4.splat(112 << 10)); // re-bias 127 → 15
  // |x| / 2^-24 is an integer < 1024 here; adding 2^23 puts it in the low mantissa bits (cheaper than trunc_sat on x64).
  const subnormal = i32x4.sub(f32x4.add(f32x4.mul(abs, f32x4.splat(16777216.0)), f32x4.splat(8388608.0)), i32x4.splat(0x4b000000));
  const isNormal = i32x4.ge_s(abs, i32x4.splat(113 << 23));
  return v128.or(v128.bitselect(normal, subnormal, isNormal), sign);
}

