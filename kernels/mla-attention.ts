// Host runner of absorbed MLA attention on the GPU: decode (one query) and append (a causal block of new tokens that
// are already written to the cache). Pipelines are created once per geometry; scratch buffers (queries, partials,
// outputs, the readback staging buffer) grow geometrically and are reused across steps, and so are bind groups while
// the buffers they name stay the same. One step runs at a time per runner: steps share the scratch.
import { PAGE_TOKENS, queryStride, type CacheLayout } from "./geometry.ts";
import { KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import type { LatentCacheGpu } from "./latent-cache-gpu.ts";
import { packQueries, validateQueries, type MlaAttentionOutput, type MlaQueries } from "./types.ts";
import { createMlaAttentionSplitProgram, headBlock, partialSizes, splitUniforms } from "./mla-attention-split.ts";
import { combineUniforms, createMlaAttentionCombineProgram, MAX_SPLITS } from "./mla-attention-combine.ts";
import type { KernelProgram } from "./program.ts";
import { BufferUsage, MapModeRead } from "./gpu-flags.ts";

export interface MlaAttentionOptions {
  /** Workgroups pass 1 aims for; more splits use more partial traffic. Default 64. */
  readonly targetWorkgroups?: number;
}

/** How a sequence is split across workgroups for one dispatch. */
export interface SplitPlan {
  readonly pages: number;
  readonly splitCount: number;
  readonly pagesPerSplit: number;
}

export function planSplits(length: number, headBlocks: number, queryCount: number, targetWorkgroups: number): SplitPlan {
  const pages = Math.max(1, Math.ceil(length / PAGE_TOKENS));
  const want = Math.max(1, Math.ceil(targetWorkgroups / (headBlocks * queryCount)));
  let splitCount = Math.min(pages, want, MAX_SPLITS);
  const pagesPerSplit = Math.ceil(pages / splitCount);
  splitCount = Math.ceil(pages / pagesPerSplit);
  return { pages, splitCount, pagesPerSplit };
}

interface Scratch {
  query: GPUBuffer;
  stats: GPUBuffer;
  acc: GPUBuffer;
  out: GPUBuffer;
  splitParams: GPUBuffer;
  combineParams: GPUBuffer;
  /** MAP_READ copy of `out`, so a step needs no buffer creation at all. */
  staging: GPUBuffer;
}

/** Bind groups of one cache layer buffer, valid while its tail/modality buffers and the scratch are the same. */
interface SplitBinding {
  readonly tail: GPUBuffer;
  readonly modality: GPUBuffer;
  readonly scratch: Scratch;
  readonly bind: GPUBindGroup;
}

export class MlaAttentionGpu {
  readonly #split: KernelProgram;
  readonly #combine: KernelProgram;
  readonly #headBlocks: number;
  readonly #targetWorkgroups: number;
  #scratch: Scratch | null = null;
  #scratchFor = { queries: 0, partialRows: 0 };
  #splitBinds = new WeakMap<GPUBuffer, SplitBinding>();
  #combineBind: { scratch: Scratch; bind: GPUBindGroup } | null = null;
  /** Tail of the chain of `run` calls: each waits for the previous one, since they share scratch and staging. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly ctx: GpuContext,
    readonly layout: CacheLayout,
    options: MlaAttentionOptions = {},
  ) {
    this.#split = createMlaAttentionSplitProgram(layout);
    this.#combine = createMlaAttentionCombineProgram(layout);
    this.#headBlocks = layout.geometry.heads / headBlock(layout);
    this.#targetWorkgroups = options.targetWorkgroups ?? 64;
  }

  /** Compiles both pipelines ahead of the first step. */
  async prepare(): Promise<void> {
    await Promise.all([this.ctx.pipeline(this.#split), this.ctx.pipeline(this.#combine)]);
  }

  /** One new token attends to every cached token (it must already be in the cache). */
  decode(cache: LatentCacheGpu, layer: number, q: MlaQueries, opts: { poison?: boolean } = {}): Promise<MlaAttentionOutput> {
    if (q.queryCount !== 1) throw new KernelInputError(`decode takes one query, got ${q.queryCount}; use append for a block`);
    return this.run(cache, layer, q, opts);
  }

  /** A block of new tokens (the last `queryCount` of the cache): causal within the block, full attention to the rest. */
  append(cache: LatentCacheGpu, layer: number, q: MlaQueries, opts: { poison?: boolean } = {}): Promise<MlaAttentionOutput> {
    return this.run(cache, layer, q, opts);
  }

  /** Encodes, submits and reads back one step; concurrent calls run one after another. */
  run(cache: LatentCacheGpu, layer: number, q: MlaQueries, opts: { poison?: boolean } = {}): Promise<MlaAttentionOutput> {
    validateQueries(this.layout.geometry, q);
    const step = this.#queue.then(() => this.#runNow(cache, layer, q, opts.poison ?? false));
    this.#queue = step.catch(() => undefined);
    return step;
  }

  async #runNow(cache: LatentCacheGpu, layer: number, q: MlaQueries, poison: boolean): Promise<MlaAttentionOutput> {
    const enc = this.ctx.device.createCommandEncoder({ label: "mla-attention" });
    const { out, outValues, massOffset } = await this.encode(enc, cache, layer, q.queryCount, poison);
    const s = this.#scratch!;
    const bytes = outValues * 4;
    enc.copyBufferToBuffer(out, 0, s.staging, 0, Math.ceil(bytes / 4) * 4);
    this.ctx.device.queue.writeBuffer(s.query, 0, packQueries(this.layout.geometry, q));
    this.ctx.device.queue.submit([enc.finish()]);
    await s.staging.mapAsync(MapModeRead, 0, Math.ceil(bytes / 16) * 16);
    try {
      this.ctx.throwIfFailed();
      const flat = new Float32Array(s.staging.getMappedRange(0, Math.ceil(bytes / 16) * 16).slice(0, bytes));
      return unpackOutput(this.layout, q.queryCount, flat, massOffset);
    } finally {
      s.staging.unmap();
    }
  }

  /** Writes queries for `encode` (packed as `packQueries`). */
  writeQueries(packed: Float32Array): void {
    this.#ensureScratch(packed.length / queryStride(this.layout.geometry), 1);
    this.ctx.device.queue.writeBuffer(this.#scratch!.query, 0, packed);
  }

  /**
   * Records both passes into `enc`; queries must be written (`writeQueries`) before submit. Callers that encode
   * themselves own the scratch until their submit completes: do not interleave with `run` on the same runner.
   */
  async encode(
    enc: GPUCommandEncoder,
    cache: LatentCacheGpu,
    layer: number,
    queryCount: number,
    poison = false,
  ): Promise<{ out: GPUBuffer; outValues: number; massOffset: number; plan: SplitPlan }> {
    const g = this.layout.geometry;
    if (cache.layout !== this.layout) throw new KernelInputError("the cache was created for a different layout");
    if (cache.length < queryCount) {
      throw new KernelInputError(`the cache holds ${cache.length} tokens, fewer than the ${queryCount} queries; write the new tokens first`);
    }
    if (queryCount > this.ctx.device.limits.maxComputeWorkgroupsPerDimension) {
      throw new KernelInputError(`queryCount ${queryCount} exceeds maxComputeWorkgroupsPerDimension; append in smaller blocks`);
    }
    const plan = planSplits(cache.length, this.#headBlocks, queryCount, this.#targetWorkgroups);
    this.#ensureScratch(queryCount, queryCount * plan.splitCount * g.heads);
    const s = this.#scratch!;
    const [split, combine] = await Promise.all([this.ctx.pipeline(this.#split), this.ctx.pipeline(this.#combine)]);
    const regions = cache.regions;
    const massOffset = queryCount * g.spaces * g.heads * g.latentWidth;
    const outValues = massOffset + queryCount * g.spaces * g.heads;
    const q = this.ctx.device.queue;
    q.writeBuffer(
      s.splitParams,
      0,
      splitUniforms.pack({
        totalLen: cache.length,
        queryCount,
        pagesPerSplit: plan.pagesPerSplit,
        splitCount: plan.splitCount,
        sealedLen: cache.sealedLength,
        latCodesOff: regions.latentCodes,
        latSzOff: regions.latentScales,
        ropeCodesOff: regions.ropeCodes,
        ropeSzOff: regions.ropeScales,
        scale: 1 / Math.sqrt(g.headDim),
      }),
    );
    q.writeBuffer(s.combineParams, 0, combineUniforms.pack({ splitCount: plan.splitCount, queryCount, massOffset }));
    if (poison) {
      this.ctx.poison(s.stats);
      this.ctx.poison(s.acc);
      this.ctx.poison(s.out);
    }
    const splitBind = this.#splitBind(split, s, cache, layer);
    const combineBind = this.#combineBindFor(combine, s);
    const pass = enc.beginComputePass({ label: "mla-attention" });
    pass.setPipeline(split);
    pass.setBindGroup(0, splitBind);
    pass.dispatchWorkgroups(plan.splitCount, this.#headBlocks, queryCount);
    pass.setPipeline(combine);
    pass.setBindGroup(0, combineBind);
    pass.dispatchWorkgroups(g.heads, queryCount);
    pass.end();
    return { out: s.out, outValues, massOffset, plan };
  }

  /**
   * Sizes the scratch for steps of up to `queryCount` queries at any cache length and returns its query and output
   * buffers, which then stay the same: an engine that writes the queries on the GPU (mla-absorb.ts) and reads the output
   * there binds them once. Steps of up to `queryCount` queries allocate nothing afterwards (splitCount·queries ≤
   * targetWorkgroups/headBlocks + queries).
   */
  reserve(queryCount: number): { query: GPUBuffer; out: GPUBuffer } {
    if (!Number.isInteger(queryCount) || queryCount < 1) throw new KernelInputError(`queryCount must be a positive integer, got ${queryCount}`);
    const g = this.layout.geometry;
    const rows = (Math.ceil(this.#targetWorkgroups / this.#headBlocks) + queryCount) * g.heads;
    this.#ensureScratch(queryCount, rows);
    return { query: this.#scratch!.query, out: this.#scratch!.out };
  }

  /** Bytes of the scratch buffers (queries, partials, outputs, uniforms, staging) allocated now. */
  get scratchBytes(): number {
    return this.#scratch ? Object.values(this.#scratch).reduce((n, b) => n + b.size, 0) : 0;
  }

  /** Frees the scratch buffers (pipelines stay cached in the context). */
  destroy(): void {
    if (this.#scratch) for (const b of Object.values(this.#scratch)) b.destroy();
    this.#scratch = null;
    this.#combineBind = null;
    this.#splitBinds = new WeakMap();
  }

  // Bind groups are keyed by the cache's layer buffer, which is replaced (not resized) when the cache grows.
  #splitBind(split: GPUComputePipeline, s: Scratch, cache: LatentCacheGpu, layer: number): GPUBindGroup {
    const layerBuffer = cache.layerBuffer(layer);
    const tail = cache.tailBuffer(layer);
    const modality = cache.modalityBuffer;
    const hit = this.#splitBinds.get(layerBuffer);
    if (hit && hit.tail === tail && hit.modality === modality && hit.scratch === s) return hit.bind;
    const bind = this.ctx.device.createBindGroup({
      label: "mla-attention-split",
      layout: split.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: s.splitParams } },
        { binding: 1, resource: { buffer: s.query } },
        { binding: 2, resource: { buffer: layerBuffer } },
        { binding: 3, resource: { buffer: tail } },
        { binding: 4, resource: { buffer: modality } },
        { binding: 5, resource: { buffer: s.stats } },
        { binding: 6, resource: { buffer: s.acc } },
      ],
    });
    this.#splitBinds.set(layerBuffer, { tail, modality, scratch: s, bind });
    return bind;
  }

  #combineBindFor(combine: GPUComputePipeline, s: Scratch): GPUBindGroup {
    if (this.#combineBind?.scratch === s) return this.#combineBind.bind;
    const bind = this.ctx.device.createBindGroup({
      label: "mla-attention-combine",
      layout: combine.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: s.combineParams } },
        { binding: 1, resource: { buffer: s.stats } },
        { binding: 2, resource: { buffer: s.acc } },
        { binding: 3, resource: { buffer: s.out } },
      ],
    });
    this.#combineBind = { scratch: s, bind };
    return bind;
  }

  #ensureScratch(queries: number, partialRows: number): void {
    const have = this.#scratchFor;
    if (this.#scratch && queries <= have.queries && partialRows <= have.partialRows) return;
    const g = this.layout.geometry;
    const nq = Math.max(queries, have.queries * (queries > have.queries ? 2 : 1), 1);
    const rows = Math.max(partialRows, have.partialRows * (partialRows > have.partialRows ? 2 : 1), 1);
    const old = this.#scratch;
    const ps = partialSizes(this.layout);
    const uniformBuffer = (label: string, bytes: number): GPUBuffer =>
      this.ctx.device.createBuffer({ label, size: bytes, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    const outBytes = Math.ceil((nq * g.spaces * g.heads * (g.latentWidth + 1) * 4) / 16) * 16;
    this.#scratch = {
      query: this.ctx.storageBuffer("mla-attention-query", nq * queryStride(g) * 4),
      stats: this.ctx.storageBuffer("mla-attention-stats", rows * ps.stats * 4),
      acc: this.ctx.storageBuffer("mla-attention-acc", rows * ps.acc * 4),
      out: this.ctx.storageBuffer("mla-attention-out", outBytes),
      splitParams: old?.splitParams ?? uniformBuffer("mla-attention-split-params", splitUniforms.byteLength),
      combineParams: old?.combineParams ?? uniformBuffer("mla-attention-combine-params", combineUniforms.byteLength),
      staging: this.ctx.device.createBuffer({ label: "mla-attention-staging", size: outBytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST }),
    };
    if (old) {
      // Carry queries already written for this step over to the grown buffer.
      const enc = this.ctx.device.createCommandEncoder({ label: "mla-attention-scratch-grow" });
      enc.copyBufferToBuffer(old.query, 0, this.#scratch.query, 0, Math.min(old.query.size, this.#scratch.query.size));
      this.ctx.device.queue.submit([enc.finish()]);
      for (const b of [old.query, old.stats, old.acc, old.out, old.staging]) b.destroy();
    }
    this.#scratchFor = { queries: nq, partialRows: rows };
  }
}

/** Splits the flat output [qi][m][h][c] ++ mass [qi][m][h] into per-space arrays. */
export function unpackOutput(layout: CacheLayout, queryCount: number, flat: Float32Array, massOffset: number): MlaAttentionOutput {
  const g = layout.geometry;
  const hl = g.heads * g.latentWidth;
  const latentOut: Float32Array[] = [];
  const mass: Float32Array[] = [];
  for (let m = 0; m < g.spaces; m++) {
    const lo = new Float32Array(queryCount * hl);
    const ms = new Float32Array(queryCount * g.heads);
    for (let i = 0; i < queryCount; i++) {
      lo.set(flat.subarray((i * g.spaces + m) * hl, (i * g.spaces + m + 1) * hl), i * hl);
      ms.set(flat.subarray(massOffset + (i * g.spaces + m) * g.heads, massOffset + (i * g.spaces + m + 1) * g.heads), i * g.heads);
    }
    latentOut.push(lo);
    mass.push(ms);
  }
  return { queryCount, latentOut, mass };
}
