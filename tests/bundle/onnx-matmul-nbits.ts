// A one-node ONNX model (com.microsoft.MatMulNBits) with B, scales and zero points as initializers holding exactly the
// bytes our packer writes, written as protobuf by hand (field numbers from onnx/onnx.proto: ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto), as tests/kernels/onnx-gqa.ts does for GroupQueryAttention.
import type { MatMulNBitsWeight } from "../../checkpoint/bundle/matmul-nbits.ts";
import { halfToFloat } from "../../convert/checkpoint/dtype.ts";

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];
const ld = (field: number, bytes: ArrayLike<number>): number[] => [...varint((field << 3) | 2), ...varint(bytes.length), ...Array.from(bytes)];
const vi = (field: number, n: number): number[] => [...varint(field << 3), ...varint(n)];
const str = (field: number, s: string): number[] => ld(field, utf8(s));

const FLOAT = 1;
const UINT8 = 2;
const FLOAT16 = 10;

function valueInfo(name: string, dims: number[], elem = FLOAT): number[] {
  const shape = dims.flatMap((d) => ld(1, vi(1, d)));
  return [...str(1, name), ...ld(2, ld(1, [...vi(1, elem), ...ld(2, shape)]))];
}
/** TensorProto with raw_data: dims (1), data_type (2), name (8), raw_data (9). */
function initializer(name: string, elem: number, dims: number[], raw: Uint8Array): number[] {
  return [...dims.flatMap((d) => vi(1, d)), ...vi(2, elem), ...str(8, name), ...ld(9, raw)];
}
const intAttr = (name: string, v: number): number[] => [...str(1, name), ...vi(3, v), ...vi(20, 2)];

/**
 * Y [m, N] = A [m, K] · dequant(B)ᵀ through MatMulNBits. T1 (A, scales, Y) is f32 — our f16 scales widened exactly —
 * or f16, where the scales initializer is our f16 bytes unchanged. B and zero points are always our bytes unchanged.
 */
export function matMulNBitsModel(q: MatMulNBitsWeight, m: number, t1: "float32" | "float16" = "float32"): Uint8Array {
  const kb = Math.ceil(q.k / q.block);
  const scalesF32 = new Float32Array(q.scales.length);
  for (let i = 0; i < q.scales.length; i++) scalesF32[i] = halfToFloat(q.scales[i]);
  const elem = t1 === "float16" ? FLOAT16 : FLOAT;
  const scaleBytes = t1 === "float16" ? new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength) : new Uint8Array(scalesF32.buffer);
  const inputs = ["A", "B", "scales", ...(q.zeroPoints ? ["zero_points"] : [])];
  const node = [
    ...inputs.flatMap((n) => str(1, n)),
    ...str(2, "Y"),
    ...str(3, "mmnb"),
    ...str(4, "MatMulNBits"),
    ...ld(5, intAttr("K", q.k)),
    ...ld(5, intAttr("N", q.n)),
    ...ld(5, intAttr("bits", q.bits)),
    ...ld(5, intAttr("block_size", q.block)),
    ...str(7, "com.microsoft"),
  ];
  const graph = [
    ...ld(1, node),
    ...str(2, "matmul_nbits"),
    ...ld(5, initializer("B", UINT8, [q.n, kb, (q.block * q.bits) / 8], q.b)),
    ...ld(5, initializer("scales", elem, [q.n * kb], scaleBytes)),
    ...(q.zeroPoints ? ld(5, initializer("zero_points", UINT8, [q.zeroPoints.length], q.zeroPoints)) : []),
    ...ld(11, valueInfo("A", [m, q.k], elem)),
    ...ld(12, valueInfo("Y", [m, q.n], elem)),
  ];
  const model = [...vi(1, 8), ...str(2, "mla-edge-test"), ...ld(7, graph), ...ld(8, [...str(1, ""), ...vi(2, 17)]), ...ld(8, [...str(1, "com.microsoft"), ...vi(2, 1)])];
  return Uint8Array.from(model);
}
