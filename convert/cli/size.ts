// `mla-edge size`: bytes per token of a model's KV cache — original bf16, MLA bf16, quantized MLA as mla-edge stores
// it (every scale, zero and framing byte), the docs/method.md §9.4 convention and the papers' MLA × bits/16 convention.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { cacheSpecFromConfig, type CacheSpec, type ModelConfigLike } from "../../format/cache-spec.ts";
import type { Axis, Bits, GroupSize, RopePolicy } from "../../format/codec/types.ts";
import { DEFAULT_CHUNK_TOKENS } from "../../format/chunk/types.ts";
import { MAX_CHUNK_TOKENS } from "../../format/chunk/constants.ts";
import { cacheBytesPerToken, paperPercent, type CacheBytesPerToken } from "../../format/size/bytes-per-token.ts";
import { findModelPreset, MODEL_PRESETS } from "../../format/size/presets.ts";
import { defineCommand, parseIntegerFlag } from "./command.ts";
import { UserError } from "./errors.ts";

/** A model given as a preset name or a path to an HF config.json, resolved to its cache spec. */
export interface ResolvedModel {
  readonly name: string;
  readonly description: string;
  readonly spec: CacheSpec;
}

/** Resolves `--model` (preset or config.json path, relative to `cwd`) with the conversion's d_kv and rope dims. */
export function resolveModel(model: string, dKv: number, ropeDims: number | undefined, cwd: string): ResolvedModel {
  const preset = findModelPreset(model);
  if (preset) return { name: model, description: preset.description, spec: preset.spec(dKv, ropeDims ?? preset.defaultRopeDims) };
  const path = resolve(cwd, model);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new UserError("file_not_found", `--model "${model}" is neither a preset (${Object.keys(MODEL_PRESETS).join(", ")}) nor a readable file`);
  }
  let config: ModelConfigLike;
  try {
    config = JSON.parse(text) as ModelConfigLike;
  } catch (e) {
    throw new UserError("invalid_file", `${path} is not JSON: ${(e as Error).message}`);
  }
  return { name: path, description: `config ${path}`, spec: cacheSpecFromConfig(config, { dKv, ropeDims }) };
}

/** The --json document. */
export function sizeJson(model: ResolvedModel, r: CacheBytesPerToken): Record<string, unknown> {
  return {
    model: model.name,
    spec: model.spec,
    options: r.options,
    bytesPerToken: {
      originalBf16: r.originalBf16,
      mlaBf16: r.mlaBf16,
      mlaRawTail: r.mlaRawTail,
      quantized: r.quantized,
      symmetricTable: r.symmetricTable,
    },
    fractions: r.fractions,
    percent: {
      mla: paperPercent(r.fractions.mla),
      quantized: paperPercent(r.fractions.quantized),
      symmetricTable: paperPercent(r.fractions.symmetricTable),
      paper: paperPercent(r.fractions.paper),
    },
  };
}

function bytes(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString("en-US") : n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function pct(fraction: number): [string, string] {
  const p = paperPercent(fraction);
  return [`${p.remaining.toFixed(2)} %`, p.change === 0 ? "0.00 %" : `${p.change.toFixed(2)} %`];
}

/** The human-readable table. */
export function sizeTable(model: ResolvedModel, r: CacheBytesPerToken): string {
  const s = model.spec;
  const o = r.options;
  const q = r.quantized;
  const rows: Array<[string, string, string, string]> = [
    ["original bf16 K+V", bytes(r.originalBf16), ...pct(1)],
    ["MLA bf16 (latent + rope)", bytes(r.mlaBf16), ...pct(r.fractions.mla)],
    [`MLA int${o.bits} in mla-edge chunks`, bytes(q.total), ...pct(r.fractions.quantized)],
    ["  latent codes", bytes(q.latentCodes), "", ""],
    ["  latent scales + zeros (fp16)", bytes(q.latentScales), "", ""],
    [`  rope (${o.rope}${o.rope === "fp16" ? "" : ", scale + zero per head"})`, bytes(q.rope), "", ""],
    [`  chunk framing (÷ ${o.chunkTokens} tokens)`, bytes(q.framing), "", ""],
    [`MLA int${o.bits}, §9.4 convention (symmetric)`, bytes(r.symmetricTable), ...pct(r.fractions.symmetricTable)],
    [`paper convention (MLA × ${o.bits}/16)`, "", ...pct(r.fractions.paper)],
  ];
  const head: [string, string, string, string] = ["per token, all layers", "bytes", "of original", "change"];
  const w = [0, 1, 2, 3].map((i) => Math.max(head[i].length, ...rows.map((row) => row[i].length)));
  const line = (row: readonly string[]) =>
    `${row[0].padEnd(w[0])}  ${row[1].padStart(w[1])}  ${row[2].padStart(w[2])}  ${row[3].padStart(w[3])}`.trimEnd();
  return [
    model.description,
    `layers ${s.layers}, KV heads ${s.kvHeads} × ${s.headDim}, d_kv ${s.dKv} (D_c ${s.kvHeads * s.dKv}), rope dims ${s.ropeDims}; ` +
      `int${o.bits}, group ${o.group}, ${o.axis} axis, rope ${o.rope}, C ${o.chunkTokens}`,
    "",
    line(head),
    ...rows.map(line),
    "",
    `unsealed tail (raw float32, < C tokens): ${bytes(r.mlaRawTail)} B per token`,
    "",
  ].join("\n");
}

export const sizeCommand = defineCommand({
  name: "size",
  description: "bytes per token of the original, MLA and quantized MLA KV cache",
  args: {
    model: { type: "string", required: true, valueName: "PRESET|config.json", description: `preset (${Object.keys(MODEL_PRESETS).join(", ")}) or path to an HF config.json` },
    "d-kv": { type: "string", required: true, valueName: "N", description: "latent width per KV head d_kv" },
    "rope-dims": { type: "string", valueName: "R", description: "rope dims kept per KV head (default: the preset's paper setting, or head_dim/4)" },
    bits: { type: "string", required: true, choices: ["8", "4", "2"], description: "latent code width" },
    group: { type: "string", default: "64", choices: ["32", "64", "128"], description: "latent group size" },
    axis: { type: "string", default: "token", choices: ["token", "channel"], description: "latent grouping axis" },
    rope: { type: "string", default: "fp16", choices: ["fp16", "int8", "int4"], description: "rope key policy" },
    "chunk-tokens": { type: "string", default: String(DEFAULT_CHUNK_TOKENS), valueName: "C", description: "tokens per sealed chunk" },
    json: { type: "boolean", description: "print one JSON object instead of the table" },
  },
  examples: [
    "mla-edge size --model llama-2-7b --d-kv 16 --bits 4",
    "mla-edge size --model qwen2.5-vl-7b --d-kv 64 --rope-dims 32 --bits 4 --rope int8 --json",
    "mla-edge size --model ./fixtures/tiny-qwen-vl/config.json --d-kv 8 --bits 8",
  ],
  handler(args, ctx) {
    const dKv = parseIntegerFlag("d-kv", args["d-kv"], { min: 1 });
    const ropeDims = args["rope-dims"] === undefined ? undefined : parseIntegerFlag("rope-dims", args["rope-dims"], { min: 0 });
    const chunkTokens = parseIntegerFlag("chunk-tokens", args["chunk-tokens"], { min: 1, max: MAX_CHUNK_TOKENS });
    const model = resolveModel(args.model, dKv, ropeDims, ctx.cwd);
    const report = cacheBytesPerToken(model.spec, {
      bits: Number(args.bits) as Bits,
      group: Number(args.group) as GroupSize,
      axis: args.axis as Axis,
      rope: args.rope as RopePolicy,
      chunkTokens,
    });
    ctx.io.stdout(args.json ? JSON.stringify(sizeJson(model, report)) + "\n" : sizeTable(model, report));
    return 0;
  },
});
