// The decoder loop shared by the original and the converted model: embeddings (with image embeddings injected at
// image-pad tokens), per layer RMSNorm → attention backend → residual → RMSNorm → SwiGLU → residual, final norm, lm_head.
// A session owns one sequence's cache: prefill blocks, decode token by token, truncate to roll back.

import { MlaError } from "../format/errors.ts";
import type { TextModelConfig } from "../checkpoint/config.ts";
import type { AttentionBackend, AttentionHook, TokenBlock } from "./attention-backend.ts";
import { linear, rmsNorm, swiglu } from "./ops.ts";
import { ropeIndexPositions, tokenModalities, type ImageGrid } from "./rope-index.ts";
import { pairStreams, ropeInvFreq, ropeTables } from "./rope.ts";
import type { DecoderShellWeights } from "./weights.ts";

export class DecoderSessionError extends MlaError<"bad_token" | "image_embeds" | "bad_truncate" | "empty_block" | "unsupported_config" | "async_backend"> {
  override readonly name = "DecoderSessionError";
  constructor(code: "bad_token" | "image_embeds" | "bad_truncate" | "empty_block" | "unsupported_config" | "async_backend", message: string) {
    super(code, message);
  }
}

export interface AppendOptions {
  /** [pads × hidden] embeddings replacing the block's image-pad tokens, in order. Required when the block has any. */
  readonly imageEmbeds?: Float32Array;
  /** Grids of the block's images, in order; default: the session's `defaultImageGrid` for each. */
  readonly imageGrids?: readonly ImageGrid[];
  /** Which rows of logits to return: the last token's (default), all of the block's, or none. */
  readonly logits?: "last" | "all" | "none";
  readonly hook?: AttentionHook;
}

export interface GreedyOptions {
  readonly maxTokens: number;
  /** Generation stops after emitting one of these (it is returned but not fed back). */
  readonly stopTokenIds?: readonly number[];
  /** Never emitted (e.g. pad, bos, vision tokens). */
  readonly bannedTokenIds?: readonly number[];
}

export interface SessionOptions {
  /** Grid used for an image when `imageGrids` is not given (the fixture's 4×4). */
  readonly defaultImageGrid?: ImageGrid;
}

/** Index of the largest logit not in `banned` (lowest index on ties). */
export function argmaxExcluding(logits: Float32Array, offset: number, vocab: number, banned: readonly number[]): number {
  let best = -1;
  let bestV = -Infinity;
  for (let i = 0; i < vocab; i++) {
    if (banned.includes(i)) continue;
    const v = logits[offset + i];
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/** One block on its way through the layers. */
interface BlockRun {
  readonly block: TokenBlock;
  /** Next text position after the block. */
  readonly next: number;
  readonly h: Float64Array;
  readonly xn: Float64Array;
  readonly attn: Float64Array;
  readonly gate: Float64Array;
  readonly up: Float64Array;
}

export class DecoderSession {
  private readonly invFreq: Float64Array;
  private readonly streams: Uint8Array;
  /** posAfter[i]: the running position after token i (what the next text token would get). */
  private posAfter = new Int32Array(64);
  private len = 0;
  /** Tokens below this index were adopted from a stored cache; their positions are unknown, so no truncation below. */
  private adopted = 0;
  private adoptedNext = 0;

  constructor(
    readonly config: TextModelConfig,
    readonly shell: DecoderShellWeights,
    readonly backend: AttentionBackend,
    private readonly options: SessionOptions = {},
  ) {
    if (config.unsupportedRopeScaling !== null) {
      throw new DecoderSessionError("unsupported_config", `rope_scaling type ${config.unsupportedRopeScaling} is not implemented by the runtime`);
    }
    this.invFreq = ropeInvFreq(config.headDim, config.ropeTheta);
    this.streams = pairStreams(config.headDim, config.mropeSection);
  }

  /** Tokens in the cache. */
  get length(): number {
    return this.len;
  }

  /** M-RoPE position the next text token gets (= length + rope_deltas; persist it with a stored cache). */
  get nextPosition(): number {
    return this.len === 0 ? 0 : this.len === this.adopted ? this.adoptedNext : this.posAfter[this.len - 1];
  }

  /**
   * Runs a block of new tokens through the model, appending them to the cache. Returns logits
   * ([rows × vocab] f32) for the requested rows.
   */
  append(tokens: ArrayLike<number>, opts: AppendOptions = {}): Float32Array {
    if (this.backend.async === true) {
      throw new DecoderSessionError("async_backend", "this attention backend runs asynchronously (GPU kernels): use appendAsync");
    }
    const run = this.beginBlock(tokens, opts);
    for (let l = 0; l < this.config.numLayers; l++) {
      this.layerInput(run, l);
      void this.backend.forwardLayer(l, run.xn, run.block, run.attn, opts.hook);
      this.layerOutput(run, l);
    }
    return this.endBlock(run, opts);
  }

  /** `append` for any backend, awaiting each layer's attention (the decode loop of the WebGPU path). */
  async appendAsync(tokens: ArrayLike<number>, opts: AppendOptions = {}): Promise<Float32Array> {
    const run = this.beginBlock(tokens, opts);
    for (let l = 0; l < this.config.numLayers; l++) {
      this.layerInput(run, l);
      await this.backend.forwardLayer(l, run.xn, run.block, run.attn, opts.hook);
      this.layerOutput(run, l);
    }
    return this.endBlock(run, opts);
  }

  private beginBlock(tokens: ArrayLike<number>, opts: AppendOptions): BlockRun {
    const cfg = this.config;
    const n = tokens.length;
    if (n === 0) throw new DecoderSessionError("empty_block", "append needs at least one token");
    const d = cfg.hiddenSize;
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= cfg.vocabSize) {
        throw new DecoderSessionError("bad_token", `token ${t} at ${i} is outside the vocabulary of ${cfg.vocabSize}`);
      }
      ids[i] = t;
    }
    const pad = cfg.tokens.imagePad ?? -1;
    const start = this.nextPosition;
    const nImages = countRuns(ids, pad);
    const grids = opts.imageGrids ?? (this.options.defaultImageGrid ? new Array<ImageGrid>(nImages).fill(this.options.defaultImageGrid) : []);
    const { positions, next } = ropeIndexPositions(ids, start, pad, grids);
    const block: TokenBlock = {
      start: this.len,
      count: n,
      ids,
      positions,
      modality: tokenModalities(ids, cfg.imageRoutedTokenIds),
      rope: ropeTables(positions, n, this.invFreq, this.streams),
    };
    return {
      block,
      next,
      h: this.embed(ids, pad, opts.imageEmbeds),
      xn: new Float64Array(n * d),
      attn: new Float64Array(n * d),
      gate: new Float64Array(n * cfg.intermediateSize),
      up: new Float64Array(n * cfg.intermediateSize),
    };
  }

  private layerInput(run: BlockRun, l: number): void {
    const cfg = this.config;
    rmsNorm(run.h, run.block.count, cfg.hiddenSize, this.shell.layers[l].inputNorm, cfg.rmsNormEps, run.xn);
  }

  private layerOutput(run: BlockRun, l: number): void {
    const cfg = this.config;
    const lw = this.shell.layers[l];
    const n = run.block.count;
    const d = cfg.hiddenSize;
    const { h, xn, attn } = run;
    for (let i = 0; i < n * d; i++) h[i] += attn[i];
    rmsNorm(h, n, d, lw.postNorm, cfg.rmsNormEps, xn);
    swiglu(xn, n, d, cfg.intermediateSize, lw.gate, lw.up, lw.down, run.gate, run.up, attn);
    for (let i = 0; i < n * d; i++) h[i] += attn[i];
  }

  private endBlock(run: BlockRun, opts: AppendOptions): Float32Array {
    const cfg = this.config;
    const d = cfg.hiddenSize;
    const n = run.block.count;
    this.recordPositions(run.block.positions, n, run.next);
    const mode = opts.logits ?? "last";
    if (mode === "none") return new Float32Array(0);
    const first = mode === "all" ? 0 : n - 1;
    const rows = n - first;
    const last = run.h.subarray(first * d, n * d);
    const normed = new Float64Array(rows * d);
    rmsNorm(last, rows, d, this.shell.finalNorm, cfg.rmsNormEps, normed);
    const logits = new Float64Array(rows * cfg.vocabSize);
    linear(normed, rows, d, this.shell.lmHead, cfg.vocabSize, null, logits);
    return Float32Array.from(logits);
  }

  /**
   * Greedy decoding from the logits of the last appended token: emit the best allowed token, feed it, repeat, until a
   * stop token or `maxTokens`. The final emitted token is returned but not fed (a chat appends it with the next turn).
   */
  generateGreedy(lastLogits: Float32Array, opts: GreedyOptions): number[] {
    const vocab = this.config.vocabSize;
    const stops = opts.stopTokenIds ?? (this.config.tokens.eos !== null ? [this.config.tokens.eos] : []);
    const banned = opts.bannedTokenIds ?? [];
    const out: number[] = [];
    let logits = lastLogits;
    for (let step = 0; step < opts.maxTokens; step++) {
      const tok = argmaxExcluding(logits, logits.length - vocab, vocab, banned);
      out.push(tok);
      if (stops.includes(tok) || step === opts.maxTokens - 1) break;
      logits = this.append([tok]);
    }
    return out;
  }

  /** Tokens below this index came from a stored cache; truncation below it is refused. */
  get adoptedLength(): number {
    return this.adopted;
  }

  /** Rolls the cache back to its first `length` tokens (e.g. to replace a generated answer by the true one). */
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < this.adopted || length > this.len) {
      throw new DecoderSessionError("bad_truncate", `cannot truncate to ${length}: cache holds ${this.len} tokens, ${this.adopted} adopted`);
    }
    this.backend.truncate(length);
    this.len = length;
  }

  /**
   * Declares that the backend's cache already holds `length` tokens (restored from storage) whose next text position
   * is `nextPosition`. The backend must have been filled first.
   */
  adoptCache(length: number, nextPosition: number): void {
    this.len = length;
    this.adopted = length;
    this.adoptedNext = nextPosition;
    this.posAfter = new Int32Array(Math.max(64, length * 2));
  }

  private embed(ids: Int32Array, pad: number, imageEmbeds: Float32Array | undefined): Float64Array {
    const d = this.config.hiddenSize;
    const n = ids.length;
    const h = new Float64Array(n * d);
    let pads = 0;
    for (let i = 0; i < n; i++) if (ids[i] === pad) pads++;
    if (pads > 0 && (imageEmbeds === undefined || imageEmbeds.length !== pads * d)) {
      throw new DecoderSessionError(
        "image_embeds",
        `block has ${pads} image-pad tokens: imageEmbeds must hold ${pads} × ${d} values, got ${imageEmbeds?.length ?? "none"}`,
      );
    }
    let p = 0;
    for (let i = 0; i < n; i++) {
      if (ids[i] === pad) {
        for (let k = 0; k < d; k++) h[i * d + k] = imageEmbeds![p * d + k];
        p++;
      } else {
        const e = ids[i] * d;
        for (let k = 0; k < d; k++) h[i * d + k] = this.shell.embedTokens[e + k];
      }
    }
    return h;
  }

  private recordPositions(positions: Int32Array, n: number, next: number): void {
    const need = this.len + n;
    if (need > this.posAfter.length) {
      const grown = new Int32Array(Math.max(need, this.posAfter.length * 2));
      grown.set(this.posAfter.subarray(0, this.len));
      this.posAfter = grown;
    }
    // Within a block a text token's "after" is its own t + 1; an image token's is the block's running max so far + 1.
    let running = this.nextPosition;
    for (let i = 0; i < n; i++) {
      const m = Math.max(positions[i], positions[n + i], positions[2 * n + i]);
      running = Math.max(running, m + 1);
      this.posAfter[this.len + i] = running;
    }
    this.posAfter[this.len + n - 1] = next;
    this.len += n;
  }
}

function countRuns(ids: Int32Array, pad: number): number {
  let runs = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === pad && (i === 0 || ids[i - 1] !== pad)) runs++;
  return runs;
}
