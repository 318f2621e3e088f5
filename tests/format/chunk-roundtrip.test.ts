import { describe, expect, it } from "vitest";
import { qwen25vl7bSpec } from "../../format/cache-spec.ts";
import type { Bits, RopePolicy, Axis } from "../../format/codec/types.ts";
import { decodeChunk, readChunkHeader, verifyChunk } from "../../format/chunk/decode.ts";
import { encodeChunk } from "../../format/chunk/encode.ts";
import type { ChunkCodec, DecodedChunk } from "../../format/chunk/types.ts";
import { specHash } from "../../format/hash/spec-hash.ts";
import { makeChunk, TINY_SPEC } from "./chunk-fixtures.ts";

const COMBOS: ChunkCodec[] = [];
for (const bits of [8, 4, 2] as Bits[])
  for (const axis of ["token", "channel"] as Axis[])
    for (const rope of ["fp16", "int8", "int4"] as RopePolicy[]) COMBOS.push({ sealed: true, bits, group: 32, axis, rope });
COMBOS.push({ sealed: false, bits: 4, group: 64, axis: "token", rope: "fp16" });

function expectSameChunk(got: DecodedChunk, want: DecodedChunk): void {
  const { specHash: gh, modality: gm, positions: gp, ...gRest } = got.header;
  const { specHash: wh, modality: wm, positions: wp, ...wRest } = want.header;
  expect(gRest).toMatchObject(wRest);
  expect(gh).toEqual(wh);
  expect(gm).toEqual(wm);
  expect(gp).toEqual(wp);
  expect(got.layers).toEqual(want.layers);
}

describe("chunk round trip", () => {
  for (const codec of COMBOS) {
    const name = codec.sealed ? `sealed int${codec.bits} ${codec.axis} axis, rope ${codec.rope}` : "raw float32";
    it(`${name}: decode(encode(x)) = x, and header readers agree`, () => {
      const chunk = makeChunk(TINY_SPEC, codec, { tokens: 3, layerStart: 0, layerCount: 3, tokenStart: 4_000_000_000 });
      const bytes = encodeChunk(TINY_SPEC, chunk);
      expectSameChunk(decodeChunk(bytes, TINY_SPEC), chunk);
      const header = readChunkHeader(bytes);
      expect(header.byteLength).toBe(bytes.length);
      expect(header.geometry).toEqual({ modelLayers: 3, kvHeads: 1, dKv: 6, ropeDims: 2 });
      expect(verifyChunk(bytes, specHash(TINY_SPEC))).toEqual(header);
    });
  }

  it("decodes from an unaligned view by copying, and views aligned input in place", () => {
    const chunk = makeChunk(TINY_SPEC, { sealed: true, bits: 4, group: 64, axis: "token", rope: "fp16" });
    const bytes = encodeChunk(TINY_SPEC, chunk);
    const aligned = decodeChunk(bytes, TINY_SPEC);
    const first = aligned.layers[0];
    if (first.kind !== "quantized") throw new Error("expected quantized");
    expect(first.latent.scales.buffer).toBe(bytes.buffer);
    expect(aligned.header.positions.buffer).toBe(bytes.buffer);

    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const unaligned = decodeChunk(shifted.subarray(1), TINY_SPEC);
    expectSameChunk(unaligned, chunk);
    const u = unaligned.layers[0];
    if (u.kind !== "quantized") throw new Error("expected quantized");
    expect(u.latent.scales.buffer).not.toBe(shifted.buffer);

    const raw = makeChunk(TINY_SPEC, { sealed: false, bits: 4, group: 64, axis: "token", rope: "fp16" });
    const rawBytes = encodeChunk(TINY_SPEC, raw);
    const shiftedRaw = new Uint8Array(rawBytes.length + 2);
    shiftedRaw.set(rawBytes, 2);
    expectSameChunk(decodeChunk(shiftedRaw.subarray(2), TINY_SPEC), raw);
  });

  it("round-trips a full 64-token sealed chunk of Qwen2.5-VL-7B d_kv 64 (channel axis, int8 rope)", () => {
    const spec = qwen25vl7bSpec(64);
    const codec: ChunkCodec = { sealed: true, bits: 4, group: 64, axis: "channel", rope: "int8" };
    const chunk = makeChunk(spec, codec, { tokens: 64, layerStart: 26, layerCount: 2, tokenStart: 128 });
    const bytes = encodeChunk(spec, chunk);
    // Per layer: 64×256 int4 codes (8192) + 256 channel scales + 256 zeros (1024) + 64×128 int8 rope (8192)
    // + 64·4 rope scales + zeros (1024); header 80 + modality 64 + positions 768 + CRC 4.
    expect(bytes.length).toBe(80 + 64 + 768 + 2 * (8192 + 1024 + 8192 + 1024) + 4);
    expectSameChunk(decodeChunk(bytes, spec), chunk);
  });
});
