// Symmetric eigen-decomposition A = V·Λ·Vᵀ: Householder tridiagonalisation, divide-and-conquer on the tridiagonal,
// then the blocked (compact-WY) back-transformation of the eigenvectors. Eigenvalues come out descending, with
// orthonormal eigenvectors as the columns of `vectors`.
import { defaultKernels } from "./default-kernels.ts";
import { LinalgError } from "./errors.ts";
import type { LinalgKernels } from "./kernels.ts";
import { assertFinite, matrix, type Matrix } from "./matrix.ts";
import { tridiagonalize, tridiagonalizeWorkspace } from "./tridiagonalize.ts";
import { allocTridiagonalWorkspace, tridiagonalEigen } from "./tridiagonal-eigen.ts";

export interface SymmetricEigen {
  /** Descending. */
  readonly values: Float64Array;
  /** n×n, column j is the unit eigenvector of values[j]. */
  readonly vectors: Matrix;
}

/** Reflectors applied per gemm pair in the back-transformation. */
const BLOCK = 48;

/** Eigen-decomposition of a symmetric matrix (only its upper triangle is read). */
export function eigh(a: Matrix, kernels: LinalgKernels = defaultKernels()): SymmetricEigen {
  if (a.rows !== a.cols) throw new LinalgError("shape_mismatch", `eigh: matrix is ${a.rows}×${a.cols}, not square`);
  assertFinite("eigh", a);
  const n = a.rows;
  const mark = kernels.mark();
  try {
    // Reserve everything first (tridiagonalize's four n-vectors included): a growing alloc detaches earlier views.
    const nb = Math.min(BLOCK, Math.max(n - 2, 1));
    kernels.reserve(5 * n * n + 4 * n * nb + nb * nb + tridiagonalizeWorkspace(n) + 64);
    const work = kernels.alloc(n * n);
    const ws = allocTridiagonalWorkspace(n, kernels);
    const vRows = kernels.alloc(nb * n);
    const vCols = kernels.alloc(n * nb);
    const t = kernels.alloc(nb * nb);
    const ev = kernels.alloc(n * nb);
    const evt = kernels.alloc(n * nb);
    work.set(a.data);

    const tri = tridiagonalize(work, n, kernels);
    const d = tri.d;
    tridiagonalEigen(d, tri.e.slice(), ws, kernels);

    // Rows form: E = Qᵀ (row j = eigenvector j of T), then E ← E·H_{n−3}⋯H_0, last block of reflectors first.
    const E = ws.gathered;
    const q = ws.q;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) E[j * n + i] = q[i * n + j];
    const reflectors = n - 2;
    for (let k0 = Math.floor((reflectors - 1) / nb) * nb; k0 >= 0 && reflectors > 0; k0 -= nb) {
      const b = Math.min(nb, reflectors - k0);
      const c0 = k0 + 1;
      const width = n - c0;
      // vRows (b × width): reflector k0+r is zero before local column r, 1 at r, then its stored tail.
      for (let r = 0; r < b; r++) {
        const base = r * width;
        const row = (k0 + r) * n;
        for (let c = 0; c < width; c++) vRows[base + c] = c < r ? 0 : work[row + c0 + c];
      }
      for (let r = 0; r < b; r++) for (let c = 0; c < width; c++) vCols[c * b + r] = vRows[r * width + c];
      // Forward compact WY (dlarft): H_k0⋯H_{k0+b−1} = I − V·T·Vᵀ, T upper triangular.
      t.fill(0, 0, b * b);
      for (let j = 0; j < b; j++) {
        const bj = tri.beta[k0 + j];
        t[j * b + j] = bj;
        for (let i = 0; i < j; i++) {
          let s = 0;
          for (let c = j; c < width; c++) s += vRows[i * width + c] * vRows[j * width + c];
          ev[i] = -bj * s;
        }
        for (let i = 0; i < j; i++) {
          let s = 0;
          for (let l = i; l < j; l++) s += t[i * b + l] * ev[l];
          t[i * b + j] = s;
        }
      }
      // E[:, c0:] −= ((E[:, c0:]·V)·Tᵀ)·Vᵀ
      kernels.gemmNT({ data: E, offset: c0, stride: n }, { data: vRows, offset: 0, stride: width }, { data: ev, offset: 0, stride: b }, n, b, width, 1, 0);
      kernels.gemmNT({ data: ev, offset: 0, stride: b }, { data: t, offset: 0, stride: b }, { data: evt, offset: 0, stride: b }, n, b, b, 1, 0);
      kernels.gemmNT({ data: evt, offset: 0, stride: b }, { data: vCols, offset: 0, stride: b }, { data: E, offset: c0, stride: n }, n, width, b, -1, 1);
    }

    // Descending order, eigenvectors as columns, copied out of kernel memory.
    const values = new Float64Array(n);
    const vectors = matrix(n, n);
    for (let j = 0; j < n; j++) {
      const src = n - 1 - j;
      values[j] = d[src];
      const row = src * n;
      for (let i = 0; i < n; i++) vectors.data[i * n + j] = E[row + i];
    }
    return { values, vectors };
  } finally {
    kernels.release(mark);
  }
}
