import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalSpecJson, llavaNext8bSpec, qwen25vl7bSpec, type CacheSpec } from "../../format/cache-spec.ts";
import { bytesToHex, hashesEqual, specHash, specHashHex } from "../../format/hash/spec-hash.ts";

describe("spec hash", () => {
  it("is stable: Qwen2.5-VL-7B d_kv 64 (r 32) hashes to the committed value", () => {
    // Committed on first implementation; a change here means every stored chunk of that conversion becomes unreadable.
    expect(specHashHex(qwen25vl7bSpec(64))).toBe("3481c0032488402ff1a378f480771c9e69db29cbb8a0f444ef098d340fb9cc1f");
    expect(canonicalSpecJson(qwen25vl7bSpec(64))).toBe(
      '{"layers":28,"heads":28,"kvHeads":4,"headDim":128,"ropeDims":32,"dKv":64,"latentSpaces":2,"mropeSection":[16,24,24]}',
    );
  });

  it("equals node:crypto SHA-256 of the canonical JSON", () => {
    for (const spec of [qwen25vl7bSpec(32), qwen25vl7bSpec(128), llavaNext8bSpec(64)]) {
      const expected = createHash("sha256").update(canonicalSpecJson(spec), "utf8").digest("hex");
      expect(bytesToHex(specHash(spec))).toBe(expected);
    }
  });

  it("does not depend on key order and differs for any field change", () => {
    const q = qwen25vl7bSpec(64);
    const reordered: CacheSpec = {
      mropeSection: q.mropeSection,
      latentSpaces: q.latentSpaces,
      dKv: q.dKv,
      ropeDims: q.ropeDims,
      headDim: q.headDim,
      kvHeads: q.kvHeads,
      heads: q.heads,
      layers: q.layers,
    };
    expect(hashesEqual(specHash(reordered), specHash(q))).toBe(true);
    const variants: CacheSpec[] = [
      { ...q, dKv: 32 },
      { ...q, ropeDims: 16 },
      { ...q, latentSpaces: 1 },
      { ...q, mropeSection: null },
      { ...q, layers: 27 },
    ];
    for (const v of variants) expect(hashesEqual(specHash(v), specHash(q))).toBe(false);
  });
});
