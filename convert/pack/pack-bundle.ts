// `mla-edge pack`: a checkpoint folder → a browser bundle (manifest.json + side files + ≤ 64 MiB weight shards), see
// docs/bundle.md. Linear weights, the embedding and an untied LM head are block-quantized along K in ONNX Runtime's
// MatMulNBits layout (checkpoint/bundle/matmul-nbits.ts); norms/biases are f32 or f16; vision weights f16 or int8.
// Written into a temporary sibling folder and renamed into place, so an error leaves no half-written bundle.

import { createHash } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  BUNDLE_FORMAT,
  BUNDLE_VERSION,
  MANIFEST_FILE,
  MAX_SHARD_BYTES,
  type BundleFile,
  type BundleManifest,
  type BundleTensorEntry,
  type VisionFormat,
  type WeightFormat,
} from "../../checkpoint/bundle/manifest.ts";
import { blobSizeOf, kBlocksOf, quantizeMatMulNBits, zeroPointRowBytes, type NBits, type QuantBlock } from "../../checkpoint/bundle/matmul-nbits.ts";
import { parseModelConfig, type TextModelConfig } from "../../checkpoint/config.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { floatToHalf } from "../../checkpoint/dtype.ts";
import { detectTensorNaming, isVisionTensor, layerTensorNames, mlaLayerTensorNames, type TensorNaming } from "../../checkpoint/families/index.ts";
import { isReleasedMha2mla, releasedRanksFromBytes, resolveReleasedRanks, type ReleasedRanks } from "../../checkpoint/families/mha2mla_released.ts";
import { dirFileReader, readRankFile } from "../eval/vlm-dir.ts";
import { packIoError, PackError } from "./errors.ts";
import { RowReader } from "./row-reader.ts";
import { ShardWriter, type OpenShardFile } from "./shard-writer.ts";

export interface PackOptions {
  readonly weights?: WeightFormat;
  readonly block?: QuantBlock;
  readonly zeroPoints?: boolean;
  readonly vision?: VisionFormat;
  readonly norms?: "f32" | "f16";
  /** At most 64 MiB; smaller in tests to exercise splitting. */
  readonly maxShardBytes?: number;
  readonly log?: (line: string) => void;
  /** Fault injection for tests (disk full). */
  readonly openShardFile?: OpenShardFile;
  /**
   * A released MHA2MLA checkpoint's `.pth` rank file, instead of its config's `mha2mla.qk_tensor_path` resolved in the
   * model folder. The bundle then carries the kept pairs as `rope_pairs` tensors (mla-edge's layout): no rank file needed.
   */
  readonly rankFile?: string;
}

export interface PackResult {
  readonly out: string;
  readonly manifest: BundleManifest;
  readonly bundleBytes: number;
  readonly sourceBytes: number;
}

/** Model families the runtime (and hence a bundle) knows; anything else is `unknown_family`. */
export const PACKABLE_MODEL_TYPES: readonly string[] = ["qwen2_5_vl", "qwen2_vl", "qwen2", "llama", "llava_next", "mistral"];

/** Side files copied into the bundle when the checkpoint has them. */
const SIDE_FILES = ["vision.onnx", "tokenizer.json", "tokenizer_config.json", "chat_template.json", "chat_template.jinja", "preprocessor_config.json", "generation_config.json"];

/** Rows read and quantized per step: bounded f32 working memory (~16 MiB) whatever the tensor's size. */
const CHUNK_ELEMENTS = 4 * 1024 * 1024;

type Treatment = { kind: "quant"; bits: NBits } | { kind: "f16" } | { kind: "f32" } | { kind: "i32" } | { kind: "skip" };

const isVision = (name: string, file: string) => file === "visual.safetensors" || isVisionTensor(name);
const INT_DTYPES = new Set(["I64", "I32", "I16", "I8", "U8", "BOOL"]);

/** Expected shapes of the decoder tensors the runtime requires (MLA attention tensors are checked by name only). */
function expectedShapes(c: TextModelConfig, n: TensorNaming, names: ReadonlySet<string>): Map<string, number[] | null> {
  const h = c.hiddenSize;
  const want = new Map<string, number[] | null>();
  want.set(n.embedTokens, [c.vocabSize, h]);
  want.set(n.finalNorm, [h]);
  if (!c.tieWordEmbeddings) want.set(n.lmHead, [c.vocabSize, h]);
  for (let i = 0; i < c.numLayers; i++) {
    const t = layerTensorNames(n, i);
    want.set(t.inputNorm, [h]);
    want.set(t.postNorm, [h]);
    want.set(t.gate, [c.intermediateSize, h]);
    want.set(t.up, [c.intermediateSize, h]);
    want.set(t.down, [h, c.intermediateSize]);
    want.set(t.qWeight, [c.numHeads * c.headDim, h]);
    want.set(t.oWeight, [h, c.numHeads * c.headDim]);
    // GQA checkpoints have k/v projections; MLA-converted ones replace them with k_r_proj + latent spaces
    const mla = names.has(`${n.layer(i)}self_attn.k_r_proj.weight`);
    if (!mla) {
      want.set(t.kWeight, [c.numKvHeads * c.headDim, h]);
      want.set(t.vWeight, [c.numKvHeads * c.headDim, h]);
    } else {
      want.set(`${n.layer(i)}self_attn.k_r_proj.weight`, null);
    }
  }
  return want;
}

/**
 * The kept pairs of a released MHA2MLA checkpoint as `rope_pairs` tensors ([n_kv, r/2] int32 per layer), from its rank
 * file (`rankFile`, else config `mha2mla.qk_tensor_path` in `modelDir`); none for any other checkpoint.
 */
async function releasedRopePairs(
  modelDir: string,
  rawConfig: Record<string, unknown>,
  names: readonly string[],
  naming: TensorNaming,
  rankFile: string | undefined,
): Promise<{ name: string; shape: [number, number]; pairs: Int32Array }[]> {
  const isMla = rawConfig.mha2mla !== undefined && rawConfig.mha2mla !== null;
  if (rankFile !== undefined && !isMla) throw new PackError("bad_option", `a rank file applies to an MLA checkpoint; ${modelDir} holds the original model`);
  if (!isMla || (rankFile === undefined && (!isReleasedMha2mla(rawConfig) || names.some((n) => n.endsWith("self_attn.rope_pairs"))))) return [];
  let released: ReleasedRanks;
  try {
    released = rankFile === undefined ? await resolveReleasedRanks(rawConfig, dirFileReader(modelDir), modelDir) : releasedRanksFromBytes(rawConfig, await readRankFile(rankFile), rankFile);
  } catch (e) {
    const code = e instanceof CheckpointError && e.code === "io" ? "missing_file" : "bad_config";
    throw new PackError(code, (e as Error).message, { cause: e });
  }
  return released.keptPairs.map((layer, l) => {
    const name = mlaLayerTensorNames(naming, l).ropePairs;
    if (names.includes(name)) throw new PackError("bad_config", `${name} is in the checkpoint and a rank file was given: pass one of them`);
    const half = layer[0].length;
    return { name, shape: [layer.length, half], pairs: Int32Array.from(layer.flat()) };
  });
}

async function sha256File(path: string): Promise<{ size: number; sha256: string }> {
  const bytes = await readFile(path);
  return { size: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/** Packs `modelDir` into the bundle folder `out` (which must not exist, or be empty). */
export async function packBundle(modelDir: string, out: string, options: PackOptions = {}): Promise<PackResult> {
  const weights = options.weights ?? "int4";
  const block = options.block ?? 32;
  const zeroPoints = options.zeroPoints === true;
  const vision = options.vision ?? "f16";
  const norms = options.norms ?? "f32";
  const maxShard = options.maxShardBytes ?? MAX_SHARD_BYTES;
  const log = options.log ?? (() => undefined);
  if (maxShard > MAX_SHARD_BYTES) throw new PackError("bad_option", `shard size ${maxShard} is over the ${MAX_SHARD_BYTES}-byte limit`);

  // config + family, before touching any weight
  const configPath = join(modelDir, "config.json");
  let rawConfig: Record<string, unknown>;
  try {
    rawConfig = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
  } catch (e) {
    const errno = (e as { code?: string }).code;
    if (errno === "ENOENT" || errno === "ENOTDIR") throw new PackError("missing_file", `${configPath} does not exist (--model must be a checkpoint folder)`, { cause: e });
    if (e instanceof SyntaxError) throw new PackError("bad_config", `${configPath} is not JSON: ${e.message}`, { cause: e });
    throw packIoError(e, configPath, "reading");
  }
  const modelType = String(rawConfig.model_type ?? "");
  if (!PACKABLE_MODEL_TYPES.includes(modelType)) {
    throw new PackError("unknown_family", `${configPath}: model_type "${modelType}" is not a known family (${PACKABLE_MODEL_TYPES.join(", ")})`);
  }
  let config: TextModelConfig;
  try {
    config = parseModelConfig(rawConfig, configPath);
  } catch (e) {
    throw new PackError("bad_config", (e as Error).message, { cause: e });
  }

  const outExists = await stat(out).then((s) => s, () => null);
  if (outExists) {
    const empty = outExists.isDirectory() && (await readdir(out)).length === 0;
    if (!empty) throw new PackError("out_exists", `${out} already exists; pick a new --out or remove it`);
  }

  const reader = await RowReader.open(modelDir);
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now()}`);
  let writer: ShardWriter | null = null;
  try {
    const names = reader.names();
    const nameSet = new Set(names);
    let naming: TensorNaming;
    try {
      naming = detectTensorNaming(names);
    } catch (e) {
      throw new PackError("unknown_family", (e as CheckpointError).message, { cause: e });
    }
    for (const [name, shape] of expectedShapes(config, naming, nameSet)) {
      if (!reader.has(name)) throw new PackError("missing_tensor", `missing tensor ${name} (required by ${modelType}, ${config.numLayers} layers)`);
      const actual = reader.tensor(name).info.shape;
      if (shape && (actual.length !== shape.length || actual.some((d, i) => d !== shape[i]))) {
        throw new PackError("shape_mismatch", `tensor ${name} has shape [${actual.join(", ")}], expected [${shape.join(", ")}] from config.json`);
      }
    }
    const aliases: Record<string, string> = {};
    if (config.tieWordEmbeddings) aliases[naming.lmHead] = naming.embedTokens;
    // A released MHA2MLA checkpoint (`cnxup/*-MLA-stage2-*`) as published keeps its kept RoPE pairs in a .pth rank file:
    // read it now (before any output), and store the pairs as int32 `rope_pairs` tensors, as mla-edge's layout does.
    const ropePairs = await releasedRopePairs(modelDir, rawConfig, names, naming, options.rankFile);

    const treat = (name: string): Treatment => {
      const t = reader.tensor(name);
      if (aliases[name] !== undefined) return { kind: "skip" };
      if (INT_DTYPES.has(t.info.dtype)) return { kind: "i32" };
      const nd = t.info.shape.length;
      if (isVision(name, t.file)) {
        if (nd === 2 && name.endsWith("weight") && vision === "int8") return { kind: "quant", bits: 8 };
        return nd <= 1 ? { kind: norms } : { kind: "f16" };
      }
      if (nd === 2) return weights === "f16" ? { kind: "f16" } : { kind: "quant", bits: weights === "int8" ? 8 : 4 };
      return nd <= 1 ? { kind: norms } : { kind: "f16" };
    };

    try {
      await mkdir(tmp, { recursive: false });
    } catch (e) {
      throw packIoError(e, tmp, "creating");
    }
    writer = new ShardWriter(tmp, maxShard, options.openShardFile);
    const tensors: BundleTensorEntry[] = [];
    let sourceBytes = 0;
    const stored = names.filter((n) => aliases[n] === undefined).length;
    let packed = 0;
    for (const name of names) {
      const tr = treat(name);
      const info = reader.tensor(name).info;
      sourceBytes += info.end - info.begin;
      if (tr.kind === "skip") continue;
      const shape = info.shape;
      const rows = shape.length === 0 ? 1 : shape[0];
      const rowElems = shape.slice(1).reduce((a, b) => a * b, 1);
      const chunkRows = Math.max(1, Math.floor(CHUNK_ELEMENTS / rowElems));
      if (tr.kind === "quant") {
        // B streams to its shard(s) chunk by chunk; scales and zero points (1/8–1/16 of B) are held and placed after it
        const [n, k] = shape;
        const kb = kBlocksOf(k, block);
        const bRow = kb * blobSizeOf(block, tr.bits);
        const zpRow = zeroPointRowBytes(kb, tr.bits);
        const bArray = await writer.beginArray(n, bRow, `${name} (B)`);
        const scales = new Uint8Array(n * kb * 2);
        const zp = zeroPoints ? new Uint8Array(n * zpRow) : null;
        for (let r0 = 0; r0 < n; r0 += chunkRows) {
          const r1 = Math.min(n, r0 + chunkRows);
          let q;
          try {
            q = quantizeMatMulNBits(await reader.readFloatRows(name, r0, r1), { n: r1 - r0, k, bits: tr.bits, block }, { zeroPoints });
          } catch (e) {
            throw new PackError("unsupported_dtype", `tensor ${name}: ${(e as Error).message}`, { cause: e });
          }
          await bArray.write(q.b);
          scales.set(new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength), r0 * kb * 2);
          if (zp && q.zeroPoints) zp.set(q.zeroPoints, r0 * zpRow);
        }
        tensors.push({
          name,
          kind: "matmul_nbits",
          shape: [n, k],
          bits: tr.bits,
          block,
          kBlocks: kb,
          blobSize: blobSizeOf(block, tr.bits),
          b: bArray.end(),
          scales: await writer.place(scales, n, kb * 2, `${name} (scales)`),
          zeroPoints: zp ? await writer.place(zp, n, zpRow, `${name} (zero points)`) : null,
        });
      } else {
        // streamed chunk by chunk: never more than one chunk of the tensor in memory
        const eb = tr.kind === "f16" ? 2 : 4;
        const data = await writer.beginArray(rows, rowElems * eb, name);
        for (let r0 = 0; r0 < rows; r0 += chunkRows) {
          const r1 = Math.min(rows, r0 + chunkRows);
          const bytes = new Uint8Array((r1 - r0) * rowElems * eb);
          const dv = new DataView(bytes.buffer);
          if (tr.kind === "i32") {
            const v = await reader.readIntRows(name, r0, r1);
            for (let i = 0; i < v.length; i++) dv.setInt32(i * 4, v[i], true);
          } else {
            const v = await reader.readFloatRows(name, r0, r1);
            if (tr.kind === "f16") for (let i = 0; i < v.length; i++) dv.setUint16(i * 2, floatToHalf(v[i]), true);
            else for (let i = 0; i < v.length; i++) dv.setFloat32(i * 4, v[i], true);
          }
          await data.write(bytes);
        }
        tensors.push({ name, kind: "plain", shape: [...shape], dtype: tr.kind, data: data.end() });
      }
      packed++;
      if (packed === stored || packed % Math.max(1, Math.ceil(stored / 20)) === 0) {
        log(`pack: ${packed}/${stored} tensors (${name})\n`);
      }
    }
    for (const { name, shape, pairs } of ropePairs) {
      const bytes = new Uint8Array(pairs.length * 4);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < pairs.length; i++) dv.setInt32(i * 4, pairs[i], true);
      const data = await writer.beginArray(shape[0], shape[1] * 4, name);
      await data.write(bytes);
      tensors.push({ name, kind: "plain", shape: [...shape], dtype: "i32", data: data.end() });
    }
    const shards = await writer.finish();

    const files: BundleFile[] = [];
    for (const f of SIDE_FILES) {
      const src = join(modelDir, f);
      if (!(await stat(src).then(() => true, () => false))) continue;
      try {
        await copyFile(src, join(tmp, f));
      } catch (e) {
        throw packIoError(e, join(tmp, f), "copying");
      }
      files.push({ file: f, ...(await sha256File(join(tmp, f))) });
    }
    const has = (f: string) => files.some((x) => x.file === f);
    let preprocessorConfig: Record<string, unknown> | null = null;
    if (has("preprocessor_config.json")) preprocessorConfig = JSON.parse(await readFile(join(tmp, "preprocessor_config.json"), "utf8")) as Record<string, unknown>;
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      config: rawConfig,
      tokenizer: {
        tokenizer: has("tokenizer.json") ? "tokenizer.json" : null,
        tokenizerConfig: has("tokenizer_config.json") ? "tokenizer_config.json" : null,
        chatTemplate: has("chat_template.jinja") ? "chat_template.jinja" : has("chat_template.json") ? "chat_template.json" : null,
      },
      preprocessorConfig,
      quantization: { weights, block, zeroPoints, vision, norms },
      aliases,
      tensors,
      shards,
      files,
    };
    try {
      await writeFile(join(tmp, MANIFEST_FILE), JSON.stringify(manifest) + "\n");
    } catch (e) {
      throw packIoError(e, join(tmp, MANIFEST_FILE), "writing");
    }
    try {
      if (outExists) await rm(out, { recursive: true });
      await rename(tmp, out);
    } catch (e) {
      throw packIoError(e, out, "moving the bundle into");
    }
    const bundleBytes = shards.reduce((s, x) => s + x.size, 0) + files.reduce((s, x) => s + x.size, 0);
    return { out, manifest, bundleBytes, sourceBytes };
  } catch (e) {
    await writer?.abort();
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  } finally {
    await reader.close();
  }
}
