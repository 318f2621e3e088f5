// Dense row-major f64 matrices (Float64Array + dims) and the O(n²) helpers around them: construction, transpose,
// column/row slices, f32 conversion, norms.
import { LinalgError } from "./errors.ts";

/** A dense row-major matrix: element (i, j) is data[i·cols + j]. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** A zero matrix, or one wrapping `data` (not copied) after checking its length. */
export function matrix(rows: number, cols: number, data?: Float64Array): Matrix {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new LinalgError("bad_argument", `matrix: dims must be non-negative integers, got ${rows}×${cols}`);
  }
  if (data === undefined) return { rows, cols, data: new Float64Array(rows * cols) };
  if (data.length !== rows * cols) {
    throw new LinalgError("shape_mismatch", `matrix: ${rows}×${cols} needs ${rows * cols} values, got ${data.length}`);
  }
  return { rows, cols, data };
}

/** Row-major f32 weights (e.g. a safetensors tensor) widened to f64. */
export function fromFloat32(rows: number, cols: number, values: Float32Array): Matrix {
  if (values.length !== rows * cols) {
    throw new LinalgError("shape_mismatch", `fromFloat32: ${rows}×${cols} needs ${rows * cols} values, got ${values.length}`);
  }
  return { rows, cols, data: Float64Array.from(values) };
}

export function toFloat32(m: Matrix): Float32Array {
  return Float32Array.from(m.data);
}

export function identity(n: number): Matrix {
  const out = matrix(n, n);
  for (let i = 0; i < n; i++) out.data[i * n + i] = 1;
  return out;
}

export function copyMatrix(m: Matrix): Matrix {
  return { rows: m.rows, cols: m.cols, data: m.data.slice() };
}

/** Cache-blocked transpose, so both sides stream through 32×32 tiles. */
export function transpose(m: Matrix, out?: Float64Array): Matrix {
  const { rows, cols, data } = m;
  const t = out ?? new Float64Array(rows * cols);
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(i0 + B, rows);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(j0 + B, cols);
      for (let i = i0; i < i1; i++) {
        const src = i * cols;
        for (let j = j0; j < j1; j++) t[j * rows + i] = data[src + j];
      }
    }
  }
  return { rows: cols, cols: rows, data: t };
}

/** Rows [from, to) as a new matrix. */
export function sliceRows(m: Matrix, from: number, to: number): Matrix {
  if (from < 0 || to > m.rows || from > to) {
    throw new LinalgError("bad_argument", `sliceRows: [${from}, ${to}) outside 0..${m.rows}`);
  }
  return { rows: to - from, cols: m.cols, data: m.data.slice(from * m.cols, to * m.cols) };
}

/** Columns [from, to) as a new matrix. */
export function sliceCols(m: Matrix, from: number, to: number): Matrix {
  if (from < 0 || to > m.cols || from > to) {
    throw new LinalgError("bad_argument", `sliceCols: [${from}, ${to}) outside 0..${m.cols}`);
  }
  const w = to - from;
  const out = new Float64Array(m.rows * w);
  for (let i = 0; i < m.rows; i++) out.set(m.data.subarray(i * m.cols + from, i * m.cols + to), i * w);
  return { rows: m.rows, cols: w, data: out };
}

/** [top ; bottom] stacked by rows. */
export function stackRows(top: Matrix, bottom: Matrix): Matrix {
  if (top.cols !== bottom.cols) {
    throw new LinalgError("shape_mismatch", `stackRows: ${top.rows}×${top.cols} over ${bottom.rows}×${bottom.cols}`);
  }
  const out = new Float64Array((top.rows + bottom.rows) * top.cols);
  out.set(top.data, 0);
  out.set(bottom.data, top.data.length);
  return { rows: top.rows + bottom.rows, cols: top.cols, data: out };
}

export function frobeniusNormSquared(m: Matrix): number {
  let s = 0;
  const d = m.data;
  for (let i = 0; i < d.length; i++) s += d[i] * d[i];
  return s;
}

export function subtract(a: Matrix, b: Matrix): Matrix {
  assertSameShape("subtract", a, b);
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i] - b.data[i];
  return { rows: a.rows, cols: a.cols, data: out };
}

export function trace(m: Matrix): number {
  if (m.rows !== m.cols) throw new LinalgError("shape_mismatch", `trace: matrix is ${m.rows}×${m.cols}, not square`);
  let s = 0;
  for (let i = 0; i < m.rows; i++) s += m.data[i * m.cols + i];
  return s;
}

/** Copies the lower triangle onto the upper one (the accumulators fill only j ≤ i). */
export function symmetrizeFromLower(m: Matrix): Matrix {
  const { rows: n, data } = m;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) data[j * n + i] = data[i * n + j];
  return m;
}

export function assertFinite(where: string, m: Matrix): void {
  const d = m.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) {
      throw new LinalgError("not_finite", `${where}: element (${Math.floor(i / m.cols)}, ${i % m.cols}) is ${d[i]}`);
    }
  }
}

export function assertSameShape(where: string, a: Matrix, b: Matrix): void {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new LinalgError("shape_mismatch", `${where}: ${a.rows}×${a.cols} vs ${b.rows}×${b.cols}`);
  }
}
