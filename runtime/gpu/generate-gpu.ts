// `generate` (runtime/generate.ts) on the GPU engine: the vision tower runs on the CPU for now and its embeddings enter
// the engine as inputs; prefill and every decode step run on the GPU, one submission per token, sampling on the GPU
// (kernels/sampling.ref.ts's rule: greedy at temperature 0 equals the CPU sampler; seeded draws follow the GPU's
// counter-based generator, not the CPU's mulberry32 stream). Same options and result as the CPU `generate`.

import type { GenerateOptions, GenerateResult } from "../generate.ts";
import { countImages, embedImages, llmGrid, Qwen25VLError, type Qwen25VLModel, type VisionInput } from "../qwen2_5_vl-model.ts";
import { topLogits } from "../sampler.ts";
import type { GpuEngine } from "./engine.ts";

export async function generateOnGpu(
  model: Pick<Qwen25VLModel, "config" | "vision" | "visionPrefix">,
  engine: GpuEngine,
  inputIds: readonly number[],
  images: readonly VisionInput[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const now = opts.now ?? (() => performance.now());
  const { text, vision } = model.config;
  const runs = countImages(inputIds, text.tokens.imagePad ?? -1);
  if (runs !== images.length) throw new Qwen25VLError("image_count", `the turn's tokens hold ${runs} image(s) but ${images.length} were given`);
  const sampling = { temperature: opts.temperature, topK: opts.topK ?? 0, topP: opts.topP ?? 1, seed: opts.seed ?? 0 };
  const stops = opts.stopTokenIds ?? [];
  const t0 = now();
  const input = images.length === 0 ? {} : { imageEmbeds: embedImages(model, images), imageGrids: images.map((i) => llmGrid(i.grid, vision.spatialMergeSize)) };
  const first = await engine.append(inputIds, input, sampling, true);
  const t1 = now();
  const top = topLogits(first.logits!, 20);
  const out: number[] = [];
  let id = first.next;
  for (let step = 0; step < opts.maxTokens; step++) {
    out.push(id);
    opts.onToken?.(id);
    if (stops.includes(id) || step === opts.maxTokens - 1) break;
    id = await engine.step(id, sampling);
  }
  const t2 = now();
  const decodeMs = t2 - t1;
  return {
    outputIds: out,
    topLogits: top,
    timings: {
      prefillMs: t1 - t0,
      decodeMs,
      promptTokens: inputIds.length,
      generatedTokens: out.length,
      decodeTokensPerSecond: out.length > 1 && decodeMs > 0 ? ((out.length - 1) * 1000) / decodeMs : null,
    },
  };
}
