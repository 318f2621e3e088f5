// Child process of tests/bundle/gpu-only-bundle.test.ts (dawn.node reads VK_ICD_FILENAMES at process start): a real
// Qwen2.5-VL bundle (qwen25vl-mini converted by `mla-edge convert`, packed with f16 weights and f16 vision) loaded with
// no host model at all — `loadBundleChatModel(url, { gpu, hostWeights: false })`: decoder weights straight into GPU
// buffers, the vision transformer on the GPU — against the reference.json cases and against the same bundle loaded
// with its host model (CPU vision tower, decoder on the engine). Prints one JSON line (GpuOnlyReport).
// Usage: node --import tsx tests/bundle/gpu-only-bundle-runner.ts

import { runReport } from "../helpers/run-tsx.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChatSession } from "../../client/chat/chat-session.ts";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import { nodeGpuContext } from "../../runtime/gpu/node-gpu.node.ts";
import { loadBundleChatModel } from "../../runtime/loader/bundle-chat-model.ts";
import { FOLDER_BASE, folderFetch } from "../../runtime/loader/folder-fetch.node.ts";
import { runCli } from "../cli/run-cli.ts";
import { MemoryStore } from "../client/memory-store.ts";
import { answerRefCase } from "../client/fixture-model.ts";
import { loadReference, type RefCase } from "../runtime/qwen25vl-fixture.ts";

export interface GpuOnlyCase {
  readonly name: string;
  readonly promptTokens: number;
  readonly referenceTokens: number;
  readonly idsEqualReference: boolean;
  readonly idsEqualHostModel: boolean;
  /** max |gpu-only − reference| over the top-20 logits at the first generated position. */
  readonly top20MaxErr: number;
  /** max |gpu-only − host model on the engine| over the same top-20. */
  readonly top20VsHost: number;
}

export interface GpuOnlyReport {
  readonly adapter: string;
  readonly hostWeights: "null" | "present";
  readonly vision: string;
  readonly decoder: string;
  readonly cases: GpuOnlyCase[];
  readonly visionCalls: number;
  /** A raw-storage session (which the engine does not hold) on the GPU-only model: the error's code. */
  readonly rawSession: string;
  readonly engineWeightBytes: number;
  readonly ms: number;
}

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const C = 128;

const answer = (model: ChatModel, c: RefCase) => answerRefCase(model, c, { codec: CODEC, chunkTokens: C, topLogits: 20 });

const t0 = performance.now();
let tmp = "";
await runReport(async () => {
  const ctx = await nodeGpuContext();
  if (ctx === null) throw new Error("no WebGPU adapter (dawn.node)");
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-gpu-only-"));
  const mlaDir = join(tmp, "mini-mla");
  const r = await runCli(["convert", "--model", MINI, "--out", mlaDir, "--strategy", "high", "--rope-dims", "16", "--svd", "none", "--json"]);
  if (r.code !== 0) throw new Error(r.stderr);
  const dir = join(tmp, "bundle");
  await packBundle(mlaDir, dir, { weights: "f16", vision: "f16" });
  const load = (hostWeights: boolean) => loadBundleChatModel(FOLDER_BASE, { fetch: folderFetch(dir), cache: null, codec: loadNodeCodec(), gpu: ctx, hostWeights });
  const gpuOnly = (await load(false)).model;
  const host = (await load(true)).model;
  const cases: GpuOnlyCase[] = [];
  let decoder = "";
  for (const c of loadReference().cases) {
    const a = await answer(gpuOnly, c);
    const b = await answer(host, c);
    decoder = a.decoder;
    const top = a.out.topLogits ?? [];
    const hostTop = new Map(b.out.topLogits ?? []);
    cases.push({
      name: c.name,
      promptTokens: a.out.usage.prompt_tokens,
      referenceTokens: c.num_tokens,
      idsEqualReference: a.out.tokenIds.join() === c.greedy.ids.join(),
      idsEqualHostModel: a.out.tokenIds.join() === b.out.tokenIds.join(),
      top20MaxErr: Math.max(...top.map(([id, v], i) => (c.logits_last.top20[i][0] === id ? Math.abs(v - c.logits_last.top20[i][1]) : Infinity))),
      top20VsHost: Math.max(...top.map(([id, v]) => Math.abs(v - (hostTop.get(id) ?? Infinity)))),
    });
  }
  let rawSession = "accepted";
  try {
    ChatSession.fresh(gpuOnly, new MemoryStore(gpuOnly.spec, CODEC, C, gpuOnly.ref), { codec: CODEC, chunkTokens: C, storage: "raw" });
  } catch (e) {
    rawSession = e instanceof RuntimeError ? e.code : String(e);
  }
  const info = ctx.device.adapterInfo;
  const report: GpuOnlyReport = {
    adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "",
    hostWeights: gpuOnly.weights === null ? "null" : "present",
    vision: gpuOnly.vision.kind,
    decoder,
    cases,
    visionCalls: gpuOnly.vision.calls,
    rawSession,
    engineWeightBytes: gpuOnly.engine?.weightBytes ?? 0,
    ms: performance.now() - t0,
  };
  return report;
}, async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});
