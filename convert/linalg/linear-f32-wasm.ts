// f32 projections for the calibration forward on the fastest CPU path: build/linalg.wasm's f32x4 SIMD gemmNTf32 in its
// own instance. A layer's weights are uploaded once (`upload`) and used for every calibration sequence; `reset` frees
// them for the next layer. `linear` has the runtime's signature (f64 activations in and out), computes in f32.
import { readFileSync } from "node:fs";
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

/** A weight matrix inside wasm memory: [outDim × inDim] f32 at `ptr`. */
export interface WasmWeight {
  readonly ptr: number;
  readonly outDim: number;
  readonly inDim: number;
}

export class WasmLinearF32 {
  readonly #x: F32Exports;
  readonly #base: number;
  #top: number;

  private constructor(x: F32Exports) {
    this.#x = x;
    this.#base = (x.heapBase() + 15) & ~15;
    this.#top = this.#base;
    // spend V8's tier-up budget on small calls so the first large one runs optimised code
    const w = this.upload(new Float32Array(64 * 64), 64, 64);
    const x64 = new Float64Array(8 * 64);
    for (let i = 0; i < 16; i++) this.linear(x64, 8, 64, w, null, new Float64Array(8 * 64));
    this.reset();
  }

  /** null when build/linalg.wasm is missing or lacks the f32 kernel (`npm run build:linalg-wasm`). */
  static create(): WasmLinearF32 | null {
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
    return new WasmLinearF32(x);
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
    const ptr = this.#alloc(w.byteLength);
    new Float32Array(this.#x.memory.buffer, ptr, w.length).set(w);
    return { ptr, outDim, inDim };
  }

  /** Frees every uploaded weight. */
  reset(): void {
    this.#top = this.#base;
  }

  /** out[r, o] = bias[o] + Σ_k w[o, k]·x[r, k] (f32 arithmetic), as runtime/ops.ts `linear`. */
  linear(x: Float64Array, rows: number, inDim: number, w: WasmWeight, bias: Float32Array | null, out: Float64Array): void {
    if (inDim !== w.inDim) throw new LinalgError("shape_mismatch", `wasm f32 linear: input width ${inDim}, weight takes ${w.inDim}`);
    const n = w.outDim;
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
        for (let i = 0; i < m * inDim; i++) A[i] = x[r0 * inDim + i];
        this.#x.gemmNTf32(a, inDim, w.ptr, inDim, c, n, m, n, inDim);
        for (let r = 0; r < m; r++) {
          const oo = (r0 + r) * n;
          for (let o = 0; o < n; o++) out[oo + o] = bias === null ? C[r * n + o] : C[r * n + o] + bias[o];
        }
      }
    } finally {
      this.#top = mark;
    }
  }
}
