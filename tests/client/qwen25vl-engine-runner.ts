// Child process of tests/client/qwen25vl-engine.test.ts (dawn.node reads VK_ICD_FILENAMES at process start):
// fixtures/qwen25vl-mini's reference.json through the SDK's chat session on the GPU engine (SwiftShader), and the int4
// engine's top-1 agreement with the f32 engine over the reference prompts. Prints one JSON line (MiniEngineReport).
// Usage: node --import tsx tests/client/qwen25vl-engine-runner.ts

import { runReport } from "../helpers/run-tsx.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChatSession } from "../../client/chat/chat-session.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import type { SessionStore } from "../../runtime/cache-store.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import { loadChatModelDir } from "../../runtime/chat-model.node.ts";
import { withGpuEngine } from "../../runtime/gpu/chat-engine.ts";
import { nodeGpuContext } from "../../runtime/gpu/node-gpu.node.ts";
import { nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import type { InputMessage } from "../../runtime/inputs/processor.ts";
import { runCli } from "../cli/run-cli.ts";
import { loadReference, refMessages, type RefCase } from "../runtime/qwen25vl-fixture.ts";
import { MemoryStore, RecordingStore } from "./memory-store.ts";
import { answerRefCase } from "./fixture-model.ts";
import { roundModel } from "../runtime/engine-helpers.ts";

export interface MiniCaseResult {
  readonly name: string;
  readonly inputIdsEqual: boolean;
  readonly positionsEqual: boolean;
  readonly greedyEqual: boolean;
  readonly top20IdsEqual: boolean;
  /** max |ours − reference| over the top-20 logits of the first generated position. */
  readonly top20MaxErr: number;
  readonly ropeDeltaOk: boolean;
  readonly decoder: string;
}

export interface MiniEngineReport {
  readonly adapter: string;
  readonly cases: MiniCaseResult[];
  /** int4 block-32 engine vs f32 engine, teacher-forced over each case's prompt + reference greedy ids: argmax equal. */
  readonly int4: { readonly positions: number; readonly agree: number; readonly f32MatchesReference: number; readonly cpuOnInt4Equal: number; readonly cases: number };
  readonly weightBytes: { readonly f32: number; readonly int4: number };
  /**
   * one_image as turn 1 on the engine (C = 16: slots seal), then a text turn 2 in the same session and in its fork
   * at turn 1 (restored from the store into a fresh engine): equal ids and top-5 logits, equal caches.
   */
  readonly restore: { readonly decoder: string; readonly idsEqual: boolean; readonly topEqual: boolean; readonly cacheEqual: boolean; readonly cachedTokens: number; readonly turn1Tokens: number };
  readonly ms: number;
}

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const CHUNK_TOKENS = 128;


/** The engine's greedy id after the prompt and after each of `forced` (teacher forcing). */
async function greedyPath(model: ChatModel, c: RefCase): Promise<number[]> {
  const inputs = await model.processor.encode(refMessages(c), { loadImage: nodeImageLoader(MINI) });
  const engine = await model.engine!.create({ codec: model.codec, codecParams: CODEC, chunkTokens: CHUNK_TOKENS, bannedTokenIds: model.format.bannedIds });
  try {
    const embeds = inputs.images.length > 0 ? await model.vision.encode(inputs.images) : undefined;
    const grids = inputs.images.map((im) => model.vision.grid(im));
    const out = [(await engine.append(inputs.inputIds, { ...(embeds ? { imageEmbeds: embeds } : {}), imageGrids: grids })).next];
    for (const id of c.greedy.ids.slice(0, -1)) out.push(await engine.step(id));
    return out;
  } finally {
    engine.dispose();
  }
}

const t0 = performance.now();
let tmp = "";
await runReport(async () => {
  const ctx = await nodeGpuContext();
  if (ctx === null) throw new Error("no WebGPU adapter (dawn.node)");
  const ref = loadReference();
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-mini-engine-"));
  const mlaDir = join(tmp, "mini-mla");
  const r = await runCli(["convert", "--model", MINI, "--out", mlaDir, "--strategy", "high", "--rope-dims", "16", "--svd", "none", "--json"]);
  if (r.code !== 0) throw new Error(r.stderr);
  const cpu = await loadChatModelDir(mlaDir, { codec: loadNodeCodec() });
  const f32 = withGpuEngine(cpu, ctx, { weightFormat: "f32" });
  const int4 = withGpuEngine(cpu, ctx, { weightFormat: { bits: 4, block: 32 } });

  const cases: MiniCaseResult[] = [];
  for (const c of ref.cases) {
    const store = new RecordingStore(f32.spec, CODEC, CHUNK_TOKENS, f32.ref);
    const chat = ChatSession.fresh(f32, store as SessionStore, { codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const out = await chat.complete({ messages: refMessages(c), loadImage: nodeImageLoader(MINI), maxTokens: c.greedy.n, topLogits: 20 });
    const control = store.controls[0];
    const pos = control.positions.slice(0, 3 * c.num_tokens);
    const top = out.topLogits ?? [];
    cases.push({
      name: c.name,
      inputIdsEqual: control.tokenIds.slice(0, c.num_tokens).join() === c.input_ids.join(),
      positionsEqual: [0, 1, 2].every((k) => pos.filter((_, i) => i % 3 === k).join() === c.position_ids[k].join()),
      greedyEqual: out.tokenIds.join() === c.greedy.ids.join(),
      top20IdsEqual: top.map(([id]) => id).join() === c.logits_last.top20.map(([id]) => id).join(),
      top20MaxErr: Math.max(...top.map(([, v], i) => Math.abs(v - c.logits_last.top20[i][1]))),
      ropeDeltaOk: chat.nextPosition - chat.length === c.rope_deltas,
      decoder: `${chat.decoderChoice.kind}/${chat.decoderChoice.path}`,
    });
    chat.dispose();
  }

  let positions = 0;
  let agree = 0;
  let f32MatchesReference = 0;
  // the int4 engine's greedy answers = the CPU reference decoder's on the weights the GPU reads (int4 dequantized):
  // what int4 changes is the model, not the engine
  let cpuOnInt4Equal = 0;
  const cpuInt4: ChatModel = { ...cpu, weights: roundModel(cpu.weights!, { bits: 4, block: 32 }), engine: null };
  const answer = async (m: ChatModel, c: RefCase) => (await answerRefCase(m, c, { codec: CODEC, chunkTokens: CHUNK_TOKENS })).out.tokenIds.join();
  for (const c of ref.cases) {
    if ((await answer(int4, c)) === (await answer(cpuInt4, c))) cpuOnInt4Equal++;
    const a = await greedyPath(f32, c);
    const b = await greedyPath(int4, c);
    positions += a.length;
    a.forEach((id, i) => {
      if (id === b[i]) agree++;
      if (id === c.greedy.ids[i]) f32MatchesReference++;
    });
  }
  // A turn restored from the store into a fresh engine continues exactly as the uninterrupted session.
  const C16 = 16;
  const storeA = new MemoryStore(f32.spec, CODEC, C16, f32.ref);
  const a = ChatSession.fresh(f32, storeA, { codec: CODEC, chunkTokens: C16 });
  const first = ref.cases.find((c) => c.name === "one_image")!;
  await a.complete({ messages: refMessages(first), loadImage: nodeImageLoader(MINI), maxTokens: 6 });
  const turn1Tokens = a.length;
  // a fork at turn 1: a new stored session restored into a fresh engine (turn 2 goes to each store)
  const b = await a.fork(1);
  const next: InputMessage[] = [{ role: "user", content: [{ type: "text", text: "And the second color?" }] }];
  const ra = await a.complete({ messages: next, maxTokens: 8, topLogits: 5 });
  const rb = await b.complete({ messages: next, maxTokens: 8, topLogits: 5 });
  const [ca, cb] = [await a.inspectCache(), await b.inspectCache()];
  const same = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
  const restore = {
    decoder: `${b.restoreStats?.decoder}/${b.decoderChoice.path}`,
    idsEqual: ra.tokenIds.join() === rb.tokenIds.join(),
    topEqual: JSON.stringify(ra.topLogits) === JSON.stringify(rb.topLogits),
    cacheEqual: ca.length === cb.length && ca.layers.every((l, i) => same(l.latent, cb.layers[i].latent) && same(l.kRope, cb.layers[i].kRope)),
    cachedTokens: rb.usage.cached_tokens,
    turn1Tokens,
  };
  a.dispose();
  b.dispose();

  const info = ctx.device.adapterInfo;
  const report: MiniEngineReport = {
    adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "",
    cases,
    int4: { positions, agree, f32MatchesReference, cpuOnInt4Equal, cases: ref.cases.length },
    weightBytes: { f32: f32.engine!.weightBytes, int4: int4.engine!.weightBytes },
    restore,
    ms: performance.now() - t0,
  };
  return report;
}, async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});
