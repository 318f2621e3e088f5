// Streaming conversion (issue 19): an HF checkpoint (sharded or not; bf16, f16 or f32) is read lazily and converted one
// layer at a time into an HF-style sharded MLA checkpoint. Peak memory is about one layer's weights, plus with
// calibration the statistics of the current layer and the calibration hidden states — never the model.
//
// Per layer (forward order): read the layer's attention (f32) → [calibration: run the original layer over every
// calibration sequence, accumulating second moments per modality and the pair scores, then moving the hidden states
// past the layer] → kept pairs → weight surgery + factorisation → encode and write the layer's tensors at their planned
// offsets. Shell tensors (embeddings, norms, MLP, lm_head) and `visual.*` are copied (re-encoded only when --dtype
// differs from the stored dtype). Everything is written to a temporary folder next to `outDir`, renamed at the end; a
// failure removes it and leaves nothing under `outDir`.

import type { GpuContext } from "../../kernels/gpu-context.ts";
import { copyFile, mkdir, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { TextModelConfig } from "../../checkpoint/config.ts";
import { decodeFloat32, DTYPE_BYTES, encodeTensor, type SafetensorsDtype, type WritableDtype } from "../../checkpoint/dtype.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { mlaConfigJson } from "../../checkpoint/mla-config.ts";
import { elementCount } from "../../checkpoint/safetensors-header.ts";
import { checkShape } from "../../checkpoint/safetensors-file.ts";
import { planShardedLayout, ShardedCheckpointWriter, specBytes, type OpenFileSink, type TensorSpec } from "../../checkpoint/shard-writer.node.ts";
import { detectTensorNaming, isVisionTensor, layerTensorNames, type TensorNaming } from "../../checkpoint/families/index.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { Modality } from "../../format/cache-spec.ts";
import { buildMlaAttention } from "../../runtime/mla/build.ts";
import { mlaLayerTensors } from "../../runtime/mla/checkpoint.ts";
import type { MlaAttentionWeights } from "../../runtime/mla/weights.ts";
import { loadGqaAttention } from "../../runtime/weights.ts";
import { LayerwiseCalibration, type CalibrationForward, type CalibrationSample, type LayerShellReader } from "../calibration/layer-forward.ts";
import { SecondMomentAccumulator } from "../linalg/second-moment.ts";
import { LayerPairScorer } from "../rope/layer-scores.ts";
import { rankPairs, topPairs } from "../rope/ranking.ts";
import { needsCalibration, selectKeptPairs, type PairSelection } from "../rope/select.ts";
import { DEFAULT_DAMPING, svdMethodName, validateConversion, type ConvertOptions } from "./convert-model.ts";
import { ConversionError } from "./errors.ts";
import { kvFactoriser, svdMethodNeedsCalibration } from "./factorisers.ts";
import type { LayerMoments } from "./moments.ts";
import { ProgressBar, type ProgressSink } from "./progress.ts";

export const OUTPUT_DTYPES = ["bf16", "f16", "f32"] as const;
export type OutputDtype = (typeof OUTPUT_DTYPES)[number];
const DTYPE_OF: Record<OutputDtype, Exclude<WritableDtype, "I32">> = { bf16: "BF16", f16: "F16", f32: "F32" };
const TORCH_DTYPE: Record<OutputDtype, string> = { bf16: "bfloat16", f16: "float16", f32: "float32" };

/** Files next to the weights that a converted folder needs unchanged (tokenizer, chat template, processor, …). */
export const SIDE_FILES = [
  "visual.safetensors",
  "vision.onnx",
  "tokenizer.json",
  "tokenizer_config.json",
  "chat_template.json",
  "chat_template.jinja",
  "preprocessor_config.json",
  "generation_config.json",
  "vocab.json",
  "merges.txt",
  "special_tokens_map.json",
  "added_tokens.json",
];


const COPYABLE: readonly string[] = ["F32", "F16", "BF16", "I32"];

export interface StreamConvertRequest {
  readonly modelDir: string;
  readonly outDir: string;
  readonly options: ConvertOptions;
  /** Output float dtype (default bf16). `visual.*` tensors keep their stored dtype. */
  readonly dtype?: OutputDtype;
  /** Calibration sequences (needed by 2-norm, mkl and md). */
  readonly calibration?: readonly CalibrationSample[] | null;
  /**
   * Calibration forward: `wasm-f32` (default, the SIMD projections), `webgpu-f32` (the projections on `gpu`) or
   * `reference` (f64, equal to convertModel's).
   */
  readonly forward?: CalibrationForward;
  /** The WebGPU device of the `webgpu-f32` forward. */
  readonly gpu?: GpuContext | null;
  readonly progress?: ProgressSink;
  readonly maxShardBytes?: number;
  /** Where file bytes go (tests inject a failing one). */
  readonly openSink?: OpenFileSink;
  /** Extra config.json fields under `mla_edge.conversion` (e.g. the calibration file). */
  readonly conversionInfo?: Readonly<Record<string, unknown>>;
}

/** Seconds spent per phase, summed over layers. */
export interface PhaseSeconds {
  read: number;
  calibrate: number;
  rank: number;
  factorise: number;
  write: number;
}

export interface StreamConvertResult {
  readonly outDir: string;
  readonly files: string[];
  readonly selection: PairSelection;
  readonly calibrationTokens: { readonly text: number; readonly image: number };
  readonly dKv: number;
  readonly ropeDims: number;
  readonly latentSpaces: 1 | 2;
  readonly bytesWritten: number;
  readonly phases: PhaseSeconds;
  /** The same phases summed over the decoder layers only (without the embeddings, lm_head and vision tower copies). */
  readonly layerPhases: PhaseSeconds;
  /** Wall seconds of each decoder layer. */
  readonly layerSeconds: number[];
  readonly layers: number;
  readonly seconds: number;
}

/** `bytes` (stored as `from`) re-encoded as `to`, in slices so that no f32 copy of a large tensor exists. */
export function recodeBytes(bytes: Uint8Array, from: SafetensorsDtype, to: WritableDtype, count: number, label: string): Uint8Array {
  if (from === to) return bytes;
  if (to === "I32") throw new CheckpointError("unsupported_dtype", `${label}: cannot re-encode ${from} as I32`);
  const inB = DTYPE_BYTES[from];
  const outB = DTYPE_BYTES[to];
  const out = new Uint8Array(count * outB);
  const SLICE = 1 << 20;
  for (let i = 0; i < count; i += SLICE) {
    const n = Math.min(SLICE, count - i);
    const f = decodeFloat32(bytes.subarray(i * inB, (i + n) * inB), from, n, label);
    out.set(encodeTensor(f, to, label), i * outB);
  }
  return out;
}

/** Checks, from headers alone, that every tensor the conversion reads exists with the shape config.json implies. */
export function checkDecoderTensors(src: TensorSource, config: TextModelConfig, naming: TensorNaming, label: string): void {
  const { hiddenSize: d, intermediateSize: f, vocabSize: v, numHeads: nh, numKvHeads: nkv, headDim: dh, numLayers: L } = config;
  const need = (name: string, shape: number[]) => {
    if (!src.has(name)) throw new CheckpointError("missing_tensor", `${label}: no tensor named ${name}`);
    const info = src.info(name);
    checkShape(name, info.shape, shape, label);
    if (!["F32", "F16", "BF16", "F64"].includes(info.dtype)) throw new CheckpointError("unsupported_dtype", `${label}: tensor ${name} has dtype ${info.dtype}, not a float type`);
  };
  need(naming.embedTokens, [v, d]);
  need(naming.finalNorm, [d]);
  if (src.has(naming.lmHead)) need(naming.lmHead, [v, d]);
  else if (!config.tieWordEmbeddings) throw new CheckpointError("missing_tensor", `${label}: no tensor named ${naming.lmHead} and tie_word_embeddings is false`);
  for (let l = 0; l < L; l++) {
    const n = layerTensorNames(naming, l);
    need(n.qWeight, [nh * dh, d]);
    need(n.kWeight, [nkv * dh, d]);
    need(n.vWeight, [nkv * dh, d]);
    need(n.oWeight, [d, nh * dh]);
    if (config.attentionBias || src.has(n.qBias)) {
      need(n.qBias, [nh * dh]);
      need(n.kBias, [nkv * dh]);
      need(n.vBias, [nkv * dh]);
    }
    need(n.inputNorm, [d]);
    need(n.postNorm, [d]);
    need(n.gate, [f, d]);
    need(n.up, [f, d]);
    need(n.down, [d, f]);
  }
}

async function isEmptyDirOrAbsent(dir: string): Promise<boolean> {
  const s = await stat(dir).catch(() => null);
  if (s === null) return true;
  if (!s.isDirectory()) return false;
  return (await readdir(dir)).length === 0;
}

function latentGeometry(opts: ConvertOptions, config: TextModelConfig): { dKv: number; latentSpaces: 1 | 2 } {
  if (opts.svd === "none") return { dKv: config.headDim - opts.ropeDims + config.headDim, latentSpaces: 1 };
  return { dKv: opts.dKv, latentSpaces: opts.svd === "md" ? 2 : 1 };
}

/** Runs the streaming conversion; see the file comment. */
export async function streamConvert(req: StreamConvertRequest): Promise<StreamConvertResult> {
  const started = performance.now();
  const opts = req.options;
  const dtypeName = req.dtype ?? "bf16";
  const dtype = DTYPE_OF[dtypeName];
  if (dtype === undefined) throw new ConversionError("bad_options", `--dtype must be one of ${OUTPUT_DTYPES.join(", ")}, got ${JSON.stringify(req.dtype)}`);
  const log = req.progress;
  const ckpt = await openCheckpointDir(req.modelDir);
  const src = ckpt.source;
  const config = ckpt.config;
  const label = req.modelDir;
  let tmp: string | null = null;
  let writer: ShardedCheckpointWriter | null = null;
  let calibration: LayerwiseCalibration | null = null;
  try {
    validateConversion(config, opts);
    const calib = req.calibration ?? null;
    const needData = needsCalibration(opts.strategy) || svdMethodNeedsCalibration(opts.svd);
    if (needData && (calib === null || calib.length === 0)) {
      const who = needsCalibration(opts.strategy) ? `the ${opts.strategy} strategy` : `${opts.svd} SVD`;
      throw new ConversionError("needs_calibration", `${who} needs calibration data (--calib FILE)`);
    }
    const naming = detectTensorNaming(src.names());
    checkDecoderTensors(src, config, naming, label);
    const visual = src.names().filter(isVisionTensor).sort();
    for (const v of visual) {
      const dt = src.info(v).dtype;
      if (!COPYABLE.includes(dt)) throw new CheckpointError("unsupported_dtype", `${label}: vision tensor ${v} has dtype ${dt}, which the writer does not copy`);
    }
    if (!(await isEmptyDirOrAbsent(req.outDir))) {
      throw new CheckpointError("io", `output folder ${req.outDir} exists and is not empty; remove it or pick another --out`);
    }

    const { numLayers: L, hiddenSize: d, intermediateSize: f, vocabSize: v } = config;
    const { dKv, latentSpaces } = latentGeometry(opts, config);
    const biases = src.has(layerTensorNames(naming, 0).qBias);
    const fixed = needsCalibration(opts.strategy) ? null : selectKeptPairs(opts.strategy, config, opts.ropeDims);

    // the output layout, planned up front in production order: head, then layer by layer, then the vision tower
    const specs: TensorSpec[] = [];
    const headNames = [naming.embedTokens, ...(src.has(naming.lmHead) ? [naming.lmHead] : []), naming.finalNorm];
    for (const n of headNames) specs.push({ name: n, dtype, shape: src.info(n).shape });
    const layerSpecs: TensorSpec[][] = [];
    for (let l = 0; l < L; l++) {
      const n = layerTensorNames(naming, l);
      const shellSpecs: TensorSpec[] = [
        { name: n.inputNorm, dtype, shape: [d] },
        { name: n.postNorm, dtype, shape: [d] },
        { name: n.gate, dtype, shape: [f, d] },
        { name: n.up, dtype, shape: [f, d] },
        { name: n.down, dtype, shape: [d, f] },
      ];
      const attnSpecs = mlaLayerTensors(placeholderAttention(config, opts.ropeDims, dKv, latentSpaces, biases), config, naming, l, { dtype }).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
      layerSpecs.push([...shellSpecs, ...attnSpecs]);
      specs.push(...shellSpecs, ...attnSpecs);
    }
    for (const n of visual) {
      const info = src.info(n);
      specs.push({ name: n, dtype: info.dtype as WritableDtype, shape: info.shape });
    }
    const layout = planShardedLayout(specs, { maxShardBytes: req.maxShardBytes });

    tmp = join(dirname(req.outDir), `.${basename(req.outDir)}.partial-${process.pid}-${Date.now()}`);
    await mkdir(tmp, { recursive: true });
    writer = new ShardedCheckpointWriter(tmp, layout, specs, req.openSink);
    const w = writer;
    const phases: PhaseSeconds = { read: 0, calibrate: 0, rank: 0, factorise: 0, write: 0 };
    const timed = async <T>(phase: keyof PhaseSeconds, fn: () => Promise<T> | T): Promise<T> => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        phases[phase] += (performance.now() - t0) / 1000;
      }
    };
    const copy = async (name: string, spec: TensorSpec) => {
      const info = src.info(name);
      const bytes = await timed("read", () => src.readBytes(name));
      const out = recodeBytes(bytes, info.dtype, spec.dtype, elementCount(info.shape), `${label}: ${name}`);
      await timed("write", () => w.write(name, out));
    };

    // head: embeddings (rows needed by calibration decoded from its bytes), lm_head, final norm
    {
      const embName = naming.embedTokens;
      const info = src.info(embName);
      const bytes = await timed("read", () => src.readBytes(embName));
      if (needData && calib !== null) {
        const bar = log ? new ProgressBar(log, "embed", calib.length) : null;
        calibration = await timed("calibrate", () => {
          const c = new LayerwiseCalibration(config, calib, (ids) => {
            const rowBytes = d * DTYPE_BYTES[info.dtype];
            const out = new Float32Array(ids.length * d);
            ids.forEach((id, i) => out.set(decodeFloat32(bytes.subarray(id * rowBytes, (id + 1) * rowBytes), info.dtype, d, `${label}: ${embName}`), i * d));
            return out;
          }, req.forward ?? "wasm-f32", req.gpu ?? null);
          bar?.at(calib.length, `${c.tokens.text + c.tokens.image} tokens`);
          return c;
        });
      }
      await timed("write", () => w.write(embName, recodeBytes(bytes, info.dtype, dtype, v * d, `${label}: ${embName}`)));
    }
    for (const n of headNames.slice(1)) await copy(n, specs.find((s) => s.name === n)!);

    const half = config.headDim / 2;
    const pairCount = opts.ropeDims / 2;
    const keptPairs: number[][][] = [];
    const scoreValues = fixed === null ? new Float64Array(L * config.numKvHeads * half) : null;
    const factorise = (moments: readonly LayerMoments[] | null) => kvFactoriser(opts.svd, opts.dKv, { moments, damping: opts.damping ?? DEFAULT_DAMPING });
    const bar = log ? new ProgressBar(log, "convert", L) : null;
    const before: PhaseSeconds = { ...phases };
    const layerSeconds: number[] = [];
    const S = calibration?.sequences ?? 0;
    const calBar = log && calibration !== null ? new ProgressBar(log, "calibrate", L * S) : null;
    const every = Math.max(1, Math.ceil(S / 8));
    for (let l = 0; l < L; l++) {
      const layerStart = performance.now();
      const attention = await timed("read", () => loadGqaAttention(src, config, naming, l));
      let pairs: number[][];
      let moments: LayerMoments[] | null = null;
      if (calibration !== null) {
        const ln = layerTensorNames(naming, l);
        const reader: LayerShellReader = {
          norms: async () => ({ inputNorm: await src.readFloat32(ln.inputNorm, [d]), postNorm: await src.readFloat32(ln.postNorm, [d]) }),
          matrix: (which) => {
            const t0 = performance.now();
            const name = which === "gate" ? ln.gate : which === "up" ? ln.up : ln.down;
            return src.readFloat32(name, which === "down" ? [d, f] : [f, d]).finally(() => (readInCalibrate += (performance.now() - t0) / 1000));
          },
        };
        let readInCalibrate = 0;
        const scorer = needsCalibration(opts.strategy) ? new LayerPairScorer(opts.strategy as "2-norm" | "mkl", config, calibration.sequences) : null;
        const wantMoments = svdMethodNeedsCalibration(opts.svd);
        const text = wantMoments ? new SecondMomentAccumulator(d) : null;
        const image = wantMoments ? new SecondMomentAccumulator(d) : null;
        let rankSeconds = 0;
        await timed("calibrate", () =>
          calibration!.runLayerFrom(l, attention, reader, (c) => {
            if ((c.sequence + 1) % every === 0 || c.sequence + 1 === S) calBar?.at(l * S + c.sequence + 1, `layer ${l + 1}/${L} · sequence ${c.sequence + 1}/${S}`);
            text?.add(c.x, c.modality, Modality.text);
            image?.add(c.x, c.modality, Modality.image);
            if (scorer !== null) {
              const t0 = performance.now();
              scorer.add(c);
              rankSeconds += (performance.now() - t0) / 1000;
            }
          }),
        );
        phases.calibrate -= readInCalibrate;
        phases.read += readInCalibrate;
        phases.calibrate -= rankSeconds;
        phases.rank += rankSeconds;
        if (text !== null && image !== null) {
          if (text.count === 0 || image.count === 0) {
            throw new ConversionError("empty_modality", `MD-SVD needs calibration tokens of both modalities; got ${text.count} text and ${image.count} image tokens`);
          }
          const m: LayerMoments = { text: text.secondMoment(), image: image.secondMoment(), textTokens: text.count, imageTokens: image.count };
          moments = [];
          moments[l] = m;
        }
        if (scorer !== null) {
          const values = await timed("rank", () => scorer.scores());
          scoreValues!.set(values, l * config.numKvHeads * half);
          pairs = topPairs({ layers: 1, kvHeads: config.numKvHeads, half, values }, pairCount)[0];
        } else pairs = fixed!.keptPairs[l];
      } else {
        pairs = fixed!.keptPairs[l];
      }
      keptPairs.push(pairs);
      const built: MlaAttentionWeights = await timed("factorise", () => buildMlaAttention(attention, config, l, pairs, factorise(moments)));
      const tensors = mlaLayerTensors(built, config, naming, l, { dtype });
      const planned = layerSpecs[l].slice(5);
      if (tensors.length !== planned.length || tensors.some((t, i) => t.name !== planned[i].name || t.shape.join() !== planned[i].shape.join())) {
        throw new CheckpointError("shape_mismatch", `layer ${l}: converted tensors do not match the planned layout`);
      }
      for (const t of tensors) await timed("write", () => w.write(t.name, typeof t.data === "function" ? (t.data as () => Float32Array)() : t.data));
      for (const s of layerSpecs[l].slice(0, 5)) await copy(s.name, s);
      layerSeconds.push((performance.now() - layerStart) / 1000);
      bar?.tick(`layer ${l + 1}/${L}`);
    }
    const layerPhases = Object.fromEntries(Object.entries(phases).map(([k, s]) => [k, s - before[k as keyof PhaseSeconds]])) as unknown as PhaseSeconds;
    await calibration?.close();
    for (const n of visual) await copy(n, specs.find((s) => s.name === n)!);
    const files = await timed("write", () => w.finish());

    const selection: PairSelection =
      fixed ??
      (() => {
        const scores = { layers: L, kvHeads: config.numKvHeads, half, values: scoreValues! };
        return { strategy: opts.strategy, ropeDims: opts.ropeDims, keptPairs, scores, ranks: rankPairs(scores) };
      })();
    const tokens = calibration?.tokens ?? { text: 0, image: 0 };
    const cfgJson = mlaConfigJson(ckpt.rawConfig, { ropeDims: opts.ropeDims, dKv, partialRopeVersion: opts.strategy, svdInitMethod: svdMethodName(opts.svd), latentSpaces });
    cfgJson.torch_dtype = TORCH_DTYPE[dtypeName];
    (cfgJson.mla_edge as Record<string, unknown>).conversion = {
      strategy: opts.strategy,
      svd: opts.svd,
      d_kv: dKv,
      rope_dims: opts.ropeDims,
      damping: svdMethodNeedsCalibration(opts.svd) ? (opts.damping ?? DEFAULT_DAMPING) : null,
      dtype: dtypeName,
      calibration_tokens: tokens,
      calibration_forward: calibration === null ? null : calibration.forward,
      ...(req.conversionInfo ?? {}),
    };
    await writeFile(join(tmp, "config.json"), JSON.stringify(cfgJson, null, 2) + "\n");
    const present = new Set(await readdir(req.modelDir));
    const side: string[] = [];
    for (const name of SIDE_FILES) {
      if (present.has(name)) {
        await copyFile(join(req.modelDir, name), join(tmp, name));
        side.push(name);
      }
    }
    await src.close();
    // the final name appears only now, complete
    if (!(await isEmptyDirOrAbsent(req.outDir))) throw new CheckpointError("io", `output folder ${req.outDir} appeared during the conversion; the result is not moved over it`);
    await rmdir(req.outDir).catch(() => undefined);
    await rename(tmp, req.outDir);
    tmp = null;
    return {
      outDir: req.outDir,
      files: ["config.json", ...files, ...side],
      selection,
      calibrationTokens: tokens,
      dKv,
      ropeDims: opts.ropeDims,
      latentSpaces,
      bytesWritten: w.bytesWritten,
      phases,
      layerPhases,
      layerSeconds,
      layers: L,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await calibration?.close().catch(() => undefined);
    if (tmp !== null) {
      await writer?.abort();
      await src.close().catch(() => undefined);
      await rm(tmp, { recursive: true, force: true });
    }
  }
}

/** A layer of the right geometry (shapes only) to plan the output before any weight is read. */
function placeholderAttention(config: TextModelConfig, ropeDims: number, dKv: number, spaces: 1 | 2, biases: boolean): MlaAttentionWeights {
  const d = config.hiddenSize;
  const empty = new Float32Array(0);
  return {
    keptPairs: Array.from({ length: config.numKvHeads }, () => new Int32Array(ropeDims / 2)),
    qProj: empty,
    qBias: biases ? empty : null,
    kRProj: empty,
    kRBias: biases ? empty : null,
    spaces: Array.from({ length: spaces }, () => ({
      downKv: new Float32Array(dKv * config.numKvHeads * d),
      upK: empty,
      upKBias: biases ? empty : null,
      upV: empty,
      upVBias: biases ? empty : null,
    })),
    oProj: empty,
  };
}

export { specBytes };
