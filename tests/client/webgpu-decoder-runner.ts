// Child process of tests/client/webgpu-decoder.test.ts (dawn.node reads VK_ICD_FILENAMES at process start): the chat
// decoder on the WebGPU kernels (SwiftShader) against the CPU reference decoder. Prints one JSON line (DecoderReport).
// Usage: node --import tsx tests/client/webgpu-decoder-runner.ts [cases]

import { runReport } from "../helpers/run-tsx.ts";
import { create, globals } from "webgpu";
import { withDecoderKernels } from "../../runtime/chat-model.ts";
import { ChatSession } from "../../client/chat/chat-session.ts";
import { sharedCacheLayout } from "../../runtime/decoder-kernels.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { createGpuBackend } from "../../kernels/backend.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { DecoderSession } from "../../runtime/decoder-session.ts";
import { MlaKernelAttentionBackend } from "../../runtime/mla/kernel-attention.ts";
import { codecSlotQuantizer, SlotSealing } from "../../runtime/mla/slot-sealing.ts";
import { imagePrefixTokens } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { demoChatModel, readEvalCases, tinyFixture, userTurn, sameCache } from "./fixture-model.ts";
import { MemoryStore } from "./memory-store.ts";

export interface DecoderReport {
  readonly adapter: string;
  readonly decoder: string;
  /** Per logits case: max |gpu − cpu| / max |cpu| over every row of a 3-turn sequence (prefill rows and decode steps). */
  readonly logitsRelErr: number[];
  readonly logitsRows: number;
  /** Rows whose argmax differs between the two decoders. */
  readonly argmaxDiffs: number;
  readonly cases: number;
  readonly turns: number;
  /** GPU session vs CPU reference session, same codec and slot size. */
  readonly cpuMismatches: string[];
  /** GPU session restored from the store before every turn vs the uninterrupted GPU session. */
  readonly restoreMismatches: string[];
  readonly cacheDiffs: number;
  readonly correct: number;
  readonly pipelinesAfterFirstCase: number;
  readonly pipelines: number;
  readonly ms: number;
  readonly fatal?: string;
}

const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const C = 16;

Object.assign(globalThis, globals);
const gpu = create([]) as unknown as GPU;
const t0 = performance.now();
await runReport(async () => {
  const count = Number(process.argv[2] ?? 50);
  const kernels = await createGpuBackend({ gpu });
  const cpuModel = await demoChatModel();
  const gpuModel = withDecoderKernels(cpuModel, kernels);
  const fx = await tinyFixture();
  const cases = await readEvalCases(count);
  const w = cpuModel.weights;
  const spec = cpuModel.spec;
  const dims = { latentWidth: spec.kvHeads * spec.dKv, ropeWidth: spec.kvHeads * spec.ropeDims, ropeDims: spec.ropeDims };
  const sealing = () => new SlotSealing(spec.layers, C, dims.latentWidth, dims.ropeWidth, codecSlotQuantizer(cpuModel.codec, CODEC, dims));

  // (1) Logits: the fixture's true 3-turn sequences, turn 1 as one causal block, every later token as a decode step.
  const logitsRelErr: number[] = [];
  let logitsRows = 0;
  let argmaxDiffs = 0;
  const V = w.config.vocabSize;
  for (const c of cases.slice(0, 4)) {
    const ref = createMlaSession(w, "absorbed", { defaultImageGrid: cpuModel.imageGrid, sealing: sealing() }).session;
    const gpuAttention = new MlaKernelAttentionBackend(w, kernels, sharedCacheLayout(kernels, w, CODEC, C), sealing());
    const dev = new DecoderSession(w.config, w.shell, gpuAttention, { defaultImageGrid: cpuModel.imageGrid });
    const embeds = runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8)));
    const first = [...imagePrefixTokens(fx.tokenizer, 16), ...fx.tokenizer.encode(c.turns[0].question)];
    const rest: number[] = [];
    c.turns.forEach((t, i) => {
      if (i > 0) rest.push(...fx.tokenizer.encode(t.question));
      rest.push(...fx.tokenizer.encode(t.answer), fx.tokenizer.encode("<end>")[0]);
    });
    const a = [ref.append(first, { imageEmbeds: embeds, logits: "all" })];
    const b = [await dev.appendAsync(first, { imageEmbeds: embeds, logits: "all" })];
    for (const tok of rest) {
      a.push(ref.append([tok]));
      b.push(await dev.appendAsync([tok]));
    }
    let num = 0;
    let den = 0;
    a.forEach((rows, k) => {
      for (let i = 0; i < rows.length; i++) {
        num = Math.max(num, Math.abs(rows[i] - b[k][i]));
        den = Math.max(den, Math.abs(rows[i]));
      }
      for (let r = 0; r < rows.length / V; r++) {
        logitsRows++;
        const am = (x: Float32Array) => x.subarray(r * V, (r + 1) * V).reduce((best, v, i, arr) => (v > arr[best] ? i : best), 0);
        if (am(rows) !== am(b[k])) argmaxDiffs++;
      }
    });
    logitsRelErr.push(num / den);
    gpuAttention.destroy();
  }

  // (2) Chats: CPU reference vs WebGPU, and WebGPU restored before every turn vs WebGPU uninterrupted.
  const cpuMismatches: string[] = [];
  const restoreMismatches: string[] = [];
  let cacheDiffs = 0;
  let turns = 0;
  let correct = 0;
  let pipelinesAfterFirstCase = 0;
  let decoder = "";
  for (const [ci, c] of cases.entries()) {
    const ref = ChatSession.fresh(cpuModel, new MemoryStore(spec, CODEC, C, cpuModel.ref), { codec: CODEC, chunkTokens: C });
    const a = ChatSession.fresh(gpuModel, new MemoryStore(spec, CODEC, C, gpuModel.ref), { codec: CODEC, chunkTokens: C });
    const storeB = new MemoryStore(spec, CODEC, C, gpuModel.ref);
    let b = ChatSession.fresh(gpuModel, storeB, { codec: CODEC, chunkTokens: C });
    decoder = `${a.decoderChoice.kind}/${a.decoderChoice.path}`;
    for (let t = 0; t < c.turns.length; t++) {
      if (t > 0) {
        b.dispose();
        b = await ChatSession.open(gpuModel, storeB);
        if (b.restoreStats?.decoder !== "webgpu" || !sameCache(await a.inspectCache(), await b.inspectCache())) cacheDiffs++;
      }
      const rr = await ref.complete({ messages: userTurn(c, t), maxTokens: 4 });
      const ra = await a.complete({ messages: userTurn(c, t), maxTokens: 4 });
      const rb = await b.complete({ messages: userTurn(c, t), maxTokens: 4 });
      if (ra.tokenIds.join() !== rr.tokenIds.join()) cpuMismatches.push(`case ${ci} turn ${t}: webgpu "${ra.message.content}" vs cpu "${rr.message.content}"`);
      if (rb.tokenIds.join() !== ra.tokenIds.join()) restoreMismatches.push(`case ${ci} turn ${t}: restored "${rb.message.content}" vs "${ra.message.content}"`);
      if (ra.message.content === c.turns[t].answer) correct++;
      turns++;
    }
    for (const x of [ref, a, b]) x.dispose();
    if (ci === 0) pipelinesAfterFirstCase = kernels.ctx.pipelineCount;
  }
  const device = kernels.ctx.device;
  const report: DecoderReport = {
    adapter: device.adapterInfo ? `${device.adapterInfo.vendor} ${device.adapterInfo.architecture} ${device.adapterInfo.description}` : "",
    decoder,
    logitsRelErr,
    logitsRows,
    argmaxDiffs,
    cases: cases.length,
    turns,
    cpuMismatches,
    restoreMismatches,
    cacheDiffs,
    correct,
    pipelinesAfterFirstCase,
    pipelines: kernels.ctx.pipelineCount,
    ms: performance.now() - t0,
  };
  return report;
});
