// Slot sealing (runtime/mla/slot-sealing.ts): slots seal the moment a write completes them, with blocks that encode to the
// same chunk bytes packChunk writes from the raw rows; truncation unseals and hands back the raw rows; release and adopt.

import { describe, expect, it } from "vitest";
import { cacheSpecFromConfig } from "../../format/cache-spec.ts";
import { encodeChunk, FORMAT_VERSION, packChunk, type ChunkCodec } from "../../format/chunk/index.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { specHash } from "../../format/hash/spec-hash.ts";
import { codecSlotQuantizer, SlotSealing, SlotSealingError } from "../../runtime/mla/slot-sealing.ts";

const spec = cacheSpecFromConfig(
  { num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_size: 128, head_dim: 32, rope_scaling: null },
  { dKv: 16, ropeDims: 8, latentSpaces: 2 },
);
const D = 32;
const R = 16;
const C = 8;

function rows(n: number, seed: number): Float32Array {
  let x = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x / 2 ** 32) * 4 - 2;
  });
}

describe("SlotSealing", () => {
  for (const params of [
    { bits: 4, group: 32, axis: "token", rope: "int8" },
    { bits: 2, group: 32, axis: "channel", rope: "fp16" },
  ] as CodecParams[]) {
    it(`should seal slots as writes complete them, matching packChunk bytes (${params.bits}-bit ${params.axis}, rope ${params.rope})`, () => {
      const s = new SlotSealing(2, C, D, R, codecSlotQuantizer(referenceCodec, params, { latentWidth: D, ropeWidth: R, ropeDims: 8 }));
      const total = 27;
      const lat = [rows(total * D, 1), rows(total * D, 2)];
      const rope = [rows(total * R, 3), rows(total * R, 4)];
      const sealedAt: number[][] = [[], []];
      for (const [start, n] of [[0, 5], [5, 1], [6, 13], [19, 8]]) {
        for (let l = 0; l < 2; l++) {
          const out = s.write(l, start, lat[l].subarray(start * D, (start + n) * D), rope[l].subarray(start * R, (start + n) * R), n);
          sealedAt[l].push(...out.map((x) => x.slotStart));
          expect(s.sealedLength(l)).toBe(Math.floor((start + n) / C) * C);
        }
      }
      expect(sealedAt).toEqual([[0, 8, 16], [0, 8, 16]]);
      const codec: ChunkCodec = { sealed: true, ...params };
      const modality = new Uint8Array(C);
      const positions = new Int32Array(3 * C);
      for (let slot = 0; slot < 3; slot++) {
        const blocks = s.sealedSlot(slot);
        const packed = packChunk(referenceCodec, spec, codec, {
          tokenStart: slot * C,
          modality,
          positions,
          layerStart: 0,
          layers: [0, 1].map((l) => ({ latent: lat[l].slice(slot * C * D, (slot + 1) * C * D), rope: rope[l].slice(slot * C * R, (slot + 1) * C * R) })),
        });
        const encoded = encodeChunk(spec, {
          header: { version: FORMAT_VERSION, specHash: specHash(spec), codec, tokenStart: slot * C, tokenCount: C, layerStart: 0, layerCount: 2, modality, positions },
          layers: blocks.map((b) => ({ kind: "quantized" as const, latent: b.latent, rope: b.rope })),
        });
        expect(Buffer.from(encoded).equals(Buffer.from(packed))).toBe(true);
      }
      expect(() => s.sealedSlot(3)).toThrow(SlotSealingError);
      expect(Array.from(s.rawRows(1, 24, 3).latent)).toEqual(Array.from(lat[1].slice(24 * D, 27 * D)));
    });
  }

  it("should seal exactly when a token-by-token write fills a slot: nothing at C − 1, the seal at C, again at 2C (issue 21)", () => {
    for (const slotTokens of [1, 2, C]) {
      const s = new SlotSealing(2, slotTokens, D, R, codecSlotQuantizer(referenceCodec, { bits: 4, group: 32, axis: "token", rope: "int8" }, { latentWidth: D, ropeWidth: R, ropeDims: 8 }));
      const total = 3 * slotTokens + 1;
      const lat = rows(total * D, 11);
      const rope = rows(total * R, 12);
      const writeOne = (l: number, t: number): number[] =>
        s.write(l, t, lat.subarray(t * D, (t + 1) * D), rope.subarray(t * R, (t + 1) * R), 1).map((x) => x.slotStart);
      for (let t = 0; t < total; t++) {
        for (let l = 0; l < 2; l++) {
          const len = t + 1;
          const boundary = len % slotTokens === 0;
          expect(writeOne(l, t), `C=${slotTokens}, layer ${l}, length ${len}`).toEqual(boundary ? [len - slotTokens] : []);
          expect(s.sealedLength(l), `C=${slotTokens}, layer ${l}, length ${len}`).toBe(Math.floor(len / slotTokens) * slotTokens);
        }
      }
      // The same at the boundary after a truncation: to C·k − 1 unseals slot k − 1, one token seals it again.
      const back = 2 * slotTokens - 1;
      expect(s.truncate(back)).toBe(slotTokens);
      for (let l = 0; l < 2; l++) expect(s.sealedLength(l)).toBe(slotTokens);
      for (let l = 0; l < 2; l++) expect(writeOne(l, back)).toEqual([slotTokens]);
      for (let l = 0; l < 2; l++) expect(s.sealedLength(l)).toBe(2 * slotTokens);
      // truncating to exactly a slot end keeps that slot sealed
      expect(s.truncate(2 * slotTokens)).toBe(2 * slotTokens);
      expect(s.sealedSlot(1)).toHaveLength(2);
    }
  });

  it("should unseal on truncation, release uploaded slots, and refuse what it no longer holds", () => {
    const s = new SlotSealing(1, C, D, R, codecSlotQuantizer(referenceCodec, { bits: 4, group: 32, axis: "token", rope: "int8" }, { latentWidth: D, ropeWidth: R, ropeDims: 8 }));
    const lat = rows(20 * D, 7);
    const rope = rows(20 * R, 8);
    expect(() => s.write(0, 3, lat, rope, 2)).toThrow(/gap or overlap/);
    s.write(0, 0, lat, rope, 20);
    expect(s.sealedLength(0)).toBe(16);
    expect(s.truncate(13)).toBe(8); // slot 1 is raw again: rows 8..12 come back from the held raw rows
    expect(s.sealedLength(0)).toBe(8);
    expect(Array.from(s.rawRows(0, 8, 5).rope)).toEqual(Array.from(rope.slice(8 * R, 13 * R)));
    s.write(0, 13, lat.subarray(13 * D), rope.subarray(13 * R), 7);
    expect(s.sealedLength(0)).toBe(16);
    s.release(17);
    expect(s.rawBase).toBe(16);
    expect(s.canTruncate(15)).toBe(false);
    expect(s.canTruncate(16)).toBe(true);
    expect(() => s.rawRows(0, 8, 1)).toThrow(SlotSealingError);
    expect(Array.from(s.rawRows(0, 16, 4).latent)).toEqual(Array.from(lat.slice(16 * D, 20 * D)));
    s.adopt(11, [{ latent: lat.slice(8 * D, 11 * D), rope: rope.slice(8 * R, 11 * R) }]);
    expect([s.rawBase, s.lengthOf(0), s.sealedLength(0)]).toEqual([8, 11, 8]);
  });
});
