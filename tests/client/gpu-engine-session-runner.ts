// Child process of tests/client/gpu-engine-session.test.ts (dawn.node reads VK_ICD_FILENAMES at process start): SDK chat
// sessions on the GPU engine (the whole model on WebGPU, runtime/gpu/engine.ts) over SwiftShader, against the CPU
// reference decoder on the same f32 weights. Prints one JSON line (EngineSessionReport).
// Usage: node --import tsx tests/client/gpu-engine-session-runner.ts [cases]

import { runReport } from "../helpers/run-tsx.ts";
import { ChatSession, type ChatEvent } from "../../client/chat/chat-session.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { withGpuEngine } from "../../runtime/gpu/chat-engine.ts";
import { nodeGpuContext } from "../../runtime/gpu/node-gpu.node.ts";
import { demoChatModel, readEvalCases, userTurn, sameCache } from "./fixture-model.ts";
import { MemoryStore } from "./memory-store.ts";

export interface EngineSessionReport {
  readonly adapter: string;
  /** `${kind}/${path}` of a quantized session, and of a raw-storage one (which the engine does not hold). */
  readonly decoder: string;
  readonly rawDecoder: string;
  readonly rawFallback: string | null;
  readonly cases: number;
  readonly turns: number;
  /** Engine session vs CPU reference session (same codec, slot size, f32 weights): turns whose ids differ. */
  readonly cpuMismatches: string[];
  /** Engine session restored from the store before every turn vs the uninterrupted engine session. */
  readonly restoreMismatches: string[];
  /** Restores whose cache (dequantized sealed slots + raw tail, every layer) is not bit-identical to the uninterrupted one. */
  readonly cacheDiffs: number;
  readonly restoredDecoders: string[];
  readonly correct: number;
  /** A turn aborted after its first token: length and turns unchanged, and the next turn answers as uninterrupted. */
  readonly abort: { readonly lengthKept: boolean; readonly turnsKept: boolean; readonly sameAfter: boolean; readonly tokensBeforeAbort: number };
  /** truncate(1) after three turns: how, the length after it, and turn 2 asked again answers as the first time. */
  readonly truncate: { readonly how: string; readonly lengthOk: boolean; readonly sameAfter: boolean; readonly nextPositionOk: boolean };
  /** Sampled on the GPU (temperature 8, top-p 0.99, seed 11) in two fresh sessions: the same ids; another seed differs somewhere. */
  readonly sampling: { readonly sameSeedEqual: boolean; readonly ids: number[]; readonly otherSeedIds: number[] };
  /**
   * The engine cut inside a sealed slot (40 tokens, C = 16: truncate to 20 un-seals slot 1, its rows 16..19 back into
   * the tail from the host's raw rows), the same 4 tokens appended again: logits bit-identical to the first time.
   */
  readonly engineTruncate: { readonly logitsEqual: boolean; readonly nextPositionEqual: boolean; readonly sealedAfterCut: number; readonly belowRestoreRefused: boolean };
  /** kvBytes.device of the engine session (its GPU cache). */
  readonly kvDeviceBytes: number;
  readonly ms: number;
}

const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const C = 16;

const t0 = performance.now();
await runReport(async () => {
  const count = Number(process.argv[2] ?? 4);
  const ctx = await nodeGpuContext();
  if (ctx === null) throw new Error("no WebGPU adapter (dawn.node)");
  const cpuModel = await demoChatModel();
  const gpuModel = withGpuEngine(cpuModel, ctx, { weightFormat: "f32" });
  const spec = cpuModel.spec;
  const cases = await readEvalCases(count);
  const fresh = (m = gpuModel, codec = CODEC, storage?: "raw") => ChatSession.fresh(m, new MemoryStore(spec, codec, C, m.ref), { codec, chunkTokens: C, ...(storage ? { storage } : {}) });

  const cpuMismatches: string[] = [];
  const restoreMismatches: string[] = [];
  const restoredDecoders = new Set<string>();
  let cacheDiffs = 0;
  let turns = 0;
  let correct = 0;
  let decoder = "";
  let kvDeviceBytes = 0;
  const firstAnswers: number[][] = [];
  for (const [ci, c] of cases.entries()) {
    const ref = fresh(cpuModel);
    const a = fresh();
    const storeB = new MemoryStore(spec, CODEC, C, gpuModel.ref);
    let b = ChatSession.fresh(gpuModel, storeB, { codec: CODEC, chunkTokens: C });
    decoder = `${a.decoderChoice.kind}/${a.decoderChoice.path}`;
    for (let t = 0; t < c.turns.length; t++) {
      if (t > 0) {
        b.dispose();
        b = await ChatSession.open(gpuModel, storeB);
        restoredDecoders.add(`${b.restoreStats?.decoder}/${b.decoderChoice.path}`);
        if (!sameCache(await a.inspectCache(), await b.inspectCache())) cacheDiffs++;
      }
      const rr = await ref.complete({ messages: userTurn(c, t), maxTokens: 4 });
      const ra = await a.complete({ messages: userTurn(c, t), maxTokens: 4 });
      const rb = await b.complete({ messages: userTurn(c, t), maxTokens: 4 });
      if (ci === 0) firstAnswers.push([...ra.tokenIds]);
      if (ra.tokenIds.join() !== rr.tokenIds.join()) cpuMismatches.push(`case ${ci} turn ${t}: engine "${ra.message.content}" vs cpu "${rr.message.content}"`);
      if (rb.tokenIds.join() !== ra.tokenIds.join()) restoreMismatches.push(`case ${ci} turn ${t}: restored "${rb.message.content}" vs "${ra.message.content}"`);
      if (ra.message.content === c.turns[t].answer) correct++;
      turns++;
    }
    if (ci === 0) kvDeviceBytes = a.kvBytes.device;
    for (const x of [ref, a, b]) x.dispose();
  }

  // Abort after the first token of turn 2: nothing of it stays; turn 2 asked again answers as uninterrupted.
  const c0 = cases[0];
  const s = fresh();
  await s.complete({ messages: userTurn(c0, 0), maxTokens: 4 });
  const len1 = s.length;
  let tokensBeforeAbort = 0;
  for await (const ev of s.stream({ messages: userTurn(c0, 1), maxTokens: 4 }) as AsyncIterable<ChatEvent>) {
    if (ev.type === "token") tokensBeforeAbort++;
    break;
  }
  const abort = { lengthKept: s.length === len1, turnsKept: s.turns === 1, sameAfter: false, tokensBeforeAbort };
  abort.sameAfter = (await s.complete({ messages: userTurn(c0, 1), maxTokens: 4 })).tokenIds.join() === firstAnswers[1].join();
  // truncate to turn 1 after three turns, then turn 2 again
  await s.complete({ messages: userTurn(c0, 2), maxTokens: 4 });
  const nextAfter1 = fresh();
  await nextAfter1.complete({ messages: userTurn(c0, 0), maxTokens: 4 });
  const how = await s.truncate(1);
  const truncate = { how, lengthOk: s.length === len1, nextPositionOk: s.nextPosition === nextAfter1.nextPosition, sameAfter: false };
  truncate.sameAfter = (await s.complete({ messages: userTurn(c0, 1), maxTokens: 4 })).tokenIds.join() === firstAnswers[1].join();
  s.dispose();
  nextAfter1.dispose();

  // Sampling on the GPU: a seed reproduces the turn in a fresh session.
  const sample = async (seed: number) => {
    const x = fresh();
    const r = await x.complete({ messages: userTurn(c0, 0), maxTokens: 6, sampling: { temperature: 8, topP: 0.99, seed } });
    x.dispose();
    return [...r.tokenIds];
  };
  const ids = await sample(11);
  const again = await sample(11);
  let otherSeedIds = await sample(12);
  for (let seed = 13; seed < 20 && otherSeedIds.join() === ids.join(); seed++) otherSeedIds = await sample(seed);

  // The engine's own truncate, across a slot that had sealed.
  const engine = await gpuModel.engine!.create({ codec: cpuModel.codec, codecParams: CODEC, chunkTokens: C, bannedTokenIds: cpuModel.format.bannedIds, defaultImageGrid: cpuModel.imageGrid });
  const V = cpuModel.config.vocabSize;
  const text = Array.from({ length: 40 }, (_, i) => 6 + ((i * 7) % (V - 6)));
  await engine.append(text.slice(0, 20), {}, null);
  const firstNext = engine.nextPosition;
  // 4 tokens that read the open slot's rows 16..19 from the tail, then on to 40 (slot 1 seals)
  const first = await engine.append(text.slice(20, 24), {}, { temperature: 0 }, true);
  await engine.append(text.slice(24), {}, { temperature: 0 });
  await engine.truncate(20);
  const sealedAfterCut = engine.cache.sealedLength;
  const nextPositionEqual = engine.nextPosition === firstNext;
  const second = await engine.append(text.slice(20, 24), {}, { temperature: 0 }, true);
  const logitsEqual = first.logits!.every((v, i) => Object.is(v, second.logits![i]));
  // a restored engine refuses to cut below what it adopted
  await engine.syncHost();
  let belowRestoreRefused = false;
  engine.finishRestore(
    3,
    new Uint8Array(3),
    Array.from({ length: spec.layers }, () => ({ latent: new Float32Array(3 * spec.kvHeads * spec.dKv), rope: new Float32Array(3 * spec.kvHeads * spec.ropeDims) })),
    3,
  );
  try {
    await engine.truncate(2);
  } catch (e) {
    belowRestoreRefused = (e as { code?: string }).code === "bad_truncate";
  }
  engine.dispose();

  const raw = fresh(gpuModel, { ...CODEC }, "raw");
  const info = ctx.device.adapterInfo;
  const report: EngineSessionReport = {
    adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "",
    decoder,
    rawDecoder: `${raw.decoderChoice.kind}/${raw.decoderChoice.path}`,
    rawFallback: raw.decoderChoice.fallback,
    cases: cases.length,
    turns,
    cpuMismatches,
    restoreMismatches,
    cacheDiffs,
    restoredDecoders: [...restoredDecoders],
    correct,
    abort,
    truncate,
    sampling: { sameSeedEqual: ids.join() === again.join(), ids, otherSeedIds },
    engineTruncate: { logitsEqual, nextPositionEqual, sealedAfterCut, belowRestoreRefused },
    kvDeviceBytes,
    ms: performance.now() - t0,
  };
  return report;
});
