// f64 reference dequantization of one codec block, written from docs/codec.md alone (both axes, 8/4/2 bits, fp16):
// x̂ = q·s + z with q the packed code of element e = row·cols + col and (s, z) the group's fp16 scale and zero.
import type { QuantizedBlock } from "../format/codec/types.ts";
import { f16ToF32 } from "../format/codec/fp16.ts";

export function dequantizeBlockRef(block: QuantizedBlock): Float64Array {
  const { rows, cols, bits, group, axis, codes, scales, zeros } = block;
  const out = new Float64Array(rows * cols);
  if (bits === 16) {
    for (let e = 0; e < rows * cols; e++) out[e] = f16ToF32(codes[2 * e] | (codes[2 * e + 1] << 8));
    return out;
  }
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) {
      const e = row * cols + col;
      const q = (codes[Math.floor(e / perByte)] >> (bits * (e % perByte))) & mask;
      const gi = axis === "token" ? row * (cols / group) + Math.floor(col / group) : Math.floor(row / group) * cols + col;
      out[e] = q * f16ToF32(scales[gi]) + f16ToF32(zeros[gi]);
    }
  }
  return out;
}
