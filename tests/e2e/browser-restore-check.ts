// In-page harness of the Chromium e2e test (bundled by the demo server as /restore-check.js): the Node e2e loop —
// uninterrupted vs restored-per-turn sessions — run inside the browser with the page's own runtime (ORT WebGPU/wasm
// vision, wasm codec, the page's GPU engine over the bundle's int4 weights) against the edge store behind the demo server, plus a
// third session on the CPU reference decoder with the same image embeddings, to compare the decoders' answers.

import { withGpuEngine } from "../../runtime/gpu/chat-engine.ts";
import type { ChatMessage, ChatSession, MlaEdge } from "../../client/index.ts";
import { withDecoderKernels, type ChatModel } from "../../runtime/chat-model.ts";
import { patchBytesToImage } from "../../runtime/inputs/image.ts";
import { sharedCacheLayout } from "../../runtime/decoder-kernels.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { DecoderSession } from "../../runtime/decoder-session.ts";
import { MlaKernelAttentionBackend } from "../../runtime/mla/kernel-attention.ts";
import { codecSlotQuantizer, SlotSealing } from "../../runtime/mla/slot-sealing.ts";
import type { MlaCacheSnapshot } from "../../runtime/mla/attention.ts";
import { base64ToBytes } from "../../runtime/vision/toy-tower.ts";

export interface CheckCase {
  readonly patches_u8: string;
  readonly questions: readonly string[];
  readonly answers: readonly string[];
}

export interface CheckResult {
  readonly cases: number;
  readonly turns: number;
  readonly mismatches: string[];
  readonly correct: number;
  readonly visionCallsOnRestore: number;
  readonly cachedTokenErrors: number;
  readonly cacheDiffs: number;
  /** Turns where the page's decoder (the GPU engine) and the CPU reference answered differently. */
  readonly cpuMismatches: string[];
  /** "webgpu/engine" when the page decoded on the GPU engine ("webgpu/kernels" on the attention kernels). */
  readonly decoder: string;
  /** The comparison session's decoder: "cpu/reference". */
  readonly referenceDecoder: string;
  readonly restoreDecoders: string[];
}

function sameCache(a: MlaCacheSnapshot, b: MlaCacheSnapshot): boolean {
  if (a.length !== b.length) return false;
  const eq = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
  return a.layers.every((l, i) => eq(l.latent, b.layers[i].latent) && eq(l.kRope, b.layers[i].kRope));
}

export async function runRestoreCheck(client: MlaEdge, model: ChatModel, cases: readonly CheckCase[]): Promise<CheckResult> {
  const codec = { bits: 4, group: 32, axis: "token", rope: "int8" } as const;
  const mismatches: string[] = [];
  let turns = 0;
  let correct = 0;
  let visionCallsOnRestore = 0;
  let cachedTokenErrors = 0;
  let cacheDiffs = 0;
  const cpuMismatches: string[] = [];
  const restoreDecoders = new Set<string>();
  let decoder = "";
  // the CPU reference decoder on the same (dequantized bundle) weights: neither the engine nor the kernels
  const cpuModel = withGpuEngine(withDecoderKernels(model, null), null);
  let referenceDecoder = "";
  for (const [ci, c] of cases.entries()) {
    const image = patchBytesToImage(base64ToBytes(c.patches_u8), { rows: 4, cols: 4, cellPixels: 8 });
    const msgs = (t: number): ChatMessage[] =>
      t === 0 ? [{ role: "user", content: [{ type: "image", image }, { type: "text", text: c.questions[0] }] }] : [{ role: "user", content: c.questions[t] }];
    const a = await client.sessions.create({ codec, chunkTokens: 16 });
    let b: ChatSession = await client.sessions.create({ codec, chunkTokens: 16 });
    const r = await client.sessions.create({ model: cpuModel, codec, chunkTokens: 16 });
    decoder = `${a.decoderChoice.kind}/${a.decoderChoice.path}`;
    referenceDecoder = `${r.decoderChoice.kind}/${r.decoderChoice.path}`;
    for (let t = 0; t < c.questions.length; t++) {
      if (t > 0) {
        const before = model.vision.calls;
        b = await client.sessions.open(b.id, b.token);
        visionCallsOnRestore += model.vision.calls - before;
        restoreDecoders.add(b.restoreStats?.decoder ?? "none");
        if (!sameCache(await a.inspectCache(), await b.inspectCache())) cacheDiffs++;
      }
      const prefix = b.length;
      const ra = await a.chat({ messages: msgs(t), maxTokens: 4 });
      const rb = await b.chat({ messages: msgs(t), maxTokens: 4 });
      const rr = await r.chat({ messages: msgs(t), maxTokens: 4 });
      if (ra.tokenIds.join() !== rr.tokenIds.join()) cpuMismatches.push(`case ${ci} turn ${t}: ${ra.message.content} vs cpu ${rr.message.content}`);
      if (ra.tokenIds.join() !== rb.tokenIds.join()) mismatches.push(`case ${ci} turn ${t}: ${ra.message.content} vs ${rb.message.content}`);
      if (rb.usage.cached_tokens !== (t === 0 ? 0 : prefix)) cachedTokenErrors++;
      if (rb.message.content === c.answers[t]) correct++;
      turns++;
    }
  }
  return { cases: cases.length, turns, mismatches, correct, visionCallsOnRestore, cachedTokenErrors, cacheDiffs, cpuMismatches, decoder, referenceDecoder, restoreDecoders: [...restoreDecoders] };
}

export interface LogitsCheck {
  /** Per case: max |webgpu − cpu| / max |cpu| over every logits row of the true 3-turn sequence. */
  readonly relErr: number[];
  readonly rows: number;
}

/**
 * Logits of the page's WebGPU decoder vs the CPU reference (same slot sealing, same image embeddings from the page's
 * vision tower): turn 1 as one causal block, every later token as a decode step.
 */
export async function runLogitsCheck(model: ChatModel, cases: readonly CheckCase[]): Promise<LogitsCheck> {
  const kernels = model.kernels;
  if (kernels === null) throw new Error("the page has no WebGPU kernels");
  const codec = { bits: 4, group: 32, axis: "token", rope: "int8" } as const;
  const C = 16;
  const w = model.weights!;
  const spec = model.spec;
  const dims = { latentWidth: spec.kvHeads * spec.dKv, ropeWidth: spec.kvHeads * spec.ropeDims, ropeDims: spec.ropeDims };
  const sealing = () => new SlotSealing(spec.layers, C, dims.latentWidth, dims.ropeWidth, codecSlotQuantizer(model.codec, codec, dims));
  const tok = model.processor.tokenizer;
  const relErr: number[] = [];
  let rows = 0;
  for (const c of cases) {
    const image = patchBytesToImage(base64ToBytes(c.patches_u8), { rows: 4, cols: 4, cellPixels: 8 });
    const turn = await model.processor.encode([{ role: "user", content: [{ type: "image", image }, { type: "text", text: c.questions[0] }] }]);
    const embeds = await model.vision.encode(turn.images);
    const rest: number[] = [];
    c.questions.forEach((q, i) => {
      if (i > 0) rest.push(...tok.encode(q));
      rest.push(...tok.encode(c.answers[i]), ...model.format.closingIds);
    });
    const ref = createMlaSession(w, "absorbed", { defaultImageGrid: model.imageGrid, sealing: sealing() }).session;
    const attention = new MlaKernelAttentionBackend(w, kernels, sharedCacheLayout(kernels, w, codec, C), sealing());
    const gpu = new DecoderSession(w.config, w.shell, attention, { defaultImageGrid: model.imageGrid });
    const a = [ref.append(turn.inputIds, { imageEmbeds: embeds, logits: "all" })];
    const b = [await gpu.appendAsync(turn.inputIds, { imageEmbeds: embeds, logits: "all" })];
    for (const t of rest) {
      a.push(ref.append([t]));
      b.push(await gpu.appendAsync([t]));
    }
    let num = 0;
    let den = 0;
    a.forEach((x, k) => {
      for (let i = 0; i < x.length; i++) {
        num = Math.max(num, Math.abs(x[i] - b[k][i]));
        den = Math.max(den, Math.abs(x[i]));
      }
      rows += x.length / w.config.vocabSize;
    });
    relErr.push(num / den);
    attention.destroy();
  }
  return { relErr, rows };
}
