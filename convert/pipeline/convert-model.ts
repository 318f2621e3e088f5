// The conversion pipeline (docs/method.md §3–§6): calibration captures → kept RoPE pairs per (layer, KV head) → per-layer
// weight surgery with the chosen low-rank factorisation → the MLA model. Plain functions: the CLI and tests call them.

import type { TextModelConfig } from "../../checkpoint/config.ts";
import { captureCalibration, type SequenceCapture } from "../calibration/capture.ts";
import type { CalibrationSequence } from "../calibration/calib-set.ts";
import { Modality } from "../../format/cache-spec.ts";
import { assembleMlaModel, buildMlaAttention } from "../../runtime/mla/build.ts";
import type { ImageGrid } from "../../runtime/rope-index.ts";
import type { VisionTowerWeights } from "../../runtime/vision/toy-tower.ts";
import type { MlaAttentionWeights, MlaModelWeights } from "../../runtime/mla/weights.ts";
import type { GqaModelWeights } from "../../runtime/weights.ts";
import { needsCalibration, selectKeptPairs, type PairSelection, type RopeStrategy } from "../rope/select.ts";
import { ConversionError } from "./errors.ts";
import { kvFactoriser, svdMethodNeedsCalibration, type SvdMethod } from "./factorisers.ts";
import { modalityMoments, type LayerMoments } from "./moments.ts";
import { ProgressBar, type ProgressSink } from "./progress.ts";

export interface ConvertOptions {
  readonly strategy: RopeStrategy;
  /** r: rope dims kept per KV head (even). */
  readonly ropeDims: number;
  readonly svd: SvdMethod;
  /** d_kv: latent width per KV head (ignored for svd "none"). */
  readonly dKv: number;
  /** MD-SVD eigen-damping: eigenvalues of S below damping·λ_max are raised to it (fixture README: 1e-3). */
  readonly damping?: number;
}

export interface CalibrationInput {
  readonly sequences: readonly CalibrationSequence[];
  readonly vision?: VisionTowerWeights;
  readonly imageGrid?: ImageGrid;
}

export interface ConversionResult {
  readonly model: MlaModelWeights;
  readonly selection: PairSelection;
  /** Calibration tokens per modality (0 when no calibration ran). */
  readonly calibrationTokens: { readonly text: number; readonly image: number };
}

export const DEFAULT_DAMPING = 1e-3;

/** Model families whose decoder the runtime and the weight surgery implement (Qwen2 / Qwen2-VL / Qwen2.5-VL, Llama). */
const SUPPORTED_MODEL_TYPES = ["qwen2_5_vl", "qwen2_vl", "qwen2", "llama", "llava_next", "llava"];

/** Refuses what the converter cannot do, before any work: unknown architectures, bad r, d_kv beyond the rank. */
export function validateConversion(config: TextModelConfig, opts: ConvertOptions): void {
  if (!SUPPORTED_MODEL_TYPES.includes(config.modelType)) {
    throw new ConversionError(
      "unsupported_architecture",
      `unsupported architecture model_type "${config.modelType}"; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
    );
  }
  if (config.unsupportedRopeScaling !== null) {
    throw new ConversionError("unsupported_architecture", `unsupported architecture: rope_scaling type "${config.unsupportedRopeScaling}" is not implemented`);
  }
  const { numKvHeads: nkv, headDim: dh, hiddenSize: d } = config;
  if (!Number.isInteger(opts.ropeDims) || opts.ropeDims < 2 || opts.ropeDims % 2 !== 0 || opts.ropeDims > dh) {
    throw new ConversionError("bad_options", `--rope-dims must be an even integer in [2, ${dh}] (head_dim ${dh}), got ${opts.ropeDims}`);
  }
  if (opts.svd !== "none") {
    // [W_k,nope; W_v] is n_kv·(d_c + d_h) × d: a latent wider than its rank adds nothing but bytes.
    const maxRank = Math.min(nkv * (dh - opts.ropeDims + dh), d);
    // split gives K and V half of D_c each, so the key half is bounded by W_k,nope's own rank
    const maxDc = opts.svd === "split" ? Math.min(maxRank, 2 * Math.min(nkv * (dh - opts.ropeDims), d)) : maxRank;
    const maxDkv = Math.floor(maxDc / nkv);
    const dc = nkv * opts.dKv;
    if (!Number.isInteger(opts.dKv) || opts.dKv < 1) throw new ConversionError("bad_options", `--d-kv must be a positive integer, got ${opts.dKv}`);
    if (opts.svd === "split" && dc % 2 !== 0) throw new ConversionError("bad_options", `split SVD halves the latent D_c = ${dc} between K and V: it must be even`);
    if (dc > maxDc) {
      throw new ConversionError(
        "d_kv_too_large",
        `--d-kv ${opts.dKv} is too large: D_c = n_kv·d_kv = ${dc} exceeds ${maxDc === maxRank ? `the rank ${maxRank} of [W_k,nope; W_v]` : `${maxDc}, twice the rank of W_k,nope (split SVD)`} (n_kv ${nkv}, head_dim ${dh}, ` +
          `rope dims ${opts.ropeDims}, hidden ${d}); use --d-kv ≤ ${maxDkv}`,
      );
    }
  }
}

/** Runs the whole conversion on a model held in memory. Progress lines go to `progress` (stderr in the CLI). */
export function convertModel(orig: GqaModelWeights, opts: ConvertOptions, calibration: CalibrationInput | null, progress?: ProgressSink): ConversionResult {
  const config = orig.config;
  validateConversion(config, opts);
  const needData = needsCalibration(opts.strategy) || svdMethodNeedsCalibration(opts.svd);
  if (needData && (calibration === null || calibration.sequences.length === 0)) {
    const who = needsCalibration(opts.strategy) ? `the ${opts.strategy} strategy` : `${opts.svd} SVD`;
    throw new ConversionError("needs_calibration", `${who} needs calibration data (--calib FILE)`);
  }
  let captures: SequenceCapture[] = [];
  if (needData && calibration) {
    const bar = progress ? new ProgressBar(progress, "calibrate", calibration.sequences.length) : null;
    const every = Math.max(1, Math.ceil(calibration.sequences.length / 8));
    captures = captureCalibration(orig, calibration.sequences, {
      vision: calibration.vision,
      imageGrid: calibration.imageGrid,
      onSequence: (done, total) => {
        if (done % every === 0 || done === total) bar?.at(done, `sequence ${done}/${total}`);
      },
    });
  }
  const L = config.numLayers;
  const rankBar = progress && opts.strategy === "mkl" ? new ProgressBar(progress, "rank", L) : null;
  const selection = selectKeptPairs(opts.strategy, config, opts.ropeDims, captures, (l) => rankBar?.tick(`layer ${l + 1}/${L}`));
  const moments: LayerMoments[] | null = svdMethodNeedsCalibration(opts.svd) ? modalityMoments(captures, config) : null;
  const tokens = { text: 0, image: 0 };
  for (const c of captures) {
    for (const m of c.modality) {
      if (m === Modality.image) tokens.image++;
      else tokens.text++;
    }
  }
  const model = buildConvertedModel(orig, selection, opts, moments, progress);
  return { model, selection, calibrationTokens: tokens };
}

/**
 * Weight surgery + factorisation of every layer for an already chosen pair selection (the report reuses one selection
 * and one set of moments across many SVD settings).
 */
export function buildConvertedModel(
  orig: GqaModelWeights,
  selection: PairSelection,
  opts: Pick<ConvertOptions, "svd" | "dKv" | "damping">,
  moments: readonly LayerMoments[] | null,
  progress?: ProgressSink,
): MlaModelWeights {
  const config = orig.config;
  if (svdMethodNeedsCalibration(opts.svd)) {
    if (moments === null) throw new ConversionError("needs_calibration", `${opts.svd} SVD needs calibration data (--calib FILE)`);
    const m = moments[0];
    if (m === undefined || m.textTokens === 0 || m.imageTokens === 0) {
      throw new ConversionError("empty_modality", `MD-SVD needs calibration tokens of both modalities; got ${m?.textTokens ?? 0} text and ${m?.imageTokens ?? 0} image tokens`);
    }
  }
  const factorise = kvFactoriser(opts.svd, opts.dKv, { moments, damping: opts.damping ?? DEFAULT_DAMPING });
  const L = config.numLayers;
  const bar = progress ? new ProgressBar(progress, "convert", L) : null;
  const attention: MlaAttentionWeights[] = [];
  for (let l = 0; l < L; l++) {
    attention.push(buildMlaAttention(orig.attention[l], config, l, selection.keptPairs[l], factorise));
    bar?.tick(`layer ${l + 1}/${L}`);
  }
  return assembleMlaModel(config, orig.shell, attention, selection.ropeDims, { partialRopeVersion: selection.strategy, svdInitMethod: svdMethodName(opts.svd) });
}

/** The `mha2mla.svd_init_method` value written for each method. */
export function svdMethodName(m: SvdMethod): string {
  return m === "md" ? "md-svd" : m;
}
