// Hand-written ONNX protobuf for one-node test and baseline models (field numbers from onnx/onnx.proto: ModelProto,
// GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto, TypeProto.Tensor, TensorShapeProto).

export function varint(n: number | bigint): number[] {
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
export const ld = (field: number, bytes: ArrayLike<number>): number[] => [...varint((field << 3) | 2), ...varint(bytes.length), ...Array.from(bytes)];
/** Varint field (wire type 0). */
export const vi = (field: number, n: number): number[] => [...varint(field << 3), ...varint(n)];
export const str = (field: number, s: string): number[] => ld(field, utf8(s));

/** TensorProto.DataType values used here. */
export const ELEM = { float: 1, uint8: 2, int32: 6, int64: 7, float16: 10 } as const;
export type ElemType = keyof typeof ELEM;

/** ValueInfoProto with a tensor type; dims are numbers (dim_value) or names (dim_param). */
export function valueInfo(name: string, elem: ElemType, dims: Array<number | string>): number[] {
  const shape = dims.flatMap((d) => ld(1, typeof d === "number" ? vi(1, d) : str(2, d)));
  return [...str(1, name), ...ld(2, ld(1, [...vi(1, ELEM[elem]), ...ld(2, shape)]))];
}

/** TensorProto with raw_data: dims (1), data_type (2), name (8), raw_data (9). */
export function initializer(name: string, elem: ElemType, dims: number[], raw: Uint8Array): number[] {
  return [...dims.flatMap((d) => vi(1, d)), ...vi(2, ELEM[elem]), ...str(8, name), ...ld(9, raw)];
}

/**
 * TensorProto whose bytes live in an external data file (as transformers.js ships large models: `.onnx_data`):
 * external_data (13) = {location, offset, length}, data_location (14) = EXTERNAL.
 */
export function externalInitializer(name: string, elem: ElemType, dims: number[], location: string, offset: number, length: number): number[] {
  const entry = (k: string, v: string) => ld(13, [...str(1, k), ...str(2, v)]);
  return [...dims.flatMap((d) => vi(1, d)), ...vi(2, ELEM[elem]), ...str(8, name), ...entry("location", location), ...entry("offset", String(offset)), ...entry("length", String(length)), ...vi(14, 1)];
}

/** AttributeProto of type INT. */
export const intAttr = (name: string, v: number): number[] => [...str(1, name), ...vi(3, v), ...vi(20, 2)];

/** AttributeProto of type FLOAT: f (field 2, fixed32). */
export function floatAttr(name: string, v: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...str(1, name), ...varint((2 << 3) | 5), ...b, ...vi(20, 1)];
}

export interface OnnxNode {
  readonly op: string;
  readonly domain?: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly intAttrs?: Readonly<Record<string, number>>;
  readonly floatAttrs?: Readonly<Record<string, number>>;
}

/** A ModelProto (IR 8, opset 17 + com.microsoft 1) of one graph. */
export function onnxModel(graph: {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers?: readonly number[][];
  readonly inputs: readonly number[][];
  readonly outputs: readonly number[][];
}): Uint8Array {
  const nodes = graph.nodes.flatMap((n, i) =>
    ld(1, [
      ...n.inputs.flatMap((x) => str(1, x)),
      ...n.outputs.flatMap((x) => str(2, x)),
      ...str(3, `n${i}`),
      ...str(4, n.op),
      ...Object.entries(n.intAttrs ?? {}).flatMap(([k, v]) => ld(5, intAttr(k, v))),
      ...Object.entries(n.floatAttrs ?? {}).flatMap(([k, v]) => ld(5, floatAttr(k, v))),
      ...(n.domain ? str(7, n.domain) : []),
    ]),
  );
  const g = [
    ...nodes,
    ...str(2, graph.name),
    ...(graph.initializers ?? []).flatMap((t) => ld(5, t)),
    ...graph.inputs.flatMap((v) => ld(11, v)),
    ...graph.outputs.flatMap((v) => ld(12, v)),
  ];
  return Uint8Array.from([...vi(1, 8), ...str(2, "mla-edge"), ...ld(7, g), ...ld(8, [...str(1, ""), ...vi(2, 17)]), ...ld(8, [...str(1, "com.microsoft"), ...vi(2, 1)])]);
}
