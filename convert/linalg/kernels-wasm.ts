// WebAssembly f64x2 SIMD kernels (build/linalg.wasm, from assembly/linalg/) behind the LinalgKernels contract. Node
// only: the module is read from disk and compiled synchronously. Operands already inside wasm memory (from `alloc`)
// are used in place; any other Float64Array is copied in for the call and out again when it is written.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { LinalgError } from "./errors.ts";
import type { LinalgKernels, Strided, Triangle } from "./kernels.ts";

const TRIANGLE_CODE: Record<Triangle, number> = { full: 0, lower: 1, upper: 2 };

interface LinalgWasmExports {
  readonly memory: WebAssembly.Memory;
  heapBase(): number;
  gemmNT(
    a: number, lda: number, b: number, ldb: number, c: number, ldc: number,
    m: number, n: number, k: number, alpha: number, beta: number, tri: number, diag: number,
  ): void;
  fusedUpdateMatvec(a: number, n: number, from: number, v: number, w: number, update: number, u: number, p: number): void;
}

const WASM_URL = new URL("../../build/linalg.wasm", import.meta.url);
const PAGE = 65536;
/** A gemm is split into up to PANELS wasm calls of at least MIN_PANEL_ROWS rows of C (see gemmNT). */
const PANELS = 16;
const MIN_PANEL_ROWS = 128;
/** wasm32 addresses stop at 4 GiB; V8 allows up to 65536 pages. */
const MAX_PAGES = 65536;

class WasmKernels implements LinalgKernels {
  readonly name = "wasm-simd" as const;
  readonly #x: LinalgWasmExports;
  #top: number;

  constructor(exports: LinalgWasmExports) {
    this.#x = exports;
    this.#top = exports.heapBase();
    this.#warmUp();
  }

  /**
   * V8 runs new wasm in its baseline compiler (about 10× slower on this SIMD code) and swaps in optimised code only
   * between calls, once a function has used up its tier-up budget. Small calls at load spend that budget, so the first
   * real (large) call already runs optimised; panelled gemm calls cover the case where the background compile lags.
   */
  #warmUp(): void {
    const n = 64;
    const base = this.#reserve(n * n * 3 + 4 * n);
    const a = base, b = a + n * n * 8, c = b + n * n * 8, vec = c + n * n * 8;
    for (let rep = 0; rep < 8; rep++) {
      this.#x.gemmNT(a, n, b, n, c, n, n, n, n, 1, 0, 0, 0);
      this.#x.gemmNT(a, n, a, n, c, n, n, n, n, 1, 1, 1, 0);
      this.#x.gemmNT(a, n, a, n, c, n, n, n, n, 1, 1, 2, 0);
      this.#x.fusedUpdateMatvec(a, n, 1, vec, vec + n * 8, 1, vec + 2 * n * 8, vec + 3 * n * 8);
    }
    this.#top = this.#x.heapBase();
  }

  #ensure(bytes: number): void {
    const mem = this.#x.memory;
    if (bytes <= mem.buffer.byteLength) return;
    const pages = Math.ceil((bytes - mem.buffer.byteLength) / PAGE);
    if (mem.buffer.byteLength / PAGE + pages > MAX_PAGES) {
      throw new LinalgError("bad_argument", `wasm kernels: ${bytes} bytes exceed the 4 GiB wasm32 address space`);
    }
    mem.grow(pages);
  }

  #reserve(length: number): number {
    const ptr = (this.#top + 15) & ~15;
    const end = ptr + length * 8;
    this.#ensure(end);
    this.#top = end;
    return ptr;
  }

  alloc(length: number): Float64Array {
    const ptr = this.#reserve(length);
    const view = new Float64Array(this.#x.memory.buffer, ptr, length);
    view.fill(0);
    return view;
  }

  reserve(length: number): void {
    this.#ensure(((this.#top + 15) & ~15) + length * 8 + 64 * 16);
  }

  mark(): number {
    return this.#top;
  }

  release(mark: number): void {
    this.#top = mark;
  }

  #isResident(data: Float64Array): boolean {
    return data.buffer === this.#x.memory.buffer;
  }

  /** Catches short operands, and views made before memory.grow (those read as length 0). */
  #checkExtent(where: string, data: Float64Array, need: number): void {
    if (need <= data.length) return;
    if (data.length === 0 && data.buffer.byteLength === 0) {
      throw new LinalgError("detached_buffer", `${where}: operand views wasm memory that has since grown; alloc again`);
    }
    throw new LinalgError("shape_mismatch", `${where}: operand has ${data.length} values, needs ${need}`);
  }

  /**
   * Byte addresses of the operands: in place for views into wasm memory, else scratch copies. Resident addresses are
   * taken before the scratch is reserved, because reserving may grow memory (which detaches views, not addresses).
   */
  #place(ops: readonly { s: Strided; rows: number; cols: number }[]): { ptr: number; ld: number; copied: boolean }[] {
    let scratch = 0;
    for (const { s, rows, cols } of ops) {
      if (rows > 0 && cols > 0) this.#checkExtent("gemmNT", s.data, s.offset + (rows - 1) * s.stride + cols);
      if (!this.#isResident(s.data)) scratch += rows * cols + 2;
    }
    const placed = ops.map(({ s }) =>
      this.#isResident(s.data) ? { ptr: s.data.byteOffset + s.offset * 8, ld: s.stride, copied: false } : { ptr: 0, ld: 0, copied: true },
    );
    if (scratch > 0) this.#ensure(((this.#top + 15) & ~15) + scratch * 8 + ops.length * 16);
    ops.forEach(({ s, rows, cols }, idx) => {
      if (!placed[idx].copied) return;
      const ptr = this.#reserve(rows * cols);
      const view = new Float64Array(this.#x.memory.buffer, ptr, rows * cols);
      for (let i = 0; i < rows; i++) {
        const src = s.offset + i * s.stride;
        view.set(s.data.subarray(src, src + cols), i * cols);
      }
      placed[idx] = { ptr, ld: cols, copied: true };
    });
    return placed;
  }

  gemmNT(
    a: Strided, b: Strided, c: Strided, m: number, n: number, k: number, alpha: number, beta: number,
    triangle: Triangle = "full",
  ): void {
    if (m === 0 || n === 0) return;
    const mark = this.#top;
    try {
      const sameAsA = b.data === a.data && b.offset === a.offset && b.stride === a.stride && n <= m;
      const ops = [{ s: c, rows: m, cols: n }, { s: a, rows: m, cols: k }];
      if (!sameAsA) ops.push({ s: b, rows: n, cols: k });
      const [pc, pa, pbOwn] = this.#place(ops);
      const pb = pbOwn ?? pa;
      // Row panels, so V8's tier-up (between calls only) reaches the optimised code early in a long product; each
      // panel re-reads B, so panels stay large.
      const panel = Math.max(MIN_PANEL_ROWS, Math.ceil(m / PANELS));
      for (let i0 = 0; i0 < m; i0 += panel) {
        const rows = Math.min(panel, m - i0);
        this.#x.gemmNT(
          pa.ptr + i0 * pa.ld * 8, pa.ld, pb.ptr, pb.ld, pc.ptr + i0 * pc.ld * 8, pc.ld,
          rows, n, k, alpha, beta, TRIANGLE_CODE[triangle], i0,
        );
      }
      if (pc.copied) {
        const view = new Float64Array(this.#x.memory.buffer, pc.ptr, m * n);
        for (let i = 0; i < m; i++) c.data.set(view.subarray(i * n, (i + 1) * n), c.offset + i * c.stride);
      }
    } finally {
      this.#top = mark;
    }
  }

  fusedUpdateMatvec(
    a: Float64Array, n: number, from: number,
    v: Float64Array, w: Float64Array, update: boolean, u: Float64Array, p: Float64Array,
  ): void {
    this.#checkExtent("fusedUpdateMatvec", a, n * n);
    for (const x of [a, v, w, u, p]) {
      if (x !== a) this.#checkExtent("fusedUpdateMatvec", x, n);
      if (!this.#isResident(x)) {
        throw new LinalgError("bad_argument", "fusedUpdateMatvec: every operand must come from kernels.alloc()");
      }
    }
    this.#x.fusedUpdateMatvec(a.byteOffset, n, from, v.byteOffset, w.byteOffset, update ? 1 : 0, u.byteOffset, p.byteOffset);
  }
}

let cached: LinalgKernels | null | undefined;

/** The wasm kernels, or null when build/linalg.wasm has not been built (`npm run build:linalg-wasm`). */
export function loadWasmKernels(): LinalgKernels | null {
  if (cached !== undefined) return cached;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = new Uint8Array(readFileSync(WASM_URL));
  } catch {
    cached = null;
    return cached;
  }
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    env: {
      abort: () => {
        throw new LinalgError("wasm_unavailable", "linalg.wasm aborted");
      },
    },
  });
  cached = new WasmKernels(instance.exports as unknown as LinalgWasmExports);
  return cached;
}

/** The wasm kernels, throwing when they are not built. */
export function requireWasmKernels(): LinalgKernels {
  const k = loadWasmKernels();
  if (k === null) {
    throw new LinalgError("wasm_unavailable", `${fileURLToPath(WASM_URL)} is missing: run \`npm run build:linalg-wasm\``);
  }
  return k;
}
