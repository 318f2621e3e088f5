// Eigen-decomposition of a symmetric tridiagonal matrix by Cuppen's divide and conquer (as LAPACK dstedc): split,
// solve halves, merge through the rank-one secular equation with deflation and Gu–Eisenstat vectors, so the only
// O(n³) work is one gemm per merge. Small blocks use implicit QL with Wilkinson-style shifts.
import { LinalgError } from "./errors.ts";
import type { LinalgKernels } from "./kernels.ts";

const EPS = 2 ** -52;
/** Blocks up to this size are solved by QL directly. */
const LEAF = 32;

/** Workspace for one decomposition of order n; every buffer comes from kernels.alloc (n² each). */
export interface TridiagonalWorkspace {
  readonly q: Float64Array;
  readonly gathered: Float64Array;
  readonly secular: Float64Array;
  readonly product: Float64Array;
}

export function allocTridiagonalWorkspace(n: number, kernels: LinalgKernels): TridiagonalWorkspace {
  return { q: kernels.alloc(n * n), gathered: kernels.alloc(n * n), secular: kernels.alloc(n * n), product: kernels.alloc(n * n) };
}

/**
 * Eigenvalues of T (diagonal d, off-diagonal e) into d, ascending, and eigenvectors into ws.q as columns
 * (row-major n×n: ws.q[i·n + j] is component i of vector j). d and e are overwritten.
 */
export function tridiagonalEigen(d: Float64Array, e: Float64Array, ws: TridiagonalWorkspace, kernels: LinalgKernels): void {
  const n = d.length;
  if (e.length !== Math.max(n - 1, 0)) {
    throw new LinalgError("shape_mismatch", `tridiagonalEigen: ${n} diagonal entries need ${n - 1} off-diagonal, got ${e.length}`);
  }
  ws.q.fill(0, 0, n * n);
  if (n === 0) return;
  solve(d, e, ws, kernels, 0, n, n);
}

function solve(d: Float64Array, e: Float64Array, ws: TridiagonalWorkspace, kernels: LinalgKernels, lo: number, hi: number, n: number): void {
  const size = hi - lo;
  if (size <= LEAF) {
    qlImplicit(d, e, ws.q, lo, hi, n);
    return;
  }
  const mid = lo + (size >> 1);
  const beta = e[mid - 1];
  const rho = Math.abs(beta);
  const sign = beta < 0 ? -1 : 1;
  // T = diag(T1, T2) + rho·u·uᵀ with u = e_{mid−1} + sign·e_mid.
  d[mid - 1] -= rho;
  d[mid] -= rho;
  solve(d, e, ws, kernels, lo, mid, n);
  solve(d, e, ws, kernels, mid, hi, n);
  merge(d, ws, kernels, lo, mid, hi, n, rho, sign);
}

/** Implicit QL on the block [lo, hi): eigenvectors accumulate into q's block (started as identity). */
function qlImplicit(dAll: Float64Array, eAll: Float64Array, q: Float64Array, lo: number, hi: number, n: number): void {
  const m = hi - lo;
  const d = dAll.slice(lo, hi);
  const e = new Float64Array(m);
  for (let i = 0; i < m - 1; i++) e[i] = eAll[lo + i];
  const z = new Float64Array(m * m);
  for (let i = 0; i < m; i++) z[i * m + i] = 1;
  for (let l = 0; l < m; l++) {
    let iter = 0;
    let mm: number;
    do {
      for (mm = l; mm < m - 1; mm++) {
        const dd = Math.abs(d[mm]) + Math.abs(d[mm + 1]);
        if (Math.abs(e[mm]) <= EPS * dd) break;
      }
      if (mm !== l) {
        if (iter++ === 60) throw new LinalgError("no_convergence", `tridiagonal QL: no convergence for eigenvalue ${l} of ${m}`);
        let g = (d[l + 1] - d[l]) / (2 * e[l]);
        let r = Math.hypot(g, 1);
        g = d[mm] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
        let s = 1, c = 1, p = 0;
        let i: number;
        let underflow = false;
        for (i = mm - 1; i >= l; i--) {
          const f = s * e[i];
          const b = c * e[i];
          r = Math.hypot(f, g);
          e[i + 1] = r;
          if (r === 0) {
            d[i + 1] -= p;
            e[mm] = 0;
            underflow = true;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
          for (let k = 0; k < m; k++) {
            const zr = k * m;
            const fz = z[zr + i + 1];
            z[zr + i + 1] = s * z[zr + i] + c * fz;
            z[zr + i] = c * z[zr + i] - s * fz;
          }
        }
        if (underflow) continue;
        d[l] -= p;
        e[l] = g;
        e[mm] = 0;
      }
    } while (mm !== l);
  }
  const order = Array.from({ length: m }, (_, i) => i).sort((a, b) => d[a] - d[b]);
  for (let j = 0; j < m; j++) {
    const src = order[j];
    dAll[lo + j] = d[src];
    for (let i = 0; i < m; i++) q[(lo + i) * n + lo + j] = z[i * m + src];
  }
}

/**
 * Merges the solved halves [lo, mid) and [mid, hi): eigen-decomposes D + rho·z·zᵀ in the basis of the halves'
 * eigenvectors, deflating tiny z components and (by a Givens rotation) nearly equal poles as dlaed2 does.
 */
function merge(
  d: Float64Array, ws: TridiagonalWorkspace, kernels: LinalgKernels,
  lo: number, mid: number, hi: number, n: number, rhoIn: number, sign: number,
): void {
  const m = hi - lo;
  const q = ws.q;
  // z = Qᵀu: last row of Q1 and sign·first row of Q2 (each a unit vector's row of an orthogonal block), normalised.
  const z = new Float64Array(m);
  for (let j = 0; j < mid - lo; j++) z[j] = q[(mid - 1) * n + lo + j] / Math.SQRT2;
  for (let j = mid - lo; j < m; j++) z[j] = (sign * q[mid * n + lo + j]) / Math.SQRT2;
  const rho = 2 * rhoIn;
  const D = d.slice(lo, hi);

  // Both halves are sorted; merge their orders.
  const order = new Int32Array(m);
  {
    let a = 0, b = mid - lo, o = 0;
    while (a < mid - lo && b < m) order[o++] = D[a] <= D[b] ? a++ : b++;
    while (a < mid - lo) order[o++] = a++;
    while (b < m) order[o++] = b++;
  }
  let maxD = 0, maxZ = 0;
  for (let j = 0; j < m; j++) {
    maxD = Math.max(maxD, Math.abs(D[j]));
    maxZ = Math.max(maxZ, Math.abs(z[j]));
  }
  const tol = 8 * EPS * Math.max(maxD, rho * maxZ);

  const kept: number[] = [];
  const deflated: number[] = [];
  // Which rows of the block a column can be non-zero in: 1 = top half only, 3 = bottom only, 2 = both (after a
  // rotation mixed a top and a bottom column). The merge gemm skips the zero blocks (dlaed3's trick: half the flops).
  const n1 = mid - lo;
  const colType = new Uint8Array(m);
  for (let j = 0; j < m; j++) colType[j] = j < n1 ? 1 : 3;
  const rotateColumns = (pj: number, nj: number, c: number, s: number): void => {
    for (let i = lo; i < hi; i++) {
      const x = q[i * n + lo + pj], y = q[i * n + lo + nj];
      q[i * n + lo + pj] = c * x + s * y;
      q[i * n + lo + nj] = c * y - s * x;
    }
  };
  let prev = -1;
  for (let t = 0; t < m; t++) {
    const j = order[t];
    if (rho * Math.abs(z[j]) <= tol) {
      deflated.push(j);
      continue;
    }
    if (prev < 0) {
      prev = j;
      continue;
    }
    const tau = Math.hypot(z[j], z[prev]);
    const c = z[j] / tau;
    const s = -z[prev] / tau;
    if (Math.abs((D[j] - D[prev]) * c * s) <= tol) {
      // Nearly equal poles: rotate so z[prev] = 0 and prev deflates with the rotated pole.
      z[j] = tau;
      z[prev] = 0;
      rotateColumns(prev, j, c, s);
      if (colType[prev] !== colType[j]) colType[prev] = colType[j] = 2;
      const dp = D[prev] * c * c + D[j] * s * s;
      D[j] = D[prev] * s * s + D[j] * c * c;
      D[prev] = dp;
      deflated.push(prev);
    } else {
      kept.push(prev);
    }
    prev = j;
  }
  if (prev >= 0) kept.push(prev);

  const k = kept.length;
  const values = new Float64Array(m);
  if (k > 0) {
    const dk = new Float64Array(k), zk = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      dk[i] = D[kept[i]];
      zk[i] = z[kept[i]];
    }
    const origin = new Int32Array(k);
    const tau = new Float64Array(k);
    solveSecular(dk, zk, rho, origin, tau);
    // Gu–Eisenstat: recompute z from the computed roots so the vectors come out orthogonal.
    const zh = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      let prod = (dk[origin[k - 1]] - dk[i] + tau[k - 1]) / rho;
      for (let j = 0; j < k - 1; j++) {
        const lamMinusDi = dk[origin[j]] - dk[i] + tau[j];
        prod *= lamMinusDi / (j < i ? dk[j] - dk[i] : dk[j + 1] - dk[i]);
      }
      zh[i] = Math.sqrt(Math.max(prod, 0)) * (zk[i] < 0 ? -1 : 1);
    }
    // Kept columns regrouped as [top-only, mixed, bottom-only]; U's rows follow the same order (pos).
    const pos = new Int32Array(k);
    let c1 = 0, c2 = 0;
    for (let i = 0; i < k; i++) {
      const t = colType[kept[i]];
      if (t === 1) c1++;
      else if (t === 2) c2++;
    }
    {
      let p1 = 0, p2 = c1, p3 = c1 + c2;
      for (let i = 0; i < k; i++) {
        const t = colType[kept[i]];
        pos[i] = t === 1 ? p1++ : t === 2 ? p2++ : p3++;
      }
    }
    const ut = ws.secular; // k×k, row j = eigenvector j of the rank-one problem, entries in `pos` order
    for (let j = 0; j < k; j++) {
      let norm = 0;
      const oj = dk[origin[j]];
      const row = j * k;
      for (let i = 0; i < k; i++) {
        const x = zh[i] / (dk[i] - oj - tau[j]);
        ut[row + pos[i]] = x;
        norm += x * x;
      }
      const inv = 1 / Math.sqrt(norm);
      for (let i = 0; i < k; i++) ut[row + i] *= inv;
      values[j] = oj + tau[j];
    }
    // gathered: the kept columns of the block (m×k, `pos` order); product = gathered · U, by row halves.
    const g = ws.gathered;
    for (let i = 0; i < m; i++) {
      const src = (lo + i) * n + lo;
      for (let c = 0; c < k; c++) g[i * k + pos[c]] = q[src + kept[c]];
    }
    const n2 = m - n1;
    kernels.gemmNT(
      { data: g, offset: 0, stride: k }, { data: ut, offset: 0, stride: k }, { data: ws.product, offset: 0, stride: k },
      n1, k, c1 + c2, 1, 0,
    );
    kernels.gemmNT(
      { data: g, offset: n1 * k + c1, stride: k }, { data: ut, offset: c1, stride: k },
      { data: ws.product, offset: n1 * k, stride: k },
      n2, k, k - c1, 1, 0,
    );
  }
  // Assemble all m pairs: kept ones from ws.product, deflated ones copied (into `gathered`, now free) first.
  const nd = deflated.length;
  const defl = ws.gathered;
  for (let i = 0; i < m; i++) {
    const src = (lo + i) * n + lo;
    for (let c = 0; c < nd; c++) defl[i * nd + c] = q[src + deflated[c]];
  }
  for (let c = 0; c < nd; c++) values[k + c] = D[deflated[c]];
  const all = Array.from({ length: m }, (_, i) => i).sort((a, b) => values[a] - values[b]);
  for (let t = 0; t < m; t++) {
    const src = all[t];
    d[lo + t] = values[src];
    if (src < k) {
      for (let i = 0; i < m; i++) q[(lo + i) * n + lo + t] = ws.product[i * k + src];
    } else {
      const c = src - k;
      for (let i = 0; i < m; i++) q[(lo + i) * n + lo + t] = defl[i * nd + c];
    }
  }
}

/**
 * Roots of 1 + rho·Σ z_i²/(d_i − λ) = 0 for strictly increasing d and rho > 0: root j lies in (d_j, d_{j+1}), the
 * last in (d_{k−1}, d_{k−1} + rho·‖z‖²]. Each is returned as origin[j] (index of the nearer pole) and tau[j] = λ_j −
 * d[origin[j]], so differences to the poles stay accurate. Safeguarded two-pole rational iteration within a bracket.
 */
export function solveSecular(d: Float64Array, z: Float64Array, rho: number, origin: Int32Array, tau: Float64Array): void {
  const k = d.length;
  let zz = 0;
  for (let i = 0; i < k; i++) zz += z[i] * z[i];
  const delta = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const last = j === k - 1;
    const gap = last ? rho * zz : d[j + 1] - d[j];
    // Choose the origin pole by the sign of f at the interval's midpoint (f increases from −∞ to +∞ / to 1).
    let o = j;
    if (!last) {
      const half = gap / 2;
      let f = 1;
      for (let i = 0; i < k; i++) f += (rho * z[i] * z[i]) / (d[i] - d[j] - half);
      if (f < 0) o = j + 1;
    }
    origin[j] = o;
    for (let i = 0; i < k; i++) delta[i] = d[i] - d[o];
    // Bracket for tau (λ − d[o]), open at the poles.
    let lo: number, hi: number;
    if (last) {
      lo = 0;
      hi = gap;
    } else if (o === j) {
      lo = 0;
      hi = gap / 2;
    } else {
      lo = -gap / 2;
      hi = 0;
    }
    let t = (lo + hi) / 2;
    for (let iter = 0; iter < 400; iter++) {
      let psi = 0, dpsi = 0, phi = 0, dphi = 0;
      for (let i = 0; i <= j; i++) {
        const inv = 1 / (delta[i] - t);
        const w = rho * z[i] * z[i] * inv;
        psi += w;
        dpsi += w * inv;
      }
      for (let i = j + 1; i < k; i++) {
        const inv = 1 / (delta[i] - t);
        const w = rho * z[i] * z[i] * inv;
        phi += w;
        dphi += w * inv;
      }
      const f = 1 + psi + phi;
      if (f === 0) break;
      if (f < 0) lo = t;
      else hi = t;
      // Two-pole model ψ ≈ A + s/(δ_j − x), φ ≈ B + r/(δ_{j+1} − x), matched in value and slope at t.
      const dp = delta[j] - t;
      let next: number;
      if (last) {
        const C = 1 + psi - dpsi * dp;
        next = C > 0 ? t + dp + (dpsi * dp * dp) / C : NaN;
      } else {
        const dq = delta[j + 1] - t;
        const s = dpsi * dp * dp, r = dphi * dq * dq;
        const C = 1 + (psi - dpsi * dp) + (phi - dphi * dq);
        const a = C * (dp + dq) + s + r;
        const b = dp * dq * f;
        let eta: number;
        if (C === 0) eta = b / a;
        else {
          const disc = a * a - 4 * C * b;
          if (disc < 0) eta = NaN;
          else eta = a > 0 ? (2 * b) / (a + Math.sqrt(disc)) : (a - Math.sqrt(disc)) / (2 * C);
        }
        next = t + eta;
      }
      if (hi - lo <= 2 * EPS * Math.max(Math.abs(lo), Math.abs(hi))) {
        t = f < 0 ? hi : lo;
        break;
      }
      if (!(next > lo && next < hi)) next = (lo + hi) / 2;
      if (Math.abs(next - t) <= 2 * EPS * Math.max(Math.abs(next), Math.abs(t)) || next === lo || next === hi) {
        t = next;
        break;
      }
      t = next;
      if (iter === 399) throw new LinalgError("no_convergence", `secular equation: root ${j} of ${k} did not converge`);
    }
    tau[j] = t;
  }
}
