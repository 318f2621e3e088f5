// Test-only writer of torch.save-style archives: a stored (or deflated) zip and a protocol-2 pickle laid out exactly
// as PyTorch 1.13 writes it for one tensor (compare `python -m pickletools` on fixtures/released-ranks/*.pth). Used to
// build rank files for models the fixtures do not cover and malformed or hostile archives; the reader itself is
// checked against the files PyTorch wrote.

import { deflateSync } from "fflate";

const enc = new TextEncoder();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    c ^= bytes[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

export interface ZipInput {
  readonly name: string;
  readonly data: Uint8Array;
  readonly deflate?: boolean;
}

/** A zip archive of the given entries (stored unless `deflate`). */
export function zip(entries: readonly ZipInput[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const body = e.deflate ? deflateSync(e.data) : e.data;
    const crc = crc32(e.data);
    const lh = new Uint8Array(30 + name.length);
    const l = new DataView(lh.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 20, true);
    l.setUint16(8, e.deflate ? 8 : 0, true);
    l.setUint32(14, crc, true);
    l.setUint32(18, body.length, true);
    l.setUint32(22, e.data.length, true);
    l.setUint16(26, name.length, true);
    lh.set(name, 30);
    const ch = new Uint8Array(46 + name.length);
    const c = new DataView(ch.buffer);
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 20, true);
    c.setUint16(6, 20, true);
    c.setUint16(10, e.deflate ? 8 : 0, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, body.length, true);
    c.setUint32(24, e.data.length, true);
    c.setUint16(28, name.length, true);
    c.setUint32(42, offset, true);
    ch.set(name, 46);
    parts.push(lh, body);
    central.push(ch);
    offset += lh.length + body.length;
  }
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  const eocd = new Uint8Array(22);
  const d = new DataView(eocd.buffer);
  d.setUint32(0, 0x06054b50, true);
  d.setUint16(8, entries.length, true);
  d.setUint16(10, entries.length, true);
  d.setUint32(12, cdSize, true);
  d.setUint32(16, offset, true);
  const all = [...parts, ...central, eocd];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let p = 0;
  for (const a of all) {
    out.set(a, p);
    p += a.length;
  }
  return out;
}

/** Pickle byte builder (protocol 2 opcodes). */
export class Pickle {
  private readonly bytes: number[] = [0x80, 2];
  private memo = 0;
  op(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...enc.encode(`${module}\n${name}\n`)).put();
  }
  str(s: string): this {
    const b = enc.encode(s);
    return this.op(0x58, b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, b.length >>> 24, ...b).put();
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, n, true);
    return this.op(0x4a, ...b);
  }
  put(): this {
    return this.op(0x71, this.memo++);
  }
  ints(xs: readonly number[]): this {
    this.op(0x28);
    xs.forEach((x) => this.int(x));
    return this.op(0x74).put();
  }
  /** `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` as torch.save writes it. */
  tensor(storageType: string, key: string, numel: number, offset: number, shape: readonly number[], stride: readonly number[]): this {
    this.global("torch._utils", "_rebuild_tensor_v2").op(0x28);
    this.op(0x28).str("storage").global("torch", storageType).str(key).str("cpu").int(numel).op(0x74).put().op(0x51);
    this.int(offset).ints(shape).ints(stride).op(0x89);
    this.global("collections", "OrderedDict").op(0x29, 0x52).put();
    return this.op(0x74).put().op(0x52).put();
  }
  stop(): Uint8Array {
    return Uint8Array.from([...this.bytes, 0x2e]);
  }
}

/** A torch.save archive `<name>/data.pkl`, `<name>/data/<key>…`, `<name>/version`. */
export function pthArchive(name: string, pickle: Uint8Array, storages: Readonly<Record<string, Uint8Array>>, options: { deflate?: boolean } = {}): Uint8Array {
  return zip([
    { name: `${name}/data.pkl`, data: pickle, deflate: options.deflate },
    ...Object.entries(storages).map(([k, v]) => ({ name: `${name}/data/${k}`, data: v, deflate: options.deflate })),
    { name: `${name}/version`, data: enc.encode("3\n") },
  ]);
}

/** A contiguous uint8 tensor file, as `torch.save(torch.tensor(values, dtype=torch.uint8).reshape(shape), path)`. */
export function uint8TensorPth(name: string, values: ArrayLike<number>, shape: readonly number[]): Uint8Array {
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const pickle = new Pickle().tensor("ByteStorage", "0", values.length, 0, shape, stride).stop();
  return pthArchive(name, pickle, { "0": Uint8Array.from(values) });
}
