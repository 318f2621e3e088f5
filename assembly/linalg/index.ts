// f64 dense kernels for convert/linalg (built to build/linalg.wasm by scripts/build-linalg-wasm.mjs): a cache-blocked
// C = beta·C + alpha·A·Bᵀ with f64x2 SIMD, and the fused Householder tridiagonalisation pass. Operands are raw byte
// addresses into this module's memory, laid out by the JS host (convert/linalg/kernels-wasm.ts) above heapBase().

/** First free byte after static data; the host places its arrays from here (8-byte aligned). */
export function heapBase(): usize {
  return (__heap_base + 15) & ~(<usize>15);
}

// Cache blocking: a KC-long slice of NC rows of B (NC·KC·8 = 128 KiB) stays in L2 while every row pair of A passes.
const KC: i32 = 256;
const NC: i32 = 64;

@inline function hsum(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

@inline function keep(tri: i32, j: i32, g: i32): bool {
  return tri == 0 || (tri == 1 ? j <= g : j >= g);
}

/**
 * C[i][j] = beta·C[i][j] + alpha·Σ_p A[i][p]·B[j][p] for i < m, j < n; `tri` 1 keeps only j ≤ i + diag (lower), 2 only
 * j ≥ i + diag (upper), so a row panel starting at global row `diag` keeps the global triangle. A is m×k with row stride lda, B is n×k with
 * stride ldb, C is m×n with stride ldc (strides in elements). The host calls it per row panel: V8 tiers wasm up
 * between calls, never inside one, so one huge call would run entirely in baseline code.
 */
export function gemmNT(
  a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32,
  m: i32, n: i32, k: i32, alpha: f64, beta: f64, tri: i32, diag: i32,
): void {
  const lower = tri == 1 ? 1 : 0;
  if (beta != 1.0) {
    for (let i = 0; i < m; i++) {
      const row = c + <usize>i * <usize>ldc * 8;
      const jEnd = lower != 0 ? max(0, min(i + diag + 1, n)) : n;
      const jBegin = tri == 2 ? max(0, i + diag) : 0;
      for (let j = jBegin; j < jEnd; j++) {
        const p = row + <usize>j * 8;
        store<f64>(p, beta == 0.0 ? 0.0 : beta * load<f64>(p));
      }
    }
  }
  for (let kk = 0; kk < k; kk += KC) {
    const kLen = min(KC, k - kk);
    const kVec = kLen & ~1;
    for (let jj = 0; jj < n; jj += NC) {
      const jEnd = min(jj + NC, n);
      const iStart = lower != 0 ? max(0, jj - diag) : 0;
      // Upper: rows whose diagonal lies beyond this column block have nothing in it.
      const iEnd = tri == 2 ? min(m, jEnd - diag) : m;
      let i = iStart;
      for (; i + 1 < iEnd; i += 2) {
        const a0 = a + (<usize>i * <usize>lda + <usize>kk) * 8;
        const a1 = a0 + <usize>lda * 8;
        const c0 = c + <usize>i * <usize>ldc * 8;
        const c1 = c0 + <usize>ldc * 8;
        const gi = i + diag; // global row of i, for the lower-triangle tests
        const jLim = lower != 0 ? min(jEnd, gi + 2) : jEnd;
        let j = tri == 2 ? max(jj, gi) : jj;
        // 2×4 register tile: 8 f64x2 accumulators + 6 loads fit the 16 SIMD registers, 6 loads per 8 mul-adds.
        for (; j + 3 < jLim; j += 4) {
          const b0 = b + (<usize>j * <usize>ldb + <usize>kk) * 8;
          const b1 = b0 + <usize>ldb * 8, b2 = b1 + <usize>ldb * 8, b3 = b2 + <usize>ldb * 8;
          let s00 = f64x2.splat(0), s01 = f64x2.splat(0), s02 = f64x2.splat(0), s03 = f64x2.splat(0);
          let s10 = f64x2.splat(0), s11 = f64x2.splat(0), s12 = f64x2.splat(0), s13 = f64x2.splat(0);
          for (let p = 0; p < kVec; p += 2) {
            const o = <usize>p * 8;
            const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
            const y0 = v128.load(b0 + o), y1 = v128.load(b1 + o), y2 = v128.load(b2 + o), y3 = v128.load(b3 + o);
            s00 = f64x2.add(s00, f64x2.mul(x0, y0));
            s01 = f64x2.add(s01, f64x2.mul(x0, y1));
            s02 = f64x2.add(s02, f64x2.mul(x0, y2));
            s03 = f64x2.add(s03, f64x2.mul(x0, y3));
            s10 = f64x2.add(s10, f64x2.mul(x1, y0));
            s11 = f64x2.add(s11, f64x2.mul(x1, y1));
            s12 = f64x2.add(s12, f64x2.mul(x1, y2));
            s13 = f64x2.add(s13, f64x2.mul(x1, y3));
          }
          let t00 = hsum(s00), t01 = hsum(s01), t02 = hsum(s02), t03 = hsum(s03);
          let t10 = hsum(s10), t11 = hsum(s11), t12 = hsum(s12), t13 = hsum(s13);
          if (kVec < kLen) {
            const o = <usize>kVec * 8;
            const x0 = load<f64>(a0 + o), x1 = load<f64>(a1 + o);
            const y0 = load<f64>(b0 + o), y1 = load<f64>(b1 + o), y2 = load<f64>(b2 + o), y3 = load<f64>(b3 + o);
            t00 += x0 * y0; t01 += x0 * y1; t02 += x0 * y2; t03 += x0 * y3;
            t10 += x1 * y0; t11 += x1 * y1; t12 += x1 * y2; t13 += x1 * y3;
          }
          const o0 = c0 + <usize>j * 8, o1 = c1 + <usize>j * 8;
          if (keep(tri, j, gi)) store<f64>(o0, load<f64>(o0) + alpha * t00);
          if (keep(tri, j + 1, gi)) store<f64>(o0 + 8, load<f64>(o0 + 8) + alpha * t01);
          if (keep(tri, j + 2, gi)) store<f64>(o0 + 16, load<f64>(o0 + 16) + alpha * t02);
          if (keep(tri, j + 3, gi)) store<f64>(o0 + 24, load<f64>(o0 + 24) + alpha * t03);
          if (keep(tri, j, gi + 1)) store<f64>(o1, load<f64>(o1) + alpha * t10);
          if (keep(tri, j + 1, gi + 1)) store<f64>(o1 + 8, load<f64>(o1 + 8) + alpha * t11);
          if (keep(tri, j + 2, gi + 1)) store<f64>(o1 + 16, load<f64>(o1 + 16) + alpha * t12);
          if (keep(tri, j + 3, gi + 1)) store<f64>(o1 + 24, load<f64>(o1 + 24) + alpha * t13);
        }
        for (; j + 1 < jLim; j += 2) {
          const b0 = b + (<usize>j * <usize>ldb + <usize>kk) * 8;
          const b1 = b0 + <usize>ldb * 8;
          let s00 = f64x2.splat(0), s01 = f64x2.splat(0), s10 = f64x2.splat(0), s11 = f64x2.splat(0);
          for (let p = 0; p < kVec; p += 2) {
            const o = <usize>p * 8;
            const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
            const y0 = v128.load(b0 + o), y1 = v128.load(b1 + o);
            s00 = f64x2.add(s00, f64x2.mul(x0, y0));
            s01 = f64x2.add(s01, f64x2.mul(x0, y1));
            s10 = f64x2.add(s10, f64x2.mul(x1, y0));
            s11 = f64x2.add(s11, f64x2.mul(x1, y1));
          }
          let t00 = hsum(s00), t01 = hsum(s01), t10 = hsum(s10), t11 = hsum(s11);
          if (kVec < kLen) {
            const o = <usize>kVec * 8;
            const x0 = load<f64>(a0 + o), x1 = load<f64>(a1 + o), y0 = load<f64>(b0 + o), y1 = load<f64>(b1 + o);
            t00 += x0 * y0; t01 += x0 * y1; t10 += x1 * y0; t11 += x1 * y1;
          }
          const o0 = c0 + <usize>j * 8, o1 = c1 + <usize>j * 8;
          if (keep(tri, j, gi)) store<f64>(o0, load<f64>(o0) + alpha * t00);
          if (keep(tri, j + 1, gi)) store<f64>(o0 + 8, load<f64>(o0 + 8) + alpha * t01);
          if (keep(tri, j, gi + 1)) store<f64>(o1, load<f64>(o1) + alpha * t10);
          if (keep(tri, j + 1, gi + 1)) store<f64>(o1 + 8, load<f64>(o1 + 8) + alpha * t11);
        }
        for (; j < jLim; j++) {
          const b0 = b + (<usize>j * <usize>ldb + <usize>kk) * 8;
          const t0 = dot(a0, b0, kLen), t1 = dot(a1, b0, kLen);
          const o0 = c0 + <usize>j * 8, o1 = c1 + <usize>j * 8;
          if (keep(tri, j, gi)) store<f64>(o0, load<f64>(o0) + alpha * t0);
          if (keep(tri, j, gi + 1)) store<f64>(o1, load<f64>(o1) + alpha * t1);
        }
      }
      for (; i < iEnd; i++) {
        const a0 = a + (<usize>i * <usize>lda + <usize>kk) * 8;
        const c0 = c + <usize>i * <usize>ldc * 8;
        const jLim = lower != 0 ? min(jEnd, i + diag + 1) : jEnd;
        for (let j = tri == 2 ? max(jj, i + diag) : jj; j < jLim; j++) {
          const b0 = b + (<usize>j * <usize>ldb + <usize>kk) * 8;
          const o0 = c0 + <usize>j * 8;
          store<f64>(o0, load<f64>(o0) + alpha * dot(a0, b0, kLen));
        }
      }
    }
  }
}

@inline function dot(x: usize, y: usize, len: i32): f64 {
  let s = f64x2.splat(0);
  const lenVec = len & ~1;
  for (let p = 0; p < lenVec; p += 2) {
    const o = <usize>p * 8;
    s = f64x2.add(s, f64x2.mul(v128.load(x + o), v128.load(y + o)));
  }
  let t = hsum(s);
  if (lenVec < len) t += load<f64>(x + <usize>lenVec * 8) * load<f64>(y + <usize>lenVec * 8);
  return t;
}

/**
 * One fused pass of the Householder tridiagonalisation (upper-triangle rows, row-major, stride n), over rows
 * from..n−1: each row i's entries j ≥ i get the pending symmetric rank-2 update A −= v·wᵀ + w·vᵀ (skipped when
 * `update` is 0) and then feed the next matrix–vector product p += A·u, where u is the next Householder vector.
 * v, w, u, p are full-length n vectors indexed by global column; p must be zeroed by the caller.
 */
export function fusedUpdateMatvec(
  a: usize, n: i32, from: i32, v: usize, w: usize, update: i32, u: usize, p: usize,
): void {
  for (let i = from; i < n; i++) {
    const row = a + <usize>i * <usize>n * 8;
    const vi = load<f64>(v + <usize>i * 8), wi = load<f64>(w + <usize>i * 8), ui = load<f64>(u + <usize>i * 8);
    // Diagonal element first (scalar), then the f64x2 body from i+1, then a scalar tail.
    let aii = load<f64>(row + <usize>i * 8);
    if (update != 0) {
      aii -= 2.0 * vi * wi;
      store<f64>(row + <usize>i * 8, aii);
    }
    let sum = aii * ui;
    const vvi = f64x2.splat(vi), vwi = f64x2.splat(wi), vui = f64x2.splat(ui);
    let acc = f64x2.splat(0);
    let j = i + 1;
    if (update != 0) {
      for (; j + 1 < n; j += 2) {
        const o = <usize>j * 8;
        let x = v128.load(row + o);
        x = f64x2.sub(x, f64x2.add(f64x2.mul(vvi, v128.load(w + o)), f64x2.mul(vwi, v128.load(v + o))));
        v128.store(row + o, x);
        acc = f64x2.add(acc, f64x2.mul(x, v128.load(u + o)));
        v128.store(p + o, f64x2.add(v128.load(p + o), f64x2.mul(x, vui)));
      }
    } else {
      for (; j + 1 < n; j += 2) {
        const o = <usize>j * 8;
        const x = v128.load(row + o);
        acc = f64x2.add(acc, f64x2.mul(x, v128.load(u + o)));
        v128.store(p + o, f64x2.add(v128.load(p + o), f64x2.mul(x, vui)));
      }
    }
    for (; j < n; j++) {
      const o = <usize>j * 8;
      let x = load<f64>(row + o);
      if (update != 0) {
        x -= vi * load<f64>(w + o) + wi * load<f64>(v + o);
        store<f64>(row + o, x);
      }
      sum += x * load<f64>(u + o);
      store<f64>(p + o, load<f64>(p + o) + x * ui);
    }
    store<f64>(p + <usize>i * 8, load<f64>(p + <usize>i * 8) + sum + hsum(acc));
  }
}

// f32 projections of the calibration forward (convert/calibration/layer-forward.ts, fast path): C = A·Bᵀ in f32x4 SIMD,
// A = activations m×k, B = weights n×k (PyTorch Linear layout), C m×n. k is blocked so a KC-long slice of FC weight rows
// (FC·KC·4 = 128 KiB) stays in L2 while every row pair of A passes; C accumulates across k blocks.
const FKC: i32 = 1024;
const FC: i32 = 32;

@inline function hsum4(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

export function gemmNTf32(a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, m: i32, n: i32, k: i32): void {
  for (let i = 0; i < m; i++) {
    const row = c + <usize>i * <usize>ldc * 4;
    for (let j = 0; j < n; j++) store<f32>(row + <usize>j * 4, 0);
  }
  for (let kk = 0; kk < k; kk += FKC) {
    const kLen = min(FKC, k - kk);
    const kVec = kLen & ~3;
    for (let jj = 0; jj < n; jj += FC) {
      const jEnd = min(jj + FC, n);
      let i = 0;
      for (; i + 1 < m; i += 2) {
        const a0 = a + (<usize>i * <usize>lda + <usize>kk) * 4;
        const a1 = a0 + <usize>lda * 4;
        const c0 = c + <usize>i * <usize>ldc * 4;
        const c1 = c0 + <usize>ldc * 4;
        let j = jj;
        for (; j + 3 < jEnd; j += 4) {
          const b0 = b + (<usize>j * <usize>ldb + <usize>kk) * 4;
          const b1 = b0 + <usize>ldb * 4, b2 = b1 + <usize>ldb * 4, b3 = b2 + <usize>ldb * 4;
          let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0), s03 = f32x4.splat(0);
          let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0), s13 = f32x4.splat(0);
          for (let p = 0; p < kVec; p += 4) {
            const o = <usize>p * 4;
            const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
            const y0 = v128.load(b0 + o), y1 = v128.load(b1 + o), y2 = v128.load(b2 + o), y3 = v128.load(b3 + o);
            s00 = f32x4.add(s00, f32x4.mul(x0, y0));
            s01 = f32x4.add(s01, f32x4.mul(x0, y1));
            s02 = f32x4.add(s02, f32x4.mul(x0, y2));
            s03 = f32x4.add(s03, f32x4.mul(x0, y3));
            s10 = f32x4.add(s10, f32x4.mul(x1, y0));
            s11 = f32x4.add(s11, f32x4.mul(x1, y1));
            s12 = f32x4.add(s12, f32x4.mul(x1, y2));
            s13 = f32x4.add(s13, f32x4.mul(x1, y3));
          }
          let t00 = hsum4(s00), t01 = hsum4(s01), t02 = hsum4(s02), t03 = hsum4(s03);
          let t10 = hsum4(s10), t11 = hsum4(s11), t12 = hsum4(s12), t13 = hsum4(s13);
          for (let p = kVec; p < kLen; p++) {
            const o = <usize>p * 4;
            const x0 = load<f32>(a0 + o), x1 = load<f32>(a1 + o);
            const y0 = load<f32>(b0 + o), y1 = load<f32>(b1 + o), y2 = load<f32>(b2 + o), y3 = load<f32>(b3 + o);
            t00 += x0 * y0; t01 += x0 * y1; t02 += x0 * y2; t03 += x0 * y3;
            t10 += x1 * y0; t11 += x1 * y1; t12 += x1 * y2; t13 += x1 * y3;
          }
          const q0 = c0 + <usize>j * 4, q1 = c1 + <usize>j * 4;
          store<f32>(q0, load<f32>(q0) + t00); store<f32>(q0 + 4, load<f32>(q0 + 4) + t01);
          store<f32>(q0 + 8, load<f32>(q0 + 8) + t02); store<f32>(q0 + 12, load<f32>(q0 + 12) + t03);
          store<f32>(q1, load<f32>(q1) + t10); store<f32>(q1 + 4, load<f32>(q1 + 4) + t11);
          store<f32>(q1 + 8, load<f32>(q1 + 8) + t12); store<f32>(q1 + 12, load<f32>(q1 + 12) + t13);
        }
        for (; j < jEnd; j++) {
          const bj = b + (<usize>j * <usize>ldb + <usize>kk) * 4;
          let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
          for (let p = 0; p < kVec; p += 4) {
            const o = <usize>p * 4;
            const y = v128.load(bj + o);
            s0 = f32x4.add(s0, f32x4.mul(v128.load(a0 + o), y));
            s1 = f32x4.add(s1, f32x4.mul(v128.load(a1 + o), y));
          }
          let t0 = hsum4(s0), t1 = hsum4(s1);
          for (let p = kVec; p < kLen; p++) {
            const o = <usize>p * 4;
            const y = load<f32>(bj + o);
            t0 += load<f32>(a0 + o) * y;
            t1 += load<f32>(a1 + o) * y;
          }
          const q0 = c0 + <usize>j * 4, q1 = c1 + <usize>j * 4;
          store<f32>(q0, load<f32>(q0) + t0);
          store<f32>(q1, load<f32>(q1) + t1);
        }
      }
      for (; i < m; i++) {
        const a0 = a + (<usize>i * <usize>lda + <usize>kk) * 4;
        const c0 = c + <usize>i * <usize>ldc * 4;
        for (let j = jj; j < jEnd; j++) {
          const bj = b + (<usize>j * <usize>ldb + <usize>kk) * 4;
          let s0 = f32x4.splat(0);
          for (let p = 0; p < kVec; p += 4) {
            const o = <usize>p * 4;
            s0 = f32x4.add(s0, f32x4.mul(v128.load(a0 + o), v128.load(bj + o)));
          }
          let t0 = hsum4(s0);
          for (let p = kVec; p < kLen; p++) t0 += load<f32>(a0 + <usize>p * 4) * load<f32>(bj + <usize>p * 4);
          const q0 = c0 + <usize>j * 4;
          store<f32>(q0, load<f32>(q0) + t0);
        }
      }
    }
  }
}
