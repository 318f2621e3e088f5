// Golden bytes: the expected chunk is built here field by field from the byte table of docs/chunk-format.md (not from
// format/chunk/layout.ts), with a bit-at-a-time CRC. Its SHA-256 is committed too, so any change to the encoder or to
// this builder's reading of the doc shows up. The committed hashes were produced by this builder on first writing and
// cross-checked against encodeChunk, an implementation written separately from the doc table.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { QuantizedBlock } from "../../format/codec/types.ts";
import { encodeChunk } from "../../format/chunk/encode.ts";
import type { ChunkCodec, DecodedChunk } from "../../format/chunk/types.ts";
import { bitwiseCrc32c, makeChunk, TINY_SPEC } from "./chunk-fixtures.ts";

class ByteWriter {
  readonly bytes: number[] = [];
  u8(v: number): void {
    this.bytes.push(v & 0xff);
  }
  u16(v: number): void {
    this.u8(v);
    this.u8(v >>> 8);
  }
  u32(v: number): void {
    this.u16(v & 0xffff);
    this.u16(v >>> 16);
  }
  raw(b: Uint8Array): void {
    for (const x of b) this.u8(x);
  }
  pad4(): void {
    while (this.bytes.length % 4 !== 0) this.u8(0);
  }
}

function expectedBytes(chunk: DecodedChunk): Uint8Array {
  const h = chunk.header;
  const w = new ByteWriter();
  w.raw(new TextEncoder().encode("MLAC")); // 0
  w.u16(1); // 4 version
  w.u8(h.codec.sealed ? 1 : 0); // 6 storage
  w.u8(h.codec.bits); // 7
  w.u8(h.codec.axis === "token" ? 0 : 1); // 8
  w.u8({ fp16: 0, int8: 1, int4: 2 }[h.codec.rope]); // 9
  w.u16(h.codec.group); // 10
  w.raw(h.specHash); // 12
  w.u32(TINY_SPEC.layers); // 44
  w.u32(TINY_SPEC.kvHeads); // 48
  w.u32(TINY_SPEC.dKv); // 52
  w.u32(TINY_SPEC.ropeDims); // 56
  w.u32(h.tokenStart); // 60
  w.u32(h.tokenCount); // 64
  w.u32(h.layerStart); // 68
  w.u32(h.layerCount); // 72
  const byteLengthAt = w.bytes.length;
  w.u32(0); // 76 byteLength, patched below
  expect(w.bytes.length).toBe(80);
  w.raw(h.modality);
  w.pad4();
  for (const p of h.positions) w.u32(p >>> 0);
  const block = (b: QuantizedBlock) => {
    w.raw(b.codes);
    w.pad4();
    for (const s of b.scales) w.u16(s);
    w.pad4();
    for (const z of b.zeros) w.u16(z);
    w.pad4();
  };
  const floats = (f: Float32Array) => w.raw(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
  for (const layer of chunk.layers) {
    if (layer.kind === "quantized") {
      block(layer.latent);
      block(layer.rope);
    } else {
      floats(layer.latent);
      floats(layer.rope);
    }
  }
  const total = w.bytes.length + 4;
  const out = new Uint8Array(total);
  out.set(w.bytes);
  new DataView(out.buffer).setUint32(byteLengthAt, total, true);
  new DataView(out.buffer).setUint32(total - 4, bitwiseCrc32c(out.subarray(0, total - 4)), true);
  return out;
}

const sha256Hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

const SEALED: ChunkCodec = { sealed: true, bits: 4, group: 32, axis: "token", rope: "int4" };
const RAW: ChunkCodec = { sealed: false, bits: 4, group: 64, axis: "channel", rope: "fp16" };

describe("chunk golden bytes", () => {
  it("sealed int4 latent + int4 rope, 3 tokens × layers 1..2 of TINY_SPEC", () => {
    const chunk = makeChunk(TINY_SPEC, SEALED);
    const bytes = encodeChunk(TINY_SPEC, chunk);
    const expected = expectedBytes(chunk);
    // 80 header + 4 modality + 36 positions + 2 × (12 codes + 8 scales + 8 zeros + 4 rope codes + 8 + 8) + 4 CRC
    expect(bytes.length).toBe(220);
    expect(bytes).toEqual(expected);
    expect(sha256Hex(bytes)).toBe(GOLDEN_SEALED_SHA256);
  });

  it("raw float32 tail, same tokens and layers", () => {
    const chunk = makeChunk(TINY_SPEC, RAW);
    const bytes = encodeChunk(TINY_SPEC, chunk);
    expect(bytes.length).toBe(80 + 4 + 36 + 2 * (4 * 3 * (6 + 2)) + 4);
    expect(bytes).toEqual(expectedBytes(chunk));
    expect(sha256Hex(bytes)).toBe(GOLDEN_RAW_SHA256);
  });

  it("is deterministic: equal input, equal bytes, and copies of the input give the same bytes", () => {
    const a = encodeChunk(TINY_SPEC, makeChunk(TINY_SPEC, SEALED));
    const b = encodeChunk(TINY_SPEC, makeChunk(TINY_SPEC, SEALED));
    expect(a).toEqual(b);
    const other = encodeChunk(TINY_SPEC, makeChunk(TINY_SPEC, SEALED, { seed: 8 }));
    expect(other).not.toEqual(a);
  });
});

const GOLDEN_SEALED_SHA256 = "4935c3b1e9071842463b033b3d8fd130151ff0188f4462e7b6db783f374060b7";
const GOLDEN_RAW_SHA256 = "65e3d4eb69b444a533a5469f3dba077332a9fef8a1204e5ecd7685e798843741";
