// Per-group quantization parameters (docs/codec.md), shared by the scalar and SIMD kernels so both produce the
// same fp16 zero point, fp16 step and float32 reciprocal for a group's min/max.
import { f16IsNonFinite, f16ToF32, f32ToF16, F16_MAX, ROUND_DOWN, ROUND_UP } from "./fp16";
import { STATUS_NONFINITE, STATUS_OK, STATUS_OUT_OF_RANGE } from "./status";

// Results of the last groupParams/storedGroupParams call. Module globals instead of a struct: the stub runtime has no
// allocation we could afford per group, and multi-value returns are not exposed by AssemblyScript.
export let groupZeroBits: u32 = 0;
export let groupScaleBits: u32 = 0;
export let groupZero: f32 = 0;
export let groupScale: f32 = 0;
export let groupInverse: f32 = 0;

/**
 * Checks a group's min and max, then, with m = min + 0 and M = max + 0, sets
 *   z = f16_round_down(m),  s = f16_round_up(f32(f32(M − z) / Q)),  inv = s == 0 ? 0 : f32(1 / s).
 * With inv = 0 every code is 0, which is the contract for s = 0 (exactly representable constant group).
 */
// @ts-ignore: decorator
@inline
export function groupParams(min: f32, max: f32, qmax: f32): i32 {
  // x − x is NaN exactly when x is NaN or ±Inf; min/max propagate NaN, and ±Inf lands in m or M.
  if (min - min != 0 || max - max != 0) return STATUS_NONFINITE;
  // −0 counts as +0 (−0 + 0 = +0), so the result never depends on which zero a min/max reduction kept.
  const m = min + <f32>0;
  const M = max + <f32>0;
  if (M > F16_MAX || m < -F16_MAX) return STATUS_OUT_OF_RANGE;
  const zBits = f32ToF16(m, ROUND_DOWN);
  const z = f16ToF32(zBits);
  const t: f32 = (M - z) / qmax;
  const sBits = f32ToF16(t, ROUND_UP);
  const s = f16ToF32(sBits);
  groupZeroBits = zBits;
  groupScaleBits = sBits;
  groupZero = z;
  groupScale = s;
  groupInverse = s == 0 ? <f32>0 : <f32>1.0 / s;
  return STATUS_OK;
}

/** Decodes a stored (scale, zero) pair, rejecting what the quantizer can never produce. */
// @ts-ignore: decorator
@inline
export function storedGroupParams(sBits: u32, zBits: u32): i32 {
  if (f16IsNonFinite(sBits) || f16IsNonFinite(zBits)) return STATUS_NONFINITE;
  if ((sBits & 0x8000) != 0) return STATUS_OUT_OF_RANGE; // a step is never negative (not even −0)
  groupScale = f16ToF32(sBits);
  groupZero = f16ToF32(zBits);
  return STATUS_OK;
}
