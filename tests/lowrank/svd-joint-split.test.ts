// Data-free factorisations: SVD_joint reproduces W exactly at full rank and meets Eckart–Young when truncated; SVD_split
// keeps one latent of width D_c in block form and is never better than joint at equal width; GQA shape checks.
import { describe, expect, it } from "vitest";
import { frobeniusNormSquared, stackRows, subtract, transpose } from "../../convert/linalg/matrix.ts";
import { matmul } from "../../convert/linalg/matmul.ts";
import { svdJoint } from "../../convert/lowrank/svd-joint.ts";
import { svdSplit } from "../../convert/lowrank/svd-split.ts";
import { LowRankError } from "../../convert/lowrank/errors.ts";
import { KERNELS, maxAbsDiff, orthonormalityError } from "../linalg/helpers.ts";
import { DIMS, kvWeights } from "./synthetic.ts";

const { wkNope, wv } = kvWeights(1);
const W = stackRows(wkNope, wv); // 56 × 64

describe.each(KERNELS.map((k) => [k.name, k] as const))("svdJoint (%s)", (_name, kernels) => {
  it("should reproduce W_k,nope and W_v exactly at full rank, with orthonormal down rows", () => {
    const r = svdJoint(wkNope, wv, DIMS, 56, kernels);
    expect(r.down.rows).toBe(56);
    expect(r.upK.rows).toBe(DIMS.nKv * DIMS.dNope);
    expect(r.upV.rows).toBe(DIMS.nKv * DIMS.dHead);
    expect(maxAbsDiff(matmul(r.upK, r.down, kernels).data, wkNope.data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matmul(r.upV, r.down, kernels).data, wv.data)).toBeLessThan(1e-12);
    expect(orthonormalityError(transpose(r.down))).toBeLessThan(1e-12);
  });

  it("should leave exactly the discarded σ² as Frobenius error when truncated", () => {
    const r = svdJoint(wkNope, wv, DIMS, 20, kernels);
    const err = frobeniusNormSquared(subtract(W, matmul(stackRows(r.upK, r.upV), r.down, kernels)));
    const discarded = Array.from(r.singularValues.slice(20)).reduce((s, x) => s + x * x, 0);
    expect(Math.abs(err - discarded) / discarded).toBeLessThan(1e-10);
    // Σ sits on the up side: column norms of up are the singular values.
    for (let j = 0; j < 20; j++) {
      let n2 = 0;
      for (const up of [r.upK, r.upV]) for (let i = 0; i < up.rows; i++) n2 += up.data[i * 20 + j] ** 2;
      expect(Math.sqrt(n2)).toBeCloseTo(r.singularValues[j], 10);
    }
  });
});

describe.each(KERNELS.map((k) => [k.name, k] as const))("svdSplit (%s)", (_name, kernels) => {
  it("should give one latent of the requested total width with K and V in separate column blocks", () => {
    const r = svdSplit(wkNope, wv, DIMS, 20, { kernels });
    expect(r.keyRank).toBe(10);
    expect(r.down.rows).toBe(20);
    for (let i = 0; i < r.upK.rows; i++) for (let j = 10; j < 20; j++) expect(r.upK.data[i * 20 + j]).toBe(0);
    for (let i = 0; i < r.upV.rows; i++) for (let j = 0; j < 10; j++) expect(r.upV.data[i * 20 + j]).toBe(0);
    const errK = frobeniusNormSquared(subtract(wkNope, matmul(r.upK, r.down, kernels)));
    const errV = frobeniusNormSquared(subtract(wv, matmul(r.upV, r.down, kernels)));
    const sq = (a: Float64Array, from: number) => Array.from(a.slice(from)).reduce((s, x) => s + x * x, 0);
    expect(errK).toBeCloseTo(sq(r.keySingularValues, 10), 8);
    expect(errV).toBeCloseTo(sq(r.valueSingularValues, 10), 8);
    // Joint is the optimal rank-20 approximation of [W_k ; W_v]; split is one rank-20 factorisation of it.
    const joint = svdJoint(wkNope, wv, DIMS, 20, kernels);
    const errJoint = frobeniusNormSquared(subtract(W, matmul(stackRows(joint.upK, joint.upV), joint.down, kernels)));
    expect(errJoint).toBeLessThan(errK + errV);
  });

  it("should follow the released code's convention when asked (each half the full width)", () => {
    const r = svdSplit(wkNope, wv, DIMS, 2 * 24, { keyRank: 24, kernels });
    expect(maxAbsDiff(matmul(r.upK, r.down, kernels).data, wkNope.data)).toBeLessThan(1e-12);
    expect(r.down.rows).toBe(48);
  });

  it("should reject ranks that do not fit", () => {
    expect(() => svdSplit(wkNope, wv, DIMS, 20, { keyRank: 30, kernels })).toThrow(LowRankError);
  });
});

describe("shape checks", () => {
  it("should reject weights that do not match n_kv·d_c × d and n_kv·d_h × d", () => {
    expect(() => svdJoint(wkNope, wv, { ...DIMS, nKv: 4 }, 8)).toThrow(/n_kv·d_c/);
    expect(() => svdJoint(wkNope, wv, DIMS, 57)).toThrow(LowRankError);
    expect(() => svdJoint(wkNope, wv, DIMS, 0)).toThrow(/rank 0/);
  });
});
