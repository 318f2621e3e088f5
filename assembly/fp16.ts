// Exact float32 ⇄ fp16 conversions with a chosen rounding direction (docs/codec.md):
// round-down for zero points, round-up for scales, round-to-nearest-even for fp16 blocks.
// Mirrored bit for bit by format/codec/fp16.ts.

export const ROUND_NEAREST_EVEN: i32 = 0;
export const ROUND_DOWN: i32 = 1; // toward −∞
export const ROUND_UP: i32 = 2; // toward +∞

/** Largest finite fp16 magnitude. */
export const F16_MAX: f32 = 65504.0;

/**
 * Rounds a finite float32 to fp16 bits. A result that overflows comes back as ±Inf (0x7c00 | sign), which callers
 * treat as out of range; non-finite inputs must be rejected before calling.
 *
 *   f32 bits:  s | eeeeeeee | mmmmmmmmmm ddddddddddddd      (23-bit mantissa, d = 13 bits dropped for normals)
 *   f16 bits:  s | eeeee    | mmmmmmmmmm
 */
// @ts-ignore: decorator
@inline
export function f32ToF16(x: f32, mode: i32): u32 {
  const bits = reinterpret<u32>(x);
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  const exp = abs >>> 23;
  let h: u32;
  let rem: u32;
  let half: u32;
  if (exp >= 113) {
    // fp16 normal (or overflow): re-bias the exponent 127 → 15 in place, keep the top 10 mantissa bits.
    h = (abs >>> 13) - (112 << 10);
    rem = abs & 0x1fff;
    half = 0x1000;
  } else if (exp < 102) {
    // |x| < 2^-25: below half of the smallest subnormal, so RNE gives 0 and only directed rounding moves it.
    h = 0;
    rem = abs;
    half = 0xffffffff;
  } else {
    // fp16 subnormal: h = |x| / 2^-24 = mant_full · 2^(exp − 126).
    const mantFull = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - exp; // 14..24
    h = mantFull >>> shift;
    rem = mantFull & ((<u32>1 << shift) - 1);
    half = <u32>1 << (shift - 1);
  }
  let up: bool;
  if (mode == ROUND_NEAREST_EVEN) {
    up = rem > half || (rem == half && (h & 1) != 0);
  } else {
    // Rounding away from zero happens for (up, positive) and (down, negative).
    up = rem != 0 && (mode == ROUND_UP) == (sign == 0);
  }
  h += <u32>up; // a mantissa carry walks into the exponent, which is exactly right
  return h >= 0x7c00 ? sign | 0x7c00 : sign | h;
}

/** Exact fp16 → float32 widening (NaN payloads kept, quiet bit included). */
// @ts-ignore: decorator
@inline
export function f16ToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e == 0x1f) return reinterpret<f32>(sign | 0x7f800000 | (m << 13));
  if (e == 0) {
    const v = <f32>m * <f32>5.9604644775390625e-8; // m · 2^-24, exact
    return sign != 0 ? -v : v;
  }
  return reinterpret<f32>(sign | ((e + 112) << 23) | (m << 13));
}

/** True when fp16 bits encode ±Inf or NaN. */
// @ts-ignore: decorator
@inline
export function f16IsNonFinite(h: u32): bool {
  return (h & 0x7c00) == 0x7c00;
}
