// CPU fallback of absorbed MLA attention (used when navigator.gpu is absent): same API and cache layout as the GPU
// path, f32 storage, one pass over 64-token pages with an online softmax per (query, head) — the same flash-decoding
// recurrence as the WGSL, without the split.
import { PAGE_TOKENS } from "./geometry.ts";
import type { LatentCacheCpu } from "./latent-cache-cpu.ts";
import { KernelInputError } from "./errors.ts";
import { validateQueries, type MlaAttentionOutput, type MlaQueries } from "./types.ts";

export function mlaAttentionCpu(cache: LatentCacheCpu, layer: number, q: MlaQueries): MlaAttentionOutput {
  const g = cache.layout.geometry;
  validateQueries(g, q);
  const n = q.queryCount;
  if (cache.length < n) throw new KernelInputError(`the cache holds ${cache.length} tokens, fewer than the ${n} queries`);
  const { heads, kvHeads, ropeDims: r, latentWidth: dc, spaces } = g;
  const ts = cache.layout.tailStride;
  const hpg = heads / kvHeads;
  const scale = 1 / Math.sqrt(g.headDim);
  const rows = new Float32Array(PAGE_TOKENS * ts);
  const runMax = new Float32Array(n * heads).fill(-Infinity);
  const mass = new Float32Array(n * heads * spaces);
  const acc = new Float32Array(n * heads * spaces * dc);
  const p = new Float32Array(PAGE_TOKENS);
  const mods = new Uint8Array(PAGE_TOKENS);
  for (let base = 0; base < cache.length; base += PAGE_TOKENS) {
    const count = Math.min(PAGE_TOKENS, cache.length - base);
    cache.readRows(layer, base, count, rows);
    for (let k = 0; k < count; k++) mods[k] = cache.modalityOf(base + k);
    for (let i = 0; i < n; i++) {
      const visible = Math.min(count, cache.length - n + i + 1 - base);
      if (visible <= 0) continue;
      for (let h = 0; h < heads; h++) {
        const kv = Math.floor(h / hpg);
        const qh = i * heads + h;
        let pm = -Infinity;
        for (let k = 0; k < visible; k++) {
          const m = mods[k];
          const ql = q.qLatent[m];
          let s = q.keyBias[m][qh];
          const row = k * ts;
          for (let d = 0; d < r; d++) s += q.qRope[qh * r + d] * rows[row + dc + kv * r + d];
          for (let c = 0; c < dc; c++) s += ql[qh * dc + c] * rows[row + c];
          p[k] = s * scale;
          if (p[k] > pm) pm = p[k];
        }
        const nm = Math.max(runMax[qh], pm);
        const alpha = Math.exp(runMax[qh] - nm);
        runMax[qh] = nm;
        for (let m = 0; m < spaces; m++) {
          mass[qh * spaces + m] *= alpha;
          const a = (qh * spaces + m) * dc;
          for (let c = 0; c < dc; c++) acc[a + c] *= alpha;
        }
        for (let k = 0; k < visible; k++) {
          const w = Math.exp(p[k] - nm);
          const m = mods[k];
          mass[qh * spaces + m] += w;
          const a = (qh * spaces + m) * dc;
          const row = k * ts;
          for (let c = 0; c < dc; c++) acc[a + c] += w * rows[row + c];
        }
      }
    }
  }
  const latentOut = Array.from({ length: spaces }, () => new Float32Array(n * heads * dc));
  const massOut = Array.from({ length: spaces }, () => new Float32Array(n * heads));
  for (let qh = 0; qh < n * heads; qh++) {
    let z = 0;
    for (let m = 0; m < spaces; m++) z += mass[qh * spaces + m];
    for (let m = 0; m < spaces; m++) {
      massOut[m][qh] = mass[qh * spaces + m] / z;
      const a = (qh * spaces + m) * dc;
      for (let c = 0; c < dc; c++) latentOut[m][qh * dc + c] = acc[a + c] / z;
    }
  }
  return { queryCount: n, latentOut, mass: massOut };
}
