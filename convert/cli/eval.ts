// `mla-edge eval`: greedy multi-turn accuracy of an original or MLA-converted model on the fixture's eval set, per
// question kind, optionally with the latent cache stored through the codec (sealed chunks quantized, tail raw).
// Progress goes to stderr; the table or --json goes to stdout.

import { resolve } from "node:path";
import { PthError } from "../../checkpoint/pth.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { DEFAULT_CHUNK_TOKENS } from "../../format/chunk/types.ts";
import { MAX_CHUNK_TOKENS } from "../../format/chunk/constants.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import type { Axis, Bits, Codec, GroupSize, RopePolicy } from "../../format/codec/types.ts";
import { DecoderSessionError } from "../../runtime/decoder-session.ts";
import { KeptPairsError } from "../../runtime/mla/kept-pairs.ts";
import { TokenizerError } from "../../runtime/inputs/tokenizer.ts";
import { VisionTowerError } from "../../runtime/vision/toy-tower.ts";
import { EvalError } from "../eval/errors.ts";
import { readEvalSet } from "../eval/eval-set.ts";
import { runGreedyEval, type AccuracyReport } from "../eval/greedy-eval.ts";
import type { StoredCacheOptions } from "../eval/stored-cache.ts";
import { loadVlmDir, type LoadedVlm } from "../eval/vlm-dir.ts";
import { ProgressBar } from "../pipeline/progress.ts";
import { defineCommand, parseIntegerFlag } from "./command.ts";
import { UserError } from "./errors.ts";

/** The codec for evaluation: the wasm build when it is built, else the bit-identical TypeScript reference. */
export function evalCodec(): Codec {
  try {
    return loadNodeCodec();
  } catch {
    return referenceCodec;
  }
}

/** Errors of model folders and eval files are the user's to fix: one line, exit 1. */
export function asUserError(e: unknown): unknown {
  if (e instanceof CheckpointError) return new UserError(e.code === "io" ? "file_not_found" : "invalid_file", e.message);
  if (e instanceof EvalError) return new UserError(e.code === "bad_options" ? "invalid_argument" : "invalid_file", e.message);
  if (e instanceof PthError) return new UserError("invalid_file", e.message); // a rank file that is malformed or a pickle that was refused
  if (e instanceof KeptPairsError || e instanceof TokenizerError || e instanceof VisionTowerError || e instanceof DecoderSessionError) {
    return new UserError("invalid_file", e.message); // data the model cannot run: unknown words, wrong patch counts
  }
  return e;
}

export interface EvalJson {
  readonly model: string;
  readonly kind: "original" | "mla";
  readonly conversion: Record<string, unknown> | null;
  readonly settings: Record<string, unknown>;
  readonly cases: number;
  readonly accuracy: Readonly<Record<string, number>>;
  readonly correct: Readonly<Record<string, number>>;
  readonly turns: Readonly<Record<string, number>>;
}

export function evalJson(vlm: LoadedVlm, report: AccuracyReport, settings: Record<string, unknown>): EvalJson {
  const d = vlm.decoder;
  return {
    model: vlm.dir,
    kind: d.kind,
    conversion:
      d.kind === "mla"
        ? { strategy: d.model.conversion.partialRopeVersion, svd: d.model.conversion.svdInitMethod, dKv: d.model.dKv, ropeDims: d.model.ropeDims, latentSpaces: d.model.latentSpaces }
        : null,
    settings,
    cases: report.cases,
    accuracy: report.accuracy,
    correct: report.correct,
    turns: report.turns,
  };
}

function table(doc: EvalJson): string {
  const kinds = Object.keys(doc.turns).filter((k) => k !== "all").sort();
  const c = doc.conversion;
  const lines = [
    `${doc.model}: ${doc.kind === "original" ? "original model" : `MLA ${c!.strategy} + ${c!.svd}, d_kv ${c!.dKv}, rope dims ${c!.ropeDims}`}; ` +
      `${doc.cases} cases, cache ${String(doc.settings.cache)}`,
    "",
    `${"kind".padEnd(8)}  ${"correct".padStart(9)}  ${"accuracy".padStart(8)}`,
  ];
  for (const k of [...kinds, "all"]) {
    lines.push(`${k.padEnd(8)}  ${`${doc.correct[k]}/${doc.turns[k]}`.padStart(9)}  ${`${(100 * doc.accuracy[k]).toFixed(1)} %`.padStart(8)}`);
  }
  return lines.join("\n") + "\n";
}

export const evalCommand = defineCommand({
  name: "eval",
  description: "greedy per-turn accuracy of an original or converted model on a multi-turn eval set",
  args: {
    model: { type: "string", required: true, valueName: "DIR", description: "original HF checkpoint folder or an mla-edge MLA checkpoint folder" },
    "rank-file": {
      type: "string",
      valueName: "FILE",
      description: "released MHA2MLA checkpoint: its .pth rank file (default: config mha2mla.qk_tensor_path, looked up in the model folder)",
    },
    eval: { type: "string", required: true, valueName: "FILE", description: "eval set (JSON lines: patches_u8, turns [{kind, question, answer}])" },
    limit: { type: "string", valueName: "N", description: "evaluate the first N cases only (default: all)" },
    codec: { type: "string", choices: ["int8", "int4", "int2"], description: "store the latent cache through the codec at this width (MLA models only)" },
    group: { type: "string", default: "64", choices: ["32", "64", "128"], description: "latent group size" },
    axis: { type: "string", default: "token", choices: ["token", "channel"], description: "latent grouping axis" },
    rope: { type: "string", default: "fp16", choices: ["fp16", "int8", "int4"], description: "rope key policy" },
    "chunk-tokens": { type: "string", default: String(DEFAULT_CHUNK_TOKENS), valueName: "C", description: "tokens per sealed chunk; the unsealed tail stays float32" },
    "seal-all": { type: "boolean", description: "quantize every token as it is written (no residual tail; token axis only)" },
    path: { type: "string", default: "absorbed", choices: ["absorbed", "expanded"], description: "MLA read path" },
    json: { type: "boolean", description: "print one JSON object instead of the table" },
  },
  examples: [
    "mla-edge eval --model fixtures/tiny-qwen-vl --eval fixtures/tiny-qwen-vl/eval.jsonl --json",
    "mla-edge eval --model out/tiny-mla --eval fixtures/tiny-qwen-vl/eval.jsonl --codec int4 --rope int8 --seal-all --limit 100",
  ],
  async handler(args, ctx) {
    const limit = args.limit === undefined ? Infinity : parseIntegerFlag("limit", args.limit, { min: 1 });
    const chunkTokens = parseIntegerFlag("chunk-tokens", args["chunk-tokens"], { min: 1, max: MAX_CHUNK_TOKENS });
    if (args["seal-all"] && args.codec === undefined) throw new UserError("usage", "--seal-all needs --codec");
    let vlm: LoadedVlm;
    let report: AccuracyReport;
    let stored: StoredCacheOptions | undefined;
    try {
      const rankFile = args["rank-file"];
      vlm = await loadVlmDir(resolve(ctx.cwd, args.model), rankFile === undefined ? {} : { rankFile: resolve(ctx.cwd, rankFile) });
      const cases = await readEvalSet(resolve(ctx.cwd, args.eval), limit);
      if (args.codec !== undefined) {
        if (vlm.decoder.kind !== "mla") throw new UserError("invalid_argument", `--codec quantizes an MLA latent cache; ${args.model} holds the original model`);
        stored = {
          codec: evalCodec(),
          bits: Number(args.codec.slice(3)) as Bits,
          group: Number(args.group) as GroupSize,
          axis: args.axis as Axis,
          rope: args.rope as RopePolicy,
          chunkTokens,
          sealAll: args["seal-all"],
        };
      }
      const bar = new ProgressBar(ctx.io.stderr, "eval", cases.length);
      const every = Math.max(1, Math.ceil(cases.length / 10));
      report = runGreedyEval(vlm, cases, { path: args.path as "absorbed" | "expanded", stored }, (done) => {
        if (done % every === 0 || done === cases.length) bar.at(done, `case ${done}/${cases.length}`);
      });
    } catch (e) {
      throw asUserError(e);
    }
    const settings: Record<string, unknown> = {
      path: vlm.decoder.kind === "mla" ? args.path : "gqa",
      cache: stored ? `int${stored.bits} g${stored.group} ${stored.axis}, rope ${stored.rope}, ${stored.sealAll ? "every token" : `sealed chunks of ${stored.chunkTokens}`}` : "float32",
      codec: stored ? { bits: stored.bits, group: stored.group, axis: stored.axis, rope: stored.rope, chunkTokens: stored.chunkTokens, sealAll: stored.sealAll, impl: stored.codec.kind } : null,
    };
    const doc = evalJson(vlm, report, settings);
    ctx.io.stdout(args.json ? JSON.stringify(doc) + "\n" : table(doc));
    return 0;
  },
});
