// A random-weight MLA chat model of a given geometry (for the e2e benchmark: hidden 1024, 4 layers, 8 query / 2 KV
// heads of dim 128, d_kv 64), with a random vision tower producing a rows×cols grid of image tokens. Weights are
// seeded uniform noise scaled like trained weights; the answers are meaningless, the arithmetic is the real runtime's.

import { parseModelConfig } from "../../checkpoint/config.ts";
import type { Codec } from "../../format/codec/types.ts";
import { assembleMlaModel } from "../../runtime/mla/build.ts";
import type { LatentProjection, MlaAttentionWeights } from "../../runtime/mla/weights.ts";
import { WordTokenizer } from "../../runtime/inputs/tokenizer.ts";
import type { VisionTowerWeights } from "../../runtime/vision/toy-tower.ts";
import type { DecoderShellWeights, LayerShellWeights } from "../../runtime/weights.ts";
import { createChatModel, type ChatModel } from "../../runtime/chat-model.ts";
import { TypeScriptVisionEncoder } from "../../runtime/vision/vision-encoder.ts";
import { mulberry32 as rng } from "../helpers/mulberry32.ts";

export interface SyntheticGeometry {
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly dKv: number;
  readonly intermediate: number;
  readonly words: number;
  /** Image tokens per side (grid rows = cols). */
  readonly imageSide: number;
}

export const BENCH_GEOMETRY: SyntheticGeometry = { hidden: 1024, layers: 4, heads: 8, kvHeads: 2, headDim: 128, dKv: 64, intermediate: 2816, words: 1000, imageSide: 16 };

export function syntheticChatModel(g: SyntheticGeometry, codec: Codec, seed = 1): ChatModel {
  const rand = rng(seed);
  // uniform(±a) with std 1/sqrt(fanIn): keeps activations O(1) through the layers
  const mat = (rows: number, cols: number) => {
    const a = Math.sqrt(3 / cols);
    const m = new Float32Array(rows * cols);
    for (let i = 0; i < m.length; i++) m[i] = (2 * rand() - 1) * a;
    return m;
  };
  const ones = (n: number) => new Float32Array(n).fill(1);
  const vocab = ["<pad>", "<bos>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<end>", ...Array.from({ length: g.words }, (_, i) => `w${i}`)];
  const raw = {
    model_type: "qwen2_5_vl",
    hidden_size: g.hidden,
    num_hidden_layers: g.layers,
    num_attention_heads: g.heads,
    num_key_value_heads: g.kvHeads,
    head_dim: g.headDim,
    intermediate_size: g.intermediate,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    rope_scaling: { type: "mrope", mrope_section: [g.headDim / 8, (3 * g.headDim) / 16, (3 * g.headDim) / 16] },
    vocab_size: vocab.length,
    tie_word_embeddings: false,
    image_token_id: 3,
    vision_start_token_id: 2,
    vision_end_token_id: 4,
    bos_token_id: 1,
    eos_token_id: 5,
    vision_config: { patch_cells: [g.imageSide, g.imageSide], cell_pixels: 8 },
  };
  const config = parseModelConfig(raw);
  const r = g.headDim / 4;
  const dc = g.headDim - r;
  const D = g.kvHeads * g.dKv;
  const layers: LayerShellWeights[] = Array.from({ length: g.layers }, () => ({
    inputNorm: ones(g.hidden),
    postNorm: ones(g.hidden),
    gate: mat(g.intermediate, g.hidden),
    up: mat(g.intermediate, g.hidden),
    down: mat(g.hidden, g.intermediate),
  }));
  const shell: DecoderShellWeights = { embedTokens: mat(vocab.length, g.hidden), finalNorm: ones(g.hidden), lmHead: mat(vocab.length, g.hidden), layers };
  const space = (): LatentProjection => ({ downKv: mat(D, g.hidden), upK: mat(g.kvHeads * dc, D), upKBias: null, upV: mat(g.kvHeads * g.headDim, D), upVBias: null });
  const attention: MlaAttentionWeights[] = Array.from({ length: g.layers }, () => ({
    keptPairs: Array.from({ length: g.kvHeads }, () => Int32Array.from({ length: r / 2 }, (_, i) => i)),
    qProj: mat(g.heads * g.headDim, g.hidden),
    qBias: null,
    kRProj: mat(g.kvHeads * r, g.hidden),
    kRBias: null,
    spaces: [space(), space()],
    oProj: mat(g.hidden, g.heads * g.headDim),
  }));
  const weights = assembleMlaModel(config, shell, attention, r, { partialRopeVersion: "high", svdInitMethod: "random" });
  const cells = g.imageSide * g.imageSide;
  const vw = 256;
  const vision: VisionTowerWeights = {
    cells,
    patchDim: 192,
    width: vw,
    mlpWidth: 2 * vw,
    outDim: g.hidden,
    heads: 4,
    layerNormEps: 1e-5,
    patchEmbed: mat(vw, 192),
    patchEmbedBias: new Float32Array(vw),
    posEmbed: mat(cells, vw),
    norm1: ones(vw),
    norm1Bias: new Float32Array(vw),
    inProj: mat(3 * vw, vw),
    inProjBias: new Float32Array(3 * vw),
    outProj: mat(vw, vw),
    outProjBias: new Float32Array(vw),
    norm2: ones(vw),
    norm2Bias: new Float32Array(vw),
    mlp0: mat(2 * vw, vw),
    mlp0Bias: new Float32Array(2 * vw),
    mlp2: mat(vw, 2 * vw),
    mlp2Bias: new Float32Array(vw),
    mergerNorm: ones(vw),
    mergerNormBias: new Float32Array(vw),
    merger: mat(g.hidden, vw),
    mergerBias: new Float32Array(g.hidden),
    cellEmbed: mat(cells, g.hidden),
  };
  return createChatModel({
    ref: { id: "synthetic-mla", conversion: `random-seed${seed}-h${g.hidden}-l${g.layers}-dkv${g.dKv}` },
    weights,
    tokenizer: new WordTokenizer(vocab),
    vision: new TypeScriptVisionEncoder(vision),
    codec,
    rawConfig: raw,
  });
}
