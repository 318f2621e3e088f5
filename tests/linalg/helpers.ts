// Test helpers for linalg/lowrank: a seeded Gaussian generator, naive O(n³) references and orthogonal matrices built
// independently of the code under test (classical Gram–Schmidt, twice).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { matrix, type Matrix } from "../../convert/linalg/matrix.ts";
import { typescriptKernels } from "../../convert/linalg/kernels-ts.ts";
import { requireWasmKernels } from "../../convert/linalg/kernels-wasm.ts";
import type { LinalgKernels } from "../../convert/linalg/kernels.ts";

// The wasm kernels are part of what these suites test, so build them (a no-op when up to date) rather than skip.
execFileSync(process.execPath, [fileURLToPath(new URL("../../scripts/build-linalg-wasm.mjs", import.meta.url))], { stdio: "inherit" });

/** Both kernel sets: every numerical suite runs over each. */
export const KERNELS: readonly LinalgKernels[] = [typescriptKernels, requireWasmKernels()];

export function rng(seed: number): { uniform(): number; normal(): number } {
  let s = seed >>> 0 || 1;
  const uniform = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 2 ** 32;
  };
  return { uniform, normal: () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()) };
}

export function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const r = rng(seed);
  const m = matrix(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = r.normal();
  return m;
}

export function naiveMatmul(a: Matrix, b: Matrix): Matrix {
  const out = matrix(a.rows, b.cols);
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < b.cols; j++) {
      let s = 0;
      for (let k = 0; k < a.cols; k++) s += a.data[i * a.cols + k] * b.data[k * b.cols + j];
      out.data[i * b.cols + j] = s;
    }
  return out;
}

export function naiveTranspose(a: Matrix): Matrix {
  const out = matrix(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j];
  return out;
}

/** A random n×n orthogonal matrix: Gram–Schmidt applied twice to the columns of a Gaussian matrix. */
export function randomOrthogonal(n: number, seed: number): Matrix {
  const g = randomMatrix(n, n, seed);
  const q = matrix(n, n);
  const col = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) col[i] = g.data[i * n + j];
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += q.data[i * n + p] * col[i];
        for (let i = 0; i < n; i++) col[i] -= dot * q.data[i * n + p];
      }
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += col[i] * col[i];
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; i++) q.data[i * n + j] = col[i] / norm;
  }
  return q;
}

/** Q·diag(values)·Qᵀ, exactly symmetrised. */
export function withSpectrum(q: Matrix, values: ArrayLike<number>): Matrix {
  const n = q.rows;
  const qd = matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) qd.data[i * n + j] = q.data[i * n + j] * values[j];
  const a = naiveMatmul(qd, naiveTranspose(q));
  for (let i = 0; i < n; i++)
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (a.data[i * n + j] + a.data[j * n + i]);
      a.data[i * n + j] = v;
      a.data[j * n + i] = v;
    }
  return a;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** max |VᵀV − I|. */
export function orthonormalityError(v: Matrix): number {
  let m = 0;
  for (let a = 0; a < v.cols; a++)
    for (let b = 0; b < v.cols; b++) {
      let s = 0;
      for (let i = 0; i < v.rows; i++) s += v.data[i * v.cols + a] * v.data[i * v.cols + b];
      m = Math.max(m, Math.abs(s - (a === b ? 1 : 0)));
    }
  return m;
}
