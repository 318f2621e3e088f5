// format/wire: the framing shared by the Worker and the client SDK — round trips through streams split at every byte,
// golden header bytes, malformed input (truncated, unknown type, over the limit), the proxy latents payload, and chunk
// runs (several chunks in one restore frame).
import { describe, expect, it } from "vitest";
import {
  encodeFrame,
  encodeFrameHeader,
  encodeJsonFrame,
  FrameError,
  FrameReader,
  FrameType,
  readFrames,
  type FrameLimits,
} from "../../format/wire/frames.ts";
import { decodeLatents, encodeLatents, LatentsDtype, LatentsError, latentsPayloadBytes } from "../../format/wire/latents.ts";
import { latentWidth, ropeWidth, type CacheSpec } from "../../format/cache-spec.ts";
import { readChunkHeader } from "../../format/chunk/decode.ts";
import { packChunk } from "../../format/chunk/pack.ts";
import { ChunkError } from "../../format/chunk/types.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import { splitChunkRun } from "../../format/wire/chunk-run.ts";

const LIMITS: FrameLimits = { 1: 1024, 2: 64, 3: 64, 4: 64, 5: 64 };

function streamOf(bytes: Uint8Array, splits: number[]): ReadableStream<Uint8Array> {
  const cuts = [0, ...splits.filter((s) => s > 0 && s < bytes.length), bytes.length];
  return new ReadableStream({
    start(c) {
      for (let i = 0; i + 1 < cuts.length; i++) c.enqueue(bytes.slice(cuts[i], cuts[i + 1]));
      c.close();
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Array<[number, number[]]>> {
  const out: Array<[number, number[]]> = [];
  for await (const f of readFrames(stream, LIMITS)) out.push([f.type, [...f.payload]]);
  return out;
}

describe("frames", () => {
  it("should write [u8 type][u32 LE length][payload]", () => {
    expect([...encodeFrame(FrameType.chunk, new Uint8Array([9, 8, 7]))]).toEqual([2, 3, 0, 0, 0, 9, 8, 7]);
    expect([...encodeFrameHeader(FrameType.control, 0x01020304)]).toEqual([1, 4, 3, 2, 1]);
    // Version 1's JSON frame, kept for tests that play an old peer.
    expect(new TextDecoder().decode(encodeJsonFrame(FrameType.control, { a: [1, "é"] }).subarray(5))).toBe('{"a":[1,"é"]}');
  });

  it("should read the same frames whatever the stream's chunk boundaries", async () => {
    const body = new Uint8Array([
      ...encodeJsonFrame(FrameType.control, { expectedSeq: 1 }),
      ...encodeFrame(FrameType.chunk, Uint8Array.from({ length: 40 }, (_, i) => i)),
      ...encodeFrame(FrameType.latents, new Uint8Array(0)),
    ]);
    const expected = [
      [1, [...new TextEncoder().encode('{"expectedSeq":1}')]],
      [2, Array.from({ length: 40 }, (_, i) => i)],
      [3, []],
    ];
    for (let cut = 0; cut <= body.length; cut++) {
      expect(await collect(streamOf(body, [cut, cut + 3]))).toEqual(expected);
    }
    const one = await collect(streamOf(body, Array.from({ length: body.length }, (_, i) => i)));
    expect(one).toEqual(expected);
  });

  describe("malformed input", () => {
    async function failure(bytes: Uint8Array): Promise<FrameError> {
      try {
        await collect(streamOf(bytes, [3]));
      } catch (e) {
        if (e instanceof FrameError) return e;
        throw e;
      }
      throw new Error("expected a FrameError");
    }

    it("should refuse a stream ending inside a header or a payload", async () => {
      const frame = encodeFrame(FrameType.chunk, new Uint8Array(10));
      expect((await failure(frame.subarray(0, 3))).code).toBe("truncated");
      expect((await failure(frame.subarray(0, 12))).code).toBe("truncated");
    });

    it("should refuse unknown types and payloads above their limit before reading them", async () => {
      expect((await failure(new Uint8Array([0, 0, 0, 0, 0]))).code).toBe("unknown_type");
      expect((await failure(new Uint8Array([7, 0, 0, 0, 0]))).code).toBe("unknown_type");
      const e = await failure(encodeFrameHeader(FrameType.chunk, 65));
      expect(e.code).toBe("too_large");
      expect(e.name).toBe("FrameError");
    });

    it("should count bytes read and stop at a clean end", async () => {
      const reader = new FrameReader(streamOf(encodeFrame(FrameType.error, new Uint8Array(4)), []), LIMITS);
      expect((await reader.next())?.type).toBe(FrameType.error);
      expect(reader.bytesRead).toBe(9);
      expect(await reader.next()).toBeNull();
    });
  });
});

describe("proxy latents", () => {
  const header = { dtype: LatentsDtype.f32, tokenStart: 64, tokenCount: 2, layerStart: 3, layerCount: 2, latentWidth: 3, ropeWidth: 1 } as const;
  const layers = [
    { latent: Float32Array.of(1, 2, 3, 4, 5, 6), rope: Float32Array.of(-1, -2) },
    { latent: Float32Array.of(7, 8, 9, 10, 11, 12), rope: Float32Array.of(0.5, 0.25) },
  ];

  it("should round-trip f32 and f16 payloads with the documented layout", () => {
    const bytes = encodeLatents(header, layers);
    expect(bytes.length).toBe(latentsPayloadBytes(header));
    expect(bytes.length).toBe(28 + 2 * 2 * 4 * 4);
    const dv = new DataView(bytes.buffer);
    expect([bytes[0], dv.getUint32(4, true), dv.getUint32(8, true), dv.getUint32(12, true), dv.getUint32(16, true)]).toEqual([0, 64, 2, 3, 2]);
    expect(dv.getFloat32(28, true)).toBe(1);
    const back = decodeLatents(bytes);
    expect(back.header).toEqual(header);
    expect([...back.layers[1].latent, ...back.layers[1].rope]).toEqual([7, 8, 9, 10, 11, 12, 0.5, 0.25]);

    const h16 = { ...header, dtype: LatentsDtype.f16 };
    const l16 = layers.map((l) => ({ latent: Uint16Array.from(l.latent, () => 0x3c00), rope: Uint16Array.of(0xbc00, 0x3800) }));
    const b16 = decodeLatents(encodeLatents(h16, l16));
    expect(b16.layers[0].rope).toBeInstanceOf(Uint16Array);
    expect([...b16.layers[0].rope]).toEqual([0xbc00, 0x3800]);
  });

  it("should refuse malformed payloads", () => {
    const bytes = encodeLatents(header, layers);
    expect(() => decodeLatents(bytes.subarray(0, 20))).toThrow(LatentsError);
    expect(() => decodeLatents(bytes.subarray(0, bytes.length - 4))).toThrow(/header implies/);
    const badType = bytes.slice();
    badType[0] = 2;
    expect(() => decodeLatents(badType)).toThrow(/dtype/);
    const reserved = bytes.slice();
    reserved[2] = 1;
    expect(() => decodeLatents(reserved)).toThrow(/reserved/);
    expect(() => encodeLatents(header, layers.slice(0, 1))).toThrow(LatentsError);
  });
});

describe("chunk runs", () => {
  const spec: CacheSpec = { layers: 2, heads: 2, kvHeads: 1, headDim: 8, ropeDims: 2, dKv: 4, latentSpaces: 1, mropeSection: [1, 1, 2] };
  const pack = (tokenStart: number, tokens: number, sealed: boolean): Uint8Array =>
    packChunk(referenceCodec, spec, { sealed, bits: 4, group: 32, axis: "token", rope: "int8" }, {
      tokenStart,
      modality: new Uint8Array(tokens),
      positions: Int32Array.from({ length: 3 * tokens }, (_, i) => tokenStart + Math.floor(i / 3)),
      layerStart: 0,
      layers: [0, 1].map((l) => ({
        latent: Float32Array.from({ length: tokens * latentWidth(spec) }, (_, i) => Math.sin(i + l + tokenStart)),
        rope: Float32Array.from({ length: tokens * ropeWidth(spec) }, (_, i) => Math.cos(i + l + tokenStart)),
      })),
    });
  const chunks = [pack(0, 4, true), pack(4, 4, true), pack(8, 3, false)];
  const run = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (run.set(c, at), at + c.length), 0);

  it("should split a run into its chunks, as aligned views, each of which reads back", () => {
    const pieces = splitChunkRun(run);
    expect(pieces.map((p) => [...p])).toEqual(chunks.map((c) => [...c]));
    expect(pieces.map((p) => p.byteOffset)).toEqual([0, chunks[0].length, chunks[0].length + chunks[1].length]);
    expect(pieces.every((p) => p.byteOffset % 4 === 0 && p.buffer === run.buffer)).toBe(true);
    expect(pieces.map((p) => readChunkHeader(p).tokenStart)).toEqual([0, 4, 8]);
    expect(splitChunkRun(new Uint8Array(0))).toEqual([]);
  });

  it("should refuse a run cut inside a chunk or its header, a byte that is not a chunk, and a bad declared length", () => {
    expect(() => splitChunkRun(run.subarray(0, run.length - 1))).toThrow(expect.objectContaining({ code: "truncated" }));
    expect(() => splitChunkRun(run.subarray(0, chunks[0].length + 40))).toThrow(expect.objectContaining({ code: "truncated" }));
    const shifted = run.slice(1);
    expect(() => splitChunkRun(shifted)).toThrow(expect.objectContaining({ code: "bad_magic" }));
    const lying = run.slice();
    new DataView(lying.buffer).setUint32(76, 8, true); // byteLength field of the first chunk, below a header
    expect(() => splitChunkRun(lying)).toThrow(expect.objectContaining({ code: "invalid_header" }));
    new DataView(lying.buffer).setUint32(76, chunks[0].length + 4, true); // runs into the next chunk: its magic is off
    expect(() => splitChunkRun(lying)).toThrow(ChunkError);
  });
});
