// The calibration forward's f32 projections (build/linalg.wasm gemmNTf32): one thread and two (a worker computes the
// lower half of the output rows) give the same bits, and both agree with the runtime's f64 `linear` to f32 rounding,
// bias included on both halves.
import { afterAll, describe, expect, it } from "vitest";
import { WasmLinearF32 } from "../../convert/linalg/linear-f32-wasm.ts";
import { linear } from "../../runtime/ops.ts";

const one = WasmLinearF32.create({ threads: 1 });
const two = WasmLinearF32.create({ threads: 2 });

afterAll(async () => {
  await two?.close();
});

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

describe.skipIf(one === null)("WasmLinearF32", () => {
  it("two threads equal one bit for bit; both match the f64 reference within f32 rounding", () => {
    const rows = 37; // odd: the kernel's single-row tail and several 128-row chunks are not needed, one partial chunk is
    const inDim = 301; // not a multiple of 4: the scalar k tail
    const outDim = 1030; // split 515 / 515, neither a multiple of 4
    const w = rand(outDim * inDim, 1);
    const bias = rand(outDim, 2);
    const x = Float64Array.from(rand(rows * inDim, 3));
    const a = new Float64Array(rows * outDim);
    const b = new Float64Array(rows * outDim);
    const ref = new Float64Array(rows * outDim);
    one!.linear(x, rows, inDim, one!.upload(w, outDim, inDim), bias, a);
    expect(two!.threads).toBe(2);
    const w2 = two!.upload(w, outDim, inDim);
    expect(w2.local).toBe(515);
    two!.linear(x, rows, inDim, w2, bias, b);
    linear(x, rows, inDim, w, outDim, bias, ref);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(a[i] - ref[i]));
    expect(worst).toBeLessThan(1e-5);
    expect(worst).toBeGreaterThan(0);
    // the worker's half really was computed (a zeroed half would be far off)
    expect(Math.abs(b[rows * outDim - 1] - ref[rows * outDim - 1])).toBeLessThan(1e-5);
    one!.reset();
    two!.reset();
  });
});
