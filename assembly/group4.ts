// Quantization parameters of four groups at once (one per f32x4 lane), for the SIMD kernels. Same formulas as
// group.ts, with fp16 directed rounding done in float arithmetic instead of bit fiddling; both are exact, so the
// results are identical (the bit-exact test suite compares the builds and the TS reference).
import { F16_MAX, ROUND_DOWN, ROUND_UP } from "./fp16";
import { f16BitsOfExact, roundToF16x4 } from "./fp16x4";

export let group4Zero: v128 = i32x4.splat(0);
export let group4Inverse: v128 = i32x4.splat(0);
/** fp16 bits of the four scales/zeros in the low u16 of each i32 lane. */
export let group4ScaleBits: v128 = i32x4.splat(0);
export let group4ZeroBits: v128 = i32x4.splat(0);

/** True when all four groups are finite-and-in-range by the fast reduction (see simd.ts fastGroupOk). */
// @ts-ignore: decorator
@inline
export function fastGroups4Ok(m: v128, M: v128, sum: v128): bool {
  const finite = f32x4.eq(f32x4.sub(sum, sum), f32x4.splat(0));
  const inRange = v128.and(f32x4.ge(m, f32x4.splat(-F16_MAX)), f32x4.le(M, f32x4.splat(F16_MAX)));
  return i32x4.all_true(v128.and(finite, inRange));
}

/** Lane-wise groupParams for four groups that passed fastGroups4Ok. */
// @ts-ignore: decorator
@inline
export function groupParams4(min: v128, max: v128, qmax: f32): void {
  const zero = f32x4.splat(0);
  const m = f32x4.add(min, zero); // −0 counts as +0
  const M = f32x4.add(max, zero);
  const z = roundToF16x4(m, ROUND_DOWN);
  const s = roundToF16x4(f32x4.div(f32x4.sub(M, z), f32x4.splat(qmax)), ROUND_UP);
  group4Zero = z;
  group4Inverse = v128.andnot(f32x4.div(f32x4.splat(1.0), s), f32x4.eq(s, zero)); // s = 0 → inv = 0
  group4ZeroBits = f16BitsOfExact(z);
  group4ScaleBits = f16BitsOfExact(s);
}
