// `mla-edge pack`: checkpoint folder → browser bundle (docs/bundle.md).

import { resolve } from "node:path";
import { MAX_SHARD_BYTES } from "../../checkpoint/bundle/manifest.ts";
import type { QuantBlock } from "../../checkpoint/bundle/matmul-nbits.ts";
import { PackError } from "../pack/errors.ts";
import { packBundle } from "../pack/pack-bundle.ts";
import { defineCommand, parseIntegerFlag } from "./command.ts";
import { UserError } from "./errors.ts";

const MIB = 1024 * 1024;

function toUserError(e: unknown): unknown {
  if (!(e instanceof PackError)) return e;
  switch (e.code) {
    case "missing_file":
      return new UserError("file_not_found", e.message);
    case "bad_option":
      return new UserError("invalid_argument", e.message);
    case "missing_tensor":
    case "shape_mismatch":
    case "unknown_family":
    case "bad_config":
    case "unsupported_dtype":
    case "row_too_large":
      return new UserError("invalid_file", e.message);
    default:
      // out_exists, disk_full, permission_denied, io: the message names the path
      return new UserError("invalid_argument", `${e.code}: ${e.message}`);
  }
}

export const packCommand = defineCommand({
  name: "pack",
  description: "pack a checkpoint into a browser bundle: manifest + ≤ 64 MiB shards of MatMulNBits-quantized weights",
  args: {
    model: { type: "string", required: true, valueName: "DIR", description: "checkpoint folder (HF, sharded bf16, or an mla-edge convert output)" },
    out: { type: "string", required: true, valueName: "BUNDLE", description: "bundle folder to create (must not exist)" },
    weights: { type: "string", default: "int4", choices: ["int4", "int8", "f16"], description: "Linear, embedding and LM head weights" },
    block: { type: "string", default: "32", choices: ["32", "64", "128"], description: "quantization block along K" },
    "zero-points": { type: "boolean", description: "asymmetric quantization with per-block zero points" },
    vision: { type: "string", default: "f16", choices: ["f16", "int8"], description: "vision tower weights" },
    norms: { type: "string", default: "f32", choices: ["f32", "f16"], description: "norms and biases" },
    "shard-mib": { type: "string", default: "64", valueName: "N", description: "largest shard in MiB (1–64)" },
    json: { type: "boolean", description: "print a JSON summary on stdout" },
    "rank-file": {
      type: "string",
      valueName: "PTH",
      description: "released MHA2MLA checkpoint: its .pth rank file (default: config mha2mla.qk_tensor_path, looked up in the model folder)",
    },
  },
  examples: [
    "mla-edge pack --model fixtures/tiny-qwen-vl --out out/tiny-bundle",
    "mla-edge pack --model fixtures/qwen25vl-mini --out out/mini-int8 --weights int8 --block 64 --zero-points",
  ],
  async handler(args, ctx) {
    const shardMib = parseIntegerFlag("shard-mib", args["shard-mib"], { min: 1, max: MAX_SHARD_BYTES / MIB });
    const modelDir = resolve(ctx.cwd, args.model);
    const out = resolve(ctx.cwd, args.out);
    const started = performance.now();
    try {
      const r = await packBundle(modelDir, out, {
        weights: args.weights as "int4" | "int8" | "f16",
        block: Number(args.block) as QuantBlock,
        zeroPoints: args["zero-points"],
        vision: args.vision as "f16" | "int8",
        norms: args.norms as "f32" | "f16",
        ...(args["rank-file"] !== undefined ? { rankFile: resolve(ctx.cwd, args["rank-file"]) } : {}),
        maxShardBytes: shardMib * MIB,
        log: ctx.io.stderr,
      });
      const seconds = (performance.now() - started) / 1000;
      const m = r.manifest;
      if (args.json) {
        ctx.io.stdout(
          JSON.stringify({ out, shards: m.shards.length, tensors: m.tensors.length, bundleBytes: r.bundleBytes, sourceBytes: r.sourceBytes, quantization: m.quantization, seconds }) + "\n",
        );
      } else {
        ctx.io.stdout(
          `wrote ${out}: ${m.tensors.length} tensors in ${m.shards.length} shard(s), ${(r.bundleBytes / MIB).toFixed(2)} MiB ` +
            `(source ${(r.sourceBytes / MIB).toFixed(2)} MiB), ${m.quantization.weights} block ${m.quantization.block}${m.quantization.zeroPoints ? " + zero points" : ""}, ${seconds.toFixed(1)}s\n`,
        );
      }
      return 0;
    } catch (e) {
      throw toUserError(e);
    }
  },
});
