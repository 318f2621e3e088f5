// IEEE binary16 bit patterns → numbers (exact). Used by the CPU paths; the GPU reads the same bits with unpack2x16float.

/** Exact value of an fp16 bit pattern (subnormals, ±Inf and NaN included). */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}
