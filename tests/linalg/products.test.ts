// Dense products (A·B, A·Bᵀ, Aᵀ·B, Gram matrices, A·S·Aᵀ) and the second-moment accumulator against naive f64 loops.
import { describe, expect, it } from "vitest";
import { gramAAt, gramAtA, matmul, matmulABt, matmulAtB, sandwich } from "../../convert/linalg/matmul.ts";
import { largestEigenvalue } from "../../convert/linalg/lanczos.ts";
import { SecondMomentAccumulator } from "../../convert/linalg/second-moment.ts";
import { transpose } from "../../convert/linalg/matrix.ts";
import { LinalgError } from "../../convert/linalg/errors.ts";
import { KERNELS, maxAbsDiff, naiveMatmul, naiveTranspose, randomMatrix, randomOrthogonal, rng, withSpectrum } from "./helpers.ts";

describe.each(KERNELS.map((k) => [k.name, k] as const))("products (%s)", (_name, kernels) => {
  const a = randomMatrix(37, 53, 1), b = randomMatrix(53, 29, 2), c = randomMatrix(29, 53, 3);
  it("matmul, matmulABt and matmulAtB should match the naive product", () => {
    expect(maxAbsDiff(matmul(a, b, kernels).data, naiveMatmul(a, b).data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matmulABt(a, c, kernels).data, naiveMatmul(a, naiveTranspose(c)).data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matmulAtB(b, c.data.length ? transpose(c) : c, kernels).data, naiveMatmul(naiveTranspose(b), naiveTranspose(c)).data)).toBeLessThan(1e-12);
  });

  it("Gram matrices and A·S·Aᵀ should match and be exactly symmetric", () => {
    const aat = gramAAt(a, kernels), ata = gramAtA(a, kernels);
    expect(maxAbsDiff(aat.data, naiveMatmul(a, naiveTranspose(a)).data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(ata.data, naiveMatmul(naiveTranspose(a), a).data)).toBeLessThan(1e-12);
    const s = withSpectrum(randomOrthogonal(53, 4), Array.from({ length: 53 }, (_, i) => 1 + i));
    const got = sandwich(a, s, kernels);
    const want = naiveMatmul(naiveMatmul(a, s), naiveTranspose(a));
    expect(maxAbsDiff(got.data, want.data) / 1e3).toBeLessThan(1e-12);
    for (let i = 0; i < 37; i++) for (let j = 0; j < i; j++) expect(got.data[i * 37 + j]).toBe(got.data[j * 37 + i]);
  });

  it("SecondMomentAccumulator should equal (1/N)·Σ x·xᵀ across batch boundaries and masks", () => {
    const d = 19, n = 45;
    const r = rng(8);
    const rows = Float32Array.from({ length: n * d }, () => r.normal() * 3);
    const mask = Uint8Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const all = new SecondMomentAccumulator(d, { kernels, batchRows: 8 });
    const img = new SecondMomentAccumulator(d, { kernels, batchRows: 8 });
    all.add(rows.subarray(0, 10 * d));
    all.add(rows.subarray(10 * d));
    img.add(rows, mask, 1);
    for (const [acc, keep] of [[all, () => true], [img, (i: number) => mask[i] === 1]] as const) {
      const want = new Float64Array(d * d);
      let count = 0;
      for (let t = 0; t < n; t++) {
        if (!keep(t)) continue;
        count++;
        for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) want[i * d + j] += rows[t * d + i] * rows[t * d + j];
      }
      for (let i = 0; i < want.length; i++) want[i] /= count;
      expect(acc.count).toBe(count);
      expect(maxAbsDiff(acc.secondMoment().data, want)).toBeLessThan(1e-12);
    }
  });

  it("SecondMomentAccumulator should reject ragged rows, non-finite values and an empty read", () => {
    const acc = new SecondMomentAccumulator(4, { kernels });
    expect(() => acc.add(new Float32Array(6))).toThrow(LinalgError);
    expect(() => acc.add(Float32Array.from([1, 2, NaN, 4]))).toThrow(/not_finite|NaN/);
    expect(() => new SecondMomentAccumulator(4, { kernels }).secondMoment()).toThrow(LinalgError);
  });
});

describe("largestEigenvalue", () => {
  it("should find λ_max of a PSD matrix, with and without a clear gap", () => {
    const gap = withSpectrum(randomOrthogonal(60, 2), Array.from({ length: 60 }, (_, i) => (i === 0 ? 50 : 20 * 0.9 ** i)));
    expect(Math.abs(largestEigenvalue(gap, { tolerance: 1e-14 }) - 50) / 50).toBeLessThan(1e-12);
    const flat = withSpectrum(randomOrthogonal(80, 3), Array.from({ length: 80 }, (_, i) => 10 - i * 0.01));
    expect(Math.abs(largestEigenvalue(flat) - 10) / 10).toBeLessThan(1e-6);
  });
});
