// Runs KernelCases on a backend and measures them against the f64 reference. Shared by the Node WebGPU child
// process, the Chromium page bundle and the in-process CPU fallback test.
import type { MlaBackend } from "../../kernels/backend.ts";
import { mlaAttentionRef } from "../../kernels/mla-attention.ref.ts";
import type { MlaQueries } from "../../kernels/types.ts";
import type { KernelCase } from "./cases.ts";
import { buildCaseData, relativeError } from "./case-data.ts";

export interface CaseResult {
  readonly name: string;
  /** Relative error of ōᵐ per space vs the f64 reference (on dequantized inputs). */
  readonly latentError: number[];
  /** Relative error of Pᵐ per space. */
  readonly massError: number[];
  /** Relative error of the dequantize kernel vs the reference dequantization of every token. */
  readonly dequantError: number;
  /** Mass per space summed over heads/queries (shows which spaces were present). */
  readonly massTotal: number[];
  readonly reallocations: number;
  readonly capacity: number;
  /** The cache's own account of its storage after the writes (2 layers, default 64-row tail). */
  readonly allocatedBytes: number;
  readonly ms: number;
}

export async function runCase(backend: MlaBackend, c: KernelCase): Promise<CaseResult> {
  const t0 = performance.now();
  const data = buildCaseData(c);
  const cache = backend.createCache(data.layout, { layers: 2, initialCapacity: c.initialCapacity ?? 64 });
  try {
    // Layer 1 holds the data; layer 0 holds a shifted copy so a wrong layer binding shows up as an error.
    for (const ch of data.chunks) {
      cache.writeSealed(1, ch.start, ch.latent, ch.rope);
    }
    for (const ch of [...data.chunks].reverse()) cache.writeSealed(0, ch.start, data.chunks[0].latent, data.chunks[0].rope);
    cache.writeTail(1, data.tailLatent, data.tailRope, data.tailRows);
    cache.writeModality(0, data.modality);
    cache.commit({ sealedLength: data.sealedLength, length: c.length });

    const out = await backend.attention(cache, 1, data.queries, { poison: true });
    const ref = mlaAttentionRef(c.geometry, data.dense, data.queries);
    const deq = await backend.dequantize(cache, 1, 0, c.length, { poison: true });
    const ts = data.layout.tailStride;
    const dc = c.geometry.latentWidth;
    const denseRows = new Float64Array(c.length * ts);
    for (let j = 0; j < c.length; j++) {
      denseRows.set(data.dense.latent.subarray(j * dc, (j + 1) * dc), j * ts);
      denseRows.set(data.dense.rope.subarray(j * data.layout.ropeWidth, (j + 1) * data.layout.ropeWidth), j * ts + dc);
    }
    return {
      name: c.name,
      latentError: ref.latentOut.map((r, m) => relativeError(out.latentOut[m], r)),
      massError: ref.mass.map((r, m) => relativeError(out.mass[m], r)),
      dequantError: relativeError(deq, denseRows),
      massTotal: out.mass.map((a) => a.reduce((x, y) => x + y, 0)),
      reallocations: cache.reallocations,
      capacity: cache.capacity,
      allocatedBytes: cache.allocatedBytes,
      ms: performance.now() - t0,
    };
  } finally {
    cache.destroy();
  }
}

export interface ConcurrentResult {
  /** Attention calls in flight at once. */
  readonly calls: number;
  /** Worst relative error of any call's outputs vs its own f64 reference. */
  readonly worst: number;
}

/**
 * Two sessions of one layout (the runner and its scratch are shared) fire four steps without awaiting each other, as
 * two chats of one page do: each result must be its own session's, not the other's.
 */
export async function runConcurrentSteps(backend: MlaBackend, c: KernelCase): Promise<ConcurrentResult> {
  const datas = [buildCaseData(c), buildCaseData({ ...c, seed: c.seed + 1000 })];
  const layout = datas[0].layout;
  const caches = datas.map((d) => {
    const cache = backend.createCache(layout, { layers: 1, initialCapacity: 64 });
    for (const ch of d.chunks) cache.writeSealed(0, ch.start, ch.latent, ch.rope);
    cache.writeTail(0, d.tailLatent, d.tailRope, d.tailRows);
    cache.writeModality(0, d.modality);
    cache.commit({ sealedLength: d.sealedLength, length: c.length });
    return cache;
  });
  try {
    const order = [0, 1, 0, 1];
    const outs = await Promise.all(order.map((i) => backend.attention(caches[i], 0, datas[i].queries)));
    const refs = datas.map((d) => mlaAttentionRef(c.geometry, d.dense, d.queries));
    let worst = 0;
    outs.forEach((out, k) => {
      const ref = refs[order[k]];
      for (let m = 0; m < c.geometry.spaces; m++) {
        worst = Math.max(worst, relativeError(out.latentOut[m], ref.latentOut[m]), relativeError(out.mass[m], ref.mass[m]));
      }
    });
    return { calls: order.length, worst };
  } finally {
    for (const cache of caches) cache.destroy();
  }
}

/** Runs every case, catching per-case failures so one broken case does not hide the others. */
export async function runCases(backend: MlaBackend, cases: readonly KernelCase[]): Promise<Array<CaseResult | { name: string; error: string }>> {
  const results: Array<CaseResult | { name: string; error: string }> = [];
  for (const c of cases) {
    try {
      results.push(await runCase(backend, c));
    } catch (e) {
      results.push({ name: c.name, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
  return results;
}

export interface SessionResult {
  readonly worst: number;
  readonly steps: number;
  readonly reallocations: number;
  readonly capacity: number;
}

/**
 * A chat session as the client runs it: a prompt that ends in the f32 tail, then single-token decode steps that cross a
 * chunk boundary (the chunk is sealed: written as codes, the tail rewritten), then a new turn appended as a causal
 * block. Every step is compared with the f64 reference; returns the worst relative error and the reallocation count.
 */
export async function runSessionSteps(backend: MlaBackend, c: KernelCase): Promise<SessionResult> {
  const data = buildCaseData(c);
  const g = c.geometry;
  const dc = g.latentWidth;
  const rw = data.layout.ropeWidth;
  const cache = backend.createCache(data.layout, { layers: 1, initialCapacity: 64 });
  let worst = 0;
  let steps = 0;
  // Dequantized view the reference reads, updated as chunks seal.
  const denseLatent = new Float64Array(c.length * dc);
  const denseRope = new Float64Array(c.length * rw);
  const publish = (length: number): void => {
    const sealed = Math.floor(length / 64) * 64;
    for (const ch of data.chunks) {
      if (ch.start + 64 <= sealed && ch.start + 64 > cache.sealedLength) {
        cache.writeSealed(0, ch.start, ch.latent, ch.rope);
      }
    }
    // Only new tail rows are written, in place; a seal rewrites the tail from row 0.
    const firstRow = sealed === cache.sealedLength ? cache.length - sealed : 0;
    const rows = length - sealed - firstRow;
    const latent = new Float32Array(rows * dc);
    const rope = new Float32Array(rows * rw);
    for (let k = 0; k < rows; k++) {
      const j = sealed + firstRow + k;
      latent.set(data.rawLatent.subarray(j * dc, (j + 1) * dc), k * dc);
      rope.set(data.rawRope.subarray(j * rw, (j + 1) * rw), k * rw);
    }
    cache.writeTail(0, latent, rope, rows, firstRow);
    cache.writeModality(0, data.modality.subarray(0, length));
    cache.commit({ sealedLength: sealed, length });
    denseLatent.set(data.dense.latent.subarray(0, sealed * dc));
    denseRope.set(data.dense.rope.subarray(0, sealed * rw));
    for (let j = sealed * dc; j < length * dc; j++) denseLatent[j] = data.rawLatent[j];
    for (let j = sealed * rw; j < length * rw; j++) denseRope[j] = data.rawRope[j];
  };
  const check = async (length: number, queryCount: number): Promise<void> => {
    const q = sliceQueries(data.queries, g, queryCount);
    const out = await backend.attention(cache, 0, q, { poison: true });
    const ref = mlaAttentionRef(g, { length, latent: denseLatent, rope: denseRope, modality: data.modality }, q);
    for (let m = 0; m < g.spaces; m++) {
      worst = Math.max(worst, relativeError(out.latentOut[m], ref.latentOut[m]), relativeError(out.mass[m], ref.mass[m]));
    }
    steps++;
  };
  try {
    const prompt = 60;
    const turn = Math.min(c.queryCount, c.length - 70);
    for (let length = prompt; length <= 70; length++) {
      publish(length);
      await check(length, 1);
    }
    publish(70 + turn);
    await check(70 + turn, turn);
    return { worst, steps, reallocations: cache.reallocations, capacity: cache.capacity };
  } finally {
    cache.destroy();
  }
}

function sliceQueries(q: MlaQueries, g: KernelCase["geometry"], n: number): MlaQueries {
  return {
    queryCount: n,
    qRope: q.qRope.subarray(0, n * g.heads * g.ropeDims),
    qLatent: q.qLatent.map((a) => a.subarray(0, n * g.heads * g.latentWidth)),
    keyBias: q.keyBias.map((a) => a.subarray(0, n * g.heads)),
  };
}
