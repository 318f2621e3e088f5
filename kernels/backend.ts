// One API over both paths: WebGPU kernels when a device is available, the f32 CPU fallback otherwise.
// `createMlaBackend()` picks; `createGpuBackend` / `createCpuBackend` force one.
import type { CacheLayout } from "./geometry.ts";
import { KernelInputError, WebGpuUnavailableError } from "./errors.ts";
import { GpuContext, type GpuContextOptions } from "./gpu-context.ts";
import type { LatentCache, LatentCacheOptions } from "./latent-cache.ts";
import { LatentCacheGpu } from "./latent-cache-gpu.ts";
import { LatentCacheCpu } from "./latent-cache-cpu.ts";
import { MlaAttentionGpu, type MlaAttentionOptions } from "./mla-attention.ts";
import { mlaAttentionCpu } from "./mla-attention-cpu.ts";
import { dequantizeCacheGpu } from "./mla-dequantize.ts";
import type { MlaAttentionOutput, MlaQueries } from "./types.ts";

export interface RunOptions {
  /** Fill outputs and scratch with NaN first (tests: proves every element is written). */
  readonly poison?: boolean;
}

export interface MlaBackend {
  readonly kind: "webgpu" | "cpu";
  createCache(layout: CacheLayout, options: LatentCacheOptions): LatentCache;
  /** Decode (queryCount = 1) or append (a causal block): the queries are the last `queryCount` cached tokens. */
  attention(cache: LatentCache, layer: number, q: MlaQueries, opts?: RunOptions): Promise<MlaAttentionOutput>;
  /** f32 rows [latent | rope] of tokens [start, start + count). */
  dequantize(cache: LatentCache, layer: number, start: number, count: number, opts?: RunOptions): Promise<Float32Array>;
  /** Resolves once every write and dispatch queued so far has finished on the device (timing the upload of a restore). */
  flush(): Promise<void>;
}

export class GpuBackend implements MlaBackend {
  readonly kind = "webgpu";
  readonly #runners = new Map<CacheLayout, MlaAttentionGpu>();
  constructor(
    readonly ctx: GpuContext,
    readonly options: MlaAttentionOptions = {},
  ) {}

  createCache(layout: CacheLayout, options: LatentCacheOptions): LatentCacheGpu {
    return new LatentCacheGpu(this.ctx, layout, options);
  }

  runner(layout: CacheLayout): MlaAttentionGpu {
    let r = this.#runners.get(layout);
    if (!r) {
      r = new MlaAttentionGpu(this.ctx, layout, this.options);
      this.#runners.set(layout, r);
    }
    return r;
  }

  async attention(cache: LatentCache, layer: number, q: MlaQueries, opts: RunOptions = {}): Promise<MlaAttentionOutput> {
    const out = await this.runner(cache.layout).run(asGpu(cache), layer, q, opts);
    this.ctx.throwIfFailed();
    return out;
  }

  dequantize(cache: LatentCache, layer: number, start: number, count: number, opts: RunOptions = {}): Promise<Float32Array> {
    return dequantizeCacheGpu(this.ctx, asGpu(cache), layer, start, count, opts);
  }

  async flush(): Promise<void> {
    await this.ctx.device.queue.onSubmittedWorkDone();
    this.ctx.throwIfFailed();
  }
}

export class CpuBackend implements MlaBackend {
  readonly kind = "cpu";
  createCache(layout: CacheLayout, options: LatentCacheOptions): LatentCacheCpu {
    return new LatentCacheCpu(layout, options);
  }
  async attention(cache: LatentCache, layer: number, q: MlaQueries): Promise<MlaAttentionOutput> {
    return mlaAttentionCpu(asCpu(cache), layer, q);
  }
  async dequantize(cache: LatentCache, layer: number, start: number, count: number): Promise<Float32Array> {
    const c = asCpu(cache);
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > c.length) {
      throw new KernelInputError(`token range [${start}, ${start + count}) is outside the cache's ${c.length} tokens`);
    }
    return c.readRows(layer, start, count);
  }
  async flush(): Promise<void> {}
}

function asGpu(cache: LatentCache): LatentCacheGpu {
  if (!(cache instanceof LatentCacheGpu)) throw new KernelInputError("this cache was not created by the WebGPU backend");
  return cache;
}

function asCpu(cache: LatentCache): LatentCacheCpu {
  if (!(cache instanceof LatentCacheCpu)) throw new KernelInputError("this cache was not created by the CPU backend");
  return cache;
}

export async function createGpuBackend(options: GpuContextOptions & MlaAttentionOptions = {}): Promise<GpuBackend> {
  return new GpuBackend(await GpuContext.create(options), options);
}

export function createCpuBackend(): CpuBackend {
  return new CpuBackend();
}

/** WebGPU when `navigator.gpu` (or `options.gpu`) yields a device; the CPU fallback when WebGPU is absent. */
export async function createMlaBackend(options: GpuContextOptions & MlaAttentionOptions = {}): Promise<MlaBackend> {
  try {
    return await createGpuBackend(options);
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) return createCpuBackend();
    throw e;
  }
}
