// Deterministic safetensors serialisation: tensors sorted by name, `__metadata__` first, header padded to 8 bytes.
// Pure (no I/O): io.node.ts streams the same plan to disk; tests and browsers serialise to one buffer.

import { DTYPE_BYTES, encodeTensor, type WritableDtype } from "./dtype.ts";
import { CheckpointError } from "./errors.ts";
import { elementCount } from "./safetensors-header.ts";

/** Values to encode, or (Uint8Array) bytes already encoded in the entry's dtype, written as they are. */
export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array;

/** A tensor to write. `data` may be a function so that large checkpoints are produced one tensor at a time. */
export interface TensorToWrite {
  readonly name: string;
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  readonly data: TensorData | (() => TensorData | Promise<TensorData>);
}

export interface PlannedTensor {
  readonly tensor: TensorToWrite;
  /** Absolute byte offsets in the file. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsPlan {
  /** The 8-byte length prefix followed by the padded JSON header. */
  readonly header: Uint8Array;
  /** In file order (sorted by name). */
  readonly tensors: readonly PlannedTensor[];
  readonly totalBytes: number;
}

/** Lays out a file: validates names and shapes, sorts by name, computes offsets and the header bytes. */
export function planSafetensors(tensors: readonly TensorToWrite[], metadata: Readonly<Record<string, string>> = {}): SafetensorsPlan {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (t.name.length === 0 || t.name === "__metadata__") {
      throw new CheckpointError("bad_header", `invalid tensor name ${JSON.stringify(t.name)}`);
    }
    if (i > 0 && sorted[i - 1].name === t.name) throw new CheckpointError("duplicate_tensor", `tensor ${t.name} given twice`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError("bad_header", `tensor ${t.name} has an invalid shape [${t.shape.join(", ")}]`);
    }
  }
  const table: Record<string, unknown> = {};
  const meta: Record<string, string> = {};
  for (const k of Object.keys(metadata).sort()) meta[k] = metadata[k];
  table.__metadata__ = meta;
  let offset = 0;
  const spans: Array<[number, number]> = [];
  for (const t of sorted) {
    const bytes = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    table[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    spans.push([offset, offset + bytes]);
    offset += bytes;
  }
  let json = JSON.stringify(table);
  const rawLength = new TextEncoder().encode(json).byteLength;
  json += " ".repeat((8 - (rawLength % 8)) % 8); // the format pads with spaces so data starts 8-byte aligned
  const jsonBytes = new TextEncoder().encode(json);
  const header = new Uint8Array(8 + jsonBytes.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  header.set(jsonBytes, 8);
  const dataStart = header.byteLength;
  return {
    header,
    tensors: sorted.map((tensor, i) => ({ tensor, begin: dataStart + spans[i][0], end: dataStart + spans[i][1] })),
    totalBytes: dataStart + offset,
  };
}

/** Resolves a tensor's data and encodes it to its dtype, checking the element count against the shape. */
export async function encodePlannedTensor(p: PlannedTensor): Promise<Uint8Array> {
  const t = p.tensor;
  const data = typeof t.data === "function" ? await t.data() : t.data;
  const n = elementCount(t.shape);
  if (data instanceof Uint8Array) {
    if (data.byteLength !== p.end - p.begin) {
      throw new CheckpointError("shape_mismatch", `tensor ${t.name}: ${t.dtype}[${t.shape.join(", ")}] needs ${p.end - p.begin} bytes, got ${data.byteLength}`);
    }
    return data;
  }
  if (data.length !== n) {
    throw new CheckpointError("shape_mismatch", `tensor ${t.name}: shape [${t.shape.join(", ")}] needs ${n} values, got ${data.length}`);
  }
  const bytes = encodeTensor(data, t.dtype, t.name);
  if (bytes.byteLength !== p.end - p.begin) throw new CheckpointError("bad_header", `tensor ${t.name}: encoded size mismatch`);
  return bytes;
}

/** Serialises a whole file into memory. */
export async function serializeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata: Readonly<Record<string, string>> = {},
): Promise<Uint8Array> {
  const plan = planSafetensors(tensors, metadata);
  const out = new Uint8Array(plan.totalBytes);
  out.set(plan.header, 0);
  for (const p of plan.tensors) out.set(await encodePlannedTensor(p), p.begin);
  return out;
}

/** Splits tensors (in name order) into shards of at most `maxShardBytes` of data each (a larger tensor gets its own). */
export function groupIntoShards(tensors: readonly TensorToWrite[], maxShardBytes: number): TensorToWrite[][] {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let bytes = 0;
  for (const t of sorted) {
    const size = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    if (current.length > 0 && bytes + size > maxShardBytes) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += size;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

/** HF shard file name: `model-00001-of-00004.safetensors`. */
export function shardFileName(base: string, index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, "0");
  return `${base}-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}
