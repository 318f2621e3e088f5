// Test helpers for the codec suites: a seeded PRNG, latent-like random blocks, and an fp16 oracle built from the
// IEEE 754 definition (value table + search), independent of the bit-level conversions under test.
import type { QuantizedBlock } from "../../format/codec/types.ts";

export { mulberry32 as rng } from "../helpers/mulberry32.ts";

export type Distribution = "normal" | "wide" | "outliers" | "tiny" | "constant-groups" | "signed-zeros";

/** Random float32 block; `wide` spans magnitudes 2^-30..2^15 and both signs, `tiny` sits in and below fp16 subnormals. */
export function randomBlock(rand: () => number, n: number, dist: Distribution): Float32Array {
  const out = new Float32Array(n);
  const normal = (): number => Math.sqrt(-2 * Math.log(rand() + 1e-300)) * Math.cos(2 * Math.PI * rand());
  for (let i = 0; i < n; i++) {
    switch (dist) {
      case "normal":
        out[i] = normal();
        break;
      case "wide":
        out[i] = (rand() < 0.5 ? -1 : 1) * 2 ** (-30 + 45 * rand()) * (1 + rand());
        break;
      case "outliers":
        out[i] = rand() < 0.02 ? normal() * 3000 : normal() * 0.1;
        break;
      case "tiny":
        out[i] = (rand() < 0.5 ? -1 : 1) * 2 ** (-40 + 30 * rand());
        break;
      case "constant-groups":
        out[i] = Math.floor(i / 7) % 3 === 0 ? 1.2345 : (Math.floor(i / 5) % 4) * 0.001;
        break;
      case "signed-zeros":
        out[i] = rand() < 0.3 ? -0 : rand() < 0.5 ? 0 : normal() * 1e-3;
        break;
    }
  }
  return out;
}

// ---- fp16 oracle ----------------------------------------------------------------------------------------------

/** fp16 value of bits h from the IEEE definition (finite h only). */
export function fp16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return sign * (e === 0 ? m * 2 ** -24 : 2 ** (e - 15) * (1 + m / 1024));
}

interface Fp16Entry {
  readonly value: number;
  readonly bits: number;
}

/** Every finite fp16 value in increasing order (−0 omitted: it equals +0). */
const FP16_TABLE: readonly Fp16Entry[] = (() => {
  const entries: Fp16Entry[] = [];
  for (let h = 0; h <= 0x7bff; h++) entries.push({ value: fp16Value(h), bits: h });
  for (let h = 0x8001; h <= 0xfbff; h++) entries.push({ value: fp16Value(h), bits: h });
  return entries.sort((a, b) => a.value - b.value);
})();

/** Index of the last table entry ≤ x (−1 when none). */
function floorIndex(x: number): number {
  let lo = -1;
  let hi = FP16_TABLE.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (FP16_TABLE[mid].value <= x) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Largest fp16 value ≤ x, or −Inf below −65504. */
export function oracleRoundDown(x: number): number {
  const i = floorIndex(x);
  return i < 0 ? -Infinity : FP16_TABLE[i].value;
}

/** Smallest fp16 value ≥ x, or +Inf above 65504. */
export function oracleRoundUp(x: number): number {
  const i = floorIndex(x);
  if (i >= 0 && FP16_TABLE[i].value === x) return x;
  return i + 1 < FP16_TABLE.length ? FP16_TABLE[i + 1].value : Infinity;
}

/** fp16 round-to-nearest-even of x (IEEE: overflow to ±Inf at |x| ≥ 65520, the midpoint to 2^16). */
export function oracleRoundNearestEven(x: number): number {
  if (Math.abs(x) >= 65520) return Math.sign(x) * Infinity;
  if (Math.abs(x) > 65504) return Math.sign(x) * 65504;
  const i = floorIndex(x);
  const lo = FP16_TABLE[i];
  if (lo.value === x) return x;
  const hi = FP16_TABLE[i + 1];
  const dLo = x - lo.value;
  const dHi = hi.value - x;
  if (dLo !== dHi) return dLo < dHi ? lo.value : hi.value;
  // Tie: the neighbour with an even significand. Around zero the two neighbours are ±(smallest subnormal)·k.
  const loBits = lo.value === 0 ? 0 : lo.bits;
  const hiBits = hi.value === 0 ? 0 : hi.bits;
  return (loBits & 1) === 0 ? lo.value : (hiBits & 1) === 0 ? hi.value : NaN;
}

/** float32 value of bf16 bits from the definition (sign, 8-bit exponent, 7-bit fraction). */
export function bf16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0xff) return m === 0 ? sign * Infinity : NaN;
  return sign * (e === 0 ? m * 2 ** -133 : 2 ** (e - 127) * (1 + m / 128));
}

// ---- comparisons ----------------------------------------------------------------------------------------------

export function floatBits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Index of the first differing element, or −1. */
export function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Compact description of where two blocks differ, or "" when identical. */
export function blockDifference(a: QuantizedBlock, b: QuantizedBlock): string {
  for (const key of ["rows", "cols", "bits", "group", "axis"] as const) if (a[key] !== b[key]) return `${key}: ${a[key]} vs ${b[key]}`;
  for (const key of ["codes", "scales", "zeros"] as const) {
    const i = firstDifference(a[key], b[key]);
    if (i >= 0) return `${key}[${i}]: ${a[key][i]} vs ${b[key][i]} (lengths ${a[key].length}, ${b[key].length})`;
  }
  return "";
}
