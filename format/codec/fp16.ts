// Exact float32 ⇄ fp16 conversions with a chosen rounding direction, bit for bit the same as assembly/fp16.ts:
// round-down for zero points, round-up for scales, round-to-nearest-even for fp16 blocks (docs/codec.md).

export type F16Rounding = "nearest-even" | "down" | "up";

/** Largest finite fp16 magnitude. */
export const F16_MAX = 65504;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE bits of a float32 value (the number must already be a float32, e.g. read from a Float32Array). */
export function f32ToBits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

/** The float32 value of IEEE bits (NaN payloads are not guaranteed to survive a JS number; use f16ToF32Bits). */
export function bitsToF32(bits: number): number {
  scratchU32[0] = bits;
  return scratchF32[0];
}

/**
 * Rounds a finite float32 to fp16 bits. Overflow returns ±Inf (0x7c00 | sign), which callers treat as out of range.
 *   f32: s | eeeeeeee | mmmmmmmmmm ddddddddddddd    f16: s | eeeee | mmmmmmmmmm
 */
export function f32ToF16Bits(x: number, rounding: F16Rounding): number {
  const bits = f32ToBits(x);
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  const exp = abs >>> 23;
  let h: number;
  let rem: number;
  let half: number;
  if (exp >= 113) {
    // fp16 normal (or overflow): re-bias the exponent 127 → 15 in place, keep the top 10 mantissa bits.
    h = (abs >>> 13) - (112 << 10);
    rem = abs & 0x1fff;
    half = 0x1000;
  } else if (exp < 102) {
    // |x| < 2^-25: below half of the smallest subnormal; only directed rounding moves it off zero.
    h = 0;
    rem = abs;
    half = Infinity;
  } else {
    // fp16 subnormal: h = |x| / 2^-24 = mantFull · 2^(exp − 126), shift 14..24.
    const mantFull = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - exp;
    h = mantFull >>> shift;
    rem = mantFull & ((1 << shift) - 1);
    half = 1 << (shift - 1);
  }
  let up: boolean;
  if (rounding === "nearest-even") up = rem > half || (rem === half && (h & 1) !== 0);
  else up = rem !== 0 && (rounding === "up") === (sign === 0); // away from zero for (up, +) and (down, −)
  if (up) h += 1; // a mantissa carry walks into the exponent, which is exactly right
  return h >= 0x7c00 ? sign | 0x7c00 : sign | h;
}

/** Exact fp16 → float32 IEEE bits (NaN payloads kept). */
export function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0;
  if (e === 0) return (sign | f32ToBits(m * 2 ** -24)) >>> 0; // m · 2^-24 is exact in float32
  return (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
}

/** Exact fp16 → float32 value. */
export function f16ToF32(h: number): number {
  return bitsToF32(f16ToF32Bits(h));
}

/** True when fp16 bits encode ±Inf or NaN. */
export function f16IsNonFinite(h: number): boolean {
  return (h & 0x7c00) === 0x7c00;
}
