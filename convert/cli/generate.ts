// `mla-edge generate`: a user's first command on a real model. Runs a Qwen2.5-VL checkpoint folder (the original GQA
// model as released, or an mla-edge MLA conversion) — an MLA conversion on the GPU engine (runtime/gpu) when WebGPU has an
// adapter (dawn.node; --device auto|gpu|cpu), otherwise on the CPU reference path: messages → chat template + tokenizer +
// image processor (runtime/inputs) → vision tower + decoder (runtime/qwen2_5_vl-model.ts) → the runtime's sampler.
// Without --json the text streams to stdout as it is generated (stats on stderr); --json prints one object.

import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { releasedRanksFromBytes } from "../../checkpoint/families/mha2mla_released.ts";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { readRankFile, releasedRanksOf } from "../eval/vlm-dir.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import { DecoderSessionError } from "../../runtime/decoder-session.ts";
import { generate, type GenerateResult } from "../../runtime/generate.ts";
import type { InputMessage, ModelInputs } from "../../runtime/inputs/processor.ts";
import { loadInputProcessor, nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import { createQwen25VLSession, loadQwen25VL, Qwen25VLError, type Qwen25VLModel } from "../../runtime/qwen2_5_vl-model.ts";
import { SamplerError, type SamplingParams } from "../../runtime/sampler.ts";
import { VisionError } from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { GpuEngine } from "../../runtime/gpu/engine.ts";
import { generateOnGpu } from "../../runtime/gpu/generate-gpu.ts";
import { nodeGpuContext } from "../../runtime/gpu/node-gpu.node.ts";
import { kernelUnsupportedReason } from "../../runtime/mla/kernel-attention.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { defineCommand, parseIntegerFlag } from "./command.ts";
import { UserError } from "./errors.ts";

export interface GenerateJson {
  readonly model: string;
  readonly kind: "original" | "mla";
  /** Where the language model ran: the GPU engine (runtime/gpu) or the CPU reference path. */
  readonly device: "gpu" | "cpu";
  /** Why the CPU path ran although --device was auto (null when the GPU ran or --device cpu was asked). */
  readonly device_fallback: string | null;
  readonly input_ids: number[];
  readonly output_ids: number[];
  readonly text: string;
  /** The 20 largest logits at the first generated position, [id, value]. */
  readonly top_logits: [number, number][];
  readonly sampling: { temperature: number; top_k: number; top_p: number; seed: number; max_tokens: number };
  readonly timings: { load_ms: number; inputs_ms: number; prefill_ms: number; decode_ms: number; prompt_tokens: number; generated_tokens: number; decode_tokens_per_second: number | null };
}

function parseFloatFlag(name: string, value: string, min: number, max: number, minOpen = false): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n > max || (minOpen ? n <= min : n < min)) {
    throw new UserError("invalid_argument", `--${name} must be a number in ${minOpen ? "(" : "["}${min}, ${max}], got "${value}"`);
  }
  return n;
}

function mapError(e: unknown): unknown {
  if (e instanceof CheckpointError) return new UserError(e.code === "io" ? "file_not_found" : "invalid_file", e.message);
  if (e instanceof RuntimeError) return new UserError(e.code === "bad_messages" ? "invalid_argument" : "invalid_file", e.message);
  if (e instanceof Qwen25VLError || e instanceof VisionError || e instanceof DecoderSessionError) return new UserError("invalid_file", e.message);
  if (e instanceof SamplerError) return new UserError("invalid_argument", e.message);
  return e;
}

async function readMessages(path: string): Promise<InputMessage[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new UserError("file_not_found", `cannot read --messages ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError("invalid_file", `--messages ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(json)) throw new UserError("invalid_file", `--messages ${path} must hold a JSON array of messages`);
  return json as InputMessage[];
}

/** Sampling from the flags, else generation_config.json (do_sample false or absent: greedy). */
async function samplingParams(dir: string, args: { temperature?: string; "top-k"?: string; "top-p"?: string; seed?: string }): Promise<Required<SamplingParams>> {
  let gen: Record<string, unknown> = {};
  try {
    gen = JSON.parse(await readFile(resolve(dir, "generation_config.json"), "utf8")) as Record<string, unknown>;
  } catch {
    // no generation_config.json: greedy unless flags say otherwise
  }
  const num = (v: unknown, d: number) => (typeof v === "number" && Number.isFinite(v) ? v : d);
  const sample = gen.do_sample === true;
  return {
    temperature: args.temperature !== undefined ? parseFloatFlag("temperature", args.temperature, 0, 100) : sample ? num(gen.temperature, 1) : 0,
    topK: args["top-k"] !== undefined ? parseIntegerFlag("top-k", args["top-k"], { min: 0 }) : sample ? num(gen.top_k, 0) : 0,
    topP: args["top-p"] !== undefined ? parseFloatFlag("top-p", args["top-p"], 0, 1, true) : sample ? num(gen.top_p, 1) : 1,
    seed: args.seed !== undefined ? parseIntegerFlag("seed", args.seed, { min: 0, max: 2 ** 32 - 1 }) : 0,
  };
}

/** Streams decoded text: prints what the ids decoded so far add, holding back an incomplete UTF-8 sequence. */
class TextStreamer {
  private printed = "";
  constructor(
    private readonly decode: (ids: number[]) => string,
    private readonly write: (t: string) => void,
  ) {}
  push(ids: number[], final: boolean): void {
    const text = this.decode(ids);
    if (!final && text.endsWith("\uFFFD")) return;
    if (text.startsWith(this.printed)) this.write(text.slice(this.printed.length));
    else this.write(text.slice(commonPrefix(text, this.printed)));
    this.printed = text;
  }
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * The GPU engine for an MLA decoder when WebGPU has an adapter: f32 weights and a cache that never seals within
 * `tokens` (the whole conversation stays in the f32 tail, like the CPU path's cache), so the output equals the CPU
 * path's. `{ fallback }` says why not (an error instead when the GPU was required).
 */
async function gpuEngineFor(model: Qwen25VLModel, tokens: number, required: boolean): Promise<{ engine: GpuEngine; ctx: GpuContext } | { fallback: string }> {
  const refuse = (why: string): { fallback: string } => {
    if (required) throw new UserError("invalid_argument", `--device gpu: ${why}`);
    return { fallback: why };
  };
  if (model.decoder.kind !== "mla") return refuse("the GPU engine runs MLA conversions; this is the original model");
  const weights: MlaModelWeights = model.decoder.model;
  let chunkTokens = 64;
  while (chunkTokens <= tokens) chunkTokens *= 2;
  const params: CodecParams = { bits: 8, group: 32, axis: "token", rope: "fp16" };
  const why = kernelUnsupportedReason(weights, params, false, chunkTokens);
  if (why !== null) return refuse(why);
  const ctx = await nodeGpuContext();
  if (ctx === null) return refuse("no WebGPU adapter");
  const engine = await GpuEngine.create(ctx, weights, { codec: loadNodeCodec(), codecParams: params, chunkTokens, initialCapacity: chunkTokens });
  return { engine, ctx };
}

export const generateCommand = defineCommand({
  name: "generate",
  description: "chat with a Qwen2.5-VL checkpoint (original or MLA-converted): an MLA conversion runs on the WebGPU engine when an adapter exists, else on the CPU reference path",
  args: {
    model: { type: "string", required: true, valueName: "DIR", description: "Qwen2.5-VL checkpoint folder (HF layout, sharded or not) or an mla-edge MLA conversion" },
    prompt: { type: "string", valueName: "TEXT", description: "one user message (with --image for its images)" },
    image: { type: "string", multiple: true, valueName: "FILE", description: "an image (PNG or JPEG) placed before the --prompt text; repeat for several" },
    messages: { type: "string", valueName: "FILE", description: "JSON array of OpenAI-style messages; image_url urls are data: URLs or paths relative to FILE's folder" },
    "max-tokens": { type: "string", default: "128", valueName: "N", description: "generated tokens at most (the stop token included)" },
    temperature: { type: "string", valueName: "T", description: "0 = greedy (default: generation_config.json, greedy when it does not sample)" },
    "top-k": { type: "string", valueName: "K", description: "sample among the K largest logits (0 = all)" },
    "top-p": { type: "string", valueName: "P", description: "nucleus sampling: the smallest set of tokens whose probability reaches P" },
    seed: { type: "string", valueName: "S", description: "sampling seed (default 0)" },
    json: { type: "boolean", description: "print one JSON object: input_ids, output_ids, text, top_logits, timings" },
    "rank-file": {
      type: "string",
      valueName: "PTH",
      description: "released MHA2MLA checkpoint: its .pth rank file (default: config mha2mla.qk_tensor_path, looked up in the model folder)",
    },
    device: {
      type: "string",
      default: "auto",
      valueName: "auto|gpu|cpu",
      description: "where the language model runs: the WebGPU engine (dawn.node), the CPU reference path, or the GPU when an adapter exists and the model is an MLA conversion (default)",
    },
  },
  examples: [
    "mla-edge generate --model fixtures/qwen25vl-mini --prompt \"Describe the image.\" --image photo.png",
    "mla-edge generate --model out/qwen-mla --messages chat.json --temperature 0 --json",
    "mla-edge generate --model Qwen2.5-VL-7B-MLA-stage2-rope32-d_kv_64 --prompt \"Describe the image.\" --image photo.png",
  ],
  async handler(args, ctx) {
    if ((args.prompt === undefined) === (args.messages === undefined)) throw new UserError("usage", "give either --prompt TEXT (with --image FILE ...) or --messages FILE");
    if (args.messages !== undefined && args.image.length > 0) throw new UserError("usage", "--image goes with --prompt; put images of --messages in the file's image_url parts");
    const maxTokens = parseIntegerFlag("max-tokens", args["max-tokens"], { min: 1, max: 1_000_000 });
    const device = args.device;
    if (device !== "auto" && device !== "gpu" && device !== "cpu") throw new UserError("invalid_argument", `--device must be auto, gpu or cpu, got "${device}"`);
    const dir = resolve(ctx.cwd, args.model);
    const sampling = await samplingParams(dir, args);
    const t0 = performance.now();
    let model: Qwen25VLModel;
    let inputs: ModelInputs;
    let result: GenerateResult;
    let decode: (ids: number[]) => string;
    let tLoad = 0;
    let tInputs = 0;
    let ran: "gpu" | "cpu" = "cpu";
    let fallback: string | null = null;
    try {
      const ck = await openCheckpointDir(dir);
      try {
        const isMla = ck.rawConfig.mha2mla !== undefined && ck.rawConfig.mha2mla !== null;
        const rankFile = args["rank-file"];
        if (rankFile !== undefined && !isMla) throw new UserError("invalid_argument", `--rank-file applies to an MLA checkpoint; ${dir} holds the original model`);
        // a released MHA2MLA checkpoint (`cnxup/*-MLA-stage2-*`) as published: kept pairs from its .pth rank file
        const released =
          rankFile === undefined
            ? await releasedRanksOf(dir, ck.rawConfig, ck.source)
            : releasedRanksFromBytes(ck.rawConfig, await readRankFile(resolve(ctx.cwd, rankFile)), resolve(ctx.cwd, rankFile));
        model = await loadQwen25VL(ck.source, ck.rawConfig, resolve(dir, "config.json"), released === null ? {} : { ranks: released.ranks });
      } finally {
        await ck.source.close();
      }
      const processor = await loadInputProcessor(dir);
      decode = (ids) => processor.decode(ids, { skipSpecialTokens: true });
      tLoad = performance.now() - t0;
      let messages: InputMessage[];
      let baseDir: string;
      if (args.messages !== undefined) {
        const file = resolve(ctx.cwd, args.messages);
        messages = await readMessages(file);
        baseDir = dirname(file);
      } else {
        const parts: InputMessage["content"] = [
          ...args.image.map((f) => ({ type: "image_url" as const, image_url: { url: resolve(ctx.cwd, f) } })),
          { type: "text" as const, text: args.prompt! },
        ];
        messages = [{ role: "user", content: parts }];
        baseDir = ctx.cwd;
      }
      inputs = await processor.encode(messages, { loadImage: nodeImageLoader(baseDir) });
      tInputs = performance.now() - t0 - tLoad;
      const out: number[] = [];
      const streamer = args.json ? null : new TextStreamer(decode, ctx.io.stdout);
      const images = inputs.images.map((im) => ({ pixelValues: im.pixelValues, grid: { t: im.gridThw[0], h: im.gridThw[1], w: im.gridThw[2] } }));
      const options = {
        ...sampling,
        maxTokens,
        stopTokenIds: processor.eosTokenIds,
        onToken: (id: number) => {
          out.push(id);
          streamer?.push(out, false);
        },
      };
      const gpu = device === "cpu" ? null : await gpuEngineFor(model, inputs.inputIds.length + maxTokens, device === "gpu");
      ran = gpu === null || "fallback" in gpu ? "cpu" : "gpu";
      fallback = gpu !== null && "fallback" in gpu ? gpu.fallback : null;
      if (gpu !== null && "engine" in gpu) {
        try {
          result = await generateOnGpu(model, gpu.engine, inputs.inputIds, images, options);
        } finally {
          gpu.engine.dispose();
          gpu.ctx.device.destroy();
        }
      } else {
        const { session } = createQwen25VLSession(model);
        result = generate(model, session, inputs.inputIds, images, options);
      }
      streamer?.push(out, true);
    } catch (e) {
      throw mapError(e);
    }
    const t = result.timings;
    if (!args.json) {
      ctx.io.stdout("\n");
      ctx.io.stderr(
        `${ran === "gpu" ? "GPU" : "CPU"}${fallback ? ` (${fallback})` : ""}: ${t.promptTokens} prompt tokens (${inputs.images.length} image${inputs.images.length === 1 ? "" : "s"}), ${t.generatedTokens} generated; ` +
          `load ${(tLoad / 1000).toFixed(1)} s, prefill ${(t.prefillMs / 1000).toFixed(2)} s, ` +
          `decode ${t.decodeTokensPerSecond === null ? "-" : t.decodeTokensPerSecond.toFixed(1)} tok/s\n`,
      );
      return 0;
    }
    const doc: GenerateJson = {
      model: dir,
      kind: model.decoder.kind,
      device: ran,
      device_fallback: fallback,
      input_ids: inputs.inputIds,
      output_ids: result.outputIds,
      text: decode(result.outputIds),
      top_logits: result.topLogits,
      sampling: { temperature: sampling.temperature, top_k: sampling.topK, top_p: sampling.topP, seed: sampling.seed, max_tokens: maxTokens },
      timings: {
        load_ms: tLoad,
        inputs_ms: tInputs,
        prefill_ms: t.prefillMs,
        decode_ms: t.decodeMs,
        prompt_tokens: t.promptTokens,
        generated_tokens: t.generatedTokens,
        decode_tokens_per_second: t.decodeTokensPerSecond,
      },
    };
    ctx.io.stdout(JSON.stringify(doc) + "\n");
    return 0;
  },
});
