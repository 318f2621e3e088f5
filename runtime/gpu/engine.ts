// The MLA language model on WebGPU (issue 18 items 3, 4, 6; docs/kernels.md "The GPU engine"): every op of a decoder
// step runs on the GPU — embedding gather, RMSNorm, the q / k_rope / latent projections, M-RoPE on the rope dims, the
// absorbed queries q̃ᵐ = W_ukᵐᵀ q_nope, the latent attention over the quantized cache (mla-attention*.ts), W_uvᵐ, o_proj,
// residuals, SwiGLU MLP, final norm, LM head and sampling — recorded into ONE queue submission per generated token,
// which reads back only the sampled id (4 bytes).
//
// Cache: the kernels' LatentCacheGpu (sealed slots as codec words, the open slot as f32 tail rows). A block's cache rows
// go from the projection straight into the tail on the GPU. A block that completes a C-token slot takes the sealing
// path instead: per layer, its new rows are read back, the slot is quantized by the session's codec (the wasm codec,
// exactly as SlotSealing / SessionCache do it for the CPU runtime) and written as packed words before that layer's
// attention reads it — so every query reads the same values as in the CPU runtime, and the chunks packed from this
// engine's sealing are today's chunks. That path costs L + 2 submissions (one per layer, one to read the open slot back, one to finish) on one token in C.
//
// No buffer is created per token after warm-up: scratch is sized for `maxBlock` tokens at creation, every dispatch's
// uniforms and bind group are made once per block size and reused (only the sampler's draw counter is rewritten), the
// attention runner's scratch is reserved up front, and the cache grows by doubling (O(log L) times).

import type { Codec, CodecParams, QuantizedBlock } from "../../format/codec/types.ts";
import { MlaError } from "../../format/errors.ts";
import { BufferUsage, MapModeRead } from "../../kernels/gpu-flags.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import type { KernelCall } from "../../kernels/dispatch.ts";
import { embeddingSplitCalls } from "../../kernels/embedding.ts";
import { linearCall, linearSplitCalls } from "../../kernels/matmul-nbits.ts";
import { residualAddCall, rmsNormCall, swigluCall } from "../../kernels/norm-act.ts";
import { rotaryCall, uploadRotary, type GpuRotary } from "../../kernels/rotary.ts";
import { mropeTables, rotaryTables1d } from "../../kernels/rotary.ref.ts";
import { bannedMask, samplingCall, samplingUniforms } from "../../kernels/sampling.ts";
import { absorbOutputCall, absorbQueryCall, latentRowsCall } from "../../kernels/mla-absorb.ts";
import { MlaAttentionGpu } from "../../kernels/mla-attention.ts";
import { dequantizeCacheGpu } from "../../kernels/mla-dequantize.ts";
import { LatentCacheGpu } from "../../kernels/latent-cache-gpu.ts";
import { kernelCacheLayout, kernelUnsupportedReason, splitRows } from "../mla/kernel-attention.ts";
import { codecSlotQuantizer, SlotSealing } from "../mla/slot-sealing.ts";
import type { MlaModelWeights } from "../mla/weights.ts";
import type { MlaCacheSnapshot } from "../mla/attention.ts";
import { ropeIndexPositions, tokenModalities, type ImageGrid } from "../rope-index.ts";
import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { AssembledCache, RestoreSink } from "../session-cache.ts";
import type { EngineModelShape } from "./bundle-weights.ts";
import { uploadEngineWeights, type EngineWeightFormat, type EngineWeights } from "./engine-weights.ts";

export type GpuEngineErrorCode = "unsupported_model" | "bad_token" | "image_embeds" | "empty_block" | "disposed" | "bad_restore" | "no_token" | "bad_truncate";

export class GpuEngineError extends MlaError<GpuEngineErrorCode> {
  override readonly name = "GpuEngineError";
  constructor(code: GpuEngineErrorCode, message: string) {
    super(code, message);
  }
}

/** The GPU sampler's rule (kernels/sampling.ref.ts): greedy at temperature ≤ 0 or topK 1. */
export interface EngineSampling {
  readonly temperature: number;
  /** 0: off (default). */
  readonly topK?: number;
  /** ≥ 1: off (default). */
  readonly topP?: number;
  readonly seed?: number;
}

export interface GpuEngineOptions {
  /** The session's cache codec: sealed slots are quantized with it (what the chunks of the edge store hold). */
  readonly codec: Codec;
  readonly codecParams: CodecParams;
  /** C: tokens per sealed slot / chunk. */
  readonly chunkTokens: number;
  /** Layout of the linear weights on the GPU (default f32). Ignored when `weights` is given. */
  readonly weightFormat?: EngineWeightFormat;
  /** Weights already on the GPU (e.g. from a bundle); default: `uploadEngineWeights(ctx, model, weightFormat)`. */
  readonly weights?: EngineWeights;
  /** Tokens per prefill block (default 256): scratch is sized for it. */
  readonly maxBlock?: number;
  /** Initial token capacity of the cache (default 1024; doubles when passed). */
  readonly initialCapacity?: number;
  /** Never sampled (e.g. pad, vision tokens). */
  readonly bannedTokenIds?: readonly number[];
  /** Grid of an image when `imageGrids` is not given. */
  readonly defaultImageGrid?: ImageGrid;
}

export interface AppendInput {
  /** [pads × hidden] image embeddings replacing the image-pad tokens, in order (from the vision tower). */
  readonly imageEmbeds?: Float32Array;
  readonly imageGrids?: readonly ImageGrid[];
}

export interface AppendResult {
  /** The id sampled after the last appended token. */
  readonly next: number;
  /** The last token's logits (only with `readLogits`: a V × 4-byte read back, for tests and top-logit reports). */
  readonly logits: Float32Array | null;
  /** Queue submissions this call made. */
  readonly submissions: number;
  /** M-RoPE positions of the appended tokens, stream-major [3 × n] (what SessionCache.record takes, token-major). */
  readonly positions: Int32Array;
  /** Modality of each appended token (0 text, 1 image). */
  readonly modality: Uint8Array;
}

/** GPU memory the engine holds, bytes. */
export interface EngineMemory {
  readonly weights: number;
  readonly cache: number;
  readonly scratch: number;
  readonly total: number;
}

/**
 * Why the engine cannot run `model` with this cache codec (null when it can): the attention kernels' limits, a rope
 * scaling it does not implement, or a raw (unquantized) session cache, which the engine never holds.
 */
export function engineUnsupportedReason(model: MlaModelWeights | EngineModelShape, codec: CodecParams, raw: boolean, chunkTokens: number): string | null {
  if (raw) return "the session stores raw (float32) chunks; the GPU engine seals slots with the quantized codec";
  const why = kernelUnsupportedReason(model, codec, false, chunkTokens);
  if (why !== null) return why;
  if (model.config.unsupportedRopeScaling !== null) return `rope_scaling type ${model.config.unsupportedRopeScaling} is not implemented`;
  return null;
}

/**
 * A model's GPU engine as chat sessions use it: weights uploaded once (or streamed from a bundle) and shared; each
 * session creates its own engine (cache, scratch, pipelines from the context's cache) over them.
 */
export interface ModelEngine {
  readonly kind: "webgpu";
  /** Bytes of the shared weights on the GPU. */
  readonly weightBytes: number;
  /** Why a session with this codec cannot run on the engine (null: it can). */
  unsupportedReason(codec: CodecParams, raw: boolean, chunkTokens: number): string | null;
  /** A new engine (empty cache) over the shared weights. */
  create(options: Omit<GpuEngineOptions, "weights" | "weightFormat">): Promise<GpuEngine>;
}

/** One dispatch with its uniform buffer and bind group, made once and replayed. */
interface Prepared {
  readonly pipeline: GPUComputePipeline;
  readonly bind: GPUBindGroup;
  readonly params: GPUBuffer;
  readonly grid: readonly [number, number, number];
}

interface BlockPlan {
  readonly n: number;
  /** One gather per row range of the embedding table (one unless it passes the binding limit). */
  readonly embed: readonly Prepared[];
  readonly layers: ReadonlyArray<{ readonly pre: readonly Prepared[]; readonly post: readonly Prepared[] }>;
  readonly final: readonly Prepared[];
  readonly sample: Prepared;
}

interface Scratch {
  readonly ids: GPUBuffer;
  readonly positions: GPUBuffer;
  readonly modality: GPUBuffer;
  readonly h: GPUBuffer;
  readonly xn: GPUBuffer;
  readonly a: GPUBuffer;
  readonly y: GPUBuffer;
  readonly o: GPUBuffer;
  readonly gu: GPUBuffer;
  readonly act: GPUBuffer;
  readonly rows: GPUBuffer;
  readonly image: GPUBuffer;
  readonly last: GPUBuffer;
  readonly lastNorm: GPUBuffer;
  readonly logits: GPUBuffer;
  readonly sampled: GPUBuffer;
  readonly banned: GPUBuffer | null;
  readonly idStaging: GPUBuffer;
  readonly rowStaging: GPUBuffer;
}

/** Shapes of the model the engine runs. */
interface Dims {
  readonly d: number;
  readonly nh: number;
  readonly nkv: number;
  readonly dh: number;
  readonly r: number;
  readonly dc: number;
  readonly D: number;
  readonly R: number;
  readonly S: 1 | 2;
  readonly I: number;
  readonly V: number;
  /** Row of y: [q (n_h·d_h) | k_rope (R) | latent space 0 (D) | latent space 1 (D)]. */
  readonly Y: number;
  readonly stride: number;
}

export class GpuEngine {
  readonly config: TextModelConfig;
  readonly cache: LatentCacheGpu;
  readonly sealing: SlotSealing;
  readonly maxBlock: number;
  readonly #ctx: GpuContext;
  readonly #w: EngineWeights;
  readonly #ownsWeights: boolean;
  readonly #dims: Dims;
  readonly #runner: MlaAttentionGpu;
  readonly #attention: { query: GPUBuffer; out: GPUBuffer };
  readonly #rotary: readonly (GpuRotary | null)[];
  readonly #s: Scratch;
  readonly #plans = new Map<number, Promise<BlockPlan>>();
  readonly #defaultGrid: ImageGrid | undefined;
  #len = 0;
  #next = 0;
  #draws = 0;
  #submissions = 0;
  #disposed = false;
  #logitsStaging: GPUBuffer | null = null;
  #modality = new Uint8Array(64);
  /** M-RoPE position the next text token gets after each token (truncation restores it). */
  #nextAfter = new Int32Array(64);
  /** Tokens adopted from a restore (their positions are not known one by one: truncation stops there). */
  #adopted = 0;
  #adoptedNext = 0;

  private constructor(ctx: GpuContext, model: MlaModelWeights | EngineModelShape, options: GpuEngineOptions) {
    const c = model.config;
    const why = engineUnsupportedReason(model, options.codecParams, false, options.chunkTokens);
    if (why !== null) throw new GpuEngineError("unsupported_model", why);
    this.#ctx = ctx;
    this.config = c;
    this.maxBlock = options.maxBlock ?? 256;
    this.#defaultGrid = options.defaultImageGrid;
    const r = model.ropeDims;
    const D = model.dKv * c.numKvHeads;
    const S = model.latentSpaces;
    const dims: Dims = {
      d: c.hiddenSize,
      nh: c.numHeads,
      nkv: c.numKvHeads,
      dh: c.headDim,
      r,
      dc: c.headDim - r,
      D,
      R: c.numKvHeads * r,
      S,
      I: c.intermediateSize,
      V: c.vocabSize,
      Y: c.numHeads * c.headDim + c.numKvHeads * r + S * D,
      stride: D + c.numKvHeads * r,
    };
    this.#dims = dims;
    const layout = kernelCacheLayout(model, options.codecParams, options.chunkTokens);
    const dimsQ = { latentWidth: D, ropeWidth: dims.R, ropeDims: r };
    this.sealing = new SlotSealing(c.numLayers, options.chunkTokens, D, dims.R, codecSlotQuantizer(options.codec, options.codecParams, dimsQ));
    this.#ownsWeights = options.weights === undefined;
    if (options.weights === undefined && !("attention" in model)) throw new GpuEngineError("unsupported_model", "a model shape without host weights needs options.weights (e.g. loadEngineBundle)");
    this.#w = options.weights ?? uploadEngineWeights(ctx, model as MlaModelWeights, options.weightFormat ?? "f32");
    this.cache = new LatentCacheGpu(ctx, layout, { layers: c.numLayers, initialCapacity: options.initialCapacity ?? 1024, tailCapacity: options.chunkTokens });
    this.#runner = new MlaAttentionGpu(ctx, layout);
    this.#attention = this.#runner.reserve(this.maxBlock);
    const tables = c.mropeSection !== null ? mropeTables(c.headDim, c.ropeTheta, c.mropeSection) : rotaryTables1d(c.headDim, c.ropeTheta);
    this.#rotary = this.#w.layers.map((lw) => (r > 0 ? uploadRotary(ctx, tables, lw.keptPairs) : null));
    const B = this.maxBlock;
    const f = (label: string, values: number) => ctx.storageBuffer(`engine-${label}`, values * 4);
    const staging = (label: string, bytes: number) =>
      ctx.device.createBuffer({ label: `engine-${label}`, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const banned = options.bannedTokenIds?.length ? bannedMask(dims.V, options.bannedTokenIds) : null;
    let bannedBuf: GPUBuffer | null = null;
    if (banned) {
      bannedBuf = f("banned", banned.length);
      ctx.device.queue.writeBuffer(bannedBuf, 0, banned);
    }
    this.#s = {
      ids: f("ids", B),
      positions: f("positions", 3 * B),
      modality: f("modality", B),
      h: f("h", B * dims.d),
      xn: f("xn", B * dims.d),
      a: f("a", B * dims.d),
      y: f("y", B * dims.Y),
      o: f("o", B * dims.nh * dims.dh),
      gu: f("gu", B * 2 * dims.I),
      act: f("act", B * dims.I),
      rows: f("rows", B * dims.stride),
      image: f("image", B * dims.d),
      last: f("last", dims.d),
      lastNorm: f("last-norm", dims.d),
      logits: f("logits", dims.V),
      sampled: f("sampled", 4),
      banned: bannedBuf,
      idStaging: staging("id-staging", 16),
      rowStaging: staging("row-staging", Math.max(B, c.numLayers * options.chunkTokens) * dims.stride * 4),
    };
  }

  /**
   * Uploads (or takes) the weights, compiles every pipeline and prepares the decode step. `model`: host weights
   * (uploaded in `weightFormat`), or only the shape (bundleModelShape) with `options.weights` already on the GPU.
   */
  static async create(ctx: GpuContext, model: MlaModelWeights | EngineModelShape, options: GpuEngineOptions): Promise<GpuEngine> {
    const e = new GpuEngine(ctx, model, options);
    try {
      // Weights reach the device before any pipeline compiles (dawn.node on SwiftShader crashed compiling the attention
      // pipelines while the upload was still queued).
      await ctx.device.queue.onSubmittedWorkDone();
      await e.#plan(1);
      await e.#runner.prepare();
      ctx.throwIfFailed();
    } catch (err) {
      e.dispose();
      throw err;
    }
    return e;
  }

  /** Tokens in the cache. */
  get length(): number {
    return this.#len;
  }

  /** M-RoPE position the next text token gets. */
  get nextPosition(): number {
    return this.#next;
  }

  /** Queue submissions since creation (tests: one per decode step). */
  get submissions(): number {
    return this.#submissions;
  }

  get memory(): EngineMemory {
    const s = this.#s;
    let scratch = this.#runner.scratchBytes + (this.#logitsStaging?.size ?? 0);
    for (const b of Object.values(s)) if (b) scratch += (b as GPUBuffer).size;
    for (const r of this.#rotary) if (r) scratch += r.freq.size + r.pairs.size;
    const weights = this.#w.bytes;
    const cache = this.cache.allocatedBytes;
    return { weights, cache, scratch, total: weights + cache + scratch };
  }

  /**
   * Appends a block of tokens (a prompt, in blocks of `maxBlock`, or a turn) and samples the next id. `sampling`
   * defaults to greedy; the sampler's draw counter advances by one per call. `sampling: null` skips the final norm,
   * LM head and sampler (tokens that only extend the cache, e.g. the template's closing ids): `next` is then -1.
   */
  async append(ids: ArrayLike<number>, input: AppendInput = {}, sampling: EngineSampling | null = { temperature: 0 }, readLogits = false): Promise<AppendResult> {
    this.#alive();
    const c = this.config;
    const n = ids.length;
    if (n === 0) throw new GpuEngineError("empty_block", "append needs at least one token");
    if (readLogits && sampling === null) throw new GpuEngineError("empty_block", "readLogits needs the LM head: pass sampling");
    const all = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || t >= c.vocabSize) throw new GpuEngineError("bad_token", `token ${t} at ${i} is outside the vocabulary of ${c.vocabSize}`);
      all[i] = t;
    }
    const pad = c.tokens.imagePad ?? -1;
    let pads = 0;
    for (let i = 0; i < n; i++) if (all[i] === pad) pads++;
    const d = this.#dims.d;
    if (pads > 0 && (input.imageEmbeds === undefined || input.imageEmbeds.length !== pads * d)) {
      throw new GpuEngineError("image_embeds", `block has ${pads} image-pad tokens: imageEmbeds must hold ${pads} × ${d} values, got ${input.imageEmbeds?.length ?? "none"}`);
    }
    const runs = countRuns(all, pad);
    const grids = input.imageGrids ?? (this.#defaultGrid ? new Array<ImageGrid>(runs).fill(this.#defaultGrid) : []);
    const { positions, next } = ropeIndexPositions(all, this.#next, pad, grids);
    const modality = tokenModalities(all, c.imageRoutedTokenIds);
    const before = this.#submissions;
    let logits: Float32Array | null = null;
    let sampled = -1;
    let padsUsed = 0;
    for (let b0 = 0; b0 < n; b0 += this.maxBlock) {
      const nb = Math.min(this.maxBlock, n - b0);
      const blockPos = new Int32Array(3 * nb);
      for (let s = 0; s < 3; s++) blockPos.set(positions.subarray(s * n + b0, s * n + b0 + nb), s * nb);
      const blockIds = all.subarray(b0, b0 + nb);
      let blockPads = 0;
      for (let i = 0; i < nb; i++) if (blockIds[i] === pad) blockPads++;
      const embeds = blockPads > 0 ? input.imageEmbeds!.subarray(padsUsed * d, (padsUsed + blockPads) * d) : null;
      padsUsed += blockPads;
      const lastBlock = b0 + nb === n;
      const out = await this.#block(blockIds, blockPos, modality.subarray(b0, b0 + nb), embeds, pad, lastBlock ? sampling : null, lastBlock && readLogits);
      if (lastBlock) {
        sampled = out.id;
        logits = out.logits;
      }
    }
    this.#notePositions(this.#len - n, positions, n, next);
    this.#next = next;
    return { next: sampled, logits, submissions: this.#submissions - before, positions, modality };
  }

  /** One decode step: feeds `id`, returns the next sampled id (one submission; 4 bytes read back). */
  async step(id: number, sampling: EngineSampling = { temperature: 0 }): Promise<number> {
    return (await this.append([id], {}, sampling)).next;
  }

  /**
   * Reads back the raw rows the host sealing has not seen yet (tokens since the last sealed slot), so that
   * `sealing` holds every token: call before packing chunks (SessionCache.prepareCommit) or truncating.
   */
  async syncHost(): Promise<void> {
    this.#alive();
    const from = this.sealing.lengthOf(0);
    const to = this.#len;
    if (to <= from) return;
    const { stride, D, R } = this.#dims;
    const sealed = this.cache.sealedLength;
    const count = to - from;
    const L = this.config.numLayers;
    const s = this.#s;
    const enc = this.#ctx.device.createCommandEncoder({ label: "engine-sync" });
    for (let l = 0; l < L; l++) enc.copyBufferToBuffer(this.cache.tailBuffer(l), (from - sealed) * stride * 4, s.rowStaging, l * count * stride * 4, count * stride * 4);
    this.#submit(enc);
    await s.rowStaging.mapAsync(MapModeRead, 0, Math.ceil((L * count * stride * 4) / 16) * 16);
    try {
      this.#ctx.throwIfFailed();
      const all = new Float32Array(s.rowStaging.getMappedRange(0, Math.ceil((L * count * stride * 4) / 16) * 16).slice(0, L * count * stride * 4));
      for (let l = 0; l < L; l++) {
        const { latent, rope } = splitRows(all.subarray(l * count * stride, (l + 1) * count * stride), count, D, R);
        const sealedNow = this.sealing.write(l, from, latent, rope, count);
        if (sealedNow.length > 0) throw new GpuEngineError("bad_restore", "internal: a slot sealed while syncing the open slot");
      }
    } finally {
      s.rowStaging.unmap();
    }
  }

  /**
   * Cuts the cache to its first `length` tokens (a failed or aborted turn, a conversation cut back to a turn). The open
   * slot's rows come back to the host first; a cut inside a slot that had sealed un-seals it from the host's raw rows
   * (as the CPU runtime does). Not below a restore's adopted tokens, nor below rows the host released.
   */
  async truncate(length: number): Promise<void> {
    this.#alive();
    if (!Number.isInteger(length) || length < this.#adopted || length > this.#len) {
      throw new GpuEngineError("bad_truncate", `cannot truncate to ${length}: the cache holds ${this.#len} tokens, ${this.#adopted} adopted from a restore`);
    }
    // A block that failed midway may have sealed rows of some layers past #len: the host sealing is cut as well.
    if (length === this.#len && this.sealing.lengthOf(0) === length) return;
    if (this.sealing.lengthOf(0) < this.#len) await this.syncHost();
    if (!this.sealing.canTruncate(length)) {
      throw new GpuEngineError("bad_truncate", `cannot truncate to ${length}: the raw rows of that slot were released after an upload`);
    }
    const from = this.sealing.truncate(length);
    if (length > from) {
      for (let l = 0; l < this.config.numLayers; l++) {
        const raw = this.sealing.rawRows(l, from, length - from);
        this.cache.writeTail(l, raw.latent, raw.rope, length - from, 0);
      }
    }
    this.cache.commit({ sealedLength: from, length });
    this.#len = length;
    this.#next = length === this.#adopted ? this.#adoptedNext : this.#nextAfter[length - 1];
  }

  /** The cache as attention reads it (sealed slots through the dequantize kernel), every layer: for tests and tools. */
  async exportCache(): Promise<MlaCacheSnapshot> {
    this.#alive();
    const n = this.#len;
    const { D, R } = this.#dims;
    const layers: { kRope: Float32Array; latent: Float32Array }[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      const { latent, rope } = n > 0 ? splitRows(await dequantizeCacheGpu(this.#ctx, this.cache, l, 0, n), n, D, R) : { latent: new Float32Array(0), rope: new Float32Array(0) };
      layers.push({ kRope: rope, latent });
    }
    return { length: n, modality: this.#modality.slice(0, n), layers };
  }

  /** Where a CacheAssembler (session-cache.ts) puts restored chunks: sealed blocks straight into the GPU cache. */
  restoreSink(): RestoreSink {
    return { sealed: (l, t, latent, rope) => this.loadSealed(l, t, latent, rope), raw: () => undefined };
  }

  /** Finishes a restore from the assembled chunks (CacheAssembler.finish()). */
  adoptAssembled(a: AssembledCache): void {
    this.finishRestore(a.tokens, a.modality, a.tail, a.nextPosition);
  }

  /** Restore: one sealed slot of one layer, its packed blocks written as they are (no dequantize / re-quantize). */
  loadSealed(layer: number, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): void {
    this.#alive();
    this.cache.writeSealed(layer, tokenStart, latent, rope);
  }

  /**
   * Restore: finishes a cache of `tokens` tokens whose sealed slots were loaded (`loadSealed`): the modality of every
   * token, the raw rows of the open slot per layer, and the M-RoPE position the next text token gets.
   */
  finishRestore(tokens: number, modality: Uint8Array, tail: readonly { readonly latent: Float32Array; readonly rope: Float32Array }[], nextPosition: number): void {
    this.#alive();
    if (modality.length !== tokens) throw new GpuEngineError("bad_restore", `${modality.length} modality values for ${tokens} tokens`);
    if (tail.length !== this.config.numLayers) throw new GpuEngineError("bad_restore", `tail rows for ${tail.length} layers, the model has ${this.config.numLayers}`);
    if (tokens > 0) this.#recordModality(0, modality);
    this.sealing.adopt(tokens, tail);
    const sealed = this.sealing.sealedLength(0);
    for (let l = 0; l < this.config.numLayers; l++) {
      if (tokens > sealed) {
        const raw = this.sealing.rawRows(l, sealed, tokens - sealed);
        this.cache.writeTail(l, raw.latent, raw.rope, tokens - sealed, 0);
      }
    }
    this.cache.commit({ sealedLength: sealed, length: tokens });
    this.#len = tokens;
    this.#next = nextPosition;
    this.#adopted = tokens;
    this.#adoptedNext = nextPosition;
  }

  /** Waits until the device finished every queued write and dispatch (restore timing: the upload stage). */
  async flush(): Promise<void> {
    this.#alive();
    await this.#ctx.device.queue.onSubmittedWorkDone();
    this.#ctx.throwIfFailed();
  }

  /**
   * Restarts the sampler's draw counter: the next draws with a seed are those of a fresh engine (a chat turn with a
   * seed samples the same answer whatever came before, as the CPU sampler does).
   */
  restartSampling(): void {
    this.#draws = 0;
  }

  /** Empties the cache (a new conversation on the same weights and pipelines). */
  reset(): void {
    const L = this.config.numLayers;
    this.finishRestore(0, new Uint8Array(0), Array.from({ length: L }, () => ({ latent: new Float32Array(0), rope: new Float32Array(0) })), 0);
  }

  /** Frees every GPU buffer the engine made (and the weights unless they were passed in). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const b of Object.values(this.#s)) (b as GPUBuffer | null)?.destroy();
    this.#logitsStaging?.destroy();
    for (const r of this.#rotary) r?.destroy();
    void Promise.all(this.#plans.values())
      .then((plans) => plans.forEach((p) => planBuffers(p).forEach((b) => b.destroy())))
      .catch(() => undefined);
    this.#runner.destroy();
    this.cache.destroy();
    if (this.#ownsWeights) this.#w.destroy();
  }

  #alive(): void {
    if (this.#disposed) throw new GpuEngineError("disposed", "the engine was disposed");
  }

  #submit(enc: GPUCommandEncoder): void {
    this.#ctx.device.queue.submit([enc.finish()]);
    this.#submissions++;
  }

  async #block(
    ids: Int32Array,
    positions: Int32Array,
    modality: Uint8Array,
    embeds: Float32Array | null,
    pad: number,
    sampling: EngineSampling | null,
    readLogits: boolean,
  ): Promise<{ id: number; logits: Float32Array | null }> {
    const n = ids.length;
    const start = this.#len;
    const C = this.sealing.slotTokens;
    const seals = start + n - this.cache.sealedLength >= C;
    if (seals) await this.syncHost();
    const plan = await this.#plan(n);
    const q = this.#ctx.device.queue;
    const s = this.#s;
    const { d, stride, D, R } = this.#dims;
    q.writeBuffer(s.ids, 0, Uint32Array.from(ids));
    q.writeBuffer(s.positions, 0, positions);
    q.writeBuffer(s.modality, 0, Uint32Array.from(modality));
    if (embeds) q.writeBuffer(s.image, 0, embeds);
    this.#recordModality(start, modality);
    if (sampling) {
      q.writeBuffer(
        plan.sample.params,
        0,
        samplingUniforms.pack({
          V: this.#dims.V,
          hasMask: s.banned ? 1 : 0,
          greedy: sampling.temperature <= 0 || sampling.topK === 1 ? 1 : 0,
          topK: sampling.topK ?? 0,
          invTemp: sampling.temperature <= 0 ? 0 : 1 / sampling.temperature,
          topP: sampling.topP === undefined || sampling.topP >= 1 ? 1 : sampling.topP,
          seed: (sampling.seed ?? 0) >>> 0,
          step: this.#draws >>> 0,
        }),
      );
    }
    const L = this.config.numLayers;
    const sealedBefore = this.cache.sealedLength;
    if (!seals) this.cache.commit({ sealedLength: sealedBefore, length: start + n });
    let enc = this.#ctx.device.createCommandEncoder({ label: "engine-step" });
    this.#pass(enc, plan.embed);
    if (embeds) {
      // Image-pad rows take the tower's embeddings, in order.
      let p = 0;
      for (let i = 0; i < n; ) {
        if (ids[i] !== pad) {
          i++;
          continue;
        }
        let j = i;
        while (j < n && ids[j] === pad) j++;
        enc.copyBufferToBuffer(s.image, p * d * 4, s.h, i * d * 4, (j - i) * d * 4);
        p += j - i;
        i = j;
      }
    }
    for (let l = 0; l < L; l++) {
      this.#pass(enc, plan.layers[l].pre);
      if (!seals) {
        enc.copyBufferToBuffer(s.rows, 0, this.cache.tailBuffer(l), (start - sealedBefore) * stride * 4, n * stride * 4);
      } else {
        // Sealing path: the layer's new rows come back, full slots are quantized by the codec and written as packed
        // words before this layer's attention reads them.
        enc.copyBufferToBuffer(s.rows, 0, s.rowStaging, 0, n * stride * 4);
        this.#submit(enc);
        const bytes = Math.ceil((n * stride * 4) / 16) * 16;
        await s.rowStaging.mapAsync(MapModeRead, 0, bytes);
        let rows: Float32Array;
        try {
          this.#ctx.throwIfFailed();
          rows = new Float32Array(s.rowStaging.getMappedRange(0, bytes).slice(0, n * stride * 4));
        } finally {
          s.rowStaging.unmap();
        }
        const { latent, rope } = splitRows(rows, n, D, R);
        for (const sl of this.sealing.write(l, start, latent, rope, n)) this.cache.writeSealed(l, sl.slotStart, sl.latent, sl.rope);
        const sealed = this.sealing.sealedLength(l);
        if (start + n > sealed) {
          const raw = this.sealing.rawRows(l, sealed, start + n - sealed);
          this.cache.writeTail(l, raw.latent, raw.rope, start + n - sealed, 0);
        }
        this.cache.commit({ sealedLength: sealed, length: start + n });
        enc = this.#ctx.device.createCommandEncoder({ label: "engine-step" });
      }
      await this.#runner.encode(enc, this.cache, l, n);
      this.#pass(enc, plan.layers[l].post);
    }
    if (sampling) {
      enc.copyBufferToBuffer(s.h, (n - 1) * d * 4, s.last, 0, d * 4);
      this.#pass(enc, [...plan.final, plan.sample]);
      enc.copyBufferToBuffer(s.sampled, 0, s.idStaging, 0, 4);
      if (readLogits) {
        this.#logitsStaging ??= this.#ctx.device.createBuffer({
          label: "engine-logits-staging",
          size: Math.ceil((this.#dims.V * 4) / 16) * 16,
          usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
        });
        enc.copyBufferToBuffer(s.logits, 0, this.#logitsStaging, 0, this.#dims.V * 4);
      }
    }
    this.#submit(enc);
    this.#len = start + n;
    if (!sampling) {
      await this.#ctx.device.queue.onSubmittedWorkDone();
      this.#ctx.throwIfFailed();
      return { id: -1, logits: null };
    }
    this.#draws++;
    let logits: Float32Array | null = null;
    const reads: Promise<void>[] = [s.idStaging.mapAsync(MapModeRead, 0, 16)];
    if (readLogits) reads.push(this.#logitsStaging!.mapAsync(MapModeRead, 0, this.#logitsStaging!.size));
    await Promise.all(reads);
    let id: number;
    try {
      this.#ctx.throwIfFailed();
      id = new Uint32Array(s.idStaging.getMappedRange(0, 16))[0];
      if (readLogits) logits = new Float32Array(this.#logitsStaging!.getMappedRange(0, this.#logitsStaging!.size).slice(0, this.#dims.V * 4));
    } finally {
      s.idStaging.unmap();
      if (readLogits) this.#logitsStaging!.unmap();
    }
    if (id === 0xffffffff) throw new GpuEngineError("no_token", "every token is banned or NaN: nothing to sample");
    return { id, logits };
  }

  #pass(enc: GPUCommandEncoder, calls: readonly Prepared[]): void {
    if (calls.length === 0) return;
    const pass = enc.beginComputePass({ label: "engine" });
    for (const c of calls) {
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, c.bind);
      pass.dispatchWorkgroups(c.grid[0], c.grid[1], c.grid[2]);
    }
    pass.end();
  }

  /** Next text position after each of the n tokens from `start` (the running max of their M-RoPE positions + 1). */
  #notePositions(start: number, positions: Int32Array, n: number, next: number): void {
    if (start + n > this.#nextAfter.length) {
      const a = new Int32Array(Math.max(start + n, 2 * this.#nextAfter.length));
      a.set(this.#nextAfter.subarray(0, start));
      this.#nextAfter = a;
    }
    let run = start === 0 ? 0 : start === this.#adopted ? this.#adoptedNext : this.#nextAfter[start - 1];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 3; k++) run = Math.max(run, positions[k * n + i] + 1);
      this.#nextAfter[start + i] = run;
    }
    this.#nextAfter[start + n - 1] = next;
  }

  #recordModality(start: number, modality: Uint8Array): void {
    const need = start + modality.length;
    if (need > this.#modality.length) {
      const m = new Uint8Array(Math.max(need, 2 * this.#modality.length));
      m.set(this.#modality.subarray(0, start));
      this.#modality = m;
    }
    this.#modality.set(modality, start);
    // Also grows the cache's capacity when the block passes it.
    this.cache.writeModality(start, modality);
  }

  async #prepare(call: KernelCall): Promise<Prepared> {
    const dev = this.#ctx.device;
    const pipeline = await this.#ctx.pipeline(call.program);
    const params = dev.createBuffer({ label: `${call.program.name}-params`, size: call.uniforms.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    dev.queue.writeBuffer(params, 0, call.uniforms);
    const bind = dev.createBindGroup({
      label: call.program.name,
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: params } }, ...call.buffers.map((buffer, j) => ({ binding: j + 1, resource: { buffer } }))],
    });
    return { pipeline, bind, params, grid: call.grid };
  }

  #plan(n: number): Promise<BlockPlan> {
    let p = this.#plans.get(n);
    if (!p) {
      // Plans of odd block sizes (a prompt's last block) are few per conversation; keep at most 4 besides decode's and
      // full blocks', dropping the oldest (its uniform buffers are freed once submitted work no longer needs them).
      const odd = [...this.#plans.keys()].filter((k) => k !== 1 && k !== this.maxBlock);
      if (odd.length >= 4) {
        const old = this.#plans.get(odd[0])!;
        this.#plans.delete(odd[0]);
        void old.then((plan) => planBuffers(plan).forEach((b) => b.destroy())).catch(() => undefined);
      }
      p = this.#makePlan(n);
      this.#plans.set(n, p);
      p.catch(() => this.#plans.delete(n));
    }
    return p;
  }

  async #makePlan(n: number): Promise<BlockPlan> {
    const ctx = this.#ctx;
    const s = this.#s;
    const w = this.#w;
    const c = this.config;
    const { d, nh, nkv, dh, r, dc, D, R, S, I, Y } = this.#dims;
    const eps = c.rmsNormEps;
    // One at a time: dawn.node (SwiftShader) has crashed compiling many new pipelines concurrently.
    const prep = async (calls: KernelCall[]) => {
      const out: Prepared[] = [];
      for (const x of calls) out.push(await this.#prepare(x));
      return out;
    };
    const layers: Array<{ pre: Prepared[]; post: Prepared[] }> = [];
    for (const [l, lw] of w.layers.entries()) {
      {
        const rot = this.#rotary[l];
        const pre: KernelCall[] = [
          rmsNormCall(ctx, s.h, lw.inputNorm, s.xn, n, d, eps),
          linearCall(ctx, lw.qProj, s.xn, n, s.y, lw.projBias, "auto", { yStride: Y, yOffset: 0 }),
          ...(R > 0 ? [linearCall(ctx, lw.kRProj, s.xn, n, s.y, lw.projBias, "auto", { yStride: Y, yOffset: nh * dh })] : []),
          ...lw.spaces.map((sp, m) => linearCall(ctx, sp.downKv, s.xn, n, s.y, null, "auto", { yStride: Y, yOffset: nh * dh + R + m * D })),
          ...(rot
            ? [
                rotaryCall(ctx, rot, s.y, s.positions, { tokens: n, heads: nh, headStride: r, offset: 0, tokenStride: Y, xOffset: 0 }),
                rotaryCall(ctx, rot, s.y, s.positions, { tokens: n, heads: nkv, headStride: r, offset: 0, tokenStride: Y, xOffset: nh * dh }),
              ]
            : []),
          latentRowsCall(ctx, s.y, s.modality, s.rows, { tokens: n, yStride: Y, ropeOffset: nh * dh, ropeWidth: R, latentOffset: nh * dh + R, latentWidth: D, spaces: S }),
          ...lw.spaces.map((sp, m) =>
            absorbQueryCall(ctx, sp.upK, sp.upKBias, s.y, this.#attention.query, { tokens: n, heads: nh, kvHeads: nkv, ropeDims: r, nopeDims: dc, yStride: Y, space: m, spaces: S }),
          ),
        ];
        const post: KernelCall[] = [
          ...lw.spaces.map((sp, m) =>
            absorbOutputCall(ctx, sp.upV, sp.upVBias, this.#attention.out, s.o, { tokens: n, heads: nh, kvHeads: nkv, headDim: dh, space: m, spaces: S, accumulate: m > 0 }),
          ),
          linearCall(ctx, lw.oProj, s.o, n, s.a),
          residualAddCall(ctx, s.h, s.a, n * d),
          rmsNormCall(ctx, s.h, lw.postNorm, s.xn, n, d, eps),
          linearCall(ctx, lw.gate, s.xn, n, s.gu, null, "auto", { yStride: 2 * I, yOffset: 0 }),
          linearCall(ctx, lw.up, s.xn, n, s.gu, null, "auto", { yStride: 2 * I, yOffset: I }),
          swigluCall(ctx, s.gu, s.gu, s.act, { rows: n, width: I, gateStride: 2 * I, gateOffset: 0, upStride: 2 * I, upOffset: I }),
          linearCall(ctx, lw.down, s.act, n, s.a),
          residualAddCall(ctx, s.h, s.a, n * d),
        ];
        layers.push({ pre: await prep(pre), post: await prep(post) });
      }
    }
    const embed = await prep(embeddingSplitCalls(ctx, w.embed, s.ids, n, s.h));
    const final = await prep([rmsNormCall(ctx, s.last, w.finalNorm, s.lastNorm, 1, d, eps), ...linearSplitCalls(ctx, w.lmHead, s.lastNorm, 1, s.logits)]);
    const [sample] = await prep([samplingCall(ctx, { logits: s.logits, banned: s.banned, out: s.sampled }, this.#dims.V, { temperature: 0, topK: 0, topP: 1, seed: 0, step: 0 })]);
    return { n, embed, layers, final, sample };
  }
}

/** Creates an engine for `model` (see GpuEngine.create). */
export function createGpuEngine(ctx: GpuContext, model: MlaModelWeights | EngineModelShape, options: GpuEngineOptions): Promise<GpuEngine> {
  return GpuEngine.create(ctx, model, options);
}

function planBuffers(p: BlockPlan): GPUBuffer[] {
  return [...p.embed, p.sample, ...p.final, ...p.layers.flatMap((l) => [...l.pre, ...l.post])].map((x) => x.params);
}

function countRuns(ids: Int32Array, pad: number): number {
  let runs = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === pad && (i === 0 || ids[i - 1] !== pad)) runs++;
  return runs;
}
