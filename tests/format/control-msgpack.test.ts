// MessagePack restore headers (format/wire/control-msgpack.ts): an exact round trip of 512- and 2,048-entry headers,
// smaller than the JSON encoding, and strict decoding — malformed MessagePack, trailing bytes, unknown and missing
// fields, wrong types, wrong key lengths and oversize arrays are ControlDecodeErrors, never a header.
import { describe, expect, it } from "vitest";
import { Packr } from "msgpackr";
import { ControlDecodeError, decodeRestoreHeaderMsgpack, encodeRestoreHeaderMsgpack, MAX_RESTORE_HEADER_CHUNKS } from "../../format/wire/control-msgpack.ts";
import { measureHeaderEncoding, restoreHeader } from "../bench/wire-header.ts";

const raw = new Packr({ useRecords: false, mapsAsObjects: true });
const refused = (payload: Uint8Array): string => {
  try {
    decodeRestoreHeaderMsgpack(payload);
  } catch (e) {
    expect(e).toBeInstanceOf(ControlDecodeError);
    return (e as Error).message;
  }
  throw new Error("decoded a malformed header");
};

describe("MessagePack restore header", () => {
  it("should round-trip 512 and 2,048 entries exactly, keys as 32 raw bytes, in well under the JSON size", () => {
    for (const n of [512, 2048]) {
      const h = restoreHeader(n);
      const packed = encodeRestoreHeaderMsgpack(h);
      expect(decodeRestoreHeaderMsgpack(packed)).toEqual(h);
      const json = new TextEncoder().encode(JSON.stringify(h)).length;
      // Per entry: 64 hex characters + quotes become a 34-byte bin; integers lose their digits.
      expect(packed.length / json).toBeLessThan(0.75);
      if (n === 2048) expect(packed.length).toBe(103_936); // the same bytes in workerd: tests/worker/control-msgpack.test.ts
      // The raw key bytes are in the frame.
      const key0 = Uint8Array.from(h.chunks[0].key.match(/../g) ?? [], (x) => parseInt(x, 16));
      expect(Buffer.from(packed).includes(Buffer.from([0xc4, 32, ...key0]))).toBe(true);
    }
  });

  it("should refuse malformed MessagePack, trailing bytes and a value that is not a map", () => {
    const good = encodeRestoreHeaderMsgpack(restoreHeader(4));
    expect(refused(good.subarray(0, good.length - 3))).toMatch(/not one MessagePack value/);
    expect(refused(new Uint8Array([...good, 0xc0]))).toMatch(/not one MessagePack value/);
    // 0xc1 is "never used": msgpackr decodes it to a marker object, which no field set accepts.
    expect(refused(new Uint8Array([0xc1]))).toMatch(/must be a map|unknown field/);
    expect(refused(new Uint8Array([]))).toMatch(/not one MessagePack value/);
    expect(refused(raw.pack([1, 2, 3]))).toMatch(/must be a map/);
    // JSON is not MessagePack: a JSON header (an old server) is refused, not misread.
    expect(refused(new TextEncoder().encode(JSON.stringify(restoreHeader(4))))).toMatch(/MessagePack|map/);
  });

  it("should refuse unknown and missing fields, wrong types, wrong key lengths and oversize arrays", () => {
    const h = restoreHeader(4);
    const asMap = (o: Record<string, unknown>) => raw.pack(o);
    const entries = h.chunks.map((c) => ({ ...c, key: Buffer.from(c.key, "hex") }));
    const base = { ...h, chunks: entries };
    expect(decodeRestoreHeaderMsgpack(asMap(base))).toEqual(h);
    expect(refused(asMap({ ...base, extra: 1 }))).toMatch(/unknown field\(s\) extra/);
    const { tokens: _t, ...noTokens } = base;
    expect(refused(asMap(noTokens))).toMatch(/lacks tokens/);
    expect(refused(asMap({ ...base, tokens: "128" }))).toMatch(/tokens must be an integer/);
    expect(refused(asMap({ ...base, tokens: 1.5 }))).toMatch(/tokens must be an integer/);
    expect(refused(asMap({ ...base, head: 0 }))).toMatch(/head 0 with 128 tokens/);
    expect(refused(asMap({ ...base, chunks: [{ ...entries[0], key: h.chunks[0].key }, ...entries.slice(1)] }))).toMatch(/key must be 32 bytes/);
    expect(refused(asMap({ ...base, chunks: [{ ...entries[0], key: entries[0].key.subarray(0, 31) }, ...entries.slice(1)] }))).toMatch(/key must be 32 bytes/);
    expect(refused(asMap({ ...base, chunks: [{ ...entries[0], sealed: 1 }, ...entries.slice(1)] }))).toMatch(/sealed must be a boolean/);
    const { bytes: _b, ...noBytes } = entries[0];
    expect(refused(asMap({ ...base, chunks: [noBytes, ...entries.slice(1)] }))).toMatch(/lacks bytes/);
    expect(refused(asMap({ ...base, chunks: "none" }))).toMatch(/chunks must be an array/);
    expect(refused(asMap({ ...base, chunks: new Array(MAX_RESTORE_HEADER_CHUNKS + 1).fill(0) }))).toMatch(/above 65536/);
  });
});

describe("header encoding measurement (bench:store wire.*)", () => {
  it("should report bytes and times of both encodings for the same header", () => {
    const r = measureHeaderEncoding(512, 3);
    expect(r.entries).toBe(512);
    expect(r.jsonBytes).toBe(new TextEncoder().encode(JSON.stringify(restoreHeader(512))).length);
    expect(r.bytesRatio).toBeCloseTo(r.jsonBytes / r.msgpackBytes, 1);
    expect(r.jsonUs).toBeGreaterThan(0);
    expect(r.msgpackUs).toBeGreaterThan(0);
  });
});
