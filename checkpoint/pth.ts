// PyTorch `torch.save` archives (the zip format of torch ≥ 1.6) read without Python, browser-safe (no node: imports).
//
// An archive is a zip with `<name>/data.pkl` (a pickle), `<name>/data/<key>` (one raw little-endian storage per key)
// and `<name>/version`. Only the pickle subset that describes a tensor, or a dict / OrderedDict / list / tuple of
// tensors, is interpreted: GLOBAL is honoured for an allow-list (tensor rebuild, typed storages, OrderedDict) and
// every other global or opcode is refused with a PthError naming it. Nothing in the pickle is ever executed: the
// allowed globals are recognised by name and their effect is implemented here. docs/checkpoint.md §4.

import { inflateSync } from "fflate";
import { MlaError } from "../format/errors.ts";

export type PthErrorCode =
  | "bad_zip" // not a zip, truncated, CRC mismatch, unsupported zip feature
  | "missing_entry" // no data.pkl, or a storage key without its data/<key> entry
  | "bad_pickle" // malformed pickle: stack underflow, bad operand, truncated stream
  | "refused_global" // GLOBAL / STACK_GLOBAL of a name outside the allow-list (e.g. posix.system)
  | "refused_opcode" // an opcode outside the supported subset (e.g. INST, OBJ, NEWOBJ, EXT1)
  | "bad_storage" // storage size, offset/shape/stride out of the storage's bounds
  | "unsupported_dtype"
  | "not_a_tensor"; // the pickle's value is not the tensor (or dict of tensors) the caller asked for

/** Failure to read a `.pth` archive; `code` is stable, the message names the file and the offending op or global. */
export class PthError extends MlaError<PthErrorCode> {
  override readonly name = "PthError";
  constructor(
    code: PthErrorCode,
    message: string,
    /** The refused opcode or global (`"posix.system"`, `"INST"`), when that is the reason. */
    readonly refused: string | null = null,
  ) {
    super(code, message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// zip

interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
  readonly crc: number;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function readCentralDirectory(bytes: Uint8Array, label: string): ZipEntry[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  let eocd = -1;
  for (let i = n - 22; i >= Math.max(0, n - 22 - 0xffff); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new PthError("bad_zip", `${label}: no zip end-of-central-directory record (not a torch.save zip archive, or truncated)`);
  const count = dv.getUint16(eocd + 10, true);
  const cdSize = dv.getUint32(eocd + 12, true);
  const cdOffset = dv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdOffset === 0xffffffff || cdSize === 0xffffffff) {
    throw new PthError("bad_zip", `${label}: zip64 archives are not supported (archive over 4 GiB or 65535 entries)`);
  }
  if (cdOffset + cdSize > eocd) throw new PthError("bad_zip", `${label}: central directory at ${cdOffset}+${cdSize} runs past the end record at ${eocd} (truncated?)`);
  const entries: ZipEntry[] = [];
  let p = cdOffset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > eocd || dv.getUint32(p, true) !== 0x02014b50) throw new PthError("bad_zip", `${label}: central directory entry ${k} is malformed`);
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    const compressedSize = dv.getUint32(p + 20, true);
    const size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    const localOffset = dv.getUint32(p + 42, true);
    if (p + 46 + nameLen > eocd) throw new PthError("bad_zip", `${label}: central directory entry ${k} is truncated`);
    const name = utf8.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    if (flags & 1) throw new PthError("bad_zip", `${label}: ${name} is encrypted`);
    if (compressedSize === 0xffffffff || size === 0xffffffff || localOffset === 0xffffffff) {
      throw new PthError("bad_zip", `${label}: ${name} needs zip64, which is not supported`);
    }
    entries.push({ name, method, compressedSize, size, localOffset, crc });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

function entryBytes(bytes: Uint8Array, e: ZipEntry, label: string): Uint8Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lh = e.localOffset;
  if (lh + 30 > bytes.byteLength || dv.getUint32(lh, true) !== 0x04034b50) throw new PthError("bad_zip", `${label}: ${e.name}: no local header at ${lh}`);
  const start = lh + 30 + dv.getUint16(lh + 26, true) + dv.getUint16(lh + 28, true);
  if (start + e.compressedSize > bytes.byteLength) {
    throw new PthError("bad_zip", `${label}: ${e.name}: ${e.compressedSize} bytes at ${start} run past the end of the ${bytes.byteLength}-byte file (truncated)`);
  }
  const raw = bytes.subarray(start, start + e.compressedSize);
  let out: Uint8Array;
  if (e.method === 0) out = raw;
  else if (e.method === 8) {
    try {
      out = inflateSync(raw, { out: new Uint8Array(e.size) });
    } catch (cause) {
      throw new PthError("bad_zip", `${label}: ${e.name}: deflate stream is corrupt (${(cause as Error).message})`);
    }
  } else throw new PthError("bad_zip", `${label}: ${e.name}: zip compression method ${e.method} is not supported (stored and deflate are)`);
  if (out.byteLength !== e.size) throw new PthError("bad_zip", `${label}: ${e.name}: ${out.byteLength} bytes, the directory says ${e.size}`);
  if (crc32(out) !== e.crc) throw new PthError("bad_zip", `${label}: ${e.name}: CRC-32 mismatch (corrupt archive)`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// tensors

export type PthDtype = "uint8" | "int8" | "int16" | "int32" | "int64" | "float16" | "bfloat16" | "float32" | "float64" | "bool";

/** Element values in C order; float16/bfloat16 as their raw bits (see `pthTensorToFloat64`), int64 as BigInt64Array. */
export type PthTensorData = Uint8Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint16Array | Float32Array | Float64Array;

export interface PthTensor {
  readonly dtype: PthDtype;
  readonly shape: readonly number[];
  readonly data: PthTensorData;
}

/** The typed storage classes `torch.save` names, and their element types. */
const STORAGE_DTYPES: Readonly<Record<string, PthDtype>> = {
  "torch.ByteStorage": "uint8",
  "torch.CharStorage": "int8",
  "torch.ShortStorage": "int16",
  "torch.IntStorage": "int32",
  "torch.LongStorage": "int64",
  "torch.HalfStorage": "float16",
  "torch.BFloat16Storage": "bfloat16",
  "torch.FloatStorage": "float32",
  "torch.DoubleStorage": "float64",
  "torch.BoolStorage": "bool",
};

const DTYPE_BYTES: Readonly<Record<PthDtype, number>> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  bfloat16: 2,
  float32: 4,
  float64: 8,
  bool: 1,
};

function typedView(dtype: PthDtype, buf: ArrayBuffer, count: number): PthTensorData {
  switch (dtype) {
    case "uint8":
    case "bool":
      return new Uint8Array(buf, 0, count);
    case "int8":
      return new Int8Array(buf, 0, count);
    case "int16":
      return new Int16Array(buf, 0, count);
    case "int32":
      return new Int32Array(buf, 0, count);
    case "int64":
      return new BigInt64Array(buf, 0, count);
    case "float16":
    case "bfloat16":
      return new Uint16Array(buf, 0, count);
    case "float32":
      return new Float32Array(buf, 0, count);
    case "float64":
      return new Float64Array(buf, 0, count);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Values as numbers (f16/bf16 decoded exactly; int64 beyond 2^53 refused). */
export function pthTensorToFloat64(t: PthTensor): Float64Array {
  const out = new Float64Array(t.data.length);
  if (t.data instanceof BigInt64Array) {
    for (let i = 0; i < out.length; i++) {
      const v = t.data[i];
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new PthError("unsupported_dtype", `int64 value ${v} is not a safe integer`);
      out[i] = Number(v);
    }
  } else if (t.dtype === "float16") {
    for (let i = 0; i < out.length; i++) out[i] = halfBitsToFloat(t.data[i] as number);
  } else if (t.dtype === "bfloat16") {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < out.length; i++) {
      u[0] = (t.data[i] as number) << 16;
      out[i] = f[0];
    }
  } else {
    for (let i = 0; i < out.length; i++) out[i] = t.data[i] as number;
  }
  return out;
}

function halfBitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// ---------------------------------------------------------------------------------------------------------------
// pickle subset

/** A reference to an allowed global: recognised by name, never resolved or called. */
class AllowedGlobal {
  constructor(readonly qualname: string) {}
}
class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
class PyDict {
  readonly map = new Map<string | number, PyValue>();
  constructor(readonly ordered: boolean) {}
}
class StorageRef {
  constructor(
    readonly dtype: PthDtype,
    readonly key: string,
    readonly numel: number,
  ) {}
}
class TensorValue {
  constructor(readonly tensor: PthTensor) {}
}
const MARK = Symbol("mark");

type PyValue = null | boolean | number | string | PyValue[] | PyTuple | PyDict | AllowedGlobal | StorageRef | TensorValue;

/** Globals a tensor pickle may name. Anything else (os.system, posix.system, builtins.eval, …) is refused on sight. */
const ALLOWED_GLOBALS = new Set<string>(["torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict", ...Object.keys(STORAGE_DTYPES)]);

const OPNAMES: Readonly<Record<number, string>> = {
  0x28: "MARK", 0x2e: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT", 0x4a: "BININT", 0x4b: "BININT1",
  0x4c: "LONG", 0x4d: "BININT2", 0x4e: "NONE", 0x50: "PERSID", 0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING", 0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND", 0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT",
  0x7d: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6a: "LONG_BINGET", 0x6c: "LIST", 0x5d: "EMPTY_LIST",
  0x6f: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT", 0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS",
  0x47: "BINFLOAT", 0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1", 0x86: "TUPLE2",
  0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8a: "LONG1", 0x8b: "LONG4", 0x42: "BINBYTES", 0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8", 0x8e: "BINBYTES8", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
  0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
};

interface Unpickled {
  readonly value: PyValue;
}

/** Largest tensor one read materialises (an expanded view of a tiny storage cannot ask for unbounded memory). */
const MAX_TENSOR_BYTES = 2 ** 31;

/** Gathers a (possibly strided) view of a storage into a contiguous C-order tensor; bounds are checked. */
function rebuildTensor(storage: PyValue, offsetV: PyValue, sizeV: PyValue, strideV: PyValue, readStorage: (s: StorageRef) => Uint8Array, label: string): TensorValue {
  if (!(storage instanceof StorageRef)) throw new PthError("bad_pickle", `${label}: _rebuild_tensor_v2's first argument is not a storage`);
  const ints = (v: PyValue, what: string): number[] => {
    if (!(v instanceof PyTuple) || !v.items.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0)) {
      throw new PthError("bad_pickle", `${label}: tensor ${what} must be a tuple of non-negative integers`);
    }
    return v.items as number[];
  };
  if (typeof offsetV !== "number" || !Number.isSafeInteger(offsetV) || offsetV < 0) throw new PthError("bad_pickle", `${label}: tensor storage offset must be a non-negative integer`);
  const shape = ints(sizeV, "size");
  const stride = ints(strideV, "stride");
  if (shape.length !== stride.length) throw new PthError("bad_pickle", `${label}: tensor size has ${shape.length} dims, stride ${stride.length}`);
  const count = shape.reduce((a, b) => a * b, 1);
  const esz = DTYPE_BYTES[storage.dtype];
  if (count * esz > MAX_TENSOR_BYTES) {
    throw new PthError("bad_storage", `${label}: tensor of shape [${shape}] needs ${count * esz} bytes, over the ${MAX_TENSOR_BYTES}-byte limit of an in-memory read`);
  }
  const bytes = readStorage(storage);
  if (count > 0) {
    let last = offsetV;
    shape.forEach((s, i) => (last += (s - 1) * stride[i]));
    if (last >= storage.numel) {
      throw new PthError("bad_storage", `${label}: tensor of shape [${shape}] stride [${stride}] at offset ${offsetV} reaches element ${last} of a ${storage.numel}-element storage '${storage.key}'`);
    }
  }
  const out = new Uint8Array(count * esz);
  let contiguous = true;
  for (let i = shape.length - 1, expect = 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) contiguous = false;
    expect *= shape[i];
  }
  if (contiguous) out.set(bytes.subarray(offsetV * esz, (offsetV + count) * esz));
  else {
    // non-contiguous (transposed, sliced, expanded): gather element by element into C order
    const idx = new Array<number>(shape.length).fill(0);
    for (let k = 0; k < count; k++) {
      let src = offsetV;
      for (let i = 0; i < shape.length; i++) src += idx[i] * stride[i];
      out.set(bytes.subarray(src * esz, (src + 1) * esz), k * esz);
      for (let i = shape.length - 1; i >= 0; i--) {
        if (++idx[i] < shape[i]) break;
        idx[i] = 0;
      }
    }
  }
  return new TensorValue({ dtype: storage.dtype, shape, data: typedView(storage.dtype, out.buffer, count) });
}

function unpickle(p: Uint8Array, label: string, readStorage: (s: StorageRef) => Uint8Array): Unpickled {
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const stack: (PyValue | typeof MARK)[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  const need = (n: number, op: string): void => {
    if (pos + n > p.byteLength) throw new PthError("bad_pickle", `${label}: ${op} at byte ${pos} runs past the end of data.pkl (truncated)`);
  };
  const pop = (op: string): PyValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw new PthError("bad_pickle", `${label}: ${op}: stack underflow`);
    return v;
  };
  const popMark = (op: string): PyValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) throw new PthError("bad_pickle", `${label}: ${op} without MARK`);
    const items = stack.splice(at) as PyValue[];
    items.shift();
    return items;
  };
  const top = (op: string): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw new PthError("bad_pickle", `${label}: ${op}: stack underflow`);
    return v;
  };
  const dictKey = (k: PyValue, op: string): string | number => {
    if (typeof k === "string" || typeof k === "number") return k;
    throw new PthError("bad_pickle", `${label}: ${op}: dict keys must be strings or integers`);
  };
  const setItems = (d: PyValue, kv: PyValue[], op: string): void => {
    if (!(d instanceof PyDict)) throw new PthError("bad_pickle", `${label}: ${op} on a non-dict`);
    if (kv.length % 2) throw new PthError("bad_pickle", `${label}: ${op} with an odd number of items`);
    for (let i = 0; i < kv.length; i += 2) d.map.set(dictKey(kv[i], op), kv[i + 1]);
  };
  const global = (module: string, name: string, op: string): AllowedGlobal => {
    const q = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(q)) {
      throw new PthError("refused_global", `${label}: pickle ${op} '${q}' refused: only torch tensor rebuilding and OrderedDict are allowed; nothing was executed`, q);
    }
    return new AllowedGlobal(q);
  };
  const readLine = (op: string): string => {
    const end = p.indexOf(0x0a, pos);
    if (end < 0) throw new PthError("bad_pickle", `${label}: ${op}: unterminated line`);
    const s = utf8.decode(p.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (n: number, op: string): string => {
    need(n, op);
    const s = utf8.decode(p.subarray(pos, pos + n));
    pos += n;
    return s;
  };

  for (;;) {
    need(1, "opcode");
    const op = p[pos++];
    const name = OPNAMES[op] ?? `0x${op.toString(16)}`;
    switch (op) {
      case 0x80: // PROTO
        need(1, name);
        if (p[pos] > 5) throw new PthError("bad_pickle", `${label}: pickle protocol ${p[pos]} is unknown`);
        pos += 1;
        break;
      case 0x95: // FRAME (protocol 4): a length hint only
        need(8, name);
        pos += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || stack[0] === MARK) throw new PthError("bad_pickle", `${label}: STOP with ${stack.length} items on the stack`);
        return { value: stack[0] as PyValue };
      case 0x28:
        stack.push(MARK);
        break;
      case 0x30:
        pop(name);
        break;
      case 0x31:
        popMark(name);
        break;
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4a:
        need(4, name);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b:
        need(1, name);
        stack.push(p[pos]);
        pos += 1;
        break;
      case 0x4d:
        need(2, name);
        stack.push(dv.getUint16(pos, true));
        pos += 2;
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        need(1, name);
        const n = p[pos++];
        need(n, name);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(p[pos + i]);
        if (n > 0 && p[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new PthError("bad_pickle", `${label}: integer ${v} is too large`);
        stack.push(Number(v));
        break;
      }
      case 0x47:
        need(8, name);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: {
        need(4, name);
        const n = dv.getUint32(pos, true);
        pos += 4;
        stack.push(str(n, name));
        break;
      }
      case 0x8c: {
        need(1, name);
        const n = p[pos++];
        stack.push(str(n, name));
        break;
      }
      case 0x5d:
        stack.push([]);
        break;
      case 0x7d:
        stack.push(new PyDict(false));
        break;
      case 0x29:
        stack.push(new PyTuple([]));
        break;
      case 0x74:
        stack.push(new PyTuple(popMark(name)));
        break;
      case 0x85:
        stack.push(new PyTuple([pop(name)]));
        break;
      case 0x86: {
        const b = pop(name);
        stack.push(new PyTuple([pop(name), b]));
        break;
      }
      case 0x87: {
        const c = pop(name);
        const b = pop(name);
        stack.push(new PyTuple([pop(name), b, c]));
        break;
      }
      case 0x6c:
        stack.push(popMark(name));
        break;
      case 0x64: {
        const d = new PyDict(false);
        setItems(d, popMark(name), name);
        stack.push(d);
        break;
      }
      case 0x61: {
        const v = pop(name);
        const l = top(name);
        if (!Array.isArray(l)) throw new PthError("bad_pickle", `${label}: APPEND to a non-list`);
        l.push(v);
        break;
      }
      case 0x65: {
        const items = popMark(name);
        const l = top(name);
        if (!Array.isArray(l)) throw new PthError("bad_pickle", `${label}: APPENDS to a non-list`);
        l.push(...items);
        break;
      }
      case 0x73: {
        const v = pop(name);
        const k = pop(name);
        setItems(top(name), [k, v], name);
        break;
      }
      case 0x75: {
        const kv = popMark(name);
        setItems(top(name), kv, name);
        break;
      }
      case 0x71:
      case 0x72:
      case 0x94: {
        let idx: number;
        if (op === 0x71) {
          need(1, name);
          idx = p[pos++];
        } else if (op === 0x72) {
          need(4, name);
          idx = dv.getUint32(pos, true);
          pos += 4;
        } else idx = memo.size;
        memo.set(idx, top(name));
        break;
      }
      case 0x68:
      case 0x6a: {
        let idx: number;
        if (op === 0x68) {
          need(1, name);
          idx = p[pos++];
        } else {
          need(4, name);
          idx = dv.getUint32(pos, true);
          pos += 4;
        }
        if (!memo.has(idx)) throw new PthError("bad_pickle", `${label}: ${name} of unset memo slot ${idx}`);
        stack.push(memo.get(idx)!);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n": checked against the allow-list before anything else happens
        const module = readLine(name);
        const qual = readLine(name);
        stack.push(global(module, qual, name));
        break;
      }
      case 0x93: {
        const qual = pop(name);
        const module = pop(name);
        if (typeof module !== "string" || typeof qual !== "string") throw new PthError("bad_pickle", `${label}: STACK_GLOBAL needs two strings`);
        stack.push(global(module, qual, name));
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', <Storage type>, key, location, numel)
        const pid = pop(name);
        if (
          !(pid instanceof PyTuple) ||
          pid.items.length !== 5 ||
          pid.items[0] !== "storage" ||
          !(pid.items[1] instanceof AllowedGlobal) ||
          typeof pid.items[2] !== "string" ||
          typeof pid.items[4] !== "number"
        ) {
          throw new PthError("bad_pickle", `${label}: persistent id is not ('storage', <Storage type>, key, location, numel)`);
        }
        const dtype = STORAGE_DTYPES[pid.items[1].qualname];
        if (dtype === undefined) throw new PthError("bad_pickle", `${label}: persistent id names ${pid.items[1].qualname}, not a storage type`);
        stack.push(new StorageRef(dtype, pid.items[2], pid.items[4]));
        break;
      }
      case 0x52: {
        // REDUCE: only the allowed callables, each implemented here
        const args = pop(name);
        const fn = pop(name);
        if (!(fn instanceof AllowedGlobal) || !(args instanceof PyTuple)) {
          throw new PthError("refused_opcode", `${label}: REDUCE of a ${fn instanceof AllowedGlobal ? "non-tuple argument" : "value that is not an allowed global"} refused`, "REDUCE");
        }
        const a = args.items;
        if (fn.qualname === "collections.OrderedDict") {
          if (a.length !== 0) throw new PthError("refused_opcode", `${label}: OrderedDict(...) with arguments refused`, "REDUCE");
          stack.push(new PyDict(true));
        } else if (fn.qualname === "torch._utils._rebuild_tensor_v2") {
          if (a.length < 4) throw new PthError("bad_pickle", `${label}: _rebuild_tensor_v2 needs (storage, offset, size, stride, …)`);
          stack.push(rebuildTensor(a[0], a[1], a[2], a[3], readStorage, label));
        } else if (fn.qualname === "torch._utils._rebuild_parameter") {
          if (!(a[0] instanceof TensorValue)) throw new PthError("bad_pickle", `${label}: _rebuild_parameter of a non-tensor`);
          stack.push(a[0]);
        } else {
          throw new PthError("refused_opcode", `${label}: REDUCE of ${fn.qualname} refused (it is only allowed as a storage type)`, "REDUCE");
        }
        break;
      }
      case 0x62: {
        // BUILD: only attribute state set on an OrderedDict (state_dict()._metadata); ignored
        const state = pop(name);
        const obj = top(name);
        if (!(obj instanceof PyDict) || !(state instanceof PyDict || state === null)) {
          throw new PthError("refused_opcode", `${label}: BUILD on anything but a dict refused`, "BUILD");
        }
        break;
      }
      default:
        throw new PthError("refused_opcode", `${label}: pickle opcode ${name} at byte ${pos - 1} is outside the tensor subset and is refused; nothing was executed`, name);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// public API

/** What a `.pth` holds: one tensor, or named tensors (dict / OrderedDict, insertion order kept). */
export type PthContent = { readonly kind: "tensor"; readonly tensor: PthTensor } | { readonly kind: "dict"; readonly tensors: ReadonlyMap<string, PthTensor> };

/**
 * Reads a `torch.save` zip archive held in memory. `label` (a path or URL) appears in every error message.
 * Storages are read only when a tensor references them; each must be exactly numel × element size bytes.
 */
export function readPth(bytes: Uint8Array | ArrayBuffer, label = "<pth>"): PthContent {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (!LITTLE_ENDIAN) throw new PthError("unsupported_dtype", `${label}: this reader needs a little-endian platform`);
  const entries = readCentralDirectory(buf, label);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const pkls = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkls.length !== 1) {
    throw new PthError("missing_entry", `${label}: ${pkls.length === 0 ? "no <name>/data.pkl entry" : "several data.pkl entries"}; not a torch.save archive`);
  }
  const prefix = pkls[0].name.slice(0, -"data.pkl".length);
  const order = byName.get(`${prefix}byteorder`);
  if (order !== undefined && new TextDecoder().decode(entryBytes(buf, order, label)).trim() !== "little") {
    throw new PthError("unsupported_dtype", `${label}: big-endian archives are not supported`);
  }
  const storages = new Map<string, Uint8Array>();
  const readStorage = (s: StorageRef): Uint8Array => {
    let data = storages.get(s.key);
    if (data === undefined) {
      const e = byName.get(`${prefix}data/${s.key}`);
      if (e === undefined) throw new PthError("missing_entry", `${label}: storage '${s.key}' has no ${prefix}data/${s.key} entry`);
      data = entryBytes(buf, e, label);
      const want = s.numel * DTYPE_BYTES[s.dtype];
      if (data.byteLength !== want) {
        throw new PthError("bad_storage", `${label}: ${prefix}data/${s.key} has ${data.byteLength} bytes; a ${s.numel}-element ${s.dtype} storage needs ${want}`);
      }
      storages.set(s.key, data);
    }
    return data;
  };
  const { value } = unpickle(entryBytes(buf, pkls[0], label), label, readStorage);
  if (value instanceof TensorValue) return { kind: "tensor", tensor: value.tensor };
  if (value instanceof PyDict) {
    const tensors = new Map<string, PthTensor>();
    for (const [k, v] of value.map) {
      if (!(v instanceof TensorValue)) throw new PthError("not_a_tensor", `${label}: dict entry ${JSON.stringify(k)} is not a tensor`);
      tensors.set(String(k), v.tensor);
    }
    return { kind: "dict", tensors };
  }
  throw new PthError("not_a_tensor", `${label}: the pickle holds ${Array.isArray(value) ? "a list" : value instanceof PyTuple ? "a tuple" : typeof value}, not a tensor or a dict of tensors`);
}

/**
 * The one tensor of a `.pth`: the pickled tensor itself, or `key` of a dict, or a dict's only tensor when no key is
 * given. Anything else is `not_a_tensor`.
 */
export function readPthTensor(bytes: Uint8Array | ArrayBuffer, label = "<pth>", key?: string): PthTensor {
  const c = readPth(bytes, label);
  if (c.kind === "tensor") return c.tensor;
  if (key !== undefined) {
    const t = c.tensors.get(key);
    if (t === undefined) throw new PthError("not_a_tensor", `${label}: no tensor '${key}' in the dict (keys: ${[...c.tensors.keys()].join(", ")})`);
    return t;
  }
  if (c.tensors.size !== 1) throw new PthError("not_a_tensor", `${label}: the dict holds ${c.tensors.size} tensors (${[...c.tensors.keys()].join(", ")}); name one`);
  return c.tensors.values().next().value!;
}
