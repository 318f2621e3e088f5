// Value checks shared by the writer (on caller arrays) and the reader (on wire bytes): a chunk never carries NaN/Inf
// scales or values, and code bytes past the last element are zero so equal inputs give equal bytes.
import { ChunkError } from "./types.ts";

type Code = "invalid_payload" | "invalid_input";

/** fp16 bit pattern with exponent 31 is Inf or NaN. */
function fp16NonFinite(h: number): boolean {
  return (h & 0x7c00) === 0x7c00;
}

/** Every fp16 in `values` finite; when `nonNegative`, also sign bit clear (scales are steps ≥ 0). */
export function checkFp16(values: Uint16Array, what: string, nonNegative: boolean, code: Code): void {
  for (let i = 0; i < values.length; i++) {
    const h = values[i];
    if (fp16NonFinite(h)) throw new ChunkError(code, `${what}[${i}] is fp16 0x${h.toString(16)}, not finite`);
    if (nonNegative && h & 0x8000 && h !== 0x8000) throw new ChunkError(code, `${what}[${i}] is negative (fp16 0x${h.toString(16)})`);
  }
}

/** Every float finite. */
export function checkFinite(values: Float32Array, what: string, code: Code): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new ChunkError(code, `${what}[${i}] is ${values[i]}, not finite`);
  }
}

/** Bits of the last code byte past element `count` must be zero (int4 / int2 blocks with a partial last byte). */
export function checkCodeTail(codes: Uint8Array, count: number, bits: number, what: string, code: Code): void {
  const usedBits = (count * bits) % 8;
  if (usedBits === 0 || codes.length === 0) return;
  const last = codes[codes.length - 1];
  if (last >> usedBits !== 0) throw new ChunkError(code, `${what}: unused high bits of the last code byte are set (0x${last.toString(16)})`);
}

/** Zero bytes in [from, to) of `bytes` (alignment padding). */
export function checkZeroPadding(bytes: Uint8Array, from: number, to: number, what: string): void {
  for (let i = from; i < to; i++) {
    if (bytes[i] !== 0) throw new ChunkError("invalid_payload", `padding byte ${i} after ${what} is 0x${bytes[i].toString(16)}, not zero`);
  }
}
