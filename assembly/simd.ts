// v128 kernels. Groups are reduced with f32x4.pmin/pmax, their parameters come four at a time from group4.ts (or one
// at a time from group.ts, as in the scalar kernels), and codes are computed 16 at a time, narrowed and bit-packed.
// Results are bit-identical to scalar.ts: every step is an exact or identically rounded IEEE float32 operation.
import { F16_MAX, f16IsNonFinite, ROUND_NEAREST_EVEN } from "./fp16";
import { fastGroups4Ok, group4Inverse, group4ScaleBits, group4Zero, group4ZeroBits, groupParams4 } from "./group4";
import { groupInverse, groupParams, groupScale, groupScaleBits, groupZero, groupZeroBits, storedGroupParams } from "./group";
import { setErrorIndex, STATUS_NONFINITE, STATUS_OK } from "./status";
import { fromFp16Scalar, toFp16ScalarRange } from "./scalar";
import { f16BitsOfExact, roundToF16x4 } from "./fp16x4";

// Per-lane staging for the channel kernels: 16 zeros and 16 reciprocals (or scales), float32 each. AssemblyScript
// cannot index v128 lanes with a variable, so lanes that take the one-by-one path go through memory.
const laneScratch: usize = memory.data(128, 16);

// @ts-ignore: decorator
@inline
function horizontalMin(v: v128): f32 {
  const t = f32x4.pmin(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.pmin(t, v128.shuffle<i32>(t, t, 1, 0, 3, 2)), 0);
}

// @ts-ignore: decorator
@inline
function horizontalMax(v: v128): f32 {
  const t = f32x4.pmax(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.pmax(t, v128.shuffle<i32>(t, t, 1, 0, 3, 2)), 0);
}

// @ts-ignore: decorator
@inline
function horizontalSum(v: v128): f32 {
  const t = f32x4.add(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.add(t, v128.shuffle<i32>(t, t, 1, 0, 3, 2)), 0);
}

// 1.5 · 2^23: adding it to p ∈ [0, 2^22) leaves round_half_even(p) in the low mantissa bits (the float32 add itself
// rounds to nearest even at unit spacing), so one add replaces f32x4.nearest + i32x4.trunc_sat (≈ 10 x64 instructions).
const ROUND_MAGIC: f32 = 12582912.0;
const ROUND_MAGIC_BITS: i32 = 0x4b400000;

/**
 * Four lanes of q = min(round_half_even(f32(f32(x − z) · inv)), Q) as i32. x ≥ z makes p = f32(f32(x − z) · inv) ≥ 0
 * (or −0), and p ≤ Q·(1 + 2^-22), far below 2^22, so the magic add is exact rounding; the clamp is an integer min.
 */
// @ts-ignore: decorator
@inline
function codes4(x: v128, zv: v128, iv: v128, qi: v128): v128 {
  const y = f32x4.add(f32x4.mul(f32x4.sub(x, zv), iv), f32x4.splat(ROUND_MAGIC));
  return i32x4.min_s(i32x4.sub(y, i32x4.splat(ROUND_MAGIC_BITS)), qi);
}

/** Narrows four i32x4 code vectors (values ≤ 255) to 16 bytes in element order. */
// @ts-ignore: decorator
@inline
function narrowCodes(q0: v128, q1: v128, q2: v128, q3: v128): v128 {
  return i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3));
}

/**
 * Packs 16 byte codes and stores them at `cp`; returns the bytes written (16, 8 or 4).
 *
 *   bits 4, per u16 lane k:  c[2k] | c[2k+1]<<8   →  (v | v>>4) & 0xff = c[2k] | c[2k+1]<<4   → narrow u16→u8
 *   bits 2, per u32 lane k:  c[4k] | c[4k+1]<<8 | c[4k+2]<<16 | c[4k+3]<<24
 *            t = v | v>>6   puts c[4k+1] at bit 2;   t | t>>12 puts c[4k+2] at bit 4 and c[4k+3] at bit 6
 *            & 0xff, narrow u32→u16→u8
 */
// @ts-ignore: decorator
@inline
function packStore(cp: usize, b: v128, bits: i32): usize {
  if (bits == 8) {
    v128.store(cp, b);
    return 16;
  } else if (bits == 4) {
    const p = v128.and(v128.or(b, i16x8.shr_u(b, 4)), i16x8.splat(0x00ff));
    v128.store64_lane(cp, i8x16.narrow_i16x8_u(p, p), 0);
    return 8;
  } else {
    let t = v128.or(b, i32x4.shr_u(b, 6));
    t = v128.and(v128.or(t, i32x4.shr_u(t, 12)), i32x4.splat(0xff));
    const n = i16x8.narrow_i32x4_u(t, t);
    v128.store32_lane(cp, i8x16.narrow_i16x8_u(n, n), 0);
    return 4;
  }
}

/** Loads 16 packed codes at `cp` as 16 bytes in element order (inverse of packStore). */
// @ts-ignore: decorator
@inline
function unpack16(cp: usize, bits: i32): v128 {
  if (bits == 8) return v128.load(cp);
  if (bits == 4) {
    const raw = v128.load64_zero(cp);
    const lo = v128.and(raw, i8x16.splat(0x0f));
    const hi = i8x16.shr_u(raw, 4);
    return v128.shuffle<u8>(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  }
  const raw = v128.load32_zero(cp);
  const mask = i8x16.splat(3);
  const c0 = v128.and(raw, mask);
  const c1 = v128.and(i8x16.shr_u(raw, 2), mask);
  const c2 = v128.and(i8x16.shr_u(raw, 4), mask);
  const c3 = i8x16.shr_u(raw, 6);
  const a = v128.shuffle<u8>(c0, c1, 0, 16, 1, 17, 2, 18, 3, 19, 0, 0, 0, 0, 0, 0, 0, 0);
  const b = v128.shuffle<u8>(c2, c3, 0, 16, 1, 17, 2, 18, 3, 19, 0, 0, 0, 0, 0, 0, 0, 0);
  return v128.shuffle<u8>(a, b, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
}

/** Byte codes → float32 as i32 lanes (codes are ≤ 255, so the signed convert is exact and cheaper than unsigned). */
// @ts-ignore: decorator
@inline
function codeLanes(b: v128, quarter: i32): v128 {
  const w = quarter < 2 ? i16x8.extend_low_i8x16_u(b) : i16x8.extend_high_i8x16_u(b);
  const d = (quarter & 1) == 0 ? i32x4.extend_low_i16x8_u(w) : i32x4.extend_high_i16x8_u(w);
  return f32x4.convert_i32x4_s(d);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Token axis: the block is nGroups contiguous groups of g values, g a multiple of 16.

/**
 * Exact parameters of one strided group (g values, `stride` bytes apart) with IEEE min/max, as the scalar kernel
 * computes them. Used only when the fast reduction saw something unusual (NaN, ±Inf, beyond ±65504), so a failing
 * block reports the same group and status as the scalar build.
 */
function exactGroupParams(base: usize, g: i32, stride: usize, qmax: f32): i32 {
  let m = Infinity as f32;
  let M = -Infinity as f32;
  for (let i = 0; i < g; i++) {
    const x = load<f32>(base + <usize>i * stride);
    m = min<f32>(m, x);
    M = max<f32>(M, x);
  }
  return groupParams(m, M, qmax);
}

/**
 * Fast group reduction with f32x4.pmin/pmax (one x64 instruction each, unlike the NaN-propagating f32x4.min/max).
 * They can drop a NaN and pick either zero of ±0; a running sum catches NaN (and Inf − Inf), groupParams adds +0
 * to the extremes, so for finite groups the parameters equal the exact ones.
 */
// @ts-ignore: decorator
@inline
function fastGroupOk(m: f32, M: f32, sum: f32): bool {
  return sum - sum == 0 && m >= -F16_MAX && M <= F16_MAX;
}

/** Quantizes and packs one token-axis group of g values at `base` with zero `zv` and reciprocal `iv`; returns cp. */
// @ts-ignore: decorator
@inline
function packGroup(base: usize, end: usize, zv: v128, iv: v128, qi: v128, cp: usize, bits: i32): usize {
  for (let p = base; p < end; p += 64) {
    const q0 = codes4(v128.load(p), zv, iv, qi);
    const q1 = codes4(v128.load(p, 16), zv, iv, qi);
    const q2 = codes4(v128.load(p, 32), zv, iv, qi);
    const q3 = codes4(v128.load(p, 48), zv, iv, qi);
    cp += packStore(cp, narrowCodes(q0, q1, q2, q3), bits);
  }
  return cp;
}

// Partial reductions of one group (4 lanes each), set by reduceGroup.
let redMin: v128 = i32x4.splat(0);
let redMax: v128 = i32x4.splat(0);
let redSum: v128 = i32x4.splat(0);

/**
 * pmin/pmax/sum over one contiguous group, four accumulators each. f32x4.pmin/pmax are one x64 instruction (unlike
 * the NaN-propagating f32x4.min/max); they may drop a NaN and keep either zero of ±0, which the running sum (NaN or
 * Inf − Inf makes it NaN) and groupParams' +0 canonicalisation make harmless.
 */
// @ts-ignore: decorator
@inline
function reduceGroup(base: usize, end: usize): void {
  let mn0 = v128.load(base);
  let mn1 = v128.load(base, 16);
  let mn2 = v128.load(base, 32);
  let mn3 = v128.load(base, 48);
  let mx0 = mn0;
  let mx1 = mn1;
  let mx2 = mn2;
  let mx3 = mn3;
  let sum = f32x4.add(f32x4.add(mn0, mn1), f32x4.add(mn2, mn3));
  for (let p = base + 64; p < end; p += 64) {
    const v0 = v128.load(p);
    const v1 = v128.load(p, 16);
    const v2 = v128.load(p, 32);
    const v3 = v128.load(p, 48);
    mn0 = f32x4.pmin(mn0, v0);
    mn1 = f32x4.pmin(mn1, v1);
    mn2 = f32x4.pmin(mn2, v2);
    mn3 = f32x4.pmin(mn3, v3);
    mx0 = f32x4.pmax(mx0, v0);
    mx1 = f32x4.pmax(mx1, v1);
    mx2 = f32x4.pmax(mx2, v2);
    mx3 = f32x4.pmax(mx3, v3);
    sum = f32x4.add(sum, f32x4.add(f32x4.add(v0, v1), f32x4.add(v2, v3)));
  }
  redMin = f32x4.pmin(f32x4.pmin(mn0, mn1), f32x4.pmin(mn2, mn3));
  redMax = f32x4.pmax(f32x4.pmax(mx0, mx1), f32x4.pmax(mx2, mx3));
  redSum = sum;
}

/** Lane j of the result is the reduction of vector j: [op(a), op(b), op(c), op(d)] (a 4×4 transpose-reduce). */
// @ts-ignore: decorator
@inline
function transposeMin(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.pmin(v128.shuffle<i32>(a, b, 0, 1, 4, 5), v128.shuffle<i32>(a, b, 2, 3, 6, 7));
  const cd = f32x4.pmin(v128.shuffle<i32>(c, d, 0, 1, 4, 5), v128.shuffle<i32>(c, d, 2, 3, 6, 7));
  return f32x4.pmin(v128.shuffle<i32>(ab, cd, 0, 2, 4, 6), v128.shuffle<i32>(ab, cd, 1, 3, 5, 7));
}

// @ts-ignore: decorator
@inline
function transposeMax(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.pmax(v128.shuffle<i32>(a, b, 0, 1, 4, 5), v128.shuffle<i32>(a, b, 2, 3, 6, 7));
  const cd = f32x4.pmax(v128.shuffle<i32>(c, d, 0, 1, 4, 5), v128.shuffle<i32>(c, d, 2, 3, 6, 7));
  return f32x4.pmax(v128.shuffle<i32>(ab, cd, 0, 2, 4, 6), v128.shuffle<i32>(ab, cd, 1, 3, 5, 7));
}

// @ts-ignore: decorator
@inline
function transposeSum(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<i32>(a, b, 0, 1, 4, 5), v128.shuffle<i32>(a, b, 2, 3, 6, 7));
  const cd = f32x4.add(v128.shuffle<i32>(c, d, 0, 1, 4, 5), v128.shuffle<i32>(c, d, 2, 3, 6, 7));
  return f32x4.add(v128.shuffle<i32>(ab, cd, 0, 2, 4, 6), v128.shuffle<i32>(ab, cd, 1, 3, 5, 7));
}

/** One group on its own (batch tails and batches holding an unusual group); exact status like the scalar build. */
// @ts-ignore: decorator
@inline
function quantizeOneTokenGroup(base: usize, g: i32, gi: i32, qmax: f32, qi: v128, cp: usize, scalesPtr: usize, zerosPtr: usize, bits: i32): i32 {
  const end = base + (<usize>g << 2);
  reduceGroup(base, end);
  const m = horizontalMin(redMin);
  const M = horizontalMax(redMax);
  const status = fastGroupOk(m, M, horizontalSum(redSum)) ? groupParams(m, M, qmax) : exactGroupParams(base, g, 4, qmax);
  if (status != STATUS_OK) {
    setErrorIndex(gi);
    return status;
  }
  store<u16>(scalesPtr + (<usize>gi << 1), <u16>groupScaleBits);
  store<u16>(zerosPtr + (<usize>gi << 1), <u16>groupZeroBits);
  packGroup(base, end, f32x4.splat(groupZero), f32x4.splat(groupInverse), qi, cp, bits);
  return STATUS_OK;
}

/**
 * Token axis, four groups per step: reduce each group, transpose the four partial reductions into one vector per
 * statistic, compute the four groups' parameters lane-wise (two f32x4.div instead of eight scalar ones), then pack.
 */
// @ts-ignore: decorator
@inline
function quantizeTokenBits(inPtr: usize, nGroups: i32, g: i32, bits: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  const qmax = <f32>((1 << bits) - 1);
  const qi = i32x4.splat((1 << bits) - 1);
  const groupSize = <usize>g << 2;
  const groupBytes = (<usize>g * <usize>bits) >>> 3;
  const batched = nGroups & ~3;
  for (let gi = 0; gi < batched; gi += 4) {
    const base = inPtr + <usize>gi * groupSize;
    const cp = codesPtr + <usize>gi * groupBytes;
    reduceGroup(base, base + groupSize);
    const mnA = redMin, mxA = redMax, smA = redSum;
    reduceGroup(base + groupSize, base + 2 * groupSize);
    const mnB = redMin, mxB = redMax, smB = redSum;
    reduceGroup(base + 2 * groupSize, base + 3 * groupSize);
    const mnC = redMin, mxC = redMax, smC = redSum;
    reduceGroup(base + 3 * groupSize, base + 4 * groupSize);
    const m4 = transposeMin(mnA, mnB, mnC, redMin);
    const M4 = transposeMax(mxA, mxB, mxC, redMax);
    const sum4 = transposeSum(smA, smB, smC, redSum);
    if (!fastGroups4Ok(m4, M4, sum4)) {
      for (let j = 0; j < 4; j++) {
        const status = quantizeOneTokenGroup(base + <usize>j * groupSize, g, gi + j, qmax, qi, cp + <usize>j * groupBytes, scalesPtr, zerosPtr, bits);
        if (status != STATUS_OK) return status;
      }
      continue;
    }
    groupParams4(m4, M4, qmax);
    v128.store64_lane(scalesPtr + (<usize>gi << 1), i16x8.narrow_i32x4_u(group4ScaleBits, group4ScaleBits), 0);
    v128.store64_lane(zerosPtr + (<usize>gi << 1), i16x8.narrow_i32x4_u(group4ZeroBits, group4ZeroBits), 0);
    const z4 = group4Zero;
    const i4 = group4Inverse;
    packGroup(base, base + groupSize, v128.shuffle<i32>(z4, z4, 0, 0, 0, 0), v128.shuffle<i32>(i4, i4, 0, 0, 0, 0), qi, cp, bits);
    packGroup(base + groupSize, base + 2 * groupSize, v128.shuffle<i32>(z4, z4, 1, 1, 1, 1), v128.shuffle<i32>(i4, i4, 1, 1, 1, 1), qi, cp + groupBytes, bits);
    packGroup(base + 2 * groupSize, base + 3 * groupSize, v128.shuffle<i32>(z4, z4, 2, 2, 2, 2), v128.shuffle<i32>(i4, i4, 2, 2, 2, 2), qi, cp + 2 * groupBytes, bits);
    packGroup(base + 3 * groupSize, base + 4 * groupSize, v128.shuffle<i32>(z4, z4, 3, 3, 3, 3), v128.shuffle<i32>(i4, i4, 3, 3, 3, 3), qi, cp + 3 * groupBytes, bits);
  }
  for (let gi = batched; gi < nGroups; gi++) {
    const status = quantizeOneTokenGroup(inPtr + <usize>gi * groupSize, g, gi, qmax, qi, codesPtr + <usize>gi * groupBytes, scalesPtr, zerosPtr, bits);
    if (status != STATUS_OK) return status;
  }
  return STATUS_OK;
}

export function quantizeTokenSimd(inPtr: usize, nGroups: i32, g: i32, bits: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  if (bits == 4) return quantizeTokenBits(inPtr, nGroups, g, 4, codesPtr, scalesPtr, zerosPtr);
  if (bits == 8) return quantizeTokenBits(inPtr, nGroups, g, 8, codesPtr, scalesPtr, zerosPtr);
  return quantizeTokenBits(inPtr, nGroups, g, 2, codesPtr, scalesPtr, zerosPtr);
}

// @ts-ignore: decorator
@inline
function dequantizeTokenBits(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, nGroups: i32, g: i32, bits: i32, outPtr: usize): i32 {
  let cp = codesPtr;
  let op = outPtr;
  for (let gi = 0; gi < nGroups; gi++) {
    const status = storedGroupParams(load<u16>(scalesPtr + (<usize>gi << 1)), load<u16>(zerosPtr + (<usize>gi << 1)));
    if (status != STATUS_OK) {
      setErrorIndex(gi);
      return status;
    }
    const sv = f32x4.splat(groupScale);
    const zv = f32x4.splat(groupZero);
    const end = op + (<usize>g << 2);
    for (; op < end; op += 64) {
      const b = unpack16(cp, bits);
      cp += <usize>(bits << 1);
      v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 0), sv), zv));
      v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 1), sv), zv), 16);
      v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 2), sv), zv), 32);
      v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 3), sv), zv), 48);
    }
  }
  return STATUS_OK;
}

export function dequantizeTokenSimd(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, nGroups: i32, g: i32, bits: i32, outPtr: usize): i32 {
  if (bits == 4) return dequantizeTokenBits(codesPtr, scalesPtr, zerosPtr, nGroups, g, 4, outPtr);
  if (bits == 8) return dequantizeTokenBits(codesPtr, scalesPtr, zerosPtr, nGroups, g, 8, outPtr);
  return dequantizeTokenBits(codesPtr, scalesPtr, zerosPtr, nGroups, g, 2, outPtr);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Channel axis: 16 columns at a time (cols a multiple of 16); lane j of the four vectors is column c + j, so the
//    min/max over a group's g rows is a vertical reduction with no shuffles.

/**
 * Parameters of the four column groups in one vector (quad) of a channel step: lane-wise when all four pass the fast
 * check, else one by one with exact min/max (which also finds the first failing group). Zeros and reciprocals go to
 * laneScratch for the packing loop.
 */
// @ts-ignore: decorator
@inline
function channelQuadParams(mn: v128, mx: v128, sm: v128, quad: i32, base: usize, g: i32, rowStride: usize, gi0: i32, qmax: f32, scalesPtr: usize, zerosPtr: usize): i32 {
  const gi = gi0 + (quad << 2);
  const zS = laneScratch + (<usize>quad << 4);
  const invS = laneScratch + 64 + (<usize>quad << 4);
  if (fastGroups4Ok(mn, mx, sm)) {
    groupParams4(mn, mx, qmax);
    v128.store64_lane(scalesPtr + (<usize>gi << 1), i16x8.narrow_i32x4_u(group4ScaleBits, group4ScaleBits), 0);
    v128.store64_lane(zerosPtr + (<usize>gi << 1), i16x8.narrow_i32x4_u(group4ZeroBits, group4ZeroBits), 0);
    v128.store(zS, group4Zero);
    v128.store(invS, group4Inverse);
    return STATUS_OK;
  }
  for (let j = 0; j < 4; j++) {
    const status = exactGroupParams(base + (<usize>((quad << 2) + j) << 2), g, rowStride, qmax);
    if (status != STATUS_OK) {
      setErrorIndex(gi + j);
      return status;
    }
    store<u16>(scalesPtr + (<usize>(gi + j) << 1), <u16>groupScaleBits);
    store<u16>(zerosPtr + (<usize>(gi + j) << 1), <u16>groupZeroBits);
    store<f32>(zS + (<usize>j << 2), groupZero);
    store<f32>(invS + (<usize>j << 2), groupInverse);
  }
  return STATUS_OK;
}

// @ts-ignore: decorator
@inline
function quantizeChannelBits(inPtr: usize, rows: i32, cols: i32, g: i32, bits: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  const qmax = <f32>((1 << bits) - 1);
  const qi = i32x4.splat((1 << bits) - 1);
  const rowStride = <usize>cols << 2;
  const rowBlocks = rows / g;
  const zS = laneScratch;
  const invS = laneScratch + 64;
  for (let k = 0; k < rowBlocks; k++) {
    for (let c = 0; c < cols; c += 16) {
      const base = inPtr + ((<usize>k * <usize>g * <usize>cols + <usize>c) << 2);
      let mn0 = v128.load(base);
      let mn1 = v128.load(base, 16);
      let mn2 = v128.load(base, 32);
      let mn3 = v128.load(base, 48);
      let mx0 = mn0;
      let mx1 = mn1;
      let mx2 = mn2;
      let mx3 = mn3;
      let sm0 = mn0;
      let sm1 = mn1;
      let sm2 = mn2;
      let sm3 = mn3;
      for (let r = 1; r < g; r++) {
        const p = base + <usize>r * rowStride;
        const v0 = v128.load(p);
        const v1 = v128.load(p, 16);
        const v2 = v128.load(p, 32);
        const v3 = v128.load(p, 48);
        mn0 = f32x4.pmin(mn0, v0);
        mn1 = f32x4.pmin(mn1, v1);
        mn2 = f32x4.pmin(mn2, v2);
        mn3 = f32x4.pmin(mn3, v3);
        mx0 = f32x4.pmax(mx0, v0);
        mx1 = f32x4.pmax(mx1, v1);
        mx2 = f32x4.pmax(mx2, v2);
        mx3 = f32x4.pmax(mx3, v3);
        sm0 = f32x4.add(sm0, v0);
        sm1 = f32x4.add(sm1, v1);
        sm2 = f32x4.add(sm2, v2);
        sm3 = f32x4.add(sm3, v3);
      }
      const gi0 = k * cols + c;
      let status = channelQuadParams(mn0, mx0, sm0, 0, base, g, rowStride, gi0, qmax, scalesPtr, zerosPtr);
      if (status == STATUS_OK) status = channelQuadParams(mn1, mx1, sm1, 1, base, g, rowStride, gi0, qmax, scalesPtr, zerosPtr);
      if (status == STATUS_OK) status = channelQuadParams(mn2, mx2, sm2, 2, base, g, rowStride, gi0, qmax, scalesPtr, zerosPtr);
      if (status == STATUS_OK) status = channelQuadParams(mn3, mx3, sm3, 3, base, g, rowStride, gi0, qmax, scalesPtr, zerosPtr);
      if (status != STATUS_OK) return status;
      const zv0 = v128.load(zS);
      const zv1 = v128.load(zS, 16);
      const zv2 = v128.load(zS, 32);
      const zv3 = v128.load(zS, 48);
      const iv0 = v128.load(invS);
      const iv1 = v128.load(invS, 16);
      const iv2 = v128.load(invS, 32);
      const iv3 = v128.load(invS, 48);
      for (let r = 0; r < g; r++) {
        const p = base + <usize>r * rowStride;
        const e = (<usize>(k * g + r) * <usize>cols + <usize>c) * <usize>bits;
        const q0 = codes4(v128.load(p), zv0, iv0, qi);
        const q1 = codes4(v128.load(p, 16), zv1, iv1, qi);
        const q2 = codes4(v128.load(p, 32), zv2, iv2, qi);
        const q3 = codes4(v128.load(p, 48), zv3, iv3, qi);
        packStore(codesPtr + (e >>> 3), narrowCodes(q0, q1, q2, q3), bits);
      }
    }
  }
  return STATUS_OK;
}

export function quantizeChannelSimd(inPtr: usize, rows: i32, cols: i32, g: i32, bits: i32, codesPtr: usize, scalesPtr: usize, zerosPtr: usize): i32 {
  if (bits == 4) return quantizeChannelBits(inPtr, rows, cols, g, 4, codesPtr, scalesPtr, zerosPtr);
  if (bits == 8) return quantizeChannelBits(inPtr, rows, cols, g, 8, codesPtr, scalesPtr, zerosPtr);
  return quantizeChannelBits(inPtr, rows, cols, g, 2, codesPtr, scalesPtr, zerosPtr);
}

// @ts-ignore: decorator
@inline
function dequantizeChannelBits(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, rows: i32, cols: i32, g: i32, bits: i32, outPtr: usize): i32 {
  const rowStride = <usize>cols << 2;
  const rowBlocks = rows / g;
  const sS = laneScratch;
  const zS = laneScratch + 64;
  for (let k = 0; k < rowBlocks; k++) {
    for (let c = 0; c < cols; c += 16) {
      const gi0 = k * cols + c;
      for (let j = 0; j < 16; j++) {
        const gi = gi0 + j;
        const status = storedGroupParams(load<u16>(scalesPtr + (<usize>gi << 1)), load<u16>(zerosPtr + (<usize>gi << 1)));
        if (status != STATUS_OK) {
          setErrorIndex(gi);
          return status;
        }
        store<f32>(sS + (<usize>j << 2), groupScale);
        store<f32>(zS + (<usize>j << 2), groupZero);
      }
      const sv0 = v128.load(sS);
      const sv1 = v128.load(sS, 16);
      const sv2 = v128.load(sS, 32);
      const sv3 = v128.load(sS, 48);
      const zv0 = v128.load(zS);
      const zv1 = v128.load(zS, 16);
      const zv2 = v128.load(zS, 32);
      const zv3 = v128.load(zS, 48);
      const base = outPtr + ((<usize>k * <usize>g * <usize>cols + <usize>c) << 2);
      for (let r = 0; r < g; r++) {
        const op = base + <usize>r * rowStride;
        const e = (<usize>(k * g + r) * <usize>cols + <usize>c) * <usize>bits;
        const b = unpack16(codesPtr + (e >>> 3), bits);
        v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 0), sv0), zv0));
        v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 1), sv1), zv1), 16);
        v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 2), sv2), zv2), 32);
        v128.store(op, f32x4.add(f32x4.mul(codeLanes(b, 3), sv3), zv3), 48);
      }
    }
  }
  return STATUS_OK;
}

export function dequantizeChannelSimd(codesPtr: usize, scalesPtr: usize, zerosPtr: usize, rows: i32, cols: i32, g: i32, bits: i32, outPtr: usize): i32 {
  if (bits == 4) return dequantizeChannelBits(codesPtr, scalesPtr, zerosPtr, rows, cols, g, 4, outPtr);
  if (bits == 8) return dequantizeChannelBits(codesPtr, scalesPtr, zerosPtr, rows, cols, g, 8, outPtr);
  return dequantizeChannelBits(codesPtr, scalesPtr, zerosPtr, rows, cols, g, 2, outPtr);
}

// ---------------------------------------------------------------------------------------------------------------
// 3. fp16 / bf16 widening, 8 values per step; the tail (n % 8) goes through the scalar path.

/**
 * fp16 → float32 without branches: (h & 0x7fff) << 13 read as float32 is the value · 2^-112 for normals and
 * subnormals alike, so one multiply by 2^112 (exact) fixes the exponent; exponent 31 (Inf/NaN) is selected to 0xff.
 */
// @ts-ignore: decorator
@inline
function widenF16Lanes(h: v128): v128 {
  const em = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const scaled = f32x4.mul(em, f32x4.splat(5.192296858534828e33)); // 2^112
  const special = i32x4.ge_s(em, i32x4.splat(0x0f800000));
  return v128.or(v128.bitselect(v128.or(em, i32x4.splat(0x70000000)), scaled, special), sign);
}

export function widenF16Simd(inPtr: usize, n: i32, outPtr: usize): void {
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const h = v128.load(inPtr + (<usize>i << 1));
    const op = outPtr + (<usize>i << 2);
    v128.store(op, widenF16Lanes(i32x4.extend_low_i16x8_u(h)));
    v128.store(op, widenF16Lanes(i32x4.extend_high_i16x8_u(h)), 16);
  }
  for (let i = n8; i < n; i++) {
    const h = i32x4.splat(<i32>load<u16>(inPtr + (<usize>i << 1)));
    store<f32>(outPtr + (<usize>i << 2), f32x4.extract_lane(widenF16Lanes(h), 0));
  }
}

export function widenBf16Simd(inPtr: usize, n: i32, outPtr: usize): void {
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const h = v128.load(inPtr + (<usize>i << 1));
    const op = outPtr + (<usize>i << 2);
    v128.store(op, i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
    v128.store(op, i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
  }
  for (let i = n8; i < n; i++) {
    store<u32>(outPtr + (<usize>i << 2), <u32>load<u16>(inPtr + (<usize>i << 1)) << 16);
  }
}

/** fp16 block → float32; a vector holding Inf/NaN is handed to the scalar path, which reports the exact element. */
export function fromFp16Simd(inPtr: usize, n: i32, outPtr: usize): i32 {
  const n8 = n & ~7;
  const expMask = i16x8.splat(0x7c00);
  for (let i = 0; i < n8; i += 8) {
    const h = v128.load(inPtr + (<usize>i << 1));
    if (v128.any_true(i16x8.eq(v128.and(h, expMask), expMask))) {
      return fromFp16Scalar(inPtr, n, outPtr);
    }
    const op = outPtr + (<usize>i << 2);
    v128.store(op, widenF16Lanes(i32x4.extend_low_i16x8_u(h)));
    v128.store(op, widenF16Lanes(i32x4.extend_high_i16x8_u(h)), 16);
  }
  for (let i = n8; i < n; i++) {
    const h = <u32>load<u16>(inPtr + (<usize>i << 1));
    if (f16IsNonFinite(h)) {
      setErrorIndex(i);
      return STATUS_NONFINITE;
    }
    store<f32>(outPtr + (<usize>i << 2), f32x4.extract_lane(widenF16Lanes(i32x4.splat(<i32>h)), 0));
  }
  return STATUS_OK;
}

/**
 * float32 → fp16 (round-to-nearest-even), 8 values per step. A step holding NaN/Inf or a value that rounds past 65504
 * hands the rest to the scalar path, which reports the exact element and status.
 */
export function toFp16Simd(inPtr: usize, n: i32, outPtr: usize): i32 {
  const n8 = n & ~7;
  const limit = f32x4.splat(F16_MAX);
  const zero = f32x4.splat(0);
  for (let i = 0; i < n8; i += 8) {
    const p = inPtr + (<usize>i << 2);
    const x0 = v128.load(p);
    const x1 = v128.load(p, 16);
    const r0 = roundToF16x4(x0, ROUND_NEAREST_EVEN);
    const r1 = roundToF16x4(x1, ROUND_NEAREST_EVEN);
    const nonfinite = v128.or(f32x4.ne(f32x4.sub(x0, x0), zero), f32x4.ne(f32x4.sub(x1, x1), zero));
    const overflow = v128.or(f32x4.gt(f32x4.abs(r0), limit), f32x4.gt(f32x4.abs(r1), limit));
    if (v128.any_true(v128.or(nonfinite, overflow))) return toFp16ScalarRange(inPtr, i, n, outPtr);
    v128.store(outPtr + (<usize>i << 1), i16x8.narrow_i32x4_u(f16BitsOfExact(r0), f16BitsOfExact(r1)));
  }
  return toFp16ScalarRange(inPtr, n8, n, outPtr);
}
