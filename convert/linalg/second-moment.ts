// Streaming uncentred second moment S = (1/N)·Σ x·xᵀ of f32 activation rows, accumulated in f64. Rows are buffered
// transposed (feature-major) and folded in as a lower-triangle rank-b update through the blocked gemm, so each batch
// costs d²·b/2 multiply-adds at gemm speed and symmetry halves the work.
import { defaultKernels } from "./default-kernels.ts";
import { LinalgError } from "./errors.ts";
import type { LinalgKernels } from "./kernels.ts";
import { matrix, symmetrizeFromLower, type Matrix } from "./matrix.ts";

export class SecondMomentAccumulator {
  readonly dim: number;
  readonly #kernels: LinalgKernels;
  readonly #batch: number;
  /** Lower triangle of Σ x·xᵀ over the folded rows. */
  readonly #sum: Float64Array;
  /** Feature-major buffer: #pending[f·batch + r] is feature f of buffered row r. */
  readonly #pending: Float64Array;
  #buffered = 0;
  #count = 0;

  constructor(dim: number, options: { kernels?: LinalgKernels; batchRows?: number } = {}) {
    if (!Number.isInteger(dim) || dim <= 0) throw new LinalgError("bad_argument", `SecondMomentAccumulator: dim ${dim}`);
    this.dim = dim;
    this.#kernels = options.kernels ?? defaultKernels();
    this.#batch = options.batchRows ?? 512;
    if (!Number.isInteger(this.#batch) || this.#batch <= 0) {
      throw new LinalgError("bad_argument", `SecondMomentAccumulator: batchRows ${this.#batch}`);
    }
    this.#sum = new Float64Array(dim * dim);
    this.#pending = new Float64Array(dim * this.#batch);
  }

  /** Rows seen so far. */
  get count(): number {
    return this.#count;
  }

  /** Adds `rows.length / dim` row-major rows; when `mask` is given, only rows r with mask[r] === `select`. */
  add(rows: Float32Array | Float64Array, mask?: Uint8Array, select = 1): void {
    const d = this.dim;
    if (rows.length % d !== 0) {
      throw new LinalgError("shape_mismatch", `SecondMomentAccumulator.add: ${rows.length} values are not rows of ${d}`);
    }
    const n = rows.length / d;
    if (mask !== undefined && mask.length !== n) {
      throw new LinalgError("shape_mismatch", `SecondMomentAccumulator.add: mask has ${mask.length} entries for ${n} rows`);
    }
    const batch = this.#batch, pending = this.#pending;
    for (let r = 0; r < n; r++) {
      if (mask !== undefined && mask[r] !== select) continue;
      const base = r * d, col = this.#buffered;
      for (let f = 0; f < d; f++) {
        const x = rows[base + f];
        if (!Number.isFinite(x)) throw new LinalgError("not_finite", `SecondMomentAccumulator.add: row ${r} feature ${f} is ${x}`);
        pending[f * batch + col] = x;
      }
      this.#count++;
      if (++this.#buffered === batch) this.#flush();
    }
  }

  #flush(): void {
    const b = this.#buffered;
    if (b === 0) return;
    const d = this.dim;
    const x = { data: this.#pending, offset: 0, stride: this.#batch };
    this.#kernels.gemmNT(x, x, { data: this.#sum, offset: 0, stride: d }, d, d, b, 1, 1, "lower");
    this.#buffered = 0;
  }

  /** Σ x·xᵀ (unnormalised), symmetric d×d. */
  sum(): Matrix {
    this.#flush();
    return symmetrizeFromLower(matrix(this.dim, this.dim, this.#sum.slice()));
  }

  /** S = (1/N)·Σ x·xᵀ, symmetric d×d. */
  secondMoment(): Matrix {
    if (this.#count === 0) throw new LinalgError("bad_argument", "SecondMomentAccumulator.secondMoment: no rows were added");
    const s = this.sum();
    const inv = 1 / this.#count;
    for (let i = 0; i < s.data.length; i++) s.data[i] *= inv;
    return s;
  }
}
