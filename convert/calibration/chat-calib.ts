// Calibration from real data (issue 19): a JSON Lines file whose every line is one conversation of OpenAI-style chat
// messages — `{"messages": [...]}` or the bare array — with image_url parts (paths relative to the jsonl, file: or
// data: URLs). Each conversation goes through the model's own tokenizer, chat template and image processor
// (runtime/inputs) and its images through the model's Qwen2.5-VL vision tower (runtime/vision), giving decoder-ready
// samples (token ids, image embeddings, merged-token grids). The vision weights are loaded for this step only.

import { dirname } from "node:path";
import { parseQwen25VLConfig, qwen25VisionPrefix } from "../../checkpoint/families/qwen2_5_vl.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { loadInputProcessor, nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import type { InputMessage } from "../../runtime/inputs/processor.ts";
import { llmGrid } from "../../runtime/qwen2_5_vl-model.ts";
import { linear } from "../../runtime/ops.ts";
import { loadQwen25VisionWeights, qwen25VisionForward, type LinearOp, type VisionGrid } from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { WasmLinearF32 } from "../linalg/linear-f32-wasm.ts";
import { parseJsonlRecords, readTextFile } from "../jsonl-records.ts";
import { CalibrationError } from "./errors.ts";
import type { CalibrationForward, CalibrationSample } from "./layer-forward.ts";

const fail = (message: string): CalibrationError => new CalibrationError("bad_calibration_file", message);

/** True when the first record of a calibration jsonl holds chat messages (not the fixture's `input_ids` records). */
export function isChatCalibration(text: string): boolean {
  const first = text.split("\n").find((l) => l.trim().length > 0);
  if (first === undefined) return false;
  try {
    const j = JSON.parse(first) as unknown;
    return Array.isArray(j) || (j !== null && typeof j === "object" && "messages" in j);
  } catch {
    return false;
  }
}

/** The conversations of a chat calibration file (up to `limit`). */
export function parseChatCalibration(text: string, label: string, limit = Infinity): InputMessage[][] {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .map((l) => (l.startsWith("[") ? `{"messages":${l}}` : l))
    .join("\n");
  const out = parseJsonlRecords(
    lines,
    label,
    limit,
    (j, where) => {
      const m = j.messages;
      if (!Array.isArray(m) || m.length === 0) throw fail(`${where}: "messages" must be a non-empty array of chat messages`);
      for (const [i, msg] of m.entries()) {
        const r = msg as Record<string, unknown> | null;
        if (r === null || typeof r !== "object" || typeof r.role !== "string" || (typeof r.content !== "string" && !Array.isArray(r.content))) {
          throw fail(`${where}: message ${i} needs a string role and a string or array content`);
        }
      }
      return m as InputMessage[];
    },
    fail,
  );
  if (out.length === 0) throw fail(`${label}: no calibration conversations`);
  return out;
}

export interface ChatCalibrationOptions {
  /** Stop adding conversations once this many tokens are taken (the first one is always taken). */
  readonly limitTokens?: number;
  readonly limitSequences?: number;
  readonly onSequence?: (done: number, total: number, tokens: number) => void;
  /** The vision tower's projections: `wasm-f32` (default, build/linalg.wasm SIMD) or `reference` (runtime f64 ops). */
  readonly forward?: CalibrationForward;
}

/**
 * Turns a chat calibration file into decoder-ready samples with the model folder's processor and the checkpoint's
 * vision tower (`source`, `rawConfig`: the opened original checkpoint).
 */
export async function readChatCalibration(
  path: string,
  modelDir: string,
  source: TensorSource,
  rawConfig: unknown,
  options: ChatCalibrationOptions = {},
): Promise<CalibrationSample[]> {
  const conversations = parseChatCalibration(await readTextFile(path, fail), path, options.limitSequences ?? Infinity);
  const processor = await loadInputProcessor(modelDir);
  const config = parseQwen25VLConfig(rawConfig, `${modelDir}/config.json`);
  const loadImage = nodeImageLoader(dirname(path));
  const prefix = qwen25VisionPrefix(source.names());
  let weights: Awaited<ReturnType<typeof loadQwen25VisionWeights>> | null = null;
  let wasm: WasmLinearF32 | null = null;
  let linearOp: LinearOp = linear;
  if ((options.forward ?? "wasm-f32") === "wasm-f32") {
    wasm = WasmLinearF32.create();
    if (wasm === null) throw new CalibrationError("bad_sequence", "the wasm-f32 forward needs build/linalg.wasm with gemmNTf32: run `npm run build:linalg-wasm`");
    const lin = wasm;
    linearOp = (x, rows, inDim, w, outDim, bias, out) => lin.linearOnce(x, rows, inDim, w, outDim, bias, out);
  }
  const limit = options.limitTokens ?? Infinity;
  const out: CalibrationSample[] = [];
  let tokens = 0;
  try {
    for (const [i, messages] of conversations.entries()) {
      let inputs;
      try {
        inputs = await processor.encode(messages, { loadImage, addGenerationPrompt: false });
      } catch (e) {
        throw fail(`${path}: conversation ${i + 1}: ${(e as Error).message}`);
      }
      if (out.length > 0 && tokens + inputs.inputIds.length > limit) break;
      let sample: CalibrationSample = { inputIds: inputs.inputIds };
      if (inputs.images.length > 0) {
        weights ??= await loadQwen25VisionWeights(source, config.vision, prefix);
        const grids: VisionGrid[] = inputs.images.map((im) => ({ t: im.gridThw[0], h: im.gridThw[1], w: im.gridThw[2] }));
        sample = {
          inputIds: inputs.inputIds,
          imageEmbeds: qwen25VisionForward(config.vision, weights, inputs.pixelValues, grids, prefix, linearOp),
          imageGrids: grids.map((g) => llmGrid(g, config.vision.spatialMergeSize)),
        };
      }
      out.push(sample);
      tokens += inputs.inputIds.length;
      options.onSequence?.(out.length, conversations.length, tokens);
      if (tokens >= limit) break;
    }
  } finally {
    await wasm?.close();
  }
  return out;
}
