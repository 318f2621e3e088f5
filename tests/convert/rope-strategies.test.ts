// Partial-RoPE strategies pick the documented pairs: fixed sets (docs/method.md §3.1), 2-norm on hand-made pair norms
// (§3.2), the attention-KL ranking on hand-made q/k (§3.3) — its cheap per-pair correction against a brute-force
// recomputation — and on the fixture's multimodal calibration data.

import { beforeAll, describe, expect, it } from "vitest";
import { captureCalibration, type SequenceCapture } from "../../convert/calibration/capture.ts";
import { readCalibrationSet } from "../../convert/calibration/calib-set.ts";
import { accumulatePairKl, attentionKlScores } from "../../convert/rope/attention-kl.ts";
import { fixedStrategyPairs } from "../../convert/rope/fixed.ts";
import { rankPairs, topPairs } from "../../convert/rope/ranking.ts";
import { defaultRopeDims, selectKeptPairs } from "../../convert/rope/select.ts";
import { meanPairNorms, twoNormScores } from "../../convert/rope/two-norm.ts";
import { loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import type { RopeTables } from "../../runtime/rope.ts";
import { CALIB_FILE, FIXTURE_DIR, handCapture, handConfig, rng } from "./helpers.ts";

describe("fixed strategies", () => {
  it("should keep the fastest, slowest and equidistant pairs (fixture: 4 of 16)", () => {
    expect(fixedStrategyPairs("high", 16, 4)).toEqual([0, 1, 2, 3]);
    expect(fixedStrategyPairs("low", 16, 4)).toEqual([12, 13, 14, 15]);
    expect(fixedStrategyPairs("uniform", 16, 4)).toEqual([0, 4, 8, 12]);
  });

  it("should match docs/method.md's uniform set for Qwen2.5-VL-7B (16 of 64: every 4th pair)", () => {
    expect(fixedStrategyPairs("uniform", 64, 16)).toEqual(Array.from({ length: 16 }, (_, k) => 4 * k));
    expect(defaultRopeDims(128)).toBe(32);
    expect(defaultRopeDims(32)).toBe(8);
  });

  it("should apply the same set to every layer and KV head", () => {
    const cfg = { ...handConfig(4, 2, 32), numLayers: 3 };
    const sel = selectKeptPairs("low", cfg, 8);
    expect(sel.keptPairs).toEqual(Array.from({ length: 3 }, () => [[12, 13, 14, 15], [12, 13, 14, 15]]));
  });
});

/** Pre-RoPE vectors whose pair i has norm `norms[h][i]` (all of it in dim i), the same for every token. */
function withPairNorms(T: number, norms: number[][], headDim: number): Float64Array {
  const heads = norms.length;
  const v = new Float64Array(T * heads * headDim);
  for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) norms[h].forEach((n, i) => (v[(t * heads + h) * headDim + i] = n));
  return v;
}

describe("2-norm", () => {
  it("should rank by Σ_group ‖q‖·‖k‖ and keep the top pairs per KV head", () => {
    // 2 query heads share KV head 0; d_h = 8 → 4 pairs. Scores: (1+1)·4 = 8, (2+1)·0.1 = 0.3, (3+1)·1 = 4, (4+1)·1 = 5.
    const cfg = handConfig(2, 1, 8);
    const cap = handCapture(cfg, withPairNorms(5, [[1, 2, 3, 4], [1, 1, 1, 1]], 8), withPairNorms(5, [[4, 0.1, 1, 1]], 8));
    const scores = twoNormScores(meanPairNorms([cap], cfg));
    expect(Array.from(scores.values)).toEqual([8, 0.30000000000000004, 4, 5]);
    expect(Array.from(rankPairs(scores))).toEqual([0, 3, 2, 1]);
    expect(selectKeptPairs("2-norm", cfg, 4, [cap]).keptPairs).toEqual([[[0, 3]]]);
  });

  it("should average over each sequence's tokens first, then over sequences", () => {
    const cfg = handConfig(1, 1, 4);
    const a = handCapture(cfg, withPairNorms(1, [[2, 0]], 4), withPairNorms(1, [[1, 1]], 4)); // 1 token
    const b = handCapture(cfg, withPairNorms(3, [[4, 0]], 4), withPairNorms(3, [[1, 1]], 4)); // 3 tokens
    const q = meanPairNorms([a, b], cfg).q;
    expect(q[0]).toBeCloseTo(3, 12); // (2 + 4)/2, not (2 + 3·4)/4 = 3.5
    expect(q[1]).toBe(0);
  });
});

/** Brute-force Σ_t KL(P_t ‖ P'_t) with pair `drop` unrotated on q and k: full score recomputation, no correction. */
function bruteForcePairKl(q: Float64Array, k: Float64Array, T: number, dh: number, rope: RopeTables, drop: number): number {
  const half = dh / 2;
  const rot = (v: Float64Array, t: number, skip: number) => {
    const out = Float64Array.from(v.subarray(t * dh, (t + 1) * dh));
    for (let i = 0; i < half; i++) {
      if (i === skip) continue;
      const c = rope.cos[t * half + i];
      const s = rope.sin[t * half + i];
      const a = out[i];
      const b = out[i + half];
      out[i] = a * c - b * s;
      out[i + half] = b * c + a * s;
    }
    return out;
  };
  const probs = (skip: number, t: number) => {
    const qt = rot(q, t, skip);
    const s = Array.from({ length: t + 1 }, (_, j) => {
      const kj = rot(k, j, skip);
      let d = 0;
      for (let e = 0; e < dh; e++) d += qt[e] * kj[e];
      return d / Math.sqrt(dh);
    });
    const m = Math.max(...s);
    const z = s.reduce((acc, x) => acc + Math.exp(x - m), 0);
    return s.map((x) => Math.exp(x - m) / z);
  };
  let kl = 0;
  for (let t = 0; t < T; t++) {
    const p = probs(-1, t);
    const p2 = probs(drop, t);
    for (let j = 0; j <= t; j++) kl += p[j] * Math.log(p[j] / p2[j]);
  }
  return kl;
}

describe("attention-KL (modality-adaptive) ranking", () => {
  it("should equal a brute-force recomputation of KL(P ‖ P') for every pair (the cheap correction is exact)", () => {
    const cfg = handConfig(1, 1, 16);
    const T = 12;
    const rand = rng(7);
    const q = Float64Array.from({ length: T * 16 }, () => 2 * (rand() - 0.5));
    const k = Float64Array.from({ length: T * 16 }, () => 2 * (rand() - 0.5));
    const cap = handCapture(cfg, q, k);
    const fast = new Float64Array(8);
    expect(accumulatePairKl({ q, qStride: 16, qOffset: 0, k, kStride: 16, kOffset: 0, length: T, headDim: 16 }, cap.rope, fast)).toBe(T);
    for (let i = 0; i < 8; i++) expect(fast[i]).toBeCloseTo(bruteForcePairKl(q, k, T, 16, cap.rope, i), 12);
  });

  it("should keep the pair whose rotation shapes attention, where 2-norm keeps a large slow pair", () => {
    // d_h = 8, θ = 1e4: pair angles per position 1, 0.1, 0.01, 0.001. Pair 1 (0.1 rad/token) carries a strong q·k
    // that rotation turns into a distance preference; pair 3 is larger but barely rotates over 24 tokens; pair 0 and
    // 2 are small.
    const cfg = handConfig(1, 1, 8);
    const T = 24;
    const q = withPairNorms(T, [[0.05, 3, 0.05, 6]], 8);
    const k = withPairNorms(T, [[0.05, 3, 0.05, 6]], 8);
    const cap = handCapture(cfg, q, k);
    const kl = attentionKlScores([cap], cfg);
    expect(Array.from(rankPairs(kl))[1]).toBe(0); // pair 1 ranks first
    expect(selectKeptPairs("mkl", cfg, 2, [cap]).keptPairs).toEqual([[[1]]]);
    expect(selectKeptPairs("2-norm", cfg, 2, [cap]).keptPairs).toEqual([[[3]]]);
  });

  it("should average over the query heads of the KV group and keep KV heads apart", () => {
    // 4 query heads, 2 KV heads: group 0 (heads 0, 1) uses pair 1, group 1 (heads 2, 3) uses pair 2.
    const cfg = handConfig(4, 2, 8);
    const T = 20;
    const q = withPairNorms(T, [[0, 3, 0, 0], [0, 3, 0, 0], [0, 0, 8, 0], [0, 0, 8, 0]], 8);
    const k = withPairNorms(T, [[0, 3, 0, 0], [0, 0, 8, 0]], 8);
    const sel = selectKeptPairs("mkl", cfg, 2, [handCapture(cfg, q, k)]);
    expect(sel.keptPairs).toEqual([[[1], [2]]]);
  });

  it("should rank by descending score and break ties toward the faster pair", () => {
    const s = { layers: 1, kvHeads: 1, half: 4, values: Float64Array.from([1, 3, 3, 2]) };
    expect(Array.from(rankPairs(s))).toEqual([3, 0, 1, 2]);
    expect(topPairs(s, 2)).toEqual([[[1, 2]]]);
  });
});

describe("strategies on the fixture's multimodal calibration data", () => {
  let fx: TinyFixture;
  let caps: SequenceCapture[];
  beforeAll(async () => {
    fx = await loadTinyFixture(FIXTURE_DIR);
    caps = captureCalibration(fx.model, await readCalibrationSet(CALIB_FILE, 24), { vision: fx.vision, imageGrid: fx.imageGrid });
  });

  it("should capture image and text queries (both modalities count)", () => {
    const image = caps.reduce((n, c) => n + c.modality.filter((m) => m === 1).length, 0);
    expect(image).toBe(24 * 18); // vision_start + 16 image pads + vision_end per sequence
    expect(caps.every((c) => c.layers.length === 4 && c.layers[0].q.length === c.length * 4 * 32)).toBe(true);
  });

  it("mkl should keep almost only the fastest pairs (t stream), like the shipped Qwen2.5-VL ranks", () => {
    const sel = selectKeptPairs("mkl", fx.config, 8, caps);
    const kept = sel.keptPairs.flat(2);
    expect(kept).toHaveLength(4 * 2 * 4);
    const inHigh = kept.filter((p) => p < 4).length;
    expect(inHigh / kept.length).toBeGreaterThanOrEqual(0.85);
    expect(Math.max(...kept)).toBeLessThan(8);
  });

  it("2-norm should differ per (layer, KV head) and reach into the slow pairs", () => {
    const sel = selectKeptPairs("2-norm", fx.config, 8, caps);
    const distinct = new Set(sel.keptPairs.flat().map((p) => p.join(","))).size;
    expect(distinct).toBeGreaterThan(4);
    expect(sel.keptPairs.flat(2).some((p) => p >= 12)).toBe(true);
  });
});
