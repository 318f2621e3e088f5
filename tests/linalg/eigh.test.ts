// Symmetric eigen-decomposition against known spectra: diagonal, random orthogonal conjugation with chosen
// eigenvalues (distinct, repeated, rank-deficient PSD), the 1-2-1 tridiagonal with its closed-form spectrum, and the
// A·V = V·Λ residual and VᵀV = I on each — for both kernel sets, at sizes that exercise the divide-and-conquer merges.
import { describe, expect, it } from "vitest";
import { eigh } from "../../convert/linalg/eigh.ts";
import { LinalgError } from "../../convert/linalg/errors.ts";
import { matrix, type Matrix } from "../../convert/linalg/matrix.ts";
import { KERNELS, maxAbsDiff, naiveMatmul, orthonormalityError, randomMatrix, randomOrthogonal, withSpectrum } from "./helpers.ts";

function residual(a: Matrix, values: Float64Array, v: Matrix): number {
  const av = naiveMatmul(a, v);
  let m = 0;
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) m = Math.max(m, Math.abs(av.data[i * a.cols + j] - values[j] * v.data[i * a.cols + j]));
  return m;
}

function descending(values: number[]): Float64Array {
  return Float64Array.from(values.sort((x, y) => y - x));
}

describe.each(KERNELS.map((k) => [k.name, k] as const))("eigh (%s)", (_name, kernels) => {
  it("should return a diagonal matrix's entries, descending, with unit vectors", () => {
    const diag = [3, -1, 7, 0, 2.5, 7.5];
    const a = matrix(6, 6);
    diag.forEach((x, i) => (a.data[i * 6 + i] = x));
    const { values, vectors } = eigh(a, kernels);
    expect(Array.from(values)).toEqual([7.5, 7, 3, 2.5, 0, -1]);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-15);
    expect(residual(a, values, vectors)).toBe(0);
  });

  for (const n of [5, 33, 97, 150]) {
    it(`should recover chosen distinct eigenvalues under a random orthogonal conjugation (n=${n})`, () => {
      const want = descending(Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * 10 + i * 0.01));
      const a = withSpectrum(randomOrthogonal(n, 11 + n), want);
      const { values, vectors } = eigh(a, kernels);
      expect(maxAbsDiff(values, want)).toBeLessThan(1e-12 * 10 * n);
      expect(residual(a, values, vectors)).toBeLessThan(1e-12 * 10 * n);
      expect(orthonormalityError(vectors)).toBeLessThan(1e-13 * n);
    });
  }

  it("should give an orthonormal basis for repeated eigenvalues", () => {
    const n = 120;
    // Multiplicities 40, 30, 49 and one simple eigenvalue.
    const want = descending(Array.from({ length: n }, (_, i) => (i < 40 ? 2 : i < 70 ? -1 : i < 119 ? 0.5 : 9)));
    const a = withSpectrum(randomOrthogonal(n, 5), want);
    const { values, vectors } = eigh(a, kernels);
    expect(maxAbsDiff(values, want)).toBeLessThan(1e-12);
    expect(residual(a, values, vectors)).toBeLessThan(1e-12);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-12);
  });

  it("should decompose a rank-deficient PSD matrix (Gram of 20 vectors in 100 dims)", () => {
    const x = randomMatrix(20, 100, 3);
    const xt = matrix(100, 20);
    for (let i = 0; i < 20; i++) for (let j = 0; j < 100; j++) xt.data[j * 20 + i] = x.data[i * 100 + j];
    const a = naiveMatmul(xt, x);
    const { values, vectors } = eigh(a, kernels);
    const top = values[0];
    for (let i = 20; i < 100; i++) expect(Math.abs(values[i])).toBeLessThan(1e-13 * top);
    expect(values[19]).toBeGreaterThan(1e-3 * top);
    expect(residual(a, values, vectors)).toBeLessThan(1e-12 * top);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-12);
  });

  it("should match the closed-form spectrum of the 1-2-1 tridiagonal (n=200)", () => {
    const n = 200;
    const a = matrix(n, n);
    for (let i = 0; i < n; i++) {
      a.data[i * n + i] = 2;
      if (i + 1 < n) a.data[i * n + i + 1] = a.data[(i + 1) * n + i] = -1;
    }
    const want = descending(Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((k + 1) * Math.PI) / (n + 1))));
    const { values, vectors } = eigh(a, kernels);
    expect(maxAbsDiff(values, want)).toBeLessThan(1e-13);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-12);
  });

  it("should handle a matrix that is already tridiagonal with zero off-diagonals inside (split blocks)", () => {
    const n = 70;
    const a = matrix(n, n);
    for (let i = 0; i < n; i++) {
      a.data[i * n + i] = (i % 7) - 3;
      if (i + 1 < n && i % 10 !== 9) a.data[i * n + i + 1] = a.data[(i + 1) * n + i] = 0.5;
    }
    const { values, vectors } = eigh(a, kernels);
    expect(residual(a, values, vectors)).toBeLessThan(1e-13);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-13);
  });

  it("should resolve glued Wilkinson matrices (pairs of eigenvalues equal to ~1e-14)", () => {
    // Five W21+ blocks glued by 1e-10: the classic hard case for divide-and-conquer deflation.
    const blocks = 5, m = 21, n = blocks * m;
    const a = matrix(n, n);
    for (let i = 0; i < n; i++) {
      a.data[i * n + i] = Math.abs(10 - (i % m));
      if (i + 1 < n) a.data[i * n + i + 1] = a.data[(i + 1) * n + i] = (i + 1) % m === 0 ? 1e-10 : 1;
    }
    const { values, vectors } = eigh(a, kernels);
    expect(residual(a, values, vectors)).toBeLessThan(1e-13 * 11);
    expect(orthonormalityError(vectors)).toBeLessThan(1e-13);
    // Spectral invariants: Σλ = tr A and Σλ² = ‖A‖_F².
    let tr = 0, fro = 0, sum = 0, sumSq = 0;
    for (let i = 0; i < n; i++) tr += a.data[i * n + i];
    for (const x of a.data) fro += x * x;
    for (const x of values) {
      sum += x;
      sumSq += x * x;
    }
    expect(Math.abs(sum - tr)).toBeLessThan(1e-11);
    expect(Math.abs(sumSq - fro) / fro).toBeLessThan(1e-13);
  });

  it("should reject non-square and non-finite input", () => {
    expect(() => eigh(matrix(2, 3), kernels)).toThrow(LinalgError);
    const bad = matrix(2, 2, Float64Array.from([1, NaN, NaN, 1]));
    expect(() => eigh(bad, kernels)).toThrow(/not_finite|NaN/);
  });
});
