// Malformed chunks: every failure is a ChunkError with the right code, never a silently wrong array.
import { describe, expect, it } from "vitest";
import { llavaNext8bSpec, qwen25vl7bSpec } from "../../format/cache-spec.ts";
import { FIXED_HEADER_BYTES } from "../../format/chunk/constants.ts";
import { decodeChunk, readChunkHeader, verifyChunk } from "../../format/chunk/decode.ts";
import { encodeChunk } from "../../format/chunk/encode.ts";
import { HEADER_OFFSETS } from "../../format/chunk/header.ts";
import { chunkLayout, geometryOfSpec } from "../../format/chunk/layout.ts";
import { ChunkError, type ChunkCodec, type ChunkErrorCode, type DecodedChunk } from "../../format/chunk/types.ts";
import { crc32c } from "../../format/hash/crc32c.ts";
import { specHash } from "../../format/hash/spec-hash.ts";
import { makeChunk, TINY_SPEC } from "./chunk-fixtures.ts";

const SEALED: ChunkCodec = { sealed: true, bits: 2, group: 32, axis: "token", rope: "int4" };
const RAW: ChunkCodec = { sealed: false, bits: 4, group: 64, axis: "token", rope: "fp16" };
const good = () => encodeChunk(TINY_SPEC, makeChunk(TINY_SPEC, SEALED));

function codeOf(fn: () => unknown): ChunkErrorCode | "no error" {
  try {
    fn();
  } catch (e) {
    if (e instanceof ChunkError) {
      expect(e.name).toBe("ChunkError");
      expect(e.message.length).toBeGreaterThan(10);
      return e.code;
    }
    throw e;
  }
  return "no error";
}

/** Recomputes the CRC so a test reaches the checks after it. */
function reseal(bytes: Uint8Array): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  v.setUint32(bytes.length - 4, crc32c(bytes.subarray(0, bytes.length - 4)), true);
  return bytes;
}

function withU32(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(offset, value, true);
  return copy;
}

describe("malformed chunks", () => {
  it("a prefix cut at any byte (every header field boundary included) is truncated", () => {
    const bytes = good();
    const boundaries = Object.values(HEADER_OFFSETS);
    for (const cut of boundaries) expect(codeOf(() => readChunkHeader(bytes.subarray(0, cut)))).toBe("truncated");
    for (let cut = 0; cut < bytes.length; cut++) {
      expect(codeOf(() => decodeChunk(bytes.subarray(0, cut), TINY_SPEC))).toBe("truncated");
    }
  });

  it("every single-bit flip is detected, by the field it hits", () => {
    const bytes = good();
    const seen = new Map<string, number>();
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = bytes.slice();
        flipped[i] ^= 1 << bit;
        const code = codeOf(() => decodeChunk(flipped, TINY_SPEC));
        expect(code, `byte ${i} bit ${bit}`).not.toBe("no error");
        if (i < 4) expect(code).toBe("bad_magic");
        else if (i < 6) expect(code).toBe("unsupported_version");
        else if (i >= HEADER_OFFSETS.specHash && i < HEADER_OFFSETS.specHash + 32) expect(code).toBe("checksum_mismatch");
        else if (i >= FIXED_HEADER_BYTES) expect(code).toBe("checksum_mismatch");
        seen.set(code, (seen.get(code) ?? 0) + 1);
      }
    }
    expect(seen.get("checksum_mismatch")).toBeGreaterThan(bytes.length * 4);
  });

  it("rejects other versions and other magic", () => {
    const bytes = good();
    for (const version of [0, 2, 0xffff]) {
      const b = bytes.slice();
      new DataView(b.buffer).setUint16(4, version, true);
      expect(codeOf(() => readChunkHeader(reseal(b)))).toBe("unsupported_version");
    }
    expect(codeOf(() => readChunkHeader(new TextEncoder().encode("GGUF and more bytes")))).toBe("bad_magic");
    expect(codeOf(() => readChunkHeader(new Uint8Array([0x4d, 0x4c, 0x00])))).toBe("bad_magic");
  });

  it("rejects a chunk of another spec", () => {
    const bytes = good();
    const other = { ...TINY_SPEC, latentSpaces: 1 as const };
    expect(codeOf(() => verifyChunk(bytes, specHash(other)))).toBe("spec_mismatch");
    expect(codeOf(() => decodeChunk(bytes, other))).toBe("spec_mismatch");
    expect(codeOf(() => decodeChunk(bytes, qwen25vl7bSpec(64)))).toBe("spec_mismatch");
    expect(codeOf(() => verifyChunk(bytes, specHash(TINY_SPEC)))).toBe("no error");
  });

  it("rejects absurd counts from the 80-byte header alone, before any allocation sized by them", () => {
    const header = good().slice(0, FIXED_HEADER_BYTES);
    const o = HEADER_OFFSETS;
    expect(codeOf(() => readChunkHeader(withU32(header, o.tokenCount, 0xffffffff)))).toBe("too_large");
    expect(codeOf(() => readChunkHeader(withU32(header, o.layerCount, 0x7fffffff)))).toBe("too_large");
    expect(codeOf(() => readChunkHeader(withU32(header, o.modelLayers, 1e9)))).toBe("too_large");
    expect(codeOf(() => readChunkHeader(withU32(header, o.dKv, 0x80000000)))).toBe("too_large");
    expect(codeOf(() => readChunkHeader(withU32(withU32(header, o.kvHeads, 1 << 20), o.dKv, 1 << 20)))).toBe("too_large");
    expect(codeOf(() => readChunkHeader(withU32(header, o.byteLength, 0xffffffff)))).toBe("too_large");
    // 4096 tokens × 3 layers fits the count limits, so it is the byte limit that stops it.
    const big = withU32(withU32(withU32(header, o.kvHeads, 64), o.tokenCount, 4096), o.byteLength, 50_000_000);
    expect(codeOf(() => readChunkHeader(big))).toBe("too_large");
  });

  it("rejects zero counts and unknown enum values as invalid_header", () => {
    const bytes = good();
    const o = HEADER_OFFSETS;
    expect(codeOf(() => readChunkHeader(withU32(bytes, o.tokenCount, 0)))).toBe("invalid_header");
    expect(codeOf(() => readChunkHeader(withU32(bytes, o.layerCount, 0)))).toBe("invalid_header");
    expect(codeOf(() => readChunkHeader(withU32(bytes, o.kvHeads, 0)))).toBe("invalid_header");
    for (const [at, value] of [
      [o.storage, 2],
      [o.bits, 3],
      [o.bits, 16],
      [o.axis, 2],
      [o.rope, 3],
    ] as const) {
      const b = bytes.slice();
      b[at] = value;
      expect(codeOf(() => readChunkHeader(b)), `offset ${at} = ${value}`).toBe("invalid_header");
    }
    const g = bytes.slice();
    new DataView(g.buffer).setUint16(o.group, 48, true);
    expect(codeOf(() => readChunkHeader(g))).toBe("invalid_header");
  });

  it("checks the declared length, trailing bytes and the layer range", () => {
    const bytes = good();
    const o = HEADER_OFFSETS;
    expect(codeOf(() => readChunkHeader(reseal(withU32(bytes, o.byteLength, bytes.length + 4))))).toBe("invalid_header");
    const longer = new Uint8Array(bytes.length + 4);
    longer.set(bytes);
    expect(codeOf(() => readChunkHeader(longer))).toBe("invalid_header");
    expect(codeOf(() => readChunkHeader(reseal(withU32(bytes, o.layerStart, 2))))).toBe("invalid_header");
    expect(codeOf(() => readChunkHeader(reseal(withU32(bytes, o.tokenStart, 0xfffffffe))))).toBe("invalid_header");
  });

  it("checks modality, padding and values after the CRC", () => {
    const bytes = good();
    const layout = chunkLayout(geometryOfSpec(TINY_SPEC), SEALED, 3, 2);
    const at = (offset: number, value: number) => {
      const b = bytes.slice();
      b[offset] = value;
      return reseal(b);
    };
    expect(codeOf(() => readChunkHeader(at(layout.modalityOffset + 1, 2)))).toBe("invalid_header");
    expect(codeOf(() => readChunkHeader(at(layout.modalityOffset + 3, 1)))).toBe("invalid_payload");
    const latent = layout.latent;
    if (latent.kind !== "quantized") throw new Error("expected quantized");
    const base = layout.firstLayerOffset + layout.layerStride;
    // int2 × 18 values = 36 bits: the high nibble of the 5th code byte is unused, then 3 padding bytes.
    expect(latent.codesBytes).toBe(5);
    const lastCode = base + latent.codesOffset + 4;
    expect(codeOf(() => verifyChunk(at(lastCode, bytes[lastCode] | 0x40), specHash(TINY_SPEC)))).toBe("invalid_payload");
    expect(codeOf(() => verifyChunk(at(lastCode + 1, 1), specHash(TINY_SPEC)))).toBe("invalid_payload");
    const nanScale = base + latent.scalesOffset + 1;
    expect(codeOf(() => decodeChunk(at(nanScale, 0x7e), TINY_SPEC))).toBe("invalid_payload");
    const negScale = base + latent.scalesOffset + 1;
    expect(codeOf(() => decodeChunk(at(negScale, 0xbc), TINY_SPEC))).toBe("invalid_payload");
    // readChunkHeader does not scan the payload; verifyChunk does.
    expect(codeOf(() => readChunkHeader(at(nanScale, 0x7e)))).toBe("no error");

    const raw = encodeChunk(TINY_SPEC, makeChunk(TINY_SPEC, RAW));
    const rawLayout = chunkLayout(geometryOfSpec(TINY_SPEC), RAW, 3, 2);
    const nan = raw.slice();
    new DataView(nan.buffer).setFloat32(rawLayout.firstLayerOffset + 8, NaN, true);
    expect(codeOf(() => verifyChunk(reseal(nan), specHash(TINY_SPEC)))).toBe("invalid_payload");
  });
});

describe("encodeChunk input checks", () => {
  const base = () => makeChunk(TINY_SPEC, SEALED);
  const mutate = (f: (c: DecodedChunk) => DecodedChunk) => codeOf(() => encodeChunk(TINY_SPEC, f(base())));

  it("rejects inconsistent input with invalid_input or spec_mismatch", () => {
    expect(mutate((c) => ({ ...c, header: { ...c.header, modality: new Uint8Array(2) } }))).toBe("invalid_input");
    expect(mutate((c) => ({ ...c, header: { ...c.header, modality: new Uint8Array([0, 1, 2]) } }))).toBe("invalid_input");
    expect(mutate((c) => ({ ...c, header: { ...c.header, positions: new Int32Array(8) } }))).toBe("invalid_input");
    expect(mutate((c) => ({ ...c, layers: c.layers.slice(1) }))).toBe("invalid_input");
    expect(mutate((c) => ({ ...c, header: { ...c.header, layerStart: 2 } }))).toBe("invalid_input");
    expect(mutate((c) => ({ ...c, header: { ...c.header, version: 2 } }))).toBe("invalid_input");
    expect(mutate((c) => ({ ...c, header: { ...c.header, specHash: specHash(llavaNext8bSpec(64)) } }))).toBe("spec_mismatch");
    expect(mutate((c) => ({ ...c, header: { ...c.header, codec: { ...SEALED, bits: 3 as 4 } } }))).toBe("invalid_input");
    expect(mutate((c) => ({ ...c, layers: [c.layers[0], makeChunk(TINY_SPEC, RAW).layers[0]] }))).toBe("invalid_input");
    expect(
      mutate((c) => {
        const l = c.layers[0];
        if (l.kind !== "quantized") throw new Error("expected quantized");
        return { ...c, layers: [{ ...l, latent: { ...l.latent, group: 3 } }, c.layers[1]] };
      }),
    ).toBe("invalid_input");
    expect(
      mutate((c) => {
        const l = c.layers[0];
        if (l.kind !== "quantized") throw new Error("expected quantized");
        return { ...c, layers: [{ ...l, latent: { ...l.latent, scales: new Uint16Array([0x7c00, 0, 0]) } }, c.layers[1]] };
      }),
    ).toBe("invalid_input");
    const raw = makeChunk(TINY_SPEC, RAW);
    const l0 = raw.layers[0];
    if (l0.kind !== "raw") throw new Error("expected raw");
    l0.latent[3] = Infinity;
    expect(codeOf(() => encodeChunk(TINY_SPEC, raw))).toBe("invalid_input");
  });

  it("rejects a channel-axis chunk whose token count is not a multiple of the group", () => {
    const spec = qwen25vl7bSpec(64);
    const codec: ChunkCodec = { sealed: true, bits: 4, group: 32, axis: "channel", rope: "fp16" };
    const chunk = makeChunk(spec, codec, { tokens: 32, layerStart: 0, layerCount: 1 });
    expect(codeOf(() => encodeChunk(spec, chunk))).toBe("no error");
    const odd = { ...chunk, header: { ...chunk.header, tokenCount: 40, modality: new Uint8Array(40), positions: new Int32Array(120) } };
    expect(codeOf(() => encodeChunk(spec, odd))).toBe("invalid_input");
  });
});
