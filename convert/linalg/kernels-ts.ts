// Plain TypeScript kernels: the same contract as the wasm ones, cache-blocked with 2×2 register tiles. Used when
// build/linalg.wasm is absent and as the independent reference the wasm kernels are tested against.
import type { LinalgKernels, Strided, Triangle } from "./kernels.ts";

const KC = 256;
const NC = 64;

/** Whether C[i][j] is written: tri 0 = all, 1 = j ≤ i, 2 = j ≥ i. */
function keep(tri: number, j: number, i: number): boolean {
  return tri === 0 || (tri === 1 ? j <= i : j >= i);
}

function gemmNT(
  A: Strided, B: Strided, C: Strided, m: number, n: number, k: number, alpha: number, beta: number,
  triangle: Triangle = "full",
): void {
  const lower = triangle === "lower", upper = triangle === "upper";
  const tri = lower ? 1 : upper ? 2 : 0;
  const a = A.data, b = B.data, c = C.data;
  const lda = A.stride, ldb = B.stride, ldc = C.stride;
  if (beta !== 1) {
    for (let i = 0; i < m; i++) {
      const row = C.offset + i * ldc;
      const jEnd = lower ? Math.min(i + 1, n) : n;
      for (let j = upper ? i : 0; j < jEnd; j++) c[row + j] = beta === 0 ? 0 : beta * c[row + j];
    }
  }
  for (let kk = 0; kk < k; kk += KC) {
    const kLen = Math.min(KC, k - kk);
    for (let jj = 0; jj < n; jj += NC) {
      const jEnd = Math.min(jj + NC, n);
      let i = lower ? jj : 0;
      const iEnd = upper ? Math.min(m, jEnd) : m;
      for (; i + 1 < iEnd; i += 2) {
        const a0 = A.offset + i * lda + kk, a1 = a0 + lda;
        const c0 = C.offset + i * ldc, c1 = c0 + ldc;
        const jLim = lower ? Math.min(jEnd, i + 2) : jEnd;
        let j = upper ? Math.max(jj, i) : jj;
        for (; j + 1 < jLim; j += 2) {
          const b0 = B.offset + j * ldb + kk, b1 = b0 + ldb;
          let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
          for (let p = 0; p < kLen; p++) {
            const x0 = a[a0 + p], x1 = a[a1 + p], y0 = b[b0 + p], y1 = b[b1 + p];
            s00 += x0 * y0;
            s01 += x0 * y1;
            s10 += x1 * y0;
            s11 += x1 * y1;
          }
          if (keep(tri, j, i)) c[c0 + j] += alpha * s00;
          if (keep(tri, j + 1, i)) c[c0 + j + 1] += alpha * s01;
          if (keep(tri, j, i + 1)) c[c1 + j] += alpha * s10;
          if (keep(tri, j + 1, i + 1)) c[c1 + j + 1] += alpha * s11;
        }
        for (; j < jLim; j++) {
          const b0 = B.offset + j * ldb + kk;
          let s0 = 0, s1 = 0;
          for (let p = 0; p < kLen; p++) {
            s0 += a[a0 + p] * b[b0 + p];
            s1 += a[a1 + p] * b[b0 + p];
          }
          if (keep(tri, j, i)) c[c0 + j] += alpha * s0;
          if (keep(tri, j, i + 1)) c[c1 + j] += alpha * s1;
        }
      }
      for (; i < iEnd; i++) {
        const a0 = A.offset + i * lda + kk;
        const c0 = C.offset + i * ldc;
        const jLim = lower ? Math.min(jEnd, i + 1) : jEnd;
        for (let j = upper ? Math.max(jj, i) : jj; j < jLim; j++) {
          const b0 = B.offset + j * ldb + kk;
          let s = 0;
          for (let p = 0; p < kLen; p++) s += a[a0 + p] * b[b0 + p];
          c[c0 + j] += alpha * s;
        }
      }
    }
  }
}

function fusedUpdateMatvec(
  a: Float64Array, n: number, from: number,
  v: Float64Array, w: Float64Array, update: boolean, u: Float64Array, p: Float64Array,
): void {
  for (let i = from; i < n; i++) {
    const row = i * n;
    const vi = v[i], wi = w[i], ui = u[i];
    let aii = a[row + i];
    if (update) {
      aii -= 2 * vi * wi;
      a[row + i] = aii;
    }
    let sum = aii * ui;
    for (let j = i + 1; j < n; j++) {
      let x = a[row + j];
      if (update) {
        x -= vi * w[j] + wi * v[j];
        a[row + j] = x;
      }
      sum += x * u[j];
      p[j] += x * ui;
    }
    p[i] += sum;
  }
}

export const typescriptKernels: LinalgKernels = {
  name: "typescript",
  alloc: (length) => new Float64Array(length),
  reserve: () => {},
  mark: () => 0,
  release: () => {},
  gemmNT,
  fusedUpdateMatvec,
};
