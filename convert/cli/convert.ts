// `mla-edge convert`: original HF checkpoint → mla-edge MLA checkpoint (partial RoPE by strategy, low-rank KV by joint /
// split / MD-SVD), with a progress bar and ETA per phase on stderr. The vision tower, tokenizer and other side files
// are copied unchanged so the output folder evaluates and serves like the input.

import { copyFile, mkdir, readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { WritableDtype } from "../../checkpoint/dtype.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import type { TensorToWrite } from "../../checkpoint/safetensors-writer.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { openCheckpointDir, writeShardedCheckpoint } from "../../checkpoint/io.node.ts";
import { readCalibrationSet } from "../calibration/calib-set.ts";
import { CalibrationError } from "../calibration/errors.ts";
import { mlaCheckpointConfig, mlaCheckpointTensors } from "../../runtime/mla/checkpoint.ts";
import { MlaBuildError } from "../../runtime/mla/build.ts";
import { loadGqaModel, type GqaModelWeights } from "../../runtime/weights.ts";
import { loadVisionSide, VISION_FILE } from "../eval/vlm-dir.ts";
import { convertModel, DEFAULT_DAMPING, validateConversion, type CalibrationInput, type ConversionResult, type ConvertOptions } from "../pipeline/convert-model.ts";
import { ConversionError } from "../pipeline/errors.ts";
import { SVD_METHODS, svdMethodNeedsCalibration, type SvdMethod } from "../pipeline/factorisers.ts";
import { RopeSelectionError } from "../rope/errors.ts";
import { defaultRopeDims, needsCalibration, ROPE_STRATEGIES, type RopeStrategy } from "../rope/select.ts";
import { defineCommand, parseIntegerFlag } from "./command.ts";
import { UserError } from "./errors.ts";
import { asUserError } from "./eval.ts";

/** Calibration sequences used unless --calib-count says otherwise (the fixture README's reference used 64). */
export const DEFAULT_CALIBRATION_SEQUENCES = 64;

/** Files next to the weights that the converted folder needs unchanged. */
const SIDE_FILES = [VISION_FILE, "vision.onnx", "tokenizer.json", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json", "generation_config.json"];

/** Vision-tower tensors stored with the decoder (Qwen2.5-VL `visual.*` / `model.visual.*`): copied byte for byte. */
export function isVisionTensor(name: string): boolean {
  return name.startsWith("visual.") || name.startsWith("model.visual.");
}

const PASS_THROUGH_DTYPES: readonly string[] = ["F32", "F16", "BF16", "I32"];

/** The source's vision tensors as tensors to write, each read from the source only when written. */
export function visionPassThrough(source: TensorSource): TensorToWrite[] {
  return source
    .names()
    .filter(isVisionTensor)
    .map((name) => {
      const info = source.info(name);
      if (!PASS_THROUGH_DTYPES.includes(info.dtype)) throw new CheckpointError("bad_header", `vision tensor ${name} has dtype ${info.dtype}, which the writer does not copy`);
      return { name, dtype: info.dtype as WritableDtype, shape: info.shape, data: () => source.readBytes(name) };
    });
}

function toUserError(e: unknown): unknown {
  if (e instanceof ConversionError) {
    return new UserError(e.code === "needs_calibration" ? "usage" : e.code === "empty_modality" ? "invalid_file" : "invalid_argument", e.message);
  }
  if (e instanceof RopeSelectionError) return new UserError("invalid_argument", e.message);
  if (e instanceof CalibrationError) return new UserError("invalid_file", e.message);
  if (e instanceof CheckpointError && e.code === "missing_tensor") return new UserError("invalid_file", `missing tensor: ${e.message}`);
  if (e instanceof CheckpointError && e.code === "shape_mismatch") return new UserError("invalid_file", `shape mismatch: ${e.message}`);
  if (e instanceof MlaBuildError) return new UserError("invalid_argument", e.message);
  return asUserError(e);
}

/** Writes a converted model: weights (our layout, rope pairs inside), config.json with mha2mla, side files copied. */
export async function writeMlaDir(
  out: string,
  result: ConversionResult,
  sourceDir: string,
  baseRawConfig: Record<string, unknown>,
  extraTensors: readonly TensorToWrite[] = [],
): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const files = await writeShardedCheckpoint(out, [...mlaCheckpointTensors(result.model), ...extraTensors]);
  await writeFile(join(out, "config.json"), JSON.stringify(mlaCheckpointConfig(result.model, baseRawConfig), null, 2) + "\n");
  const present = new Set(await readdir(sourceDir));
  for (const f of SIDE_FILES) {
    if (present.has(f)) {
      await copyFile(join(sourceDir, f), join(out, f));
      files.push(f);
    }
  }
  return ["config.json", ...files];
}

export const convertCommand = defineCommand({
  name: "convert",
  description: "convert an HF checkpoint to MLA (partial RoPE + low-rank latent KV), training-free",
  args: {
    model: { type: "string", required: true, valueName: "DIR", description: "original HF checkpoint folder (config.json + safetensors)" },
    out: { type: "string", required: true, valueName: "DIR", description: "output folder for the MLA checkpoint" },
    "d-kv": { type: "string", valueName: "N", description: "latent width per KV head d_kv (required unless --svd none)" },
    "rope-dims": { type: "string", valueName: "R", description: "rope dims kept per KV head, 2 per frequency pair (default head_dim/4)" },
    strategy: { type: "string", default: "mkl", choices: ROPE_STRATEGIES, description: "partial-RoPE strategy (mkl = modality-adaptive attention-KL ranking)" },
    svd: { type: "string", default: "md", choices: SVD_METHODS, description: "low-rank method: md (MD-SVD per modality), joint, split, or none (partial RoPE only)" },
    calib: { type: "string", valueName: "FILE", description: "calibration sequences (JSON lines: input_ids, patches_u8); needed by 2-norm, mkl and md" },
    "calib-count": { type: "string", default: String(DEFAULT_CALIBRATION_SEQUENCES), valueName: "N", description: "calibration sequences to use" },
    damping: { type: "string", default: String(DEFAULT_DAMPING), valueName: "λ", description: "MD-SVD eigen-damping relative to the largest eigenvalue" },
    json: { type: "boolean", description: "print a JSON summary (files, kept pairs) on stdout" },
  },
  examples: [
    "mla-edge convert --model fixtures/tiny-qwen-vl --out out/tiny-mla --d-kv 8 --rope-dims 8 --strategy mkl --svd md --calib fixtures/tiny-qwen-vl/calib.jsonl",
    "mla-edge convert --model fixtures/tiny-qwen-vl --out out/tiny-high --d-kv 16 --strategy high --svd joint",
  ],
  async handler(args, ctx) {
    const strategy = args.strategy as RopeStrategy;
    const svd = args.svd as SvdMethod;
    if (svd !== "none" && args["d-kv"] === undefined) throw new UserError("usage", `missing required flag --d-kv (needed by --svd ${svd})`);
    const dKv = args["d-kv"] === undefined ? 0 : parseIntegerFlag("d-kv", args["d-kv"], { min: 1 });
    const calibCount = parseIntegerFlag("calib-count", args["calib-count"], { min: 1 });
    const damping = Number(args.damping);
    if (!(damping >= 0 && damping < 1)) throw new UserError("invalid_argument", `--damping must be a number in [0, 1), got "${args.damping}"`);
    const needData = needsCalibration(strategy) || svdMethodNeedsCalibration(svd);
    if (needData && args.calib === undefined) {
      throw new UserError("usage", `--calib FILE is required: ${needsCalibration(strategy) ? `the ${strategy} strategy ranks` : `--svd ${svd} whitens`} on calibration data`);
    }
    const modelDir = resolve(ctx.cwd, args.model);
    const outDir = resolve(ctx.cwd, args.out);
    const log = ctx.io.stderr;
    const started = performance.now();
    try {
      const ckpt = await openCheckpointDir(modelDir);
      let orig: GqaModelWeights;
      let opts: ConvertOptions;
      try {
        const ropeDims = args["rope-dims"] === undefined ? defaultRopeDims(ckpt.config.headDim) : parseIntegerFlag("rope-dims", args["rope-dims"], { min: 0 });
        opts = { strategy, ropeDims, svd, dKv, damping };
        validateConversion(ckpt.config, opts); // before reading any weight
        log(`reading ${modelDir} (${ckpt.config.modelType}, ${ckpt.config.numLayers} layers)\n`);
        orig = await loadGqaModel(ckpt.source, ckpt.config);
      } finally {
        await ckpt.source.close();
      }
      let calibration: CalibrationInput | null = null;
      if (needData) {
        const sequences = await readCalibrationSet(resolve(ctx.cwd, args.calib!), calibCount);
        const side = await loadVisionSide(modelDir, ckpt.rawConfig);
        calibration = { sequences, vision: side.vision, imageGrid: side.imageGrid };
      }
      const result = convertModel(orig, opts, calibration, log);
      log(`writing ${outDir}\n`);
      // the vision tower stored with the decoder (Qwen2.5-VL visual.*) goes into the output unchanged
      const again = await openCheckpointDir(modelDir);
      let files: string[];
      try {
        files = await writeMlaDir(outDir, result, modelDir, ckpt.rawConfig, visionPassThrough(again.source));
      } finally {
        await again.source.close();
      }
      const seconds = (performance.now() - started) / 1000;
      log(`done in ${seconds.toFixed(1)}s\n`);
      const m = result.model;
      const summary = {
        out: outDir,
        files,
        strategy,
        svd,
        dKv: m.dKv,
        ropeDims: m.ropeDims,
        latentSpaces: m.latentSpaces,
        keptPairs: result.selection.keptPairs,
        calibrationTokens: result.calibrationTokens,
        seconds,
      };
      if (args.json) ctx.io.stdout(JSON.stringify(summary) + "\n");
      else ctx.io.stdout(`wrote ${outDir}: ${strategy} + ${svd}, d_kv ${m.dKv}, rope dims ${m.ropeDims}, ${m.latentSpaces} latent space(s)\n`);
      return 0;
    } catch (e) {
      throw toUserError(e);
    }
  },
});
