// A small MatMulNBits quantizer for the kernel tests, written here from the layout (kernels/matmul-nbits.ts) so the tests
// do not depend on the bundle packer: per (row, K block) min/max (with zero points) or absmax (without), f16 scales,
// codes low-first. Padding codes past K get random values so a kernel that reads them fails the comparison.
import { f32ToF16Bits, f16ToF32 } from "../../format/codec/fp16.ts";
import { kBlocksOf, zeroPointStride, type NBits, type NBitsBlock, type NBitsWeights } from "../../kernels/matmul-nbits.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";

export function quantizeNBits(w: Float32Array, n: number, k: number, bits: NBits, block: NBitsBlock, zeroPoints: boolean, seed = 1): NBitsWeights {
  const rnd = mulberry32(seed ^ 0x5bd1e995);
  const kb = kBlocksOf(k, block);
  const blob = (block * bits) / 8;
  const qmax = (1 << bits) - 1;
  const data = new Uint8Array(n * kb * blob);
  const scales = new Uint16Array(n * kb);
  const zs = zeroPointStride(bits, kb);
  const zp = zeroPoints ? new Uint8Array(n * zs) : undefined;
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < kb; b++) {
      const k0 = b * block;
      const k1 = Math.min(k, k0 + block);
      let lo = 0;
      let hi = 0;
      let amax = 0;
      for (let c = k0; c < k1; c++) {
        const v = w[r * k + c];
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
        amax = Math.max(amax, Math.abs(v));
      }
      let zero = 2 ** (bits - 1);
      let scale: number;
      if (zeroPoints) {
        scale = (hi - lo) / qmax || 1;
        scale = f16ToF32(f32ToF16Bits(scale, "nearest-even"));
        zero = Math.min(qmax, Math.max(0, Math.round(-lo / scale)));
      } else {
        scale = amax / (2 ** (bits - 1) - 1) || 1;
        scale = f16ToF32(f32ToF16Bits(scale, "nearest-even"));
      }
      scales[r * kb + b] = f32ToF16Bits(scale, "nearest-even");
      if (zp) {
        if (bits === 8) zp[r * zs + b] = zero;
        else zp[r * zs + (b >> 1)] |= zero << (4 * (b & 1));
      }
      for (let kin = 0; kin < block; kin++) {
        const c = k0 + kin;
        const code = c < k ? Math.min(qmax, Math.max(0, Math.round(w[r * k + c] / scale) + zero)) : Math.floor(rnd() * (qmax + 1));
        const off = (r * kb + b) * blob;
        if (bits === 8) data[off + kin] = code;
        else data[off + (kin >> 1)] |= code << (4 * (kin & 1));
      }
    }
  }
  return { kind: "nbits", n, k, bits, block, data, scales, zeroPoints: zp };
}

/** f16 bit patterns of `w` (round to nearest even). */
export function toF16(w: Float32Array): Uint16Array {
  return Uint16Array.from(w, (v) => f32ToF16Bits(v, "nearest-even"));
}
