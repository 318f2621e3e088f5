// A one-node ONNX model (com.microsoft.GroupQueryAttention, decode shape) written as protobuf bytes by hand, for the
// onnxruntime-web baseline of the kernels benchmark. Field numbers from onnx/onnx.proto (ModelProto, GraphProto,
// NodeProto, AttributeProto, ValueInfoProto, TypeProto.Tensor, TensorShapeProto).

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
/** Length-delimited field (wire type 2). */
const ld = (field: number, bytes: number[]): number[] => [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
/** Varint field (wire type 0). */
const vi = (field: number, n: number): number[] => [...varint(field << 3), ...varint(n)];
const str = (field: number, s: string): number[] => ld(field, utf8(s));

const ELEM = { float: 1, int32: 6 } as const;

/** ValueInfoProto with a tensor type; dims are numbers (dim_value) or names (dim_param). */
function valueInfo(name: string, elem: keyof typeof ELEM, dims: Array<number | string>): number[] {
  const shape = dims.flatMap((d) => ld(1, typeof d === "number" ? vi(1, d) : str(2, d)));
  const tensor = [...vi(1, ELEM[elem]), ...ld(2, shape)];
  return [...str(1, name), ...ld(2, ld(1, tensor))];
}

function intAttr(name: string, v: number): number[] {
  return [...str(1, name), ...vi(3, v), ...vi(20, 2)];
}

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
