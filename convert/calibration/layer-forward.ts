// Calibration forward one layer at a time (streaming conversion): the hidden states of every calibration sequence are
// carried from layer to layer, so only the current layer's weights are needed; each layer's attention inputs are
// handed to a visitor (statistics accumulate there) and then dropped. The reference arithmetic is the runtime's decoder
// loop (runtime/decoder-session.ts, f64 CPU reference ops) step for step, so statistics equal those of a whole-model
// capture (captureCalibration) bit for bit; the fast forwards compute the projections in f32 on wasm SIMD or a WebGPU
// device and keep the rest (norms, RoPE, attention scores, softmax) as the reference.

import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { TokenBlock } from "../../runtime/attention-backend.ts";
import { GqaAttentionBackend, rotateHeadPairs } from "../../runtime/gqa-attention.ts";
import { rmsNorm, softmaxInPlace, swiglu } from "../../runtime/ops.ts";
import { allPairs } from "../../runtime/rope.ts";
import { WasmLinearF32 } from "../linalg/linear-f32-wasm.ts";
import { GpuLinearF32 } from "../linalg/linear-f32-gpu.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { ropeIndexPositions, tokenModalities, type ImageGrid } from "../../runtime/rope-index.ts";
import { pairStreams, ropeInvFreq, ropeTables, type RopeTables } from "../../runtime/rope.ts";
import type { GqaAttentionWeights, LayerShellWeights } from "../../runtime/weights.ts";
import { CalibrationError } from "./errors.ts";

/** One calibration sequence ready for the decoder: token ids, its image embeddings and grids. */
export interface CalibrationSample {
  readonly inputIds: readonly number[];
  /** [image-pad tokens × hidden], in order; absent for a text-only sequence. */
  readonly imageEmbeds?: Float32Array;
  /** The merged-token grid of each image, in order. */
  readonly imageGrids?: readonly ImageGrid[];
}

/** What a layer's visitor sees of one sequence (arrays it may keep). */
export interface LayerSequenceCapture {
  readonly sequence: number;
  readonly length: number;
  readonly modality: Uint8Array;
  readonly rope: RopeTables;
  /** [T × hidden] attention input (after the input RMSNorm). */
  readonly x: Float64Array;
  /** [T × n_h·d_h] pre-RoPE q, bias added. */
  readonly q: Float64Array;
  /** [T × n_kv·d_h] pre-RoPE k, bias added. */
  readonly k: Float64Array;
}

/**
 * `reference`: the runtime's f64 CPU ops (bit-identical to a whole-model capture; slow). `wasm-f32`: the projections
 * (q/k/v/o, gate/up/down: all but the attention scores) in f32 on build/linalg.wasm's SIMD kernel, ≈ 25× faster.
 * `webgpu-f32`: the same projections in f32 on a WebGPU device (the kernels' tiled GEMM; dawn.node in the CLI).
 */
export type CalibrationForward = "reference" | "wasm-f32" | "webgpu-f32";

/** The projections of a fast forward: a layer's weights uploaded once, every sequence through them, then freed. */
interface ProjectionOps<W> {
  upload(w: Float32Array, outDim: number, inDim: number): W;
  linear(x: Float64Array, rows: number, inDim: number, w: W, bias: Float32Array | null, out: Float64Array): void | Promise<void>;
  reset(): void;
  close(): Promise<void>;
}

/** Reads a layer's norms and MLP matrices on demand (from the lazy checkpoint). */
export interface LayerShellReader {
  norms(): Promise<Pick<LayerShellWeights, "inputNorm" | "postNorm">>;
  matrix(which: "gate" | "up" | "down"): Promise<Float32Array>;
}

interface SequenceState {
  readonly block: TokenBlock;
  readonly h: Float64Array;
}

export class LayerwiseCalibration {
  private readonly states: SequenceState[];
  private readonly ops: ProjectionOps<unknown> | null = null;
  readonly tokens: { text: number; image: number } = { text: 0, image: 0 };

  /**
   * `embedRows(ids)` returns the embedding rows of `ids` ([n × hidden] f32): the caller reads them from the lazy
   * checkpoint, so the embedding table is never held as f32.
   */
  constructor(
    private readonly config: TextModelConfig,
    samples: readonly CalibrationSample[],
    embedRows: (ids: Int32Array) => Float32Array,
    readonly forward: CalibrationForward = "reference",
    gpu: GpuContext | null = null,
  ) {
    if (forward === "wasm-f32") {
      const wasm = WasmLinearF32.create();
      if (wasm === null) throw new CalibrationError("no_forward", "the wasm-f32 calibration forward needs build/linalg.wasm with gemmNTf32: run `npm run build:linalg-wasm`");
      this.ops = wasm as ProjectionOps<unknown>;
    } else if (forward === "webgpu-f32") {
      if (gpu === null) throw new CalibrationError("no_forward", "the webgpu-f32 calibration forward needs a WebGPU adapter (dawn.node found none)");
      this.ops = new GpuLinearF32(gpu) as ProjectionOps<unknown>;
    }
    const d = config.hiddenSize;
    const pad = config.tokens.imagePad ?? -1;
    const invFreq = ropeInvFreq(config.headDim, config.ropeTheta);
    const streams = pairStreams(config.headDim, config.mropeSection);
    this.states = samples.map((s, i) => {
      const n = s.inputIds.length;
      if (n === 0) throw new CalibrationError("no_tokens", `calibration sequence ${i} is empty`);
      const ids = new Int32Array(n);
      for (let t = 0; t < n; t++) {
        const v = s.inputIds[t];
        if (!Number.isInteger(v) || v < 0 || v >= config.vocabSize) throw new CalibrationError("bad_sequence", `calibration sequence ${i}: token ${v} at ${t} is outside the vocabulary of ${config.vocabSize}`);
        ids[t] = v;
      }
      let pads = 0;
      for (let t = 0; t < n; t++) if (ids[t] === pad) pads++;
      if (pads > 0 && (s.imageEmbeds === undefined || s.imageEmbeds.length !== pads * d)) {
        throw new CalibrationError("bad_sequence", `calibration sequence ${i} has ${pads} image-pad tokens but ${s.imageEmbeds === undefined ? "no" : s.imageEmbeds.length / d} image embeddings`);
      }
      const { positions } = ropeIndexPositions(ids, 0, pad, s.imageGrids ?? []);
      const block: TokenBlock = {
        start: 0,
        count: n,
        ids,
        positions,
        modality: tokenModalities(ids, config.imageRoutedTokenIds),
        rope: ropeTables(positions, n, invFreq, streams),
      };
      for (const m of block.modality) {
        if (m === 1) this.tokens.image++;
        else this.tokens.text++;
      }
      const h = new Float64Array(n * d);
      const rows = embedRows(ids);
      let p = 0;
      for (let t = 0; t < n; t++) {
        if (ids[t] === pad) {
          for (let e = 0; e < d; e++) h[t * d + e] = s.imageEmbeds![p * d + e];
          p++;
        } else for (let e = 0; e < d; e++) h[t * d + e] = rows[t * d + e];
      }
      return { block, h };
    });
  }

  /** Stops the wasm forward's worker thread / frees the GPU forward's buffers. */
  async close(): Promise<void> {
    await this.ops?.close();
  }

  get sequences(): number {
    return this.states.length;
  }

  /** Bytes of hidden state carried between layers. */
  get stateBytes(): number {
    return this.states.reduce((s, st) => s + st.h.byteLength, 0);
  }

  /**
   * Runs layer `layer` of the original model over every sequence: the visitor gets each sequence's attention input and
   * pre-RoPE q/k, then the hidden states move past the layer (attention + SwiGLU MLP, with residuals).
   */
  async runLayer(layer: number, attention: GqaAttentionWeights, shell: LayerShellWeights, visit: (c: LayerSequenceCapture) => void): Promise<void> {
    if (this.ops !== null) {
      await this.runLayerOps(this.ops, attention, shell, visit);
      return;
    }
    const cfg = this.config;
    const d = cfg.hiddenSize;
    const one: TextModelConfig = { ...cfg, numLayers: 1 };
    this.states.forEach((st, i) => {
      const n = st.block.count;
      const xn = new Float64Array(n * d);
      const attn = new Float64Array(n * d);
      rmsNorm(st.h, n, d, shell.inputNorm, cfg.rmsNormEps, xn);
      const backend = new GqaAttentionBackend({ config: one, shell: { embedTokens: new Float32Array(0), finalNorm: new Float32Array(0), lmHead: new Float32Array(0), layers: [] }, attention: [attention] });
      backend.forwardLayer(0, xn, st.block, attn, (c) => visit({ sequence: i, length: n, modality: st.block.modality, rope: st.block.rope, x: c.x, q: c.q!, k: c.k! }));
      const h = st.h;
      for (let j = 0; j < n * d; j++) h[j] += attn[j];
      rmsNorm(h, n, d, shell.postNorm, cfg.rmsNormEps, xn);
      swiglu(xn, n, d, cfg.intermediateSize, shell.gate, shell.up, shell.down, new Float64Array(n * cfg.intermediateSize), new Float64Array(n * cfg.intermediateSize), attn);
      for (let j = 0; j < n * d; j++) h[j] += attn[j];
    });
  }

  /**
   * Like runLayer, reading the layer's shell through `read`: with a fast forward each MLP matrix is uploaded (wasm memory
   * or the GPU) as soon as it is read and its f32 copy dropped, so the layer's MLP is held once, not twice.
   */
  async runLayerFrom(layer: number, attention: GqaAttentionWeights, read: LayerShellReader, visit: (c: LayerSequenceCapture) => void): Promise<void> {
    if (this.ops === null) {
      const shell: LayerShellWeights = { ...(await read.norms()), gate: await read.matrix("gate"), up: await read.matrix("up"), down: await read.matrix("down") };
      await this.runLayer(layer, attention, shell, visit);
      return;
    }
    const lin = this.ops;
    const { hiddenSize: d, intermediateSize: f } = this.config;
    lin.reset();
    try {
      const w = this.uploadAttention(lin, attention);
      const norms = await read.norms();
      const wg = lin.upload(await read.matrix("gate"), f, d);
      const wu = lin.upload(await read.matrix("up"), f, d);
      const wd = lin.upload(await read.matrix("down"), d, f);
      await this.runProjected(lin, attention, w, norms, { wg, wu, wd }, visit);
    } finally {
      lin.reset();
    }
  }

  private uploadAttention<W>(lin: ProjectionOps<W>, w: GqaAttentionWeights): { wq: W; wk: W; wv: W; wo: W } {
    const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh } = this.config;
    return {
      wq: lin.upload(w.qProj, nh * dh, d),
      wk: lin.upload(w.kProj, nkv * dh, d),
      wv: lin.upload(w.vProj, nkv * dh, d),
      wo: lin.upload(w.oProj, d, nh * dh),
    };
  }

  /** runLayer on f32 projections (wasm or GPU); the attention scores, softmax and norms stay f64 as in the reference. */
  private async runLayerOps<W>(lin: ProjectionOps<W>, w: GqaAttentionWeights, shell: LayerShellWeights, visit: (c: LayerSequenceCapture) => void): Promise<void> {
    const { hiddenSize: d, intermediateSize: f } = this.config;
    lin.reset();
    try {
      const a = this.uploadAttention(lin, w);
      const mlp = { wg: lin.upload(shell.gate, f, d), wu: lin.upload(shell.up, f, d), wd: lin.upload(shell.down, d, f) };
      await this.runProjected(lin, w, a, shell, mlp, visit);
    } finally {
      lin.reset();
    }
  }

  private async runProjected<W>(
    lin: ProjectionOps<W>,
    w: GqaAttentionWeights,
    { wq, wk, wv, wo }: { wq: W; wk: W; wv: W; wo: W },
    shell: Pick<LayerShellWeights, "inputNorm" | "postNorm">,
    { wg, wu, wd }: { wg: W; wu: W; wd: W },
    visit: (c: LayerSequenceCapture) => void,
  ): Promise<void> {
    const cfg = this.config;
    const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh, intermediateSize: f } = cfg;
    const qDim = nh * dh;
    const kvDim = nkv * dh;
    const half = dh / 2;
    const group = nh / nkv;
    const full = allPairs(half);
    const scale = 1 / Math.sqrt(dh);
    {
      for (const [i, st] of this.states.entries()) {
        const n = st.block.count;
        const xn = new Float64Array(n * d);
        rmsNorm(st.h, n, d, shell.inputNorm, cfg.rmsNormEps, xn);
        const q = new Float64Array(n * qDim);
        const k = new Float64Array(n * kvDim);
        const v = new Float64Array(n * kvDim);
        await lin.linear(xn, n, d, wq, w.qBias, q);
        await lin.linear(xn, n, d, wk, w.kBias, k);
        await lin.linear(xn, n, d, wv, w.vBias, v);
        visit({ sequence: i, length: n, modality: st.block.modality, rope: st.block.rope, x: xn, q: q.slice(), k: k.slice() });
        for (let t = 0; t < n; t++) {
          for (let h = 0; h < nh; h++) rotateHeadPairs(q, t * qDim + h * dh, half, full, st.block.rope, t);
          for (let g = 0; g < nkv; g++) rotateHeadPairs(k, t * kvDim + g * dh, half, full, st.block.rope, t);
        }
        const o = new Float64Array(n * qDim);
        const s = new Float64Array(n);
        for (let t = 0; t < n; t++) {
          for (let h = 0; h < nh; h++) {
            const g = Math.floor(h / group);
            const qo = t * qDim + h * dh;
            for (let j = 0; j <= t; j++) {
              const ko = j * kvDim + g * dh;
              let dot = 0;
              for (let e = 0; e < dh; e++) dot += q[qo + e] * k[ko + e];
              s[j] = dot * scale;
            }
            softmaxInPlace(s, t + 1);
            for (let j = 0; j <= t; j++) {
              const p = s[j];
              const vo = j * kvDim + g * dh;
              for (let e = 0; e < dh; e++) o[qo + e] += p * v[vo + e];
            }
          }
        }
        const attn = new Float64Array(n * d);
        await lin.linear(o, n, qDim, wo, null, attn);
        const h = st.h;
        for (let j = 0; j < n * d; j++) h[j] += attn[j];
        rmsNorm(h, n, d, shell.postNorm, cfg.rmsNormEps, xn);
        const gate = new Float64Array(n * f);
        const up = new Float64Array(n * f);
        await lin.linear(xn, n, d, wg, null, gate);
        await lin.linear(xn, n, d, wu, null, up);
        for (let j = 0; j < n * f; j++) {
          const gv = gate[j];
          gate[j] = (gv / (1 + Math.exp(-gv))) * up[j];
        }
        await lin.linear(gate, n, f, wd, null, attn);
        for (let j = 0; j < n * d; j++) h[j] += attn[j];
      }
    }
  }
}
