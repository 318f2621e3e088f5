import { describe, expect, it } from "vitest";
import { crc32c } from "../../format/hash/crc32c.ts";
import { bitwiseCrc32c, rng } from "./chunk-fixtures.ts";

describe("crc32c", () => {
  it("matches the RFC 3720 §B.4 and check-value vectors", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(new Uint8Array(32).map((_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(new Uint8Array(32).map((_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it("slicing-by-8 equals the bit-at-a-time definition for every length 0..100 at unaligned offsets", () => {
    const next = rng(12345);
    const buf = new Uint8Array(120).map(() => next() & 0xff);
    for (let offset = 0; offset < 8; offset++) {
      for (let n = 0; n <= 100; n++) {
        const view = buf.subarray(offset, offset + n);
        expect(crc32c(view)).toBe(bitwiseCrc32c(view));
      }
    }
  });

  it("continues across split input", () => {
    const next = rng(99);
    const data = new Uint8Array(1000).map(() => next() & 0xff);
    const whole = crc32c(data);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).toBe(whole);
    }
  });
});
