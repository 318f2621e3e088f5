// bench:e2e — turn-2 time to first token with the cache restored from the edge (local workerd) versus recomputing
// the history (vision tower + prefill), for the tiny-qwen-vl fixture (client/demo/model: MD-SVD d_kv 16, vision tower on
// onnxruntime-web wasm) and a random-weight model (hidden 1024, 4 layers, 8/2 heads of dim 128, d_kv 64) at a
// 1,024-token history, on each decoder: the WebGPU MLA kernels (dawn.node on Chromium's SwiftShader ICD; the script
// re-runs itself with VK_ICD_FILENAMES set, which dawn.node reads at start) and the CPU reference. Both turn-2 paths of
// a sample run on the same decoder. `--json` prints one JSON object on stdout; progress goes to stderr.
// Options: --cases N (fixture cases, default 10), --reps N (synthetic repetitions, default 1), --skip-synthetic,
// --cpu-only (no WebGPU run), --decoder webgpu|cpu (run one decoder only).

import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as ort from "onnxruntime-web";
import { chooseDecoder, createClient, createDecoderKernels, OrtVisionEncoder, withDecoderKernels, type ChatMessage, type ChatModel, type MlaBackend } from "../../client/index.ts";
import { sharedCacheLayout } from "../../runtime/decoder-kernels.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { argmaxExcluding, DecoderSession } from "../../runtime/decoder-session.ts";
import { MlaKernelAttentionBackend } from "../../runtime/mla/kernel-attention.ts";
import { codecSlotQuantizer, SlotSealing } from "../../runtime/mla/slot-sealing.ts";
import { caseImage, FIXTURE_DIR, demoChatModel, fullRankChatModel, readEvalCases } from "../client/fixture-model.ts";
import { startEdgeServer, type EdgeServer } from "../e2e/edge-server.ts";
import { swiftShaderAvailable, swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { BENCH_GEOMETRY, syntheticChatModel } from "../e2e/synthetic-model.ts";

const args = process.argv.slice(2);
const asJson = args.includes("--json");
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const cpuOnly = args.includes("--cpu-only");
if (!cpuOnly && process.env.VK_ICD_FILENAMES === undefined && swiftShaderAvailable()) {
  // dawn.node reads the Vulkan ICD at process start: run this benchmark again with it set.
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env: swiftShaderEnv() });
  process.exit(r.status ?? 1);
}
const now = () => performance.now();
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Sample {
  readonly historyTokens: number;
  readonly restoredTtftMs: number;
  readonly restoreMs: number;
  readonly restoredBytes: number;
  readonly recomputeTtftMs: number;
  readonly sameFirstToken: boolean;
  readonly fetchMs: number;
  readonly decodeMs: number;
  readonly uploadMs: number;
  readonly decoder: string;
  /** After the restored turn: the session's KV cache allocated on its device, and the same tokens as bf16 GQA K/V. */
  readonly deviceKvBytes: number;
  readonly deviceKvBf16Bytes: number;
}

/** A bare decoder of the kind a chat session of `model` with `codec` runs (kernels or CPU reference), sealing as it does. */
function recomputeDecoder(model: ChatModel, codec: CodecParams, chunkTokens: number): { session: DecoderSession; dispose(): void } {
  const w = model.weights!;
  const spec = model.spec;
  const dims = { latentWidth: spec.kvHeads * spec.dKv, ropeWidth: spec.kvHeads * spec.ropeDims, ropeDims: spec.ropeDims };
  const sealing = new SlotSealing(spec.layers, chunkTokens, dims.latentWidth, dims.ropeWidth, codecSlotQuantizer(model.codec, codec, dims));
  if (model.kernels !== null && chooseDecoder(model.kernels, w, codec, false, chunkTokens).path === "kernels") {
    const attention = new MlaKernelAttentionBackend(w, model.kernels, sharedCacheLayout(model.kernels, w, codec, chunkTokens), sealing);
    return { session: new DecoderSession(w.config, w.shell, attention, { defaultImageGrid: model.imageGrid }), dispose: () => attention.destroy() };
  }
  return { session: createMlaSession(w, "absorbed", { defaultImageGrid: model.imageGrid, sealing }).session, dispose: () => undefined };
}

/** One conversation: turn 1 stored on the edge, then turn 2's first token both ways. */
async function sample(edge: EdgeServer, model: ChatModel, codec: CodecParams, chunkTokens: number, turn1: ChatMessage[], turn2: ChatMessage[], maxTokens1: number): Promise<Sample> {
  const client = createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model });
  const s = await client.sessions.create({ codec, chunkTokens });
  const r1 = await s.chat({ messages: turn1, maxTokens: maxTokens1 });

  // Restored: a new runtime session opened from id + token (what a page reload does), then turn 2's first token.
  let t0 = now();
  const opened = await client.sessions.open(s.id, s.token);
  let restoredFirst = -1;
  for await (const ev of opened.chat({ messages: turn2, maxTokens: 1, stream: true })) {
    if (ev.type === "token") {
      restoredFirst = ev.id;
      break;
    }
  }
  const restoredTtftMs = now() - t0;
  const stats = opened.restoreStats!;
  const kv = opened.kvBytes;
  const decoder = `${opened.decoderChoice.kind}/${opened.decoderChoice.path}`;

  // Recomputed: the whole history re-encoded (vision tower) and prefilled with turn 2's question.
  const history: ChatMessage[] = [...turn1, { role: "assistant", content: r1.message.content }, ...turn2];
  const { inputIds: ids, images } = await model.processor.encode(history);
  t0 = now();
  const embeds = await model.vision.encode(images);
  const recompute = recomputeDecoder(model, codec, chunkTokens);
  const logits = await recompute.session.appendAsync(ids, { imageEmbeds: embeds, imageGrids: images.map((im) => model.vision.grid(im)) });
  const V = model.config.vocabSize;
  const recomputedFirst = argmaxExcluding(logits, logits.length - V, V, model.format.bannedIds);
  const recomputeTtftMs = now() - t0;
  recompute.dispose();
  await client.store.sessions.delete(s.id, { token: s.token });
  return {
    historyTokens: stats.tokens,
    restoredTtftMs,
    restoreMs: stats.ms,
    restoredBytes: stats.bytes,
    recomputeTtftMs,
    sameFirstToken: restoredFirst === recomputedFirst,
    fetchMs: stats.fetchMs,
    decodeMs: stats.decodeMs,
    uploadMs: stats.uploadMs,
    decoder,
    deviceKvBytes: kv.device,
    deviceKvBf16Bytes: kv.uncompressed,
  };
}

function summarise(samples: Sample[]) {
  const restored = median(samples.map((s) => s.restoredTtftMs));
  const recompute = median(samples.map((s) => s.recomputeTtftMs));
  return {
    samples: samples.length,
    history_tokens: median(samples.map((s) => s.historyTokens)),
    ttft_restored_ms: round(restored),
    restore_ms: round(median(samples.map((s) => s.restoreMs))),
    ttft_recompute_ms: round(recompute),
    restored_bytes: median(samples.map((s) => s.restoredBytes)),
    restore_fetch_ms: round(median(samples.map((s) => s.fetchMs))),
    restore_decode_ms: round(median(samples.map((s) => s.decodeMs))),
    restore_gpu_upload_ms: round(median(samples.map((s) => s.uploadMs))),
    decoder: [...new Set(samples.map((s) => s.decoder))].join(","),
    speedup: round(recompute / restored),
    same_first_token: samples.filter((s) => s.sameFirstToken).length / samples.length,
    device_kv_bytes: median(samples.map((s) => s.deviceKvBytes)),
    device_kv_bf16_bytes: median(samples.map((s) => s.deviceKvBf16Bytes)),
  };
}

const round = (x: number) => Math.round(x * 100) / 100;

type Section = ReturnType<typeof summarise>;

const edge = await startEdgeServer();
try {
  const codecImpl = loadNodeCodec();
  let kernels: MlaBackend | null = null;
  let adapter: string | null = null;
  if (!cpuOnly) {
    try {
      const { create, globals } = await import("webgpu");
      Object.assign(globalThis, globals);
      kernels = await createDecoderKernels({ gpu: create([]) as unknown as GPU });
      const info = (kernels as { ctx?: { device: GPUDevice } } | null)?.ctx?.device.adapterInfo;
      adapter = info ? `${info.vendor} ${info.architecture} ${info.description}` : null;
    } catch (e) {
      log(`no WebGPU (${(e as Error).message}): CPU reference only`);
    }
  }
  ort.env.wasm.numThreads = 1;
  const vision = await OrtVisionEncoder.create(ort, new Uint8Array(await readFile(join(FIXTURE_DIR, "vision.onnx"))), { cells: 16, patchDim: 192, hidden: 128 }, { executionProviders: ["wasm"] });
  const fixtureCpu = await demoChatModel(vision);
  const fixtureCodec: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
  const cases = await readEvalCases(opt("--cases", 10) + 1);
  const g = BENCH_GEOMETRY;
  const syntheticCpu = args.includes("--skip-synthetic") ? null : syntheticChatModel(g, codecImpl);
  const syntheticCodec: CodecParams = { bits: 4, group: 64, axis: "token", rope: "int8" };

  const only = args.includes("--decoder") ? args[args.indexOf("--decoder") + 1] : null;
  const decoders = ((kernels ? [["webgpu", kernels], ["cpu", null]] : [["cpu", null]]) as [string, MlaBackend | null][]).filter(([name]) => only === null || name === only);
  if (decoders.length === 0) throw new Error(`--decoder ${only}: not available (WebGPU adapter: ${adapter ?? "none"})`);
  const byDecoder: Record<string, { fixture: Section; synthetic: (Section & { geometry: typeof BENCH_GEOMETRY; codec: CodecParams; chunk_tokens: number }) | null }> = {};
  for (const [name, k] of decoders) {
    const fixture = withDecoderKernels(fixtureCpu, k);
    const fx: Sample[] = [];
    // case 0 warms up (JIT, ORT session, pipelines, wrangler isolates) and is not counted
    for (const [i, c] of cases.entries()) {
      const turn1: ChatMessage[] = [{ role: "user", content: [{ type: "image", image: caseImage(c) }, { type: "text", text: c.turns[0].question }] }];
      const s = await sample(edge, fixture, fixtureCodec, 16, turn1, [{ role: "user", content: c.turns[1].question }], 4);
      if (i > 0) fx.push(s);
    }
    log(`${name}: fixture, ${fx.length} cases done`);

    let synthetic: (typeof byDecoder)[string]["synthetic"] = null;
    if (syntheticCpu !== null) {
      const model = withDecoderKernels(syntheticCpu, k);
      const side = g.imageSide * 8;
      const pixels = new Uint8Array(side * side * 3).map((_, i) => (i * 2654435761) >>> 24);
      // bos + image (side² tokens + start/end) + words, +1 generated token and <end>: 1,024 tokens of history
      const words = 1024 - 2 - (1 + g.imageSide * g.imageSide + 2);
      const text = Array.from({ length: words }, (_, i) => `w${(i * 7919) % g.words}`).join(" ");
      const turn1: ChatMessage[] = [{ role: "user", content: [{ type: "image", image: { width: side, height: side, data: pixels } }, { type: "text", text }] }];
      const turn2: ChatMessage[] = [{ role: "user", content: "w1 w2 w3 w4 w5 w6 w7 w8" }];
      const samples: Sample[] = [];
      for (let rep = 0; rep < opt("--reps", 1); rep++) {
        log(`${name}: synthetic repetition ${rep + 1} (turn 1 prefill of ~1,024 tokens, then both turn-2 paths)…`);
        samples.push(await sample(edge, model, syntheticCodec, 64, turn1, turn2, 1));
      }
      synthetic = { geometry: g, codec: syntheticCodec, chunk_tokens: 64, ...summarise(samples) };
    }
    byDecoder[name] = { fixture: { ...summarise(fx) }, synthetic };
  }

  const primary = byDecoder[decoders[0][0]];
  const result = {
    bench: "e2e",
    what: "turn-2 time to first token: cache restored from the edge (open + restore + question prefill) vs recomputing the history (vision tower + prefill of history and question), both on the same decoder",
    machine: { node: process.version, cpus: (await import("node:os")).cpus().length, webgpu_adapter: adapter },
    store: "the Worker under wrangler's unstable_startWorker (local workerd, loopback HTTP)",
    decoder: decoders[0][0],
    decoders: {
      webgpu: "WebGPU MLA kernels (kernels/, dawn.node on SwiftShader: a CPU, not a GPU) for attention; projections, MLP and W_uv in f64 on the host",
      cpu: "CPU reference (runtime/ absorbed MLA, f64)",
    },
    fixture: { model: "tiny-qwen-vl converted by `mla-edge convert --strategy high --svd md --d-kv 16` (client/demo/model)", vision: vision.kind, codec: fixtureCodec, chunk_tokens: 16, ...primary.fixture },
    synthetic: primary.synthetic,
    by_decoder: byDecoder,
  };
  if (asJson) process.stdout.write(`${JSON.stringify(result)}\n`);
  else console.log(JSON.stringify(result, null, 2));
  await vision.dispose();
} finally {
  await edge.stop();
}
process.exit(0); // dawn.node keeps the process alive otherwise (platform.md §9.2)
