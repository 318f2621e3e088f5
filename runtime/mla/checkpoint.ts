// MLA checkpoint layout (docs/method.md §10.4; docs/checkpoint.md): writes a converted decoder under the released tensor
// names plus `self_attn.rope_pairs` (int32 [n_kv, r/2]) per layer, and loads both our layout and the released one
// (whose kept pairs come from the side rank file, passed in as a tensor).

import type { TextModelConfig } from "../../checkpoint/config.ts";
import { parseModelConfig } from "../../checkpoint/config.ts";
import type { WritableDtype } from "../../checkpoint/dtype.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { mlaConfigJson, parseMlaConfig } from "../../checkpoint/mla-config.ts";
import type { TensorToWrite } from "../../checkpoint/safetensors-writer.ts";
import { detectTensorNaming, layerTensorNames, mlaLayerTensorNames, QWEN2_5_VL_NAMING, type TensorNaming } from "../../checkpoint/families/index.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { loadDecoderShell, type DecoderShellWeights } from "../weights.ts";
import { assembleMlaModel } from "./build.ts";
import { keptPairsFromRanks, validateKeptPairs } from "./kept-pairs.ts";
import type { LatentProjection, MlaAttentionWeights, MlaModelWeights } from "./weights.ts";

type FloatDtype = Exclude<WritableDtype, "I32">;

/** The shell (embeddings, norms, MLP, lm_head) as writer entries under `naming`. A tied lm_head is not written. */
export function shellTensors(shell: DecoderShellWeights, config: TextModelConfig, naming: TensorNaming, dtype: FloatDtype = "F32"): TensorToWrite[] {
  const d = config.hiddenSize;
  const f = config.intermediateSize;
  const v = config.vocabSize;
  const out: TensorToWrite[] = [
    { name: naming.embedTokens, dtype, shape: [v, d], data: shell.embedTokens },
    { name: naming.finalNorm, dtype, shape: [d], data: shell.finalNorm },
  ];
  if (!(config.tieWordEmbeddings && shell.lmHead === shell.embedTokens)) out.push({ name: naming.lmHead, dtype, shape: [v, d], data: shell.lmHead });
  shell.layers.forEach((lw, l) => {
    const n = layerTensorNames(naming, l);
    out.push(
      { name: n.inputNorm, dtype, shape: [d], data: lw.inputNorm },
      { name: n.postNorm, dtype, shape: [d], data: lw.postNorm },
      { name: n.gate, dtype, shape: [f, d], data: lw.gate },
      { name: n.up, dtype, shape: [f, d], data: lw.up },
      { name: n.down, dtype, shape: [d, f], data: lw.down },
    );
  });
  return out;
}

/** One converted layer's attention tensors; `ropePairs: false` gives exactly the released layout. */
export function mlaLayerTensors(
  a: MlaAttentionWeights,
  config: TextModelConfig,
  naming: TensorNaming,
  layer: number,
  options: { dtype?: FloatDtype; ropePairs?: boolean } = {},
): TensorToWrite[] {
  const dtype = options.dtype ?? "F32";
  const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh } = config;
  const n = mlaLayerTensorNames(naming, layer);
  const r = 2 * a.keptPairs[0].length;
  const D = a.spaces[0].downKv.length / d;
  const out: TensorToWrite[] = [
    { name: n.qWeight, dtype, shape: [nh * dh, d], data: a.qProj },
    { name: n.kRWeight, dtype, shape: [nkv * r, d], data: a.kRProj },
    { name: n.oWeight, dtype, shape: [d, nh * dh], data: a.oProj },
  ];
  if (a.qBias !== null) out.push({ name: n.qBias, dtype, shape: [nh * dh], data: a.qBias });
  if (a.kRBias !== null) out.push({ name: n.kRBias, dtype, shape: [nkv * r], data: a.kRBias });
  const spaceNames = a.spaces.length === 1 ? [n.shared] : [n.text, n.image]; // spaces[Modality.text], spaces[Modality.image]
  a.spaces.forEach((s, i) => {
    const sn = spaceNames[i];
    out.push(
      { name: sn.down, dtype, shape: [D, d], data: s.downKv },
      { name: sn.upK, dtype, shape: [nkv * (dh - r), D], data: s.upK },
      { name: sn.upV, dtype, shape: [nkv * dh, D], data: s.upV },
    );
    if (s.upKBias !== null) out.push({ name: sn.upKBias, dtype, shape: [nkv * (dh - r)], data: s.upKBias });
    if (s.upVBias !== null) out.push({ name: sn.upVBias, dtype, shape: [nkv * dh], data: s.upVBias });
  });
  if (options.ropePairs !== false) {
    const pairs = new Int32Array(nkv * (r / 2));
    a.keptPairs.forEach((p, g) => pairs.set(p, g * (r / 2)));
    out.push({ name: n.ropePairs, dtype: "I32", shape: [nkv, r / 2], data: pairs });
  }
  return out;
}

/** Every decoder tensor of a converted model in our layout (vision tensors are copied separately by the caller). */
export function mlaCheckpointTensors(
  model: MlaModelWeights,
  options: { naming?: TensorNaming; dtype?: FloatDtype; ropePairs?: boolean } = {},
): TensorToWrite[] {
  const naming = options.naming ?? QWEN2_5_VL_NAMING;
  const out = shellTensors(model.shell, model.config, naming, options.dtype);
  model.attention.forEach((a, l) => out.push(...mlaLayerTensors(a, model.config, naming, l, options)));
  return out;
}

/** config.json of a converted model: the base model's config plus `mha2mla` and `mla_edge`. */
export function mlaCheckpointConfig(model: MlaModelWeights, baseRawConfig: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return mlaConfigJson(baseRawConfig, {
    ropeDims: model.ropeDims,
    dKv: model.dKv,
    partialRopeVersion: model.conversion.partialRopeVersion,
    svdInitMethod: model.conversion.svdInitMethod,
    latentSpaces: model.latentSpaces,
  });
}

export interface LoadMlaOptions {
  readonly naming?: TensorNaming;
  /**
   * The released format's side rank file as a tensor ([L × n_kv × d_h] or [L × n_kv × d_h/2], rank per pair; pair kept
   * when rank < r/2). Required when the checkpoint has no `rope_pairs` tensors; ignored otherwise unless they disagree.
   */
  readonly ranks?: ArrayLike<number>;
}

async function optional(src: TensorSource, name: string, shape: number[]): Promise<Float32Array | null> {
  return src.has(name) ? src.readFloat32(name, shape) : null;
}

/** Loads a converted decoder in our layout or the released one (`config.json` parsed as `rawConfig`). */
export async function loadMlaModel(src: TensorSource, rawConfig: unknown, options: LoadMlaOptions = {}): Promise<MlaModelWeights> {
  const config = parseModelConfig(rawConfig);
  const info = parseMlaConfig(rawConfig);
  const naming = options.naming ?? detectTensorNaming(src.names());
  const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh, numLayers: L } = config;
  const r = info.ropeDims;
  const D = info.dKv * nkv;
  const first = mlaLayerTensorNames(naming, 0);
  const latentSpaces: 1 | 2 = info.latentSpaces ?? (src.has(first.image.down) ? 2 : 1);
  const hasPairs = src.has(first.ropePairs);

  let fromRanks: number[][][] | null = null;
  if (options.ranks !== undefined) fromRanks = keptPairsFromRanks(options.ranks, L, nkv, dh, r);
  else if (!hasPairs) {
    throw new CheckpointError(
      "bad_layout",
      "checkpoint has no self_attn.rope_pairs tensors (released MHA2MLA layout): pass the rank tensor of its mha2mla.qk_tensor_path file as options.ranks (checkpoint/families/mha2mla_released.ts resolveReleasedRanks reads it)",
    );
  }

  const shell = await loadDecoderShell(src, config, naming);
  const attention: MlaAttentionWeights[] = [];
  for (let l = 0; l < L; l++) {
    const n = mlaLayerTensorNames(naming, l);
    let pairs: number[][];
    if (hasPairs) {
      const flat = await src.readInt32(n.ropePairs, [nkv, r / 2]);
      pairs = Array.from({ length: nkv }, (_, g) => Array.from(flat.subarray((g * r) / 2, ((g + 1) * r) / 2)));
      if (fromRanks !== null && JSON.stringify(fromRanks[l]) !== JSON.stringify(pairs)) {
        throw new CheckpointError("bad_layout", `layer ${l}: rope_pairs in the checkpoint disagree with the given ranks`);
      }
    } else {
      pairs = fromRanks![l];
    }
    validateKeptPairs([pairs], 1, nkv, dh);
    const spaceNames = latentSpaces === 1 ? [n.shared] : [n.text, n.image];
    const spaces: LatentProjection[] = [];
    for (const sn of spaceNames) {
      spaces.push({
        downKv: await src.readFloat32(sn.down, [D, d]),
        upK: await src.readFloat32(sn.upK, [nkv * (dh - r), D]),
        upKBias: await optional(src, sn.upKBias, [nkv * (dh - r)]),
        upV: await src.readFloat32(sn.upV, [nkv * dh, D]),
        upVBias: await optional(src, sn.upVBias, [nkv * dh]),
      });
    }
    attention.push({
      keptPairs: pairs.map((p) => Int32Array.from(p)),
      qProj: await src.readFloat32(n.qWeight, [nh * dh, d]),
      qBias: await optional(src, n.qBias, [nh * dh]),
      kRProj: await src.readFloat32(n.kRWeight, [nkv * r, d]),
      kRBias: await optional(src, n.kRBias, [nkv * r]),
      spaces,
      oProj: await src.readFloat32(n.oWeight, [d, nh * dh]),
    });
  }
  return assembleMlaModel(config, shell, attention, r, { partialRopeVersion: info.partialRopeVersion, svdInitMethod: info.svdInitMethod });
}

/** Geometry of one converted layer, known before it is built (shapes of its tensors). */
export interface MlaLayerShape {
  readonly ropeDims: number;
  readonly dKv: number;
  readonly latentSpaces: 1 | 2;
  /** Whether q / k_r / up_k / up_v carry biases (Qwen: true; Llama: false). */
  readonly biases: boolean;
}

/**
 * Writer entries for one layer whose weights are built on demand: `build` runs when the first of the layer's tensors
 * is written and its result is dropped once all of them are, so converting a 7B model holds about one layer at a time
 * (the writer emits a layer's `self_attn.*` tensors consecutively, being name-sorted).
 */
export function streamingMlaLayerTensors(
  config: TextModelConfig,
  naming: TensorNaming,
  layer: number,
  shape: MlaLayerShape,
  build: () => Promise<MlaAttentionWeights>,
  options: { dtype?: FloatDtype; ropePairs?: boolean } = {},
): TensorToWrite[] {
  const d = config.hiddenSize;
  const placeholder: MlaAttentionWeights = {
    keptPairs: Array.from({ length: config.numKvHeads }, () => new Int32Array(shape.ropeDims / 2)),
    qProj: new Float32Array(0),
    qBias: shape.biases ? new Float32Array(0) : null,
    kRProj: new Float32Array(0),
    kRBias: shape.biases ? new Float32Array(0) : null,
    spaces: Array.from({ length: shape.latentSpaces }, () => ({
      downKv: new Float32Array(shape.dKv * config.numKvHeads * d),
      upK: new Float32Array(0),
      upKBias: shape.biases ? new Float32Array(0) : null,
      upV: new Float32Array(0),
      upVBias: shape.biases ? new Float32Array(0) : null,
    })),
    oProj: new Float32Array(0),
  };
  const layout = mlaLayerTensors(placeholder, config, naming, layer, options);
  let pending: Promise<TensorToWrite[]> | null = null;
  let remaining = layout.length;
  return layout.map((entry, i) => ({
    name: entry.name,
    dtype: entry.dtype,
    shape: entry.shape,
    data: async () => {
      pending ??= build().then((a) => {
        const real = mlaLayerTensors(a, config, naming, layer, options);
        if (real.length !== layout.length || real.some((t, k) => t.name !== layout[k].name || t.shape.join() !== layout[k].shape.join())) {
          throw new CheckpointError("shape_mismatch", `layer ${layer}: built weights do not match the declared shape ${JSON.stringify(shape)}`);
        }
        return real;
      });
      const real = await pending;
      if (--remaining === 0) pending = null;
      const data = real[i].data;
      return typeof data === "function" ? data() : data;
    },
  }));
}
