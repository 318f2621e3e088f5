// Child process of tests/runtime/gpu-engine.test.ts (dawn.node reads VK_ICD_FILENAMES at start): the GPU engine
// (runtime/gpu/engine.ts) on SwiftShader against the CPU reference decoder, plus its new kernels (mla-absorb.ts, strided
// rotary) against their f64 references. Prints one JSON line (EngineReport).
// Usage: node --import tsx tests/runtime/gpu-engine-runner.ts [evalCases]

import { runReport } from "../helpers/run-tsx.ts";
import { create, globals } from "webgpu";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { loadEngineBundle } from "../../runtime/gpu/bundle-weights.ts";
import { FOLDER_BASE, folderFetch } from "../../runtime/loader/folder-fetch.node.ts";
import { GpuContext } from "../../kernels/gpu-context.ts";
import { submitCalls, uploadBuffer } from "../../kernels/dispatch.ts";
import { uploadWeights } from "../../kernels/matmul-nbits.ts";
import { absorbOutputCall, absorbQueryCall, latentRowsCall } from "../../kernels/mla-absorb.ts";
import { absorbOutputRef, absorbQueriesRef, latentRowsRef, type AbsorbSpaceRef } from "../../kernels/mla-absorb.ref.ts";
import { rotaryCall, uploadRotary } from "../../kernels/rotary.ts";
import { mropeTables, rotaryRef } from "../../kernels/rotary.ref.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { GpuEngine } from "../../runtime/gpu/engine.ts";
import { linearWeights, type EngineWeightFormat } from "../../runtime/gpu/engine-weights.ts";
import { dense, roundModel } from "./engine-helpers.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import { codecSlotQuantizer, SlotSealing } from "../../runtime/mla/slot-sealing.ts";
import { CacheAssembler, SessionCache, tokenMajorPositions } from "../../runtime/session-cache.ts";
import { imagePrefixTokens } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { DEMO_MODEL_DIR, demoChatModel, readEvalCases, tinyFixture, type EvalCase } from "../client/fixture-model.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";

export interface EngineReport {
  readonly adapter: string;
  /** Kernel cases: max |gpu − ref| / max |ref|. */
  readonly kernels: Record<string, number>;
  /** Per weight format: logits vs the CPU reference decoder (on the same weights rounded like the GPU's). */
  readonly logits: Record<string, { relErr: number; rows: number; argmaxDiffs: number; greedyEqual: boolean }>;
  /** createBuffer calls during decode steps after warm-up (incl. slot seals), and submissions per step. */
  readonly alloc: { createBuffers: number; steps: number; submissions: number[]; sealSteps: number };
  readonly restore: { chunks: number; sealedChunks: number; logitsEqual: boolean; idsEqual: boolean; sealedBlocksMatch: boolean };
  /** Teacher-forced greedy accuracy over eval turns (every answer token and <end> predicted) per weight format. */
  readonly accuracy: Record<string, { correct: number; turns: number }>;
  /** int4 vs f32 engine: top-1 agreement over every teacher-forced position. */
  readonly int4Agreement: { agree: number; positions: number };
  readonly memory: { weights: number; cache: number; scratch: number; total: number };
  /** Engine on a packed int4 bundle (mla-edge pack → loadEngineBundle) vs the engine on the same model quantized at upload. */
  readonly bundle: { rows: number; maxAbsDiff: number; idsEqual: boolean; weightBytes: number; bundleBytes: number };
  /**
   * The same bundle with a binding limit of 1 KiB: the tied embedding / LM head copied into row ranges on the GPU
   * (parts of each), its logits compared with the whole-bound bundle engine's (Object.is) over the same 21 rows.
   */
  readonly split: { embedParts: number; headParts: number; logitsEqual: boolean; rows: number; maxAbsDiff: number };
  readonly ms: number;
  readonly fatal?: string;
}

const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const C = 16;

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / (den || 1);
}

const argmax = (x: Float32Array) => x.reduce((best, v, i, arr) => (v > arr[best] ? i : best), 0);

async function kernelCases(ctx: GpuContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const rnd = mulberry32(7);
  const u = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * s);
  const dims = { tokens: 3, heads: 4, kvHeads: 2, ropeDims: 4, headDim: 12, latentWidth: 40 };
  const { tokens, heads, kvHeads, ropeDims: r, headDim: dh, latentWidth: D } = dims;
  const dc = dh - r;
  const yStride = heads * dh + 7;
  const y = u(tokens * yStride);
  const formats: Array<[string, EngineWeightFormat]> = [["f32", "f32"], ["int4-b32", { bits: 4, block: 32 }], ["int8-b32-zp", { bits: 8, block: 32, zeroPoints: true }], ["f16", "f16"]];
  for (const [name, fmt] of formats) {
    const spaces = [0, 1].map(() => ({ upK: linearWeights(u(kvHeads * dc * D, 0.5), kvHeads * dc, D, fmt), upV: linearWeights(u(kvHeads * dh * D, 0.5), kvHeads * dh, D, fmt), kb: u(kvHeads * dc), vb: u(kvHeads * dh) }));
    const refSpaces: AbsorbSpaceRef[] = spaces.map((s, m) => ({ upK: dense(s.upK), upKBias: m === 1 ? s.kb : null, upV: dense(s.upV), upVBias: m === 1 ? s.vb : null }));
    const gw = spaces.map((s) => ({ upK: uploadWeights(ctx, s.upK), upV: uploadWeights(ctx, s.upV), kb: uploadBuffer(ctx, "kb", s.kb), vb: uploadBuffer(ctx, "vb", s.vb) }));
    const stride = heads * r + 2 * heads * D + 2 * heads;
    const yb = uploadBuffer(ctx, "y", y);
    const qb = ctx.storageBuffer("q", tokens * stride * 4);
    ctx.poison(qb);
    await submitCalls(ctx, gw.map((g, m) => absorbQueryCall(ctx, g.upK, m === 1 ? g.kb : null, yb, qb, { tokens, heads, kvHeads, ropeDims: r, nopeDims: dc, yStride, space: m, spaces: 2 })));
    out[`absorb-query ${name}`] = relErr(await ctx.readFloat32(qb, 0, tokens * stride), absorbQueriesRef(y, yStride, dims, refSpaces));
    const att = u(tokens * 2 * heads * (D + 1));
    const ab = uploadBuffer(ctx, "att", att);
    const ob = ctx.storageBuffer("o", tokens * heads * dh * 4);
    ctx.poison(ob);
    await submitCalls(ctx, gw.map((g, m) => absorbOutputCall(ctx, g.upV, m === 1 ? g.vb : null, ab, ob, { tokens, heads, kvHeads, headDim: dh, space: m, spaces: 2, accumulate: m > 0 })));
    out[`absorb-output ${name}`] = relErr(await ctx.readFloat32(ob, 0, tokens * heads * dh), absorbOutputRef(att, dims, refSpaces));
    for (const b of [yb, qb, ab, ob, ...gw.flatMap((g) => [g.kb, g.vb])]) b.destroy();
    gw.forEach((g) => (g.upK.destroy(), g.upV.destroy()));
  }
  // latent rows: y = [… | k_rope | latent 0 | latent 1], mixed modality.
  const lr = { tokens: 5, yStride: 60, ropeOffset: 10, ropeWidth: 8, latentOffset: 18, latentWidth: 20, spaces: 2 as const };
  const ly = u(lr.tokens * lr.yStride);
  const mod = Uint32Array.from([0, 1, 1, 0, 1]);
  const lyb = uploadBuffer(ctx, "ly", ly);
  const mb = uploadBuffer(ctx, "mod", mod);
  const rb = ctx.storageBuffer("rows", lr.tokens * 28 * 4);
  ctx.poison(rb);
  await submitCalls(ctx, [latentRowsCall(ctx, lyb, mb, rb, lr)]);
  out["latent-rows mixed modality"] = relErr(await ctx.readFloat32(rb, 0, lr.tokens * 28), latentRowsRef(ly, mod, lr));
  // rotary on a slice of wider rows: heads of token t start at xOffset + t·tokenStride.
  const tables = mropeTables(32, 1e4, [4, 6, 6]);
  const pairs = [[0, 3, 9, 15], [1, 2, 4, 8]];
  const T = 6;
  const tokenStride = 70;
  const xOffset = 11;
  const x = u(T * tokenStride + xOffset);
  const positions = Int32Array.from({ length: 3 * T }, () => Math.floor(rnd() * 5000));
  const rot = uploadRotary(ctx, tables, pairs);
  const xb = uploadBuffer(ctx, "x", x);
  const pb = uploadBuffer(ctx, "p", positions);
  await submitCalls(ctx, [rotaryCall(ctx, rot, xb, pb, { tokens: T, heads: 4, headStride: 8, offset: 0, tokenStride, xOffset })]);
  const got = await ctx.readFloat32(xb, 0, x.length);
  const packed = new Float64Array(T * 32);
  for (let t = 0; t < T; t++) for (let i = 0; i < 32; i++) packed[t * 32 + i] = x[xOffset + t * tokenStride + i];
  const rotated = rotaryRef(packed, { tokens: T, heads: 4, headStride: 8, offset: 0, pairs }, tables, positions);
  const want = Float64Array.from(x);
  for (let t = 0; t < T; t++) for (let i = 0; i < 32; i++) want[xOffset + t * tokenStride + i] = rotated[t * 32 + i];
  out["rotary strided rows"] = relErr(got, want);
  for (const b of [lyb, mb, rb, xb, pb]) b.destroy();
  rot.destroy();
  return out;
}

Object.assign(globalThis, globals);
const gpu = create([]) as unknown as GPU;
const t0 = performance.now();
await runReport(async () => {
  const evalCount = Number(process.argv[2] ?? 20);
  const ctx = await GpuContext.create({ gpu });
  const kernels = await kernelCases(ctx);
  const model = await demoChatModel();
  const fx = await tinyFixture();
  const w = model.weights!;
  const spec = model.spec;
  const V = w.config.vocabSize;
  const dims = { latentWidth: spec.kvHeads * spec.dKv, ropeWidth: spec.kvHeads * spec.ropeDims, ropeDims: spec.ropeDims };
  const sealing = () => new SlotSealing(spec.layers, C, dims.latentWidth, dims.ropeWidth, codecSlotQuantizer(model.codec, CODEC, dims));
  const engineOptions = { codec: model.codec, codecParams: CODEC, chunkTokens: C, defaultImageGrid: model.imageGrid, initialCapacity: 256 };
  const cases = await readEvalCases(evalCount);
  const end = fx.tokenizer.encode("<end>")[0];
  const probe = fx.tokenizer.encode(cases[cases.length - 1].turns[1].question);
  const sequence = (c: EvalCase) => {
    const first = [...imagePrefixTokens(fx.tokenizer, 16), ...fx.tokenizer.encode(c.turns[0].question)];
    const turns = c.turns.map((t, i) => ({ prompt: i === 0 ? first : fx.tokenizer.encode(t.question), answer: [...fx.tokenizer.encode(t.answer), end] }));
    return { first, turns, embeds: runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8))) };
  };

  // (1) Logits vs the CPU reference decoder on the same (rounded) weights: 2 cases (f32; 1 for f16 and int4), the first turn as one block, every
  // later token a decode step (slots of 16 seal on the way), then 12 greedy tokens from the last prompt on both.
  const logits: EngineReport["logits"] = {};
  for (const [name, fmt] of [["f32", "f32"], ["f16", "f16"], ["int4-b32", { bits: 4, block: 32 }]] as Array<[string, EngineWeightFormat]>) {
    const refModel = roundModel(w, fmt);
    let worst = 0;
    let rows = 0;
    let argmaxDiffs = 0;
    let greedyEqual = true;
    for (const c of cases.slice(0, name === "f32" ? 2 : 1)) {
      const { first, turns, embeds } = sequence(c);
      const ref = createMlaSession(refModel, "absorbed", { defaultImageGrid: model.imageGrid, sealing: sealing() }).session;
      const engine = await GpuEngine.create(ctx, w, { ...engineOptions, weightFormat: fmt });
      const check = (a: Float32Array, b: Float32Array) => {
        worst = Math.max(worst, relErr(b, a));
        rows++;
        if (argmax(a) !== argmax(b)) argmaxDiffs++;
      };
      check(ref.append(first, { imageEmbeds: embeds }), (await engine.append(first, { imageEmbeds: embeds }, { temperature: 0 }, true)).logits!);
      const rest = turns.flatMap((t, i) => (i === 0 ? t.answer : [...t.prompt, ...t.answer]));
      for (const tok of rest) check(ref.append([tok]), (await engine.append([tok], {}, { temperature: 0 }, true)).logits!);
      // Greedy continuation: the CPU reference's argmax fed back vs the engine's sampled ids.
      let la = ref.append(probe);
      let gNext = (await engine.append(probe)).next;
      for (let i = 0; i < 12; i++) {
        const a = argmax(la);
        if (a !== gNext) greedyEqual = false;
        la = ref.append([a]);
        gNext = await engine.step(a);
      }
      engine.dispose();
    }
    logits[name] = { relErr: worst, rows, argmaxDiffs, greedyEqual };
  }

  // (2) No buffer creation per token after warm-up (decode steps across two slot seals), one submission per step.
  const engine = await GpuEngine.create(ctx, w, engineOptions);
  const seq = sequence(cases[0]);
  let next = (await engine.append(seq.first, { imageEmbeds: seq.embeds })).next;
  for (let i = 0; i < 3; i++) next = await engine.step(next); // warm-up: the decode plan, a first seal
  const dev = ctx.device;
  const original = dev.createBuffer.bind(dev);
  let createBuffers = 0;
  dev.createBuffer = (desc: GPUBufferDescriptor) => {
    createBuffers++;
    return original(desc);
  };
  const submissions: number[] = [];
  let sealSteps = 0;
  const steps = 2 * C + 3;
  for (let i = 0; i < steps; i++) {
    const before = engine.submissions;
    const sealing = engine.length + 1 - engine.cache.sealedLength >= C;
    next = await engine.step(next === 0xffffffff ? 0 : next);
    submissions.push(engine.submissions - before);
    if (sealing) sealSteps++;
  }
  dev.createBuffer = original;
  const memory = engine.memory;

  // (3) Restore: chunks packed by SessionCache from the engine's sealing, assembled into a fresh engine, which then
  // decodes the same tokens with the same logits.
  const a = await GpuEngine.create(ctx, w, engineOptions);
  const store = new SessionCache({ spec, params: CODEC, chunkTokens: C, codec: model.codec });
  const r1 = await a.append(seq.first, { imageEmbeds: seq.embeds });
  store.record(r1.modality, tokenMajorPositions(r1.positions, seq.first.length));
  let cur = r1.next;
  for (let i = 0; i < 20; i++) {
    const r = await a.append([cur]);
    store.record(r.modality, tokenMajorPositions(r.positions, 1));
    cur = r.next;
  }
  await a.syncHost();
  const pending = store.prepareCommit(a.sealing);
  // Sealed blocks of the chunks = the codec's quantization of the rows the engine computed (read back independently).
  let sealedBlocksMatch = true;
  const rowsSealing = sealing();
  for (let l = 0; l < spec.layers; l++) {
    const raw = a.sealing.rawRows(l, 0, a.length);
    rowsSealing.write(l, 0, raw.latent, raw.rope, a.length);
  }
  for (let slot = 0; (slot + 1) * C <= a.length; slot++) {
    const x = a.sealing.sealedSlot(slot);
    const y = rowsSealing.sealedSlot(slot);
    for (let l = 0; l < spec.layers; l++) {
      const eq = (p: Uint8Array | Uint16Array, q: Uint8Array | Uint16Array) => p.length === q.length && p.every((v, i) => v === q[i]);
      if (!eq(x[l].latent.codes, y[l].latent.codes) || !eq(x[l].latent.scales, y[l].latent.scales) || !eq(x[l].rope.codes, y[l].rope.codes)) sealedBlocksMatch = false;
    }
  }
  pending.apply();
  const b = await GpuEngine.create(ctx, w, engineOptions);
  const asm = new CacheAssembler({ spec, params: CODEC, chunkTokens: C, codec: model.codec }, pending.tokens, b.restoreSink());
  for (const ch of pending.chunks) asm.add(ch.bytes);
  b.adoptAssembled(asm.finish());
  let logitsEqual = b.nextPosition === a.nextPosition && b.length === a.length;
  let idsEqual = true;
  const turn = probe;
  const ra = await a.append(turn, {}, { temperature: 0 }, true);
  const rb = await b.append(turn, {}, { temperature: 0 }, true);
  if (!ra.logits!.every((v, i) => Object.is(v, rb.logits![i]))) logitsEqual = false;
  let na = ra.next;
  let nb = rb.next;
  for (let i = 0; i < 20; i++) {
    if (na !== nb) idsEqual = false;
    const xa = await a.append([na], {}, { temperature: 0 }, true);
    const xb = await b.append([nb], {}, { temperature: 0 }, true);
    if (!xa.logits!.every((v, j) => Object.is(v, xb.logits![j]))) logitsEqual = false;
    na = xa.next;
    nb = xb.next;
  }
  const restore = { chunks: pending.chunks.length, sealedChunks: pending.chunks.filter((x) => x.sealed).length, logitsEqual, idsEqual, sealedBlocksMatch };
  for (const e of [engine, a, b]) e.dispose();

  // (4) Teacher-forced greedy accuracy per weight format, and int4's top-1 agreement with f32.
  const accuracy: EngineReport["accuracy"] = {};
  const predictions: Record<string, number[]> = {};
  for (const [name, fmt] of [["f32", "f32"], ["int4-b32", { bits: 4, block: 32 }]] as Array<[string, EngineWeightFormat]>) {
    let correct = 0;
    let turns = 0;
    const preds: number[] = [];
    const eng = await GpuEngine.create(ctx, w, { ...engineOptions, weightFormat: fmt, initialCapacity: 1024 });
    for (const c of cases) {
      const s = sequence(c);
      for (const [ti, t] of s.turns.entries()) {
        let p = (await eng.append(t.prompt, ti === 0 ? { imageEmbeds: s.embeds } : {})).next;
        let ok = true;
        for (const tok of t.answer) {
          preds.push(p);
          if (p !== tok) ok = false;
          p = await eng.step(tok);
        }
        if (ok) correct++;
        turns++;
      }
      eng.reset();
    }
    eng.dispose();
    accuracy[name] = { correct, turns };
    predictions[name] = preds;
  }
  const p32 = predictions["f32"];
  const p4 = predictions["int4-b32"];
  const int4Agreement = { agree: p32.filter((v, i) => v === p4[i]).length, positions: p32.length };

  // (5) From a bundle: the demo checkpoint packed int4 block 32, streamed into GPU buffers, bound as they are.
  const tmp = await mkdtemp(join(tmpdir(), "engine-bundle-"));
  let bundle: EngineReport["bundle"];
  let split: EngineReport["split"];
  try {
    await packBundle(DEMO_MODEL_DIR, join(tmp, "b"), { weights: "int4", block: 32 });
    const eb = await loadEngineBundle(ctx, FOLDER_BASE, { fetch: folderFetch(join(tmp, "b")), cache: null });
    const fromBundle = await GpuEngine.create(ctx, eb.shape, { ...engineOptions, weights: eb.weights });
    const ebSplit = await loadEngineBundle(ctx, FOLDER_BASE, { fetch: folderFetch(join(tmp, "b")), cache: null, maxBindingBytes: 1024 });
    const fromSplit = await GpuEngine.create(ctx, ebSplit.shape, { ...engineOptions, weights: ebSplit.weights });
    let splitEqual = true;
    let splitDiff = 0;
    const uploaded = await GpuEngine.create(ctx, w, { ...engineOptions, weightFormat: { bits: 4, block: 32 } });
    const s0 = sequence(cases[0]);
    let rows = 0;
    let maxAbsDiff = 0;
    let idsEqual = true;
    let x = await fromBundle.append(s0.first, { imageEmbeds: s0.embeds }, { temperature: 0 }, true);
    let y = await uploaded.append(s0.first, { imageEmbeds: s0.embeds }, { temperature: 0 }, true);
    let z = await fromSplit.append(s0.first, { imageEmbeds: s0.embeds }, { temperature: 0 }, true);
    for (let i = 0; i < 20; i++) {
      rows++;
      x.logits!.forEach((v, j) => (maxAbsDiff = Math.max(maxAbsDiff, Math.abs(v - y.logits![j]))));
      if (!x.logits!.every((v, j) => Object.is(v, z.logits![j])) || x.next !== z.next) splitEqual = false;
      x.logits!.forEach((v, j) => (splitDiff = Math.max(splitDiff, Math.abs(v - z.logits![j]))));
      if (x.next !== y.next) idsEqual = false;
      const tok = y.next;
      x = await fromBundle.append([tok], {}, { temperature: 0 }, true);
      y = await uploaded.append([tok], {}, { temperature: 0 }, true);
      z = await fromSplit.append([tok], {}, { temperature: 0 }, true);
    }
    if (!x.logits!.every((v, j) => Object.is(v, z.logits![j]))) splitEqual = false;
    split = { embedParts: ebSplit.weights.embed.parts.length, headParts: ebSplit.weights.lmHead.parts.length, logitsEqual: splitEqual, rows: rows + 1, maxAbsDiff: splitDiff };
    fromSplit.dispose();
    ebSplit.weights.destroy();
    bundle = { rows, maxAbsDiff, idsEqual, weightBytes: fromBundle.memory.weights, bundleBytes: eb.manifest.shards.reduce((n, sh) => n + sh.size, 0) };
    fromBundle.dispose();
    uploaded.dispose();
    eb.weights.destroy();
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }

  const info = ctx.device.adapterInfo;
  const report: EngineReport = {
    adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "",
    kernels,
    logits,
    alloc: { createBuffers, steps, submissions, sealSteps },
    restore,
    accuracy,
    int4Agreement,
    memory,
    bundle,
    split,
    ms: performance.now() - t0,
  };
  return report;
});
