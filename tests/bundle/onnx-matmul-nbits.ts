// A one-node ONNX model (com.microsoft.MatMulNBits) whose B, scales and zero points are initializers holding exactly
// the bytes our packer writes.
import type { MatMulNBitsWeight } from "../../checkpoint/bundle/matmul-nbits.ts";
import { f16ToF32 } from "../../format/codec/fp16.ts";
import { initializer, onnxModel, valueInfo } from "../helpers/onnx-proto.ts";

/**
 * Y [m, N] = A [m, K] · dequant(B)ᵀ through MatMulNBits. T1 (A, scales, Y) is f32 — our f16 scales widened exactly —
 * or f16, where the scales initializer is our f16 bytes unchanged. B and zero points are always our bytes unchanged.
 */
export function matMulNBitsModel(q: MatMulNBitsWeight, m: number, t1: "float32" | "float16" = "float32"): Uint8Array {
  const kb = Math.ceil(q.k / q.block);
  const elem = t1 === "float16" ? "float16" : "float";
  let scaleBytes: Uint8Array;
  if (t1 === "float16") {
    scaleBytes = new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength);
  } else {
    const f32 = Float32Array.from(q.scales, f16ToF32);
    scaleBytes = new Uint8Array(f32.buffer);
  }
  return onnxModel({
    name: "matmul_nbits",
    nodes: [
      {
        op: "MatMulNBits",
        domain: "com.microsoft",
        inputs: ["A", "B", "scales", ...(q.zeroPoints ? ["zero_points"] : [])],
        outputs: ["Y"],
        intAttrs: { K: q.k, N: q.n, bits: q.bits, block_size: q.block },
      },
    ],
    initializers: [
      initializer("B", "uint8", [q.n, kb, (q.block * q.bits) / 8], q.b),
      initializer("scales", elem, [q.n * kb], scaleBytes),
      ...(q.zeroPoints ? [initializer("zero_points", "uint8", [q.zeroPoints.length], q.zeroPoints)] : []),
    ],
    inputs: [valueInfo("A", elem, [m, q.k])],
    outputs: [valueInfo("Y", elem, [m, q.n])],
  });
}
