// f32 projections for the calibration forward on the fastest CPU path: build/linalg.wasm's f32x4 SIMD gemmNTf32 in its
// own instance. A layer's weights are uploaded once (`upload`) and used for every calibration sequence; `reset` frees
// them for the next layer. `linear` has the runtime's signature (f64 activations in and out), computes in f32.
// With `threads: 2` a worker thread holds the lower half of every weight's rows (nothing is duplicated) and computes
// those outputs while the calling thread computes the upper half; activations and results cross in SharedArrayBuffers
// and the caller blocks on Atomics.wait, so `linear` stays synchronous.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { LinalgError } from "./errors.ts";

const WASM_URL = new URL("../../build/linalg.wasm", import.meta.url);
const PAGE = 65536;
const MAX_BYTES = 4 * 1024 ** 3 - PAGE;
/** Activation rows per wasm call (also spreads the work over calls so V8 tiers the kernel up early). */
const ROWS = 128;

interface F32Exports {
  readonly memory: WebAssembly.Memory;
  heapBase(): number;
  gemmNTf32(a: number, lda: number, b: number, ldb: number, c: number, ldc: number, m: number, n: number, k: number): void;
}

/** A weight matrix inside wasm memory: rows [0, `local`) of [outDim × inDim] f32 at `ptr`; the rest in the worker. */
export interface WasmWeight {
  readonly ptr: number;
  readonly outDim: number;
  readonly inDim: number;
  /** Rows computed on the calling thread (outDim without a worker). */
  readonly local: number;
  /** Index of the worker's half (−1 without a worker). */
  readonly remote: number;
}

// The worker: its own instance of the same module, the lower rows of each uploaded weight, one job at a time.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const inst = new WebAssembly.Instance(new WebAssembly.Module(workerData.bytes), { env: { abort() { throw new Error("linalg.wasm aborted"); } } });
const x = inst.exports;
const base = (x.heapBase() + 15) & ~15;
let top = base;
let weights = [];
const flag = new Int32Array(workerData.flag);
function alloc(bytes) {
  const p = top;
  top = p + ((bytes + 15) & ~15);
  if (top > x.memory.buffer.byteLength) x.memory.grow(Math.ceil((top - x.memory.buffer.byteLength) / 65536));
  return p;
}
parentPort.on("message", (m) => {
  try {
    if (m.op === "reset") { top = base; weights = []; return; }
    if (m.op === "upload") {
      const p = alloc(m.w.byteLength);
      new Float32Array(x.memory.buffer, p, m.w.length).set(m.w);
      weights.push(p);
      return;
    }
    if (m.op === "linear") {
      const { rows, inDim, n, chunk } = m;
      const xs = new Float32Array(m.x, 0, rows * inDim);
      const out = new Float32Array(m.out, 0, rows * n);
      const mark = top;
      const a = alloc(chunk * inDim * 4);
      const c = alloc(chunk * n * 4);
      const A = new Float32Array(x.memory.buffer, a, chunk * inDim);
      const C = new Float32Array(x.memory.buffer, c, chunk * n);
      for (let r0 = 0; r0 < rows; r0 += chunk) {
        const mm = Math.min(chunk, rows - r0);
        A.set(xs.subarray(r0 * inDim, (r0 + mm) * inDim));
        x.gemmNTf32(a, inDim, weights[m.w], inDim, c, n, mm, n, inDim);
        out.set(C.subarray(0, mm * n), r0 * n);
      }
      top = mark;
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    }
  } catch (e) {
    Atomics.store(flag, 1, 1);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  }
});
`;

class LinearWorker {
  readonly worker: Worker;
  readonly flag = new Int32Array(new SharedArrayBuffer(8));
  uploads = 0;
  x = new SharedArrayBuffer(4);
  out = new SharedArrayBuffer(4);

  constructor(bytes: Uint8Array) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bytes, flag: this.flag.buffer } });
    this.worker.unref();
  }
}

export class WasmLinearF32 {
  readonly #x: F32Exports;
  readonly #base: number;
  #top: number;
  readonly #worker: LinearWorker | null;

  private constructor(x: F32Exports, worker: LinearWorker | null) {
    this.#x = x;
    this.#worker = worker;
    this.#base = (x.heapBase() + 15) & ~15;
    this.#top = this.#base;
    // spend V8's tier-up budget on small calls so the first large one runs optimised code
    const w = this.upload(new Float32Array(64 * 64), 64, 64);
    const x64 = new Float64Array(8 * 64);
    for (let i = 0; i < 16; i++) this.linear(x64, 8, 64, w, null, new Float64Array(8 * 64));
    this.reset();
  }

  /**
   * null when build/linalg.wasm is missing or lacks the f32 kernel (`npm run build:linalg-wasm`). `threads` 2 adds a
   * worker thread (default: 2 when the machine has at least 2 cores).
   */
  static create(options: { threads?: 1 | 2 } = {}): WasmLinearF32 | null {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(readFileSync(WASM_URL));
    } catch {
      return null;
    }
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: {
        abort: () => {
          throw new LinalgError("wasm_unavailable", "linalg.wasm aborted");
        },
      },
    });
    const x = inst.exports as unknown as F32Exports;
    if (typeof x.gemmNTf32 !== "function") return null;
    const threads = options.threads ?? (availableParallelism() >= 2 ? 2 : 1);
    return new WasmLinearF32(x, threads === 2 ? new LinearWorker(bytes) : null);
  }

  /** Threads computing each projection. */
  get threads(): 1 | 2 {
    return this.#worker === null ? 1 : 2;
  }

  /** Stops the worker thread (the instance is unusable afterwards). */
  async close(): Promise<void> {
    await this.#worker?.worker.terminate();
  }

  #alloc(bytes: number): number {
    const p = this.#top;
    const end = p + ((bytes + 15) & ~15);
    if (end > MAX_BYTES) throw new LinalgError("bad_argument", `wasm f32 linear: ${end} bytes exceed the 4 GiB wasm32 memory`);
    const mem = this.#x.memory;
    if (end > mem.buffer.byteLength) mem.grow(Math.ceil((end - mem.buffer.byteLength) / PAGE));
    this.#top = end;
    return p;
  }

  /** Copies `w` ([outDim × inDim]) into wasm memory until the next `reset`. */
  upload(w: Float32Array, outDim: number, inDim: number): WasmWeight {
    if (w.length !== outDim * inDim) throw new LinalgError("shape_mismatch", `wasm f32 linear: weight has ${w.length} values, not ${outDim}×${inDim}`);
    const wk = this.#worker;
    // split only where it pays: both halves need a few hundred rows
    const local = wk !== null && outDim >= 512 ? Math.ceil(outDim / 2) : outDim;
    const ptr = this.#alloc(local * inDim * 4);
    new Float32Array(this.#x.memory.buffer, ptr, local * inDim).set(w.subarray(0, local * inDim));
    let remote = -1;
    if (local < outDim) {
      wk!.worker.postMessage({ op: "upload", w: w.subarray(local * inDim) });
      remote = wk!.uploads++;
    }
    return { ptr, outDim, inDim, local, remote };
  }

  /** Frees every uploaded weight. */
  reset(): void {
    this.#top = this.#base;
    if (this.#worker !== null) {
      this.#worker.worker.postMessage({ op: "reset" });
      this.#worker.uploads = 0;
    }
  }

  /** out[r, o] = bias[o] + Σ_k w[o, k]·x[r, k] (f32 arithmetic), as runtime/ops.ts `linear`. */
  linear(x: Float64Array, rows: number, inDim: number, w: WasmWeight, bias: Float32Array | null, out: Float64Array): void {
    if (inDim !== w.inDim) throw new LinalgError("shape_mismatch", `wasm f32 linear: input width ${inDim}, weight takes ${w.inDim}`);
    const N = w.outDim;
    const n = w.local;
    const wk = this.#worker;
    const remoteRows = N - n;
    let xs: Float32Array | null = null;
    if (remoteRows > 0) {
      // hand the worker its job first, then compute the local half
      if (wk!.x.byteLength < rows * inDim * 4) wk!.x = new SharedArrayBuffer(rows * inDim * 4);
      if (wk!.out.byteLength < rows * remoteRows * 4) wk!.out = new SharedArrayBuffer(rows * remoteRows * 4);
      xs = new Float32Array(wk!.x, 0, rows * inDim);
      for (let i = 0; i < rows * inDim; i++) xs[i] = x[i];
      Atomics.store(wk!.flag, 0, 0);
      wk!.worker.postMessage({ op: "linear", x: wk!.x, out: wk!.out, rows, inDim, n: remoteRows, w: w.remote, chunk: Math.min(ROWS, rows) });
    }
    const mark = this.#top;
    const chunk = Math.min(ROWS, rows);
    const a = this.#alloc(chunk * inDim * 4);
    const c = this.#alloc(chunk * n * 4);
    try {
      const buf = this.#x.memory.buffer;
      const A = new Float32Array(buf, a, chunk * inDim);
      const C = new Float32Array(buf, c, chunk * n);
      for (let r0 = 0; r0 < rows; r0 += chunk) {
        const m = Math.min(chunk, rows - r0);
        if (xs !== null) A.set(xs.subarray(r0 * inDim, (r0 + m) * inDim));
        else for (let i = 0; i < m * inDim; i++) A[i] = x[r0 * inDim + i];
        this.#x.gemmNTf32(a, inDim, w.ptr, inDim, c, n, m, n, inDim);
        for (let r = 0; r < m; r++) {
          const oo = (r0 + r) * N;
          for (let o = 0; o < n; o++) out[oo + o] = bias === null ? C[r * n + o] : C[r * n + o] + bias[o];
        }
      }
    } finally {
      this.#top = mark;
    }
    if (remoteRows > 0) {
      Atomics.wait(wk!.flag, 0, 0);
      if (Atomics.load(wk!.flag, 1) !== 0) throw new LinalgError("wasm_unavailable", "wasm f32 linear: the worker thread failed");
      const R = new Float32Array(wk!.out, 0, rows * remoteRows);
      for (let r = 0; r < rows; r++) {
        const oo = r * N + n;
        for (let o = 0; o < remoteRows; o++) out[oo + o] = bias === null ? R[r * remoteRows + o] : R[r * remoteRows + o] + bias[n + o];
      }
    }
  }

  /** `linear` for a weight used once: uploads it, runs, frees it (the vision tower's projections). */
  linearOnce(x: Float64Array, rows: number, inDim: number, w: Float32Array, outDim: number, bias: Float32Array | null, out: Float64Array): void {
    const mark = this.#top;
    const uploads = this.#worker?.uploads ?? 0;
    try {
      this.linear(x, rows, inDim, this.upload(w, outDim, inDim), bias, out);
    } finally {
      this.#top = mark;
      if (this.#worker !== null && this.#worker.uploads !== uploads) {
        // the worker frees everything on reset only: keep it simple, reset both sides when nothing else is uploaded
        if (mark === this.#base) this.reset();
      }
    }
  }
}
