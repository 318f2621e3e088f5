// format/wire: the framing shared by the Worker and the client SDK — round trips through streams split at every byte,
// golden header bytes, malformed input (truncated, unknown type, over the limit), and the proxy latents payload.
import { describe, expect, it } from "vitest";
import {
  decodeJsonPayload,
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

const LIMITS: FrameLimits = { 1: 1024, 2: 64, 3: 64, 4: 64 };

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
    expect(decodeJsonPayload(encodeJsonFrame(FrameType.control, { a: [1, "é"] }).subarray(5))).toEqual({ a: [1, "é"] });
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
