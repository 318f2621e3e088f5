// `mla-edge convert`: original HF checkpoint → mla-edge MLA checkpoint (partial RoPE by strategy, low-rank KV by joint /
// split / MD-SVD), with a progress bar and ETA per phase on stderr. The conversion streams layer by layer from the lazy
// checkpoint (convert/pipeline/stream-convert.ts) into an HF-style sharded checkpoint (bf16 by default) with the vision
// tower, tokenizer and other side files copied, so the output folder evaluates, generates and packs like the input.

import type { GpuContext } from "../../kernels/gpu-context.ts";
import { nodeGpuContext } from "../../runtime/gpu/node-gpu.node.ts";
import { copyFile, mkdir, readdir, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { WritableDtype } from "../../checkpoint/dtype.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import type { TensorToWrite } from "../../checkpoint/safetensors-writer.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { openCheckpointDir, writeShardedCheckpoint } from "../../checkpoint/io.node.ts";
import type { TextModelConfig } from "../../checkpoint/config.ts";
import { isVisionTensor } from "../../checkpoint/families/index.ts";
import { CalibrationError } from "../calibration/errors.ts";
import { mlaCheckpointConfig, mlaCheckpointTensors } from "../../runtime/mla/checkpoint.ts";
import { MlaBuildError } from "../../runtime/mla/build.ts";
import { runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { isChatCalibration, readChatCalibration } from "../calibration/chat-calib.ts";
import type { CalibrationForward, CalibrationSample } from "../calibration/layer-forward.ts";
import { parseCalibrationSet } from "../calibration/calib-set.ts";
import { loadVisionSide } from "../eval/vlm-dir.ts";
import { DEFAULT_DAMPING, validateConversion, type ConversionResult, type ConvertOptions } from "../pipeline/convert-model.ts";
import { OUTPUT_DTYPES, SIDE_FILES as STREAM_SIDE_FILES, streamConvert, type OutputDtype } from "../pipeline/stream-convert.ts";
import { ProgressBar } from "../pipeline/progress.ts";
import { readTextFile } from "../jsonl-records.ts";
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
const SIDE_FILES = STREAM_SIDE_FILES;


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

/** Writes a converted model held in memory (convertModel; the CLI streams instead): weights (our layout, rope pairs inside), config.json with mha2mla, side files copied. */
export async function writeMlaDir(
  out: string,
  result: ConversionResult,
  sourceDir: string,
  baseRawConfig: Record<string, unknown>,
  extraTensors: readonly TensorToWrite[] = [],
  dtype: "F32" | "F16" | "BF16" = "F32",
): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const files = await writeShardedCheckpoint(out, [...mlaCheckpointTensors(result.model, { dtype }), ...extraTensors]);
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

/**
 * Calibration samples from `--calib`: a chat jsonl (OpenAI-style messages with images, through the model's own
 * processor and vision tower) or the tiny fixture's records (`input_ids`, `patches_u8`, through its toy tower).
 */
export async function loadCalibrationSamples(
  path: string,
  modelDir: string,
  config: TextModelConfig,
  rawConfig: Record<string, unknown>,
  limits: { sequences: number; tokens: number },
  log: (line: string) => void,
  forward: CalibrationForward = "wasm-f32",
): Promise<CalibrationSample[]> {
  const text = await readTextFile(path, (m) => new CalibrationError("bad_calibration_file", m));
  if (isChatCalibration(text)) {
    const ck = await openCheckpointDir(modelDir);
    try {
      let bar: ProgressBar | null = null;
      return await readChatCalibration(path, modelDir, ck.source, rawConfig, {
        limitSequences: limits.sequences,
        limitTokens: limits.tokens,
        forward,
        onSequence: (done, total, tokens) => {
          bar ??= new ProgressBar(log, "inputs", total);
          bar.at(done, `conversation ${done}/${total}, ${tokens} tokens`);
        },
      });
    } finally {
      await ck.source.close();
    }
  }
  const sequences = parseCalibrationSet(text, path, limits.sequences);
  const pad = config.tokens.imagePad;
  const pads = (ids: readonly number[]) => (pad === null ? 0 : ids.filter((t) => t === pad).length);
  const side = sequences.some((s) => pads(s.inputIds) > 0) ? await loadVisionSide(modelDir, rawConfig) : null;
  const out: CalibrationSample[] = [];
  let tokens = 0;
  for (const [i, s] of sequences.entries()) {
    if (out.length > 0 && tokens + s.inputIds.length > limits.tokens) break;
    const n = pads(s.inputIds);
    if (n === 0) out.push({ inputIds: s.inputIds });
    else {
      const vision = side!.vision;
      const images = s.patches.length / (vision.cells * vision.patchDim);
      if (!Number.isInteger(images) || images * vision.cells !== n) {
        throw new CalibrationError("bad_sequence", `calibration sequence ${i}: ${n} image-pad tokens but patches for ${images} images of ${vision.cells} cells`);
      }
      out.push({ inputIds: s.inputIds, imageEmbeds: runVisionTower(vision, s.patches, images), imageGrids: new Array(images).fill(side!.imageGrid) });
    }
    tokens += s.inputIds.length;
  }
  return out;
}

export const convertCommand = defineCommand({
  name: "convert",
  description: "convert an HF checkpoint to MLA (partial RoPE + low-rank latent KV), training-free, layer by layer",
  args: {
    model: { type: "string", required: true, valueName: "DIR", description: "original HF checkpoint folder (config.json + safetensors, sharded or not)" },
    out: { type: "string", required: true, valueName: "DIR", description: "output folder for the MLA checkpoint (must not exist or be empty)" },
    "d-kv": { type: "string", valueName: "N", description: "latent width per KV head d_kv (required unless --svd none)" },
    "rope-dims": { type: "string", valueName: "R", description: "rope dims kept per KV head, 2 per frequency pair (default head_dim/4)" },
    strategy: { type: "string", default: "mkl", choices: ROPE_STRATEGIES, description: "partial-RoPE strategy (mkl = modality-adaptive attention-KL ranking)" },
    svd: { type: "string", default: "md", choices: SVD_METHODS, description: "low-rank method: md (MD-SVD per modality), joint, split, or none (partial RoPE only)" },
    calib: {
      type: "string",
      valueName: "FILE",
      description: "calibration jsonl: chat conversations ({\"messages\": [...]} with image_url parts) or the fixture's input_ids records; needed by 2-norm, mkl and md",
    },
    "calib-count": { type: "string", default: String(DEFAULT_CALIBRATION_SEQUENCES), valueName: "N", description: "calibration sequences to use at most" },
    "calib-limit": { type: "string", valueName: "TOKENS", description: "calibration tokens to use at most (whole conversations; the first is always used)" },
    damping: { type: "string", default: String(DEFAULT_DAMPING), valueName: "λ", description: "MD-SVD eigen-damping relative to the largest eigenvalue" },
    forward: {
      type: "string",
      default: "auto",
      choices: ["auto", "webgpu-f32", "wasm-f32", "reference"],
      description:
        "calibration forward: auto (webgpu-f32 when dawn.node finds a GPU, else wasm-f32), webgpu-f32 (f32 projections on the GPU), wasm-f32 (SIMD f32 projections on every core) or reference (the runtime's f64 ops, slow)",
    },
    dtype: { type: "string", default: "bf16", choices: OUTPUT_DTYPES, description: "output float dtype of the decoder tensors (visual.* keep theirs)" },
    json: { type: "boolean", description: "print a JSON summary (files, kept pairs, timings) on stdout" },
  },
  examples: [
    "mla-edge convert --model fixtures/tiny-qwen-vl --out out/tiny-mla --d-kv 8 --rope-dims 8 --strategy mkl --svd md --calib fixtures/tiny-qwen-vl/calib.jsonl",
    "mla-edge convert --model Qwen2.5-VL-7B-Instruct --out qwen-mla --d-kv 64 --rope-dims 32 --strategy mkl --svd md --calib chats.jsonl --calib-limit 32768",
    "mla-edge convert --model fixtures/tiny-qwen-vl --out out/tiny-high --d-kv 16 --strategy high --svd joint",
  ],
  async handler(args, ctx) {
    const strategy = args.strategy as RopeStrategy;
    const svd = args.svd as SvdMethod;
    if (svd !== "none" && args["d-kv"] === undefined) throw new UserError("usage", `missing required flag --d-kv (needed by --svd ${svd})`);
    const dKv = args["d-kv"] === undefined ? 0 : parseIntegerFlag("d-kv", args["d-kv"], { min: 1 });
    const calibCount = parseIntegerFlag("calib-count", args["calib-count"], { min: 1 });
    const calibLimit = args["calib-limit"] === undefined ? Infinity : parseIntegerFlag("calib-limit", args["calib-limit"], { min: 1 });
    const damping = Number(args.damping);
    if (!(damping >= 0 && damping < 1)) throw new UserError("invalid_argument", `--damping must be a number in [0, 1), got "${args.damping}"`);
    const needData = needsCalibration(strategy) || svdMethodNeedsCalibration(svd);
    if (needData && args.calib === undefined) {
      throw new UserError("usage", `--calib FILE is required: ${needsCalibration(strategy) ? `the ${strategy} strategy ranks` : `--svd ${svd} whitens`} on calibration data`);
    }
    const modelDir = resolve(ctx.cwd, args.model);
    const outDir = resolve(ctx.cwd, args.out);
    const log = ctx.io.stderr;
    try {
      const ckpt = await openCheckpointDir(modelDir);
      await ckpt.source.close();
      const ropeDims = args["rope-dims"] === undefined ? defaultRopeDims(ckpt.config.headDim) : parseIntegerFlag("rope-dims", args["rope-dims"], { min: 0 });
      const opts: ConvertOptions = { strategy, ropeDims, svd, dKv, damping };
      validateConversion(ckpt.config, opts); // before reading any weight
      log(`converting ${modelDir} (${ckpt.config.modelType}, ${ckpt.config.numLayers} layers) → ${outDir}\n`);
      // The calibration forward: the GPU only when calibration runs (a data-free conversion never probes for one).
      let forward: CalibrationForward = args.forward === "auto" ? "wasm-f32" : (args.forward as CalibrationForward);
      let gpu: GpuContext | null = null;
      if (needData && (args.forward === "auto" || args.forward === "webgpu-f32")) {
        gpu = await nodeGpuContext();
        if (args.forward === "webgpu-f32" && gpu === null) throw new UserError("invalid_argument", "--forward webgpu-f32: dawn.node found no WebGPU adapter (use --forward wasm-f32)");
        // a CPU rasterizer (SwiftShader, llvmpipe) is slower than the wasm SIMD forward: auto keeps wasm there
        if (args.forward === "auto" && gpu !== null && !gpu.cpuAdapter) forward = "webgpu-f32";
        if (forward !== "webgpu-f32") gpu = null;
      }
      if (needData) log(`calibration forward: ${forward}\n`);
      const calibration = needData
        ? await loadCalibrationSamples(resolve(ctx.cwd, args.calib!), modelDir, ckpt.config, ckpt.rawConfig, { sequences: calibCount, tokens: calibLimit }, log, forward === "reference" ? "reference" : "wasm-f32")
        : null;
      const result = await streamConvert({
        modelDir,
        outDir,
        options: opts,
        dtype: args.dtype as OutputDtype,
        calibration,
        forward,
        gpu,
        progress: log,
        conversionInfo: args.calib === undefined ? {} : { calibration_file: basename(args.calib), calibration_sequences: calibration?.length ?? 0 },
      });
      log(`done in ${result.seconds.toFixed(1)}s (${(result.bytesWritten / 1e6).toFixed(1)} MB written)\n`);
      const summary = {
        out: outDir,
        files: result.files,
        strategy,
        svd,
        dtype: args.dtype,
        dKv: result.dKv,
        ropeDims: result.ropeDims,
        latentSpaces: result.latentSpaces,
        keptPairs: result.selection.keptPairs,
        calibrationTokens: result.calibrationTokens,
        bytesWritten: result.bytesWritten,
        phases: result.phases,
        seconds: result.seconds,
      };
      if (args.json) ctx.io.stdout(JSON.stringify(summary) + "\n");
      else ctx.io.stdout(`wrote ${outDir}: ${strategy} + ${svd}, d_kv ${result.dKv}, rope dims ${result.ropeDims}, ${result.latentSpaces} latent space(s)\n`);
      return 0;
    } catch (e) {
      throw toUserError(e);
    }
  },
});
