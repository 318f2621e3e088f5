// Householder reduction of a symmetric matrix to tridiagonal form, A = Q·T·Qᵀ, Q = H_0·H_1⋯H_{n−3}, blocked as in
// LAPACK dsytrd/dlatrd: inside a panel of NB reflectors each step needs only a matrix–vector product with the stale
// trailing matrix plus O(n·NB) corrections, and the panel's rank-2·NB update is applied once by the blocked gemm.
// That reads the big trailing matrix once per step instead of reading and writing it.
import type { LinalgKernels } from "./kernels.ts";

/** T's diagonal d (n) and off-diagonal e (n−1); reflector k is H_k = I − beta[k]·v_k·v_kᵀ, v_k in row k of `a`. */
export interface Tridiagonal {
  readonly d: Float64Array;
  readonly e: Float64Array;
  readonly beta: Float64Array;
}

const NB = 32;

/** Working size (in f64 values) that tridiagonalize allocates from the kernels, for callers that reserve. */
export function tridiagonalizeWorkspace(n: number): number {
  return 3 * n + 4 * n * Math.min(NB, Math.max(n - 2, 1));
}

/**
 * Reduces the n×n symmetric matrix held row-major in `a` (a buffer from kernels.alloc; only the upper triangle is
 * read) in place. Afterwards row k, columns k+1…n−1, holds v_k with v_k[k+1] = 1.
 */
export function tridiagonalize(a: Float64Array, n: number, kernels: LinalgKernels): Tridiagonal {
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  const beta = new Float64Array(Math.max(n - 2, 0));
  if (n <= 2) {
    for (let i = 0; i < n; i++) d[i] = a[i * n + i];
    if (n === 2) e[0] = a[1];
    return { d, e, beta };
  }
  const nb = Math.min(NB, n - 2);
  const mark = kernels.mark();
  kernels.reserve(tridiagonalizeWorkspace(n));
  const u = kernels.alloc(n);
  const p = kernels.alloc(n);
  const zero = kernels.alloc(n);
  // Panel rows: vw[i] = [V_i,0…V_i,jb−1 | W_i,0…W_i,jb−1] and wv[i] = [W_i | V_i], so A −= V·Wᵀ + W·Vᵀ is vw·wvᵀ.
  const vw = kernels.alloc(2 * n * nb);
  const wv = kernels.alloc(2 * n * nb);
  const wtu = new Float64Array(nb), vtu = new Float64Array(nb);

  /** Householder vector of row k's x = a[k][k+1..n) into u (zero elsewhere) and back into the row; returns beta. */
  const house = (k: number): number => {
    const row = k * n;
    const x0 = a[row + k + 1];
    let sigma = 0;
    for (let j = k + 2; j < n; j++) sigma += a[row + j] * a[row + j];
    u.fill(0);
    u[k + 1] = 1;
    a[row + k + 1] = 1;
    if (sigma === 0) {
      // Already reduced: H = I and the off-diagonal entry is x0 itself.
      e[k] = x0;
      return 0;
    }
    const mu = Math.sqrt(x0 * x0 + sigma);
    const v0 = x0 <= 0 ? x0 - mu : -sigma / (x0 + mu);
    e[k] = mu;
    for (let j = k + 2; j < n; j++) {
      a[row + j] /= v0;
      u[j] = a[row + j];
    }
    return (2 * v0 * v0) / (sigma + v0 * v0);
  };

  for (let k = 0; k < n - 2; k += nb) {
    const jb = Math.min(nb, n - 2 - k);
    const ld = 2 * jb;
    vw.fill(0, 0, n * ld);
    wv.fill(0, 0, n * ld);
    for (let j = 0; j < jb; j++) {
      const step = k + j;
      const row = step * n;
      // Bring row `step` up to date with this panel's earlier reflectors before it is reduced.
      if (j > 0) {
        const sb = step * ld;
        for (let c = step; c < n; c++) {
          const cb = c * ld;
          let s = 0;
          for (let r = 0; r < j; r++) s += vw[sb + r] * vw[cb + jb + r] + vw[sb + jb + r] * vw[cb + r];
          a[row + c] -= s;
        }
      }
      d[step] = a[row + step];
      const b = house(step);
      beta[step] = b;
      // p = (A_stale − Σ_{r<j} v_r·w_rᵀ + w_r·v_rᵀ)·u over the trailing block [step+1, n).
      p.fill(0);
      kernels.fusedUpdateMatvec(a, n, step + 1, zero, zero, false, u, p);
      if (j > 0) {
        wtu.fill(0);
        vtu.fill(0);
        for (let i = step + 1; i < n; i++) {
          const ui = u[i];
          if (ui === 0) continue;
          const ib = i * ld;
          for (let r = 0; r < j; r++) {
            wtu[r] += vw[ib + jb + r] * ui;
            vtu[r] += vw[ib + r] * ui;
          }
        }
        for (let i = step + 1; i < n; i++) {
          const ib = i * ld;
          let s = 0;
          for (let r = 0; r < j; r++) s += vw[ib + r] * wtu[r] + vw[ib + jb + r] * vtu[r];
          p[i] -= s;
        }
      }
      // w = β·p − (β²/2)(pᵀu)·u, so the reflector's two-sided update is A −= u·wᵀ + w·uᵀ.
      let pu = 0;
      for (let i = step + 1; i < n; i++) {
        p[i] *= b;
        pu += p[i] * u[i];
      }
      const K = 0.5 * b * pu;
      for (let i = step + 1; i < n; i++) {
        const w = p[i] - K * u[i];
        const ib = i * ld;
        vw[ib + j] = u[i];
        vw[ib + jb + j] = w;
        wv[ib + j] = w;
        wv[ib + jb + j] = u[i];
      }
    }
    const s0 = k + jb;
    const m = n - s0;
    kernels.gemmNT(
      { data: vw, offset: s0 * ld, stride: ld }, { data: wv, offset: s0 * ld, stride: ld },
      { data: a, offset: s0 * n + s0, stride: n }, m, m, ld, -1, 1, "upper",
    );
  }
  d[n - 2] = a[(n - 2) * n + n - 2];
  d[n - 1] = a[(n - 1) * n + n - 1];
  e[n - 2] = a[(n - 2) * n + n - 1];
  kernels.release(mark);
  return { d, e, beta };
}
