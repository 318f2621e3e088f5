// Truncated SVD through the Gram eigen-decomposition: exact reconstruction at full rank, the Eckart–Young error
// (sum of discarded σ²) when truncated, chosen singular values recovered, tall and wide inputs, rank-deficient rows.
import { describe, expect, it } from "vitest";
import { LinalgError } from "../../convert/linalg/errors.ts";
import { frobeniusNormSquared, matrix, subtract, type Matrix } from "../../convert/linalg/matrix.ts";
import { reconstructSvd, truncatedSvd } from "../../convert/linalg/svd.ts";
import { KERNELS, maxAbsDiff, naiveMatmul, naiveTranspose, orthonormalityError, randomMatrix, randomOrthogonal } from "./helpers.ts";

/** U[:, :r]·diag(σ)·V[:, :r]ᵀ with random orthogonal U (m×m) and V (n×n). */
function withSingularValues(m: number, n: number, sigma: number[], seed: number): Matrix {
  const u = randomOrthogonal(m, seed), v = randomOrthogonal(n, seed + 1);
  const us = matrix(m, sigma.length), vt = matrix(sigma.length, n);
  for (let i = 0; i < m; i++) for (let j = 0; j < sigma.length; j++) us.data[i * sigma.length + j] = u.data[i * m + j] * sigma[j];
  for (let j = 0; j < sigma.length; j++) for (let i = 0; i < n; i++) vt.data[j * n + i] = v.data[i * n + j];
  return naiveMatmul(us, vt);
}

describe.each(KERNELS.map((k) => [k.name, k] as const))("truncatedSvd (%s)", (_name, kernels) => {
  it("should reconstruct a wide matrix exactly at full rank", () => {
    const w = randomMatrix(24, 90, 1);
    const svd = truncatedSvd(w, 24, kernels);
    expect(maxAbsDiff(reconstructSvd(svd, kernels).data, w.data)).toBeLessThan(1e-12);
    expect(orthonormalityError(svd.u)).toBeLessThan(1e-13);
    expect(orthonormalityError(naiveTranspose(svd.vt))).toBeLessThan(1e-12);
  });

  it("should reconstruct a tall matrix exactly at full rank", () => {
    const w = randomMatrix(70, 16, 2);
    const svd = truncatedSvd(w, 16, kernels);
    expect(svd.u.rows).toBe(70);
    expect(svd.vt.cols).toBe(16);
    expect(maxAbsDiff(reconstructSvd(svd, kernels).data, w.data)).toBeLessThan(1e-12);
  });

  it("should recover chosen singular values and meet the Eckart–Young error when truncated", () => {
    const sigma = Array.from({ length: 40 }, (_, i) => 10 * 0.85 ** i);
    const w = withSingularValues(40, 150, sigma, 7);
    const svd = truncatedSvd(w, 12, kernels);
    expect(maxAbsDiff(svd.allSingularValues, sigma)).toBeLessThan(1e-12 * 10);
    const err = frobeniusNormSquared(subtract(w, reconstructSvd(svd, kernels)));
    const discarded = sigma.slice(12).reduce((s, x) => s + x * x, 0);
    expect(Math.abs(err - discarded) / discarded).toBeLessThan(1e-10);
  });

  it("should give zero rows of Vᵀ for numerically zero singular values, not amplified noise", () => {
    const w = withSingularValues(10, 30, [5, 4, 3], 9); // rank 3
    const svd = truncatedSvd(w, 6, kernels);
    for (let i = 3; i < 6; i++) expect(Array.from(svd.vt.data.subarray(i * 30, (i + 1) * 30)).every((x) => x === 0)).toBe(true);
    expect(maxAbsDiff(reconstructSvd(svd, kernels).data, w.data)).toBeLessThan(1e-12);
  });

  it("should reject a rank above min(m, n)", () => {
    expect(() => truncatedSvd(randomMatrix(4, 9, 1), 5, kernels)).toThrow(LinalgError);
  });
});
