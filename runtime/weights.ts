// Weights of the original (GQA) text decoder, loaded tensor by tensor from any TensorSource.

import type { TextModelConfig } from "../checkpoint/config.ts";
import { CheckpointError } from "../checkpoint/errors.ts";
import { detectTensorNaming, layerTensorNames, type TensorNaming } from "../checkpoint/families/index.ts";
import type { TensorSource } from "../checkpoint/tensor-source.ts";

/** Per-layer weights other than attention: the two RMSNorms and the SwiGLU MLP. */
export interface LayerShellWeights {
  readonly inputNorm: Float32Array;
  readonly postNorm: Float32Array;
  /** [intermediate × hidden] */
  readonly gate: Float32Array;
  readonly up: Float32Array;
  /** [hidden × intermediate] */
  readonly down: Float32Array;
}

/** Everything but attention; shared unchanged by the original and the MLA-converted model. */
export interface DecoderShellWeights {
  /** [vocab × hidden] */
  readonly embedTokens: Float32Array;
  readonly finalNorm: Float32Array;
  /** [vocab × hidden]; the embedding itself when tied. */
  readonly lmHead: Float32Array;
  readonly layers: readonly LayerShellWeights[];
}

/** Original attention of one layer, PyTorch Linear layout (row-major [out × in]). */
export interface GqaAttentionWeights {
  /** [n_h·d_h × hidden] */
  readonly qProj: Float32Array;
  readonly qBias: Float32Array | null;
  /** [n_kv·d_h × hidden] */
  readonly kProj: Float32Array;
  readonly kBias: Float32Array | null;
  readonly vProj: Float32Array;
  readonly vBias: Float32Array | null;
  /** [hidden × n_h·d_h] */
  readonly oProj: Float32Array;
}

export interface GqaModelWeights {
  readonly config: TextModelConfig;
  readonly shell: DecoderShellWeights;
  readonly attention: readonly GqaAttentionWeights[];
}

async function optionalBias(src: TensorSource, name: string, size: number, required: boolean): Promise<Float32Array | null> {
  if (!src.has(name)) {
    if (required) throw new CheckpointError("missing_tensor", `config says the attention has biases but ${name} is missing`);
    return null;
  }
  return src.readFloat32(name, [size]);
}

export async function loadLayerShell(src: TensorSource, config: TextModelConfig, naming: TensorNaming, layer: number): Promise<LayerShellWeights> {
  const n = layerTensorNames(naming, layer);
  const d = config.hiddenSize;
  const f = config.intermediateSize;
  return {
    inputNorm: await src.readFloat32(n.inputNorm, [d]),
    postNorm: await src.readFloat32(n.postNorm, [d]),
    gate: await src.readFloat32(n.gate, [f, d]),
    up: await src.readFloat32(n.up, [f, d]),
    down: await src.readFloat32(n.down, [d, f]),
  };
}

export async function loadDecoderShell(src: TensorSource, config: TextModelConfig, naming: TensorNaming): Promise<DecoderShellWeights> {
  const d = config.hiddenSize;
  const v = config.vocabSize;
  const embedTokens = await src.readFloat32(naming.embedTokens, [v, d]);
  let lmHead: Float32Array;
  if (src.has(naming.lmHead)) lmHead = await src.readFloat32(naming.lmHead, [v, d]);
  else if (config.tieWordEmbeddings) lmHead = embedTokens;
  else throw new CheckpointError("missing_tensor", `${naming.lmHead} is missing and tie_word_embeddings is false`);
  const layers: LayerShellWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) layers.push(await loadLayerShell(src, config, naming, l));
  return { embedTokens, finalNorm: await src.readFloat32(naming.finalNorm, [d]), lmHead, layers };
}

/** One layer's original attention; the conversion CLI reads layers one at a time with this. */
export async function loadGqaAttention(src: TensorSource, config: TextModelConfig, naming: TensorNaming, layer: number): Promise<GqaAttentionWeights> {
  const n = layerTensorNames(naming, layer);
  const d = config.hiddenSize;
  const qDim = config.numHeads * config.headDim;
  const kvDim = config.numKvHeads * config.headDim;
  const bias = config.attentionBias;
  return {
    qProj: await src.readFloat32(n.qWeight, [qDim, d]),
    qBias: await optionalBias(src, n.qBias, qDim, bias),
    kProj: await src.readFloat32(n.kWeight, [kvDim, d]),
    kBias: await optionalBias(src, n.kBias, kvDim, bias),
    vProj: await src.readFloat32(n.vWeight, [kvDim, d]),
    vBias: await optionalBias(src, n.vBias, kvDim, bias),
    oProj: await src.readFloat32(n.oWeight, [d, qDim]),
  };
}

/** Loads the whole original decoder (for models that fit in memory, e.g. the fixture). */
export async function loadGqaModel(src: TensorSource, config: TextModelConfig, naming?: TensorNaming): Promise<GqaModelWeights> {
  const nm = naming ?? detectTensorNaming(src.names());
  const shell = await loadDecoderShell(src, config, nm);
  const attention: GqaAttentionWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) attention.push(await loadGqaAttention(src, config, nm, l));
  return { config, shell, attention };
}
