// The converted tiny-qwen-vl the demo ships (client/demo/model: `mla-edge convert --strategy high --svd md --d-kv 16`,
// loaded through the runtime's own loader), and an exact in-memory conversion (all-rank factorisation, "high" kept
// pairs, r = 8) for checks against the fixture's reference answers.

import { ChatSession, type ChatCompletion } from "../../client/chat/chat-session.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import { refMessages, type RefCase } from "../runtime/qwen25vl-fixture.ts";
import { MemoryStore } from "./memory-store.ts";
import type { MlaCacheSnapshot } from "../../runtime/mla/attention.ts";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { buildMlaModel, fullRankFactoriser } from "../../runtime/mla/build.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import { loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { createChatModel, loadChatModel, type ChatModel, type HostChatModel } from "../../runtime/chat-model.ts";
import { patchBytesToImage } from "../../runtime/inputs/image.ts";
import type { RgbImage } from "../../runtime/inputs/messages.ts";
import { TypeScriptVisionEncoder, type VisionEncoder } from "../../runtime/vision/vision-encoder.ts";
import { base64ToBytes } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, type EvalCase } from "../runtime/helpers.ts";

export { FIXTURE_DIR, readEvalCases, type EvalCase } from "../runtime/helpers.ts";

/** Kept pairs 0..3 (the highest frequencies) of every layer and KV head: r = 8. */
export function highPairs(fx: TinyFixture, pairs = 4): number[][][] {
  return Array.from({ length: fx.config.numLayers }, () => Array.from({ length: fx.config.numKvHeads }, () => Array.from({ length: pairs }, (_, i) => i)));
}

let fixture: Promise<TinyFixture> | undefined;
let fullRank: MlaModelWeights | undefined;

export const DEMO_MODEL_DIR = fileURLToPath(new URL("../../client/demo/model/", import.meta.url));

export function tinyFixture(): Promise<TinyFixture> {
  fixture ??= loadTinyFixture(FIXTURE_DIR);
  return fixture;
}

/** The demo's converted checkpoint (MD-SVD d_kv = 16, D_c = 32) through loadChatModel, with its own vision encoder. */
export async function demoChatModel(vision?: VisionEncoder): Promise<HostChatModel> {
  const fx = await tinyFixture();
  return loadChatModel({
    config: JSON.parse(await readFile(join(DEMO_MODEL_DIR, "config.json"), "utf8")),
    weights: new Uint8Array(await readFile(join(DEMO_MODEL_DIR, "model.safetensors"))),
    tokenizer: JSON.parse(await readFile(join(DEMO_MODEL_DIR, "tokenizer.json"), "utf8")),
    vision: vision ?? new TypeScriptVisionEncoder(fx.vision),
    codec: loadNodeCodec(),
    ref: { id: "tiny-qwen-vl", conversion: "high-r8-md-svd-dkv16" },
  });
}

/** The fixture with every NoPE/value dim kept (exact full-rank latent, D_c = 112) and r = 8 "high" pairs. */
export async function fullRankChatModel(): Promise<HostChatModel> {
  const fx = await tinyFixture();
  fullRank ??= buildMlaModel(fx.model, highPairs(fx), fullRankFactoriser(2), { partialRopeVersion: "high", svdInitMethod: "full-rank" });
  return createChatModel({
    ref: { id: "tiny-qwen-vl", conversion: "high-r8-full-rank" },
    weights: fullRank,
    tokenizer: fx.tokenizer,
    vision: new TypeScriptVisionEncoder(fx.vision),
    codec: loadNodeCodec(),
    rawConfig: fx.rawConfig,
  });
}

/** The case's image as the 32×32 RGB picture the SDK takes. */
export function caseImage(c: EvalCase): RgbImage {
  return patchBytesToImage(base64ToBytes(c.patches_u8), { rows: 4, cols: 4, cellPixels: 8 });
}

/** The eval case's turn `t` as the user's message: turn 0 carries the case's image. */
export function userTurn(c: EvalCase, t: number) {
  const q = c.turns[t].question;
  return t === 0 ? [{ role: "user" as const, content: [{ type: "image" as const, image: caseImage(c) }, { type: "text" as const, text: q }] }] : [{ role: "user" as const, content: q }];
}

/** Two caches (inspectCache) equal bit for bit: length, modality, every layer's latent and k_rope. */
export function sameCache(a: MlaCacheSnapshot, b: MlaCacheSnapshot): boolean {
  if (a.length !== b.length || a.modality.some((m, i) => m !== b.modality[i])) return false;
  const eq = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
  return a.layers.every((l, i) => eq(l.latent, b.layers[i].latent) && eq(l.kRope, b.layers[i].kRope));
}

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));

/**
 * A qwen25vl-mini reference case as one turn of a fresh session on an in-memory store (its images from the fixture,
 * the reference's number of tokens): the completion and `kind/path` of the decoder that ran it.
 */
export async function answerRefCase(model: ChatModel, c: RefCase, options: { readonly codec: CodecParams; readonly chunkTokens: number; readonly topLogits?: number }): Promise<{ out: ChatCompletion; decoder: string }> {
  const chat = ChatSession.fresh(model, new MemoryStore(model.spec, options.codec, options.chunkTokens, model.ref), { codec: options.codec, chunkTokens: options.chunkTokens });
  try {
    const out = await chat.complete({ messages: refMessages(c), loadImage: nodeImageLoader(MINI), maxTokens: c.greedy.n, ...(options.topLogits ? { topLogits: options.topLogits } : {}) });
    return { out, decoder: `${chat.decoderChoice.kind}/${chat.decoderChoice.path}` };
  } finally {
    chat.dispose();
  }
}
