// CPU side of the kernels: the f64 absorbed reference against the expanded form (docs/method.md §8.1), the test packer
// against the format/codec reference codec, the f32 CPU fallback on every kernel case, and input validation.
import { describe, expect, it } from "vitest";
import { mlaAttentionRef } from "../../kernels/mla-attention.ref.ts";
import { dequantizeBlockRef } from "../../kernels/mla-dequantize.ref.ts";
import { createCpuBackend, createMlaBackend } from "../../kernels/backend.ts";
import { cacheLayout, type MlaGeometry } from "../../kernels/geometry.ts";
import { GeometryError, KernelInputError } from "../../kernels/errors.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import { splitWorkgroupBytes } from "../../kernels/mla-attention-split.ts";
import { planSplits } from "../../kernels/mla-attention.ts";
import { MAX_SPLITS } from "../../kernels/mla-attention-combine.ts";
import { KERNEL_CASES, SESSION_CASE, qwenGeometry } from "./cases.ts";
import { buildCaseData, normalSource, relativeError } from "./case-data.ts";
import { expectCaseResult, expectConcurrentResult, expectSessionResult } from "./expected.ts";
import { runCase, runConcurrentSteps, runSessionSteps } from "./harness.ts";
import { fp16Block, quantizeBlock } from "./pack.ts";

describe("f64 absorbed reference", () => {
  it("should equal expanded attention with per-modality up-projections and biases (docs/method.md §8.1 vs §8.3)", () => {
    const rnd = normalSource(99);
    const g: MlaGeometry = { heads: 4, kvHeads: 2, ropeDims: 8, latentWidth: 32, headDim: 16, spaces: 2 };
    const dNope = g.headDim - g.ropeDims;
    const T = 23;
    const hpg = g.heads / g.kvHeads;
    const mat = (n: number): Float64Array => Float64Array.from({ length: n }, () => rnd());
    // Per space m, per KV group: W_uk [d_c × D_c], b_uk [d_c], W_uv [d_h × D_c], b_uv [d_h].
    const Wuk = [0, 1].map(() => mat(g.kvHeads * dNope * g.latentWidth));
    const buk = [0, 1].map(() => mat(g.kvHeads * dNope));
    const Wuv = [0, 1].map(() => mat(g.kvHeads * g.headDim * g.latentWidth));
    const buv = [0, 1].map(() => mat(g.kvHeads * g.headDim));
    const latent = mat(T * g.latentWidth);
    const rope = mat(T * g.kvHeads * g.ropeDims);
    const modality = Uint8Array.from({ length: T }, (_, j) => (j % 5 < 2 ? 1 : 0));
    const qRope = Float32Array.from({ length: g.heads * g.ropeDims }, () => rnd());
    const qNope = Float64Array.from({ length: g.heads * dNope }, () => rnd() * 0.3);

    // Expanded form.
    const expanded = new Float64Array(g.heads * g.headDim);
    for (let h = 0; h < g.heads; h++) {
      const kv = Math.floor(h / hpg);
      const s = new Float64Array(T);
      const v = new Float64Array(T * g.headDim);
      for (let j = 0; j < T; j++) {
        const m = modality[j];
        let score = 0;
        for (let k = 0; k < g.ropeDims; k++) score += qRope[h * g.ropeDims + k] * rope[j * g.kvHeads * g.ropeDims + kv * g.ropeDims + k];
        for (let d = 0; d < dNope; d++) {
          let kn = buk[m][kv * dNope + d];
          for (let c = 0; c < g.latentWidth; c++) kn += Wuk[m][(kv * dNope + d) * g.latentWidth + c] * latent[j * g.latentWidth + c];
          score += qNope[h * dNope + d] * kn;
        }
        s[j] = score / Math.sqrt(g.headDim);
        for (let d = 0; d < g.headDim; d++) {
          let vv = buv[m][kv * g.headDim + d];
          for (let c = 0; c < g.latentWidth; c++) vv += Wuv[m][(kv * g.headDim + d) * g.latentWidth + c] * latent[j * g.latentWidth + c];
          v[j * g.headDim + d] = vv;
        }
      }
      const mx = Math.max(...s);
      const z = s.reduce((a, x) => a + Math.exp(x - mx), 0);
      for (let j = 0; j < T; j++) {
        const p = Math.exp(s[j] - mx) / z;
        for (let d = 0; d < g.headDim; d++) expanded[h * g.headDim + d] += p * v[j * g.headDim + d];
      }
    }

    // Absorbed: q̃ᵐ = W_ukᵐ[g]ᵀ q_nope, βᵐ = q_nope · b_ukᵐ[g]; then o = Σ_m W_uvᵐ ōᵐ + Pᵐ b_uvᵐ.
    const qLatent = [0, 1].map((m) => {
      const out = new Float32Array(g.heads * g.latentWidth);
      for (let h = 0; h < g.heads; h++) {
        const kv = Math.floor(h / hpg);
        for (let c = 0; c < g.latentWidth; c++) {
          let a = 0;
          for (let d = 0; d < dNope; d++) a += Wuk[m][(kv * dNope + d) * g.latentWidth + c] * qNope[h * dNope + d];
          out[h * g.latentWidth + c] = a;
        }
      }
      return out;
    });
    const keyBias = [0, 1].map((m) =>
      Float32Array.from({ length: g.heads }, (_, h) => {
        const kv = Math.floor(h / hpg);
        let a = 0;
        for (let d = 0; d < dNope; d++) a += qNope[h * dNope + d] * buk[m][kv * dNope + d];
        return a;
      }),
    );
    // q̃ and β are passed as f32 (the kernel API), so the bound covers their f32 rounding, nothing more.
    const ref = mlaAttentionRef(g, { length: T, latent, rope, modality }, { queryCount: 1, qRope, qLatent, keyBias });
    const absorbed = new Float64Array(g.heads * g.headDim);
    for (let h = 0; h < g.heads; h++) {
      const kv = Math.floor(h / hpg);
      for (let m = 0; m < 2; m++) {
        for (let d = 0; d < g.headDim; d++) {
          let a = ref.mass[m][h] * buv[m][kv * g.headDim + d];
          for (let c = 0; c < g.latentWidth; c++) a += Wuv[m][(kv * g.headDim + d) * g.latentWidth + c] * ref.latentOut[m][h * g.latentWidth + c];
          absorbed[h * g.headDim + d] += a;
        }
      }
    }
    expect(relativeError(absorbed, expanded)).toBeLessThan(1e-6);
    // The key-bias term matters with two spaces: dropping β changes the result.
    const noBias = mlaAttentionRef(g, { length: T, latent, rope, modality }, {
      queryCount: 1,
      qRope,
      qLatent,
      keyBias: [new Float32Array(g.heads), new Float32Array(g.heads)],
    });
    expect(relativeError(noBias.mass[1], ref.mass[1])).toBeGreaterThan(1e-3);
  });
});

describe("test packer", () => {
  it("should produce the same bytes as format/codec's reference codec (docs/codec.md)", () => {
    const rnd = normalSource(5);
    const x = Float32Array.from({ length: 64 * 256 }, () => rnd() * 3);
    for (const bits of [8, 4, 2] as const) {
      for (const group of [32, 64, 128] as const) {
        const mine = quantizeBlock(x, 64, 256, bits, group, "token");
        const theirs = referenceCodec.quantize(x, 64, 256, bits, group, "token");
        expect(mine.codes).toEqual(theirs.codes);
        expect(mine.scales).toEqual(theirs.scales);
        expect(mine.zeros).toEqual(theirs.zeros);
        const deq = referenceCodec.dequantize(theirs);
        expect(relativeError(deq, dequantizeBlockRef(mine))).toBeLessThanOrEqual(1e-7);
      }
    }
    expect(fp16Block(x, 64, 256).codes).toEqual(referenceCodec.toFp16Block(x, 64, 256).codes);
  });
});

describe("CPU fallback (f32)", () => {
  const backend = createCpuBackend();
  for (const c of KERNEL_CASES) {
    it(`should match the f64 reference: ${c.name}`, async () => {
      expectCaseResult(c, await runCase(backend, c));
    });
  }

  it("should follow a session: decode steps across a chunk seal, then an appended turn", async () => {
    expectSessionResult(await runSessionSteps(backend, SESSION_CASE));
  });

  it("should give each of four concurrent steps of two sessions its own result", async () => {
    expectConcurrentResult(await runConcurrentSteps(backend, SESSION_CASE));
  });

  it("should be what createMlaBackend picks when WebGPU is absent", async () => {
    expect(typeof navigator === "undefined" || !("gpu" in navigator)).toBe(true);
    expect((await createMlaBackend()).kind).toBe("cpu");
  });
});

describe("input validation", () => {
  const layout = cacheLayout(qwenGeometry(256), { latentBits: 4, latentGroup: 64, rope: "int8" });
  const rnd = normalSource(3);
  const x = Float32Array.from({ length: 64 * 256 }, () => rnd());
  const r = Float32Array.from({ length: 64 * 128 }, () => rnd());
  const rope = quantizeBlock(r, 64, 128, 8, 32, "token");

  it("should reject a latent block whose axis is not the cache's", () => {
    const cache = createCpuBackend().createCache(layout, { layers: 1 });
    expect(() => cache.writeSealed(0, 0, quantizeBlock(x, 64, 256, 4, 64, "channel"), rope)).toThrow(/channel-axis; this cache stores token-axis/);
    const channelCache = createCpuBackend().createCache(cacheLayout(qwenGeometry(256), { latentBits: 4, latentGroup: 64, latentAxis: "channel", rope: "int8" }), { layers: 1 });
    expect(() => channelCache.writeSealed(0, 0, quantizeBlock(x, 64, 256, 4, 64, "token"), rope)).toThrow(KernelInputError);
  });

  it("should reject channel-axis blocks that do not start and end on a token-group boundary", () => {
    const channel32 = cacheLayout(qwenGeometry(256), { latentBits: 4, latentGroup: 32, latentAxis: "channel", rope: "int8" });
    const cache = createCpuBackend().createCache(channel32, { layers: 1 });
    const x32 = x.subarray(0, 32 * 256);
    const rope32 = quantizeBlock(r.subarray(0, 32 * 128), 32, 128, 8, 32, "token");
    expect(() => cache.writeSealed(0, 16, quantizeBlock(x32, 32, 256, 4, 32, "channel"), rope32)).toThrow(/32-token group boundary/);
    expect(() => cache.writeSealed(0, 32, quantizeBlock(x32, 32, 256, 4, 32, "channel"), rope32)).not.toThrow();
  });

  it("should take a channel-axis group as the blocks' effective group (a power of two ≤ 128)", () => {
    expect(cacheLayout(qwenGeometry(256), { latentBits: 4, latentGroup: 16, latentAxis: "channel", rope: "int8" }).latentGroupsPerToken).toBe(16);
    expect(() => cacheLayout(qwenGeometry(256), { latentBits: 4, latentGroup: 16, rope: "int8" })).toThrow(GeometryError);
    expect(() => cacheLayout(qwenGeometry(256), { latentBits: 4, latentGroup: 48, latentAxis: "channel", rope: "int8" })).toThrow(/power of two/);
  });

  it("should reject blocks whose bits or group differ from the cache encoding", () => {
    const cache = createCpuBackend().createCache(layout, { layers: 1 });
    expect(() => cache.writeSealed(0, 0, quantizeBlock(x, 64, 256, 8, 64, "token"), rope)).toThrow(KernelInputError);
    expect(() => cache.writeSealed(0, 0, quantizeBlock(x, 64, 256, 4, 32, "token"), rope)).toThrow(/group/);
  });

  it("should refuse a tail longer than its capacity", () => {
    const cache = createCpuBackend().createCache(layout, { layers: 1, tailCapacity: 64 });
    expect(() => cache.commit({ sealedLength: 0, length: 65 })).toThrow(/tail capacity/);
  });

  it("should refuse to publish tokens beyond the capacity (their modality bits would not exist)", () => {
    const cache = createCpuBackend().createCache(layout, { layers: 1, initialCapacity: 64, tailCapacity: 64 });
    expect(() => cache.commit({ sealedLength: 64, length: 100 })).toThrow(/beyond the capacity/);
    cache.writeModality(0, new Uint8Array(100));
    expect(() => cache.commit({ sealedLength: 64, length: 100 })).not.toThrow();
  });

  it("should reject latent widths that are not whole u32 words per token", () => {
    expect(() => cacheLayout({ ...qwenGeometry(128), latentWidth: 100 }, { latentBits: 4, latentGroup: 32, rope: "fp16" })).toThrow(GeometryError);
  });

  it("should grow capacity geometrically while writing 64-token chunks one at a time", () => {
    const cache = createCpuBackend().createCache(layout, { layers: 1, initialCapacity: 64 });
    const latent = quantizeBlock(x, 64, 256, 4, 64, "token");
    for (let t = 0; t < 64 * 40; t += 64) cache.writeSealed(0, t, latent, rope);
    expect(cache.capacity).toBe(4096);
    expect(cache.reallocations).toBe(6);
  });
});

describe("launch shape", () => {
  it("should keep pass-1 workgroup memory within the 16 KiB WebGPU default for every supported shape", () => {
    for (const heads of [1, 7, 8, 14, 28, 32, 40, 64]) {
      for (const latentWidth of [32, 96, 128, 256, 512, 1024]) {
        for (const spaces of [1, 2] as const) {
          const layout = cacheLayout(
            { heads, kvHeads: 1, ropeDims: 32, latentWidth, headDim: 128, spaces },
            { latentBits: 4, latentGroup: 32, rope: "int8" },
          );
          expect(splitWorkgroupBytes(layout)).toBeLessThanOrEqual(16 * 1024);
        }
      }
    }
  });

  it("should split every page exactly once, within MAX_SPLITS", () => {
    for (const length of [1, 63, 64, 65, 777, 4096, 16384, 1 << 20]) {
      for (const queries of [1, 37]) {
        const p = planSplits(length, 4, queries, 64);
        expect(p.pages).toBe(Math.ceil(length / 64));
        expect(p.splitCount).toBeLessThanOrEqual(MAX_SPLITS);
        expect(p.splitCount * p.pagesPerSplit).toBeGreaterThanOrEqual(p.pages);
        expect((p.splitCount - 1) * p.pagesPerSplit).toBeLessThan(p.pages);
      }
    }
  });
});

describe("large-magnitude cases (issue 21)", () => {
  /** max and min over (query, head) of the largest visible score s_j, from the dense f64 cache. */
  function maxScoreRange(c: (typeof KERNEL_CASES)[number]): { hi: number; lo: number } {
    const d = buildCaseData(c);
    const g = c.geometry;
    const rw = g.kvHeads * g.ropeDims;
    const n = c.queryCount;
    let hi = -Infinity;
    let lo = Infinity;
    for (let i = 0; i < n; i++) {
      for (let h = 0; h < g.heads; h++) {
        const kv = Math.floor(h / (g.heads / g.kvHeads));
        let mx = -Infinity;
        for (let j = 0; j < c.length - n + i + 1; j++) {
          const m = g.spaces === 2 ? d.modality[j] : 0;
          let s = d.queries.keyBias[m][i * g.heads + h];
          for (let k = 0; k < g.ropeDims; k++) s += d.queries.qRope[(i * g.heads + h) * g.ropeDims + k] * d.dense.rope[j * rw + kv * g.ropeDims + k];
          for (let k = 0; k < g.latentWidth; k++) s += d.queries.qLatent[m][(i * g.heads + h) * g.latentWidth + k] * d.dense.latent[j * g.latentWidth + k];
          mx = Math.max(mx, s / Math.sqrt(g.headDim));
        }
        hi = Math.max(hi, mx);
        lo = Math.min(lo, mx);
      }
    }
    return { hi, lo };
  }

  it("should put scores beyond f32 exp's range, so only the max subtraction keeps the softmax finite", () => {
    const scaled = KERNEL_CASES.filter((c) => (c.queryScale ?? 1) >= 10);
    const shifted = KERNEL_CASES.filter((c) => (c.keyBiasShift ?? 0) <= -1000);
    expect(scaled.length).toBeGreaterThanOrEqual(2);
    expect(shifted.length).toBeGreaterThanOrEqual(1);
    // f32 exp overflows above ln(FLT_MAX) ≈ 88.7 and rounds to 0 below ≈ −104 (half the smallest subnormal).
    for (const c of scaled) expect(maxScoreRange(c).hi).toBeGreaterThan(88.8);
    for (const c of shifted) expect(maxScoreRange(c).hi).toBeLessThan(-104.5);
    expect(Math.fround(Math.exp(88.8))).toBe(Infinity);
    expect(Math.fround(Math.exp(-104.5))).toBe(0);
  });
});
