// A one-node ONNX model (com.microsoft.GroupQueryAttention, decode shape) written as protobuf bytes by hand, for the
// onnxruntime-web baseline of the kernels benchmark. Field numbers from onnx/onnx.proto (ModelProto, GraphProto,
// NodeProto, AttributeProto, ValueInfoProto, TypeProto.Tensor, TensorShapeProto); the wire helpers are
// tests/helpers/onnx-proto.ts.

import { ld, str, valueInfo, intAttr, vi } from "../helpers/onnx-proto.ts";

export interface GqaModelShape {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

/** Decode-step GQA: query/key/value for one token, BNSH past K/V of symbolic length, f32. */
export function gqaDecodeModel(s: GqaModelShape): Uint8Array {
  const inputs = ["query", "key", "value", "past_key", "past_value", "seqlens_k", "total_sequence_length"];
  const outputs = ["output", "present_key", "present_value"];
  const node = [
    ...inputs.flatMap((n) => str(1, n)),
    ...outputs.flatMap((n) => str(2, n)),
    ...str(3, "gqa"),
    ...str(4, "GroupQueryAttention"),
    ...ld(5, intAttr("num_heads", s.heads)),
    ...ld(5, intAttr("kv_num_heads", s.kvHeads)),
    ...str(7, "com.microsoft"),
  ];
  const graph = [
    ...ld(1, node),
    ...str(2, "gqa_decode"),
    ...ld(11, valueInfo("query", "float", [1, 1, s.heads * s.headDim])),
    ...ld(11, valueInfo("key", "float", [1, 1, s.kvHeads * s.headDim])),
    ...ld(11, valueInfo("value", "float", [1, 1, s.kvHeads * s.headDim])),
    ...ld(11, valueInfo("past_key", "float", [1, s.kvHeads, "past", s.headDim])),
    ...ld(11, valueInfo("past_value", "float", [1, s.kvHeads, "past", s.headDim])),
    ...ld(11, valueInfo("seqlens_k", "int32", [1])),
    ...ld(11, valueInfo("total_sequence_length", "int32", [])),
    ...ld(12, valueInfo("output", "float", [1, 1, s.heads * s.headDim])),
    ...ld(12, valueInfo("present_key", "float", [1, s.kvHeads, "total", s.headDim])),
    ...ld(12, valueInfo("present_value", "float", [1, s.kvHeads, "total", s.headDim])),
  ];
  const model = [
    ...vi(1, 8),
    ...str(2, "mla-edge-bench"),
    ...ld(7, graph),
    ...ld(8, [...str(1, ""), ...vi(2, 17)]),
    ...ld(8, [...str(1, "com.microsoft"), ...vi(2, 1)]),
  ];
  return Uint8Array.from(model);
}
