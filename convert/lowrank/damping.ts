// Damping of a calibration second moment before whitening (docs/method.md §6.3): it bounds W_down when S is
// ill-conditioned or rank-deficient (few image tokens, low-dimensional image activations).
import { defaultKernels } from "../linalg/default-kernels.ts";
import { eigh } from "../linalg/eigh.ts";
import type { LinalgKernels } from "../linalg/kernels.ts";
import { copyMatrix, trace, type Matrix } from "../linalg/matrix.ts";
import { largestEigenvalue } from "../linalg/lanczos.ts";
import { LowRankError } from "./errors.ts";

export type Damping =
  | { readonly kind: "none" }
  /** S + ε·λ_max(S)·I: the fixture README's reference ("eigen-damping 1e-3 × the largest eigenvalue"), ε = 1e-3. */
  | { readonly kind: "ridge-max"; readonly epsilon: number }
  /** S + λ·(tr S / d)·I, λ ~ 1e-4…1e-2 (docs/method.md §6.3). */
  | { readonly kind: "ridge-trace"; readonly lambda: number }
  /** Eigenvalues of S raised to at least ε·λ_max (needs the full d×d eigen-decomposition: O(d³)). */
  | { readonly kind: "clamp-max"; readonly epsilon: number };

export const DEFAULT_DAMPING: Damping = { kind: "ridge-max", epsilon: 1e-3 };

export interface DampedSecondMoment {
  readonly matrix: Matrix;
  /** The ridge added to the diagonal (0 for none/clamp). */
  readonly shift: number;
}

export function dampSecondMoment(s: Matrix, damping: Damping, kernels: LinalgKernels = defaultKernels()): DampedSecondMoment {
  if (s.rows !== s.cols) throw new LowRankError("shape_mismatch", `dampSecondMoment: S is ${s.rows}×${s.cols}`);
  const d = s.rows;
  const addDiagonal = (mu: number): DampedSecondMoment => {
    const out = copyMatrix(s);
    for (let i = 0; i < d; i++) out.data[i * d + i] += mu;
    return { matrix: out, shift: mu };
  };
  switch (damping.kind) {
    case "none":
      return { matrix: s, shift: 0 };
    case "ridge-max":
      checkFactor("epsilon", damping.epsilon);
      return addDiagonal(damping.epsilon * largestEigenvalue(s));
    case "ridge-trace":
      checkFactor("lambda", damping.lambda);
      return addDiagonal((damping.lambda * trace(s)) / d);
    case "clamp-max": {
      checkFactor("epsilon", damping.epsilon);
      const { values, vectors } = eigh(s, kernels);
      const floor = damping.epsilon * Math.max(values[0] ?? 0, 0);
      // S' = S + X·Xᵀ with X's columns √(floor − λ_j)·v_j over the raised directions only.
      const raised: number[] = [];
      for (let j = 0; j < d; j++) if (floor - values[j] > 0) raised.push(j);
      const r = raised.length;
      const x = new Float64Array(d * r);
      for (let c = 0; c < r; c++) {
        const j = raised[c];
        const scale = Math.sqrt(floor - values[j]);
        for (let a = 0; a < d; a++) x[a * r + c] = vectors.data[a * d + j] * scale;
      }
      const out = copyMatrix(s);
      if (r > 0) {
        const xs = { data: x, offset: 0, stride: r };
        kernels.gemmNT(xs, xs, { data: out.data, offset: 0, stride: d }, d, d, r, 1, 1);
      }
      return { matrix: out, shift: 0 };
    }
    default:
      throw new LowRankError("bad_option", `dampSecondMoment: unknown damping ${JSON.stringify(damping satisfies never)}`);
  }
}

function checkFactor(name: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0)) throw new LowRankError("bad_option", `damping ${name} must be a finite number ≥ 0, got ${v}`);
}
