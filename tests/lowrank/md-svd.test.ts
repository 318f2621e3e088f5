// MD-SVD on synthetic anisotropic activations: it attains the optimum (sum of discarded eigenvalues of W·S·Wᵀ),
// beats weight SVD on calibration and held-out activations, equals docs/method.md §6.2's whitened SVD, the latent scales
// give the documented latent covariances, and damping keeps everything finite on rank-deficient S.
import { describe, expect, it } from "vitest";
import { eigh } from "../../convert/linalg/eigh.ts";
import { matmul, matmulABt, sandwich } from "../../convert/linalg/matmul.ts";
import { matrix, stackRows, subtract, trace, type Matrix } from "../../convert/linalg/matrix.ts";
import { truncatedSvd } from "../../convert/linalg/svd.ts";
import { dampSecondMoment, type Damping } from "../../convert/lowrank/damping.ts";
import { mdSvd, mdSvdKv } from "../../convert/lowrank/md-svd.ts";
import { kvReconstructionError, reconstructionError } from "../../convert/lowrank/reconstruction-error.ts";
import { svdJoint } from "../../convert/lowrank/svd-joint.ts";
import { LowRankError } from "../../convert/lowrank/errors.ts";
import { ModalitySecondMoments } from "../../convert/lowrank/modality-moments.ts";
import { KERNELS, maxAbsDiff, naiveMatmul, naiveTranspose } from "../linalg/helpers.ts";
import { anisotropicActivations, DIMS, kvWeights, momentOf } from "./synthetic.ts";

const d = DIMS.hidden;
const { wkNope, wv } = kvWeights(3);
const W = stackRows(wkNope, wv);
const RANK = 16;
const NONE: Damping = { kind: "none" };
// Two modalities with different activation geometry; 2000 calibration and 2000 held-out rows each.
const calibImg = anisotropicActivations(2000, d, 21, 0.8, [5]);
const calibTxt = anisotropicActivations(2000, d, 33, 0.93, [17, 40]);
const sImg = momentOf(calibImg, d);
const sTxt = momentOf(calibTxt, d);

describe.each(KERNELS.map((k) => [k.name, k] as const))("mdSvd (%s)", (_name, kernels) => {
  it("should attain the optimum: error = sum of discarded eigenvalues of W·S·Wᵀ", () => {
    for (const s of [sImg, sTxt]) {
      const r = mdSvd(W, s, RANK, { damping: NONE, kernels });
      const err = reconstructionError(W, r.up, r.down, s, kernels);
      const optimum = Array.from(r.whitenedEigenvalues.slice(RANK)).reduce((a, b) => a + b, 0);
      expect(Math.abs(err - optimum) / optimum).toBeLessThan(1e-9);
      // The reported eigenvalues are W·S·Wᵀ's, checked against an independent naive product.
      const g = naiveMatmul(naiveMatmul(W, s), naiveTranspose(W));
      expect(Math.abs(Array.from(r.whitenedEigenvalues).reduce((a, b) => a + b, 0) - trace(g)) / trace(g)).toBeLessThan(1e-12);
    }
  });

  it("should beat weight SVD_joint in activation-weighted error, per modality", () => {
    const joint = svdJoint(wkNope, wv, DIMS, RANK, kernels);
    for (const s of [sImg, sTxt]) {
      const md = mdSvdKv(wkNope, wv, DIMS, s, RANK, { kernels });
      const eMd = kvReconstructionError(wkNope, wv, md, s, kernels);
      const eJoint = kvReconstructionError(wkNope, wv, joint, s, kernels);
      expect(eMd).toBeLessThan(0.8 * eJoint);
    }
  });

  it("should beat weight SVD on held-out activations of the same modality", () => {
    const fresh = momentOf(anisotropicActivations(2000, d, 21, 0.8, [5], 999), d);
    const md = mdSvd(W, sImg, RANK, { kernels });
    const joint = svdJoint(wkNope, wv, DIMS, RANK, kernels);
    const eMd = reconstructionError(W, md.up, md.down, fresh, kernels);
    const eJoint = reconstructionError(W, stackRows(joint.upK, joint.upV), joint.down, fresh, kernels);
    expect(eMd).toBeLessThan(eJoint);
  });

  it("should equal the §6.2 whitened SVD (eigh of S, D = W·U_s·Λ^{1/2}) for the sqrt-sigma scale", () => {
    const r = mdSvd(W, sTxt, RANK, { damping: NONE, latentScale: "sqrt-sigma", kernels });
    const { values: lam, vectors: us } = eigh(sTxt, kernels);
    const dm = matrix(W.rows, d);
    const wus = matmul(W, us, kernels);
    for (let i = 0; i < W.rows; i++) for (let j = 0; j < d; j++) dm.data[i * d + j] = wus.data[i * d + j] * Math.sqrt(lam[j]);
    const svd = truncatedSvd(dm, RANK, kernels);
    // W_down = Σ^{1/2}·V_wᵀ·Λ^{−1/2}·U_sᵀ, W_up = U_w·Σ^{1/2}; eigenvector signs are arbitrary, so align them.
    const vl = matrix(RANK, d);
    for (let i = 0; i < RANK; i++) for (let j = 0; j < d; j++) vl.data[i * d + j] = (svd.vt.data[i * d + j] * Math.sqrt(svd.s[i])) / Math.sqrt(lam[j]);
    const downRef = matmulABt(vl, us, kernels);
    for (let i = 0; i < RANK; i++) {
      const sign = Math.sign(downRef.data[i * d] * r.down.data[i * d]) || 1;
      for (let j = 0; j < d; j++) expect(r.down.data[i * d + j]).toBeCloseTo(sign * downRef.data[i * d + j], 7);
      expect(Math.sqrt(svd.s[i])).toBeCloseTo(r.whitenedEigenvalues[i] ** 0.25, 9);
    }
  });

  it("should give the documented latent covariance down·S·downᵀ for each scale, with one product", () => {
    const products: Matrix[] = [];
    for (const [scale, power] of [["unit-up", 1], ["sqrt-sigma", 0.5], ["unit-variance", 0]] as const) {
      const r = mdSvd(W, sImg, RANK, { damping: NONE, latentScale: scale, kernels });
      products.push(matmul(r.up, r.down, kernels));
      const cov = sandwich(r.down, sImg, kernels);
      for (let i = 0; i < RANK; i++) {
        const want = Math.sqrt(r.whitenedEigenvalues[i]) ** (2 * power); // σ², σ, 1
        expect(cov.data[i * RANK + i] / want).toBeCloseTo(1, 8);
        if (i > 0) expect(Math.abs(cov.data[i * RANK]) / want).toBeLessThan(1e-8);
      }
    }
    expect(maxAbsDiff(products[0].data, products[1].data)).toBeLessThan(1e-10);
    expect(maxAbsDiff(products[0].data, products[2].data)).toBeLessThan(1e-10);
  });

  it("should stay finite on a rank-deficient S, and damping none should be best on its own calibration S", () => {
    const few = anisotropicActivations(12, d, 5, 0.9, []); // 12 samples in 64 dims: rank(S) = 12 < RANK
    const s = momentOf(few, d);
    const errors: number[] = [];
    for (const damping of [NONE, { kind: "ridge-max", epsilon: 1e-3 }, { kind: "ridge-trace", lambda: 1e-2 }, { kind: "clamp-max", epsilon: 1e-3 }] as Damping[]) {
      for (const latentScale of ["unit-up", "sqrt-sigma", "unit-variance"] as const) {
        const r = mdSvd(W, s, RANK, { damping, latentScale, kernels });
        expect(r.down.data.every(Number.isFinite)).toBe(true);
        expect(r.up.data.every(Number.isFinite)).toBe(true);
        if (latentScale === "unit-up") errors.push(reconstructionError(W, r.up, r.down, s, kernels));
      }
    }
    // With rank(S) = 12 < 16 the undamped error is zero on S; damped ones are ≥ it.
    expect(errors[0]).toBeLessThan(1e-9 * trace(sandwich(W, s, kernels)));
    for (const e of errors.slice(1)) expect(e).toBeGreaterThanOrEqual(errors[0] - 1e-9);
  });

  it("should reject a second moment of the wrong size", () => {
    expect(() => mdSvd(W, matrix(d + 1, d + 1), RANK, { kernels })).toThrow(LowRankError);
  });
});

describe("dampSecondMoment", () => {
  it("ridge-trace should add λ·tr(S)/d to the diagonal and clamp-max should floor the eigenvalues at ε·λ_max", () => {
    const r = dampSecondMoment(sImg, { kind: "ridge-trace", lambda: 0.01 });
    expect(r.shift).toBeCloseTo((0.01 * trace(sImg)) / d, 14);
    expect(maxAbsDiff(subtract(r.matrix, sImg).data, Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? r.shift : 0)))).toBeLessThan(1e-13);
    const lam = eigh(sImg).values;
    const clamped = eigh(dampSecondMoment(sImg, { kind: "clamp-max", epsilon: 1e-2 }).matrix).values;
    const floor = 1e-2 * lam[0];
    expect(maxAbsDiff(clamped, Float64Array.from(lam, (x) => Math.max(x, floor)).sort((a, b) => b - a))).toBeLessThan(1e-12 * lam[0]);
    const ridge = dampSecondMoment(sImg, { kind: "ridge-max", epsilon: 1e-3 });
    expect(ridge.shift / (1e-3 * lam[0])).toBeCloseTo(1, 8);
    expect(() => dampSecondMoment(sImg, { kind: "ridge-max", epsilon: -1 })).toThrow(LowRankError);
  });
});

describe("ModalitySecondMoments", () => {
  it("should route rows by the image mask into two independent moments", () => {
    const rows = anisotropicActivations(30, d, 8, 0.9, [3]);
    const isImage = Uint8Array.from({ length: 30 }, (_, t) => (t >= 4 && t < 14 ? 1 : 0));
    const mm = new ModalitySecondMoments(d, { batchRows: 7 });
    mm.add(rows.subarray(0, 12 * d), isImage.subarray(0, 12));
    mm.add(rows.subarray(12 * d), isImage.subarray(12));
    const m = mm.moments();
    expect([m.imageTokens, m.textTokens]).toEqual([10, 20]);
    const imgRows = rows.slice(4 * d, 14 * d);
    const txtRows = new Float32Array(20 * d);
    txtRows.set(rows.subarray(0, 4 * d));
    txtRows.set(rows.subarray(14 * d), 4 * d);
    expect(maxAbsDiff(m.image.data, momentOf(imgRows, d).data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(m.text.data, momentOf(txtRows, d).data)).toBeLessThan(1e-12);
  });
});
