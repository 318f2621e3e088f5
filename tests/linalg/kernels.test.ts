// The wasm SIMD kernels against the TypeScript kernels and a naive triple loop: odd sizes, strides, lower-only
// updates, alpha/beta, and the fused tridiagonalisation pass.
import { describe, expect, it } from "vitest";
import { typescriptKernels } from "../../convert/linalg/kernels-ts.ts";
import type { Triangle } from "../../convert/linalg/kernels.ts";
import { LinalgError } from "../../convert/linalg/errors.ts";
import { KERNELS, maxAbsDiff, rng } from "./helpers.ts";

function naiveGemmNT(
  a: Float64Array, ao: number, lda: number, b: Float64Array, bo: number, ldb: number, c: Float64Array, co: number, ldc: number,
  m: number, n: number, k: number, alpha: number, beta: number, triangle: Triangle,
): void {
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      if ((triangle === "lower" && j > i) || (triangle === "upper" && j < i)) continue;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[ao + i * lda + p] * b[bo + j * ldb + p];
      c[co + i * ldc + j] = beta * c[co + i * ldc + j] + alpha * s;
    }
}

function filled(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => r.normal());
}

describe.each(KERNELS.map((k) => [k.name, k] as const))("kernels (%s)", (_name, kernels) => {
  const cases = [
    { m: 1, n: 1, k: 1 }, { m: 7, n: 5, k: 3 }, { m: 9, n: 13, k: 300 }, { m: 66, n: 67, k: 257 }, { m: 130, n: 3, k: 513 },
  ];
  for (const { m, n, k } of cases) {
    for (const [alpha, beta, triangle] of [[1, 0, "full"], [-0.5, 1, "full"], [2, 0.25, "lower"], [-1, 1, "upper"]] as const) {
      it(`gemmNT should match the naive product for ${m}×${n}×${k}, alpha ${alpha}, beta ${beta}, ${triangle}`, () => {
        const lda = k + 3, ldb = k + 1, ldc = n + 2;
        const a = filled(2 + m * lda, 1), b = filled(5 + n * ldb, 2);
        const c0 = filled(1 + m * ldc, 3);
        const want = c0.slice();
        naiveGemmNT(a, 2, lda, b, 5, ldb, want, 1, ldc, m, n, k, alpha, beta, triangle);
        const got = c0.slice();
        kernels.gemmNT({ data: a, offset: 2, stride: lda }, { data: b, offset: 5, stride: ldb }, { data: got, offset: 1, stride: ldc }, m, n, k, alpha, beta, triangle);
        // The naive loop leaves the other triangle and the padding as they were, so this also checks those.
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-11 * Math.sqrt(k) * 4);
        expect(got[0]).toBe(c0[0]);
      });
    }
  }

  it("gemmNT should work in place on buffers from alloc", () => {
    const mark = kernels.mark();
    kernels.reserve(3 * 40 * 40);
    const a = kernels.alloc(40 * 40), c = kernels.alloc(40 * 40);
    a.set(filled(1600, 9));
    const want = new Float64Array(1600);
    naiveGemmNT(a, 0, 40, a, 0, 40, want, 0, 40, 40, 40, 40, 1, 0, "full");
    kernels.gemmNT({ data: a, offset: 0, stride: 40 }, { data: a, offset: 0, stride: 40 }, { data: c, offset: 0, stride: 40 }, 40, 40, 40, 1, 0);
    expect(maxAbsDiff(c, want)).toBeLessThan(1e-12);
    kernels.release(mark);
  });

  it("fusedUpdateMatvec should match the TypeScript pass", () => {
    const n = 23;
    const mark = kernels.mark();
    kernels.reserve(n * n + 8 * n);
    const a = kernels.alloc(n * n), v = kernels.alloc(n), w = kernels.alloc(n), u = kernels.alloc(n), p = kernels.alloc(n);
    const src = filled(n * n, 4), vs = filled(n, 5), ws = filled(n, 6), us = filled(n, 7);
    for (const [from, update] of [[3, true], [1, false]] as const) {
      a.set(src); v.set(vs); w.set(ws); u.set(us); p.fill(0);
      const ra = src.slice(), rp = new Float64Array(n);
      typescriptKernels.fusedUpdateMatvec(ra, n, from, vs.slice(), ws.slice(), update, us.slice(), rp);
      kernels.fusedUpdateMatvec(a, n, from, v, w, update, u, p);
      expect(maxAbsDiff(a, ra)).toBeLessThan(1e-13);
      expect(maxAbsDiff(p, rp)).toBeLessThan(1e-12);
    }
    kernels.release(mark);
  });
});

describe("wasm kernels misuse", () => {
  it("should refuse operands that are too short for the strides", () => {
    const wasm = KERNELS[1];
    expect(() =>
      wasm.gemmNT({ data: new Float64Array(5), offset: 0, stride: 3 }, { data: new Float64Array(9), offset: 0, stride: 3 }, { data: new Float64Array(9), offset: 0, stride: 3 }, 3, 3, 3, 1, 0),
    ).toThrow(LinalgError);
  });
});
