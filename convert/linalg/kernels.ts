// The hot inner loops behind convert/linalg, as one interface with two implementations: WebAssembly f64x2 SIMD
// (kernels-wasm.ts, the fast path) and plain TypeScript (kernels-ts.ts, the reference and the no-build fallback).

/** A matrix inside a larger Float64Array: element (i, j) is data[offset + i·stride + j]. */
export interface Strided {
  readonly data: Float64Array;
  readonly offset: number;
  readonly stride: number;
}

/** Which part of C a gemm writes: everything, j ≤ i (lower) or j ≥ i (upper). */
export type Triangle = "full" | "lower" | "upper";

export interface LinalgKernels {
  readonly name: "wasm-simd" | "typescript";
  /**
   * A zeroed Float64Array the kernels read without copying (a view into wasm memory for the wasm kernels). Views stay
   * valid until `release(mark)` frees them; a later `alloc` that grows wasm memory detaches them, so allocate all
   * working buffers of a routine before using any.
   */
  alloc(length: number): Float64Array;
  /**
   * Makes room for `length` more values (plus alignment for up to 64 allocs) so the allocs that follow never grow
   * memory. Call it with a routine's whole working size before its first alloc.
   */
  reserve(length: number): void;
  mark(): number;
  release(mark: number): void;
  /** C = beta·C + alpha·A·Bᵀ over m×n, or only its j ≤ i / j ≥ i part (`triangle`); A is m×k, B is n×k. */
  gemmNT(a: Strided, b: Strided, c: Strided, m: number, n: number, k: number, alpha: number, beta: number, triangle?: Triangle): void;
  /**
   * Householder tridiagonalisation pass over rows [from, n) of the n×n row-major upper triangle in `a`: apply the
   * pending rank-2 update A −= v·wᵀ + w·vᵀ (when `update`), then accumulate p += A·u. v, w, u, p have length n.
   */
  fusedUpdateMatvec(
    a: Float64Array, n: number, from: number,
    v: Float64Array, w: Float64Array, update: boolean, u: Float64Array, p: Float64Array,
  ): void;
}

export function whole(data: Float64Array, stride: number): Strided {
  return { data, offset: 0, stride };
}
