// The session-cache bridge against an in-memory store, on the CPU reference decoder and on the kernels' decode loop
// (kernels/ CPU fallback in process; WebGPU runs in tests/client/webgpu-decoder.test.ts): per turn, a session restored
// from the stored chunks holds a bit-identical cache and gives the same answers as the uninterrupted one; slots are
// sealed with the codec the moment they fill, the tail stays raw; no vision call and no prefill after a restore; aborted
// or rejected turns leave nothing behind; a truncate cuts the local cache when it can; a restore that did not finish
// refuses turns until one does.

import { beforeAll, describe, expect, it } from "vitest";
import { createMlaSession } from "../../runtime/create-session.ts";
import { imagePrefixTokens } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import type { MlaCacheSnapshot } from "../../runtime/mla/attention.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import { ChatSession } from "../../client/chat/chat-session.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import type { ChatModel, HostChatModel } from "../../runtime/chat-model.ts";
import { CacheAssembler, SessionCache, SnapshotSink, checkSessionCodec } from "../../runtime/session-cache.ts";
import { withDecoderKernels } from "../../runtime/chat-model.ts";
import { createCpuBackend } from "../../kernels/backend.ts";
import { decodeChunk } from "../../format/chunk/index.ts";
import type { MlaCacheWrite } from "../../runtime/mla/attention.ts";
import { demoChatModel, fullRankChatModel, readEvalCases, tinyFixture, type EvalCase, userTurn } from "./fixture-model.ts";
import { MemoryStore, StoreConflictError } from "./memory-store.ts";

const INT4: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const INT2_CHANNEL: CodecParams = { bits: 2, group: 32, axis: "channel", rope: "int4" };

let svd: HostChatModel;
/** The same model decoding through kernels/ (their f32 CPU fallback: the WebGPU path's host code, in process). */
let svdKernels: HostChatModel;
let cases: EvalCase[];

beforeAll(async () => {
  svd = await demoChatModel();
  svdKernels = withDecoderKernels(svd, createCpuBackend());
  cases = await readEvalCases(12);
});

const DECODERS = [
  ["CPU reference", () => svd],
  ["kernels (CPU fallback)", () => svdKernels],
] as const;

function expectSameCache(a: MlaCacheSnapshot, b: MlaCacheSnapshot): void {
  expect(b.length).toBe(a.length);
  expect(Array.from(b.modality)).toEqual(Array.from(a.modality));
  a.layers.forEach((l, i) => {
    expect(Buffer.from(b.layers[i].latent.buffer, b.layers[i].latent.byteOffset, b.layers[i].latent.byteLength).equals(Buffer.from(l.latent.buffer, l.latent.byteOffset, l.latent.byteLength))).toBe(true);
    expect(Buffer.from(b.layers[i].kRope.buffer, b.layers[i].kRope.byteOffset, b.layers[i].kRope.byteLength).equals(Buffer.from(l.kRope.buffer, l.kRope.byteOffset, l.kRope.byteLength))).toBe(true);
  });
}

describe("restore from stored chunks", () => {
  for (const [label, codec, chunkTokens, decoder] of [
    ["int4 token axis, C = 16, CPU reference", INT4, 16, 0],
    ["int2 channel axis + int4 rope, C = 8, CPU reference", INT2_CHANNEL, 8, 0],
    ["int4 token axis, C = 8, kernels", INT4, 8, 1],
    ["int2 token axis + fp16 rope, C = 16, kernels", { bits: 2, group: 32, axis: "token", rope: "fp16" } as CodecParams, 16, 1],
  ] as const) {
    it(`should answer every turn like the uninterrupted session (${label})`, async () => {
      const svd = DECODERS[decoder][1]();
      let sealedTurns = 0;
      for (const c of cases) {
        const storeA = new MemoryStore(svd.spec, codec, chunkTokens, svd.ref);
        const a = ChatSession.fresh(svd, storeA, { codec, chunkTokens });
        expect(a.decoderChoice.path).toBe(decoder === 1 ? "kernels" : "reference");
        const storeB = new MemoryStore(svd.spec, codec, chunkTokens, svd.ref);
        let b = ChatSession.fresh(svd, storeB, { codec, chunkTokens });
        for (let t = 0; t < c.turns.length; t++) {
          const storedBefore = storeB.tokens;
          if (t > 0) {
            const visionBefore = svd.vision.calls;
            b = await ChatSession.open(svd, storeB); // a "page reload": a new runtime session from the edge
            expect(svd.vision.calls).toBe(visionBefore);
            expectSameCache(await a.inspectCache(), await b.inspectCache());
          }
          const ra = await a.complete({ messages: userTurn(c, t), maxTokens: 4 });
          const rb = await b.complete({ messages: userTurn(c, t), maxTokens: 4 });
          expect(rb.tokenIds).toEqual(ra.tokenIds);
          expect(rb.usage.cached_tokens).toBe(storedBefore); // the restored prefix (0 before the first restore)
          expect(rb.usage.kv_bytes).toBe((await storeB.manifest()).bytesStored);
          if (storeB.latestChunks().some((x) => x.sealed)) sealedTurns++;
        }
        expectSameCache(await a.inspectCache(), await (await ChatSession.open(svd, storeB)).inspectCache());
      }
      expect(sealedTurns).toBeGreaterThan(cases.length); // sealing really happened, within and across turns
    });
  }

  it("should keep the answers of the unconverted-quality model (full rank, int8): matches the fixture's reference answers", async () => {
    const full = await fullRankChatModel();
    const codec: CodecParams = { bits: 8, group: 128, axis: "token", rope: "fp16" };
    let right = 0;
    let total = 0;
    for (const c of cases) {
      const s = ChatSession.fresh(full, new MemoryStore(full.spec, codec, 16, full.ref), { codec, chunkTokens: 16 });
      for (let t = 0; t < 3; t++) {
        const r = await s.complete({ messages: userTurn(c, t), maxTokens: 4 });
        total++;
        if (r.message.content === c.turns[t].reference_model_answer) right++;
      }
    }
    // int8 latents of an exact conversion change almost nothing; the chat feeds the model's own answers as history
    expect(right / total).toBeGreaterThan(0.9);
  });
});

describe("sealing", () => {
  it("should seal each slot with the reference codec as soon as it fills, and keep exact raw values in the tail", async () => {
    const fx = await tinyFixture();
    const c = cases[0];
    const C = 8;
    const store = new MemoryStore(svd.spec, INT4, C, svd.ref);
    const s = ChatSession.fresh(svd, store, { codec: INT4, chunkTokens: C });
    const r = await s.complete({ messages: userTurn(c, 0), maxTokens: 4 });
    // Replay the same blocks through a plain decoder whose only sealing is this hook: when a layer's slot fills, its rows
    // are replaced by referenceCodec's quantize → dequantize before any query reads them (the hook's arrays are views
    // into the layer's contiguous row storage, so the slot's earlier rows sit right before them).
    const D = svd.spec.kvHeads * svd.spec.dKv;
    const R = svd.spec.kvHeads * svd.spec.ropeDims;
    const fakeSeal = (w: MlaCacheWrite) => {
      for (let slot = Math.floor(w.start / C); (slot + 1) * C <= w.start + w.count; slot++) {
        const lat = new Float32Array(w.latent.buffer, w.latent.byteOffset + (slot * C - w.start) * D * 4, C * D);
        const rope = new Float32Array(w.kRope.buffer, w.kRope.byteOffset + (slot * C - w.start) * R * 4, C * R);
        lat.set(referenceCodec.dequantize(referenceCodec.quantize(lat.slice(), C, D, 4, 32, "token")));
        rope.set(referenceCodec.dequantize(referenceCodec.quantize(rope.slice(), C, R, 8, svd.spec.ropeDims, "token")));
      }
    };
    const replay = (onCacheWrite?: (w: MlaCacheWrite) => void) => {
      const plain = createMlaSession(svd.weights, "absorbed", { defaultImageGrid: svd.imageGrid, onCacheWrite });
      const prompt = [...imagePrefixTokens(fx.tokenizer, 16), ...fx.tokenizer.encode(c.turns[0].question)];
      plain.session.append(prompt, { imageEmbeds: runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8))) });
      for (const t of r.tokenIds) plain.session.append([t]);
      if (r.tokenIds.at(-1) !== 5) plain.session.append([5]);
      return plain.backend.exportCache();
    };
    const sealedReplay = replay(fakeSeal);
    const unsealed = replay();
    const live = await s.inspectCache();
    expectSameCache(sealedReplay, live);
    const n = live.length;
    const sealed = Math.floor(n / C) * C;
    expect(sealed).toBeGreaterThanOrEqual(3 * C);
    // quantization really changed the sealed rows (layer 0's first slot is computed before any sealing could act)
    expect(Array.from(live.layers[0].latent.slice(0, C * D))).not.toEqual(Array.from(unsealed.layers[0].latent.slice(0, C * D)));
    expectSameCache(live, await (await ChatSession.open(svd, store)).inspectCache());
  });

  it("should read a sealed slot in the kernels' cache exactly as a restore dequantizes its uploaded chunk", async () => {
    const C = 8;
    const store = new MemoryStore(svdKernels.spec, INT4, C, svdKernels.ref);
    const s = ChatSession.fresh(svdKernels, store, { codec: INT4, chunkTokens: C });
    await s.complete({ messages: userTurn(cases[5], 0), maxTokens: 4 });
    const live = await s.inspectCache();
    const chunk = store.turns[0].chunks.find((x) => x.sealed && x.tokenStart === C)!;
    const decoded = decodeChunk(chunk.bytes, svd.spec);
    // the restored (dequantized) rows of that slot are exactly what the kernels' cache reads
    const D = svd.spec.kvHeads * svd.spec.dKv;
    const sink = new SnapshotSink(svd.codec, svd.spec, 2 * C);
    decoded.layers.forEach((l, i) => l.kind === "quantized" && sink.sealed(i, C, l.latent, l.rope));
    for (let l = 0; l < svd.spec.layers; l++) {
      expect(Array.from(sink.latents[l].slice(C * D, 2 * C * D))).toEqual(Array.from(live.layers[l].latent.slice(C * D, 2 * C * D)));
    }
  });

  it("should reject a codec that cannot group the latent", () => {
    expect(() => checkSessionCodec(svd.spec, { bits: 4, group: 32, axis: "channel", rope: "int8" }, 40)).toThrow(RuntimeError);
    const full = { ...svd.spec, dKv: 56 }; // D_c = 112: group 64 does not divide it, 128 (effective 112) does
    expect(() => checkSessionCodec(full, { bits: 4, group: 64, axis: "token", rope: "int8" }, 64)).toThrow(/does not divide D_c = 112/);
    expect(() => checkSessionCodec(full, { bits: 4, group: 128, axis: "token", rope: "int8" }, 64)).not.toThrow();
  });
});

describe("restore stream validation", () => {
  it("should reject a restore that misses a chunk or repeats one", async () => {
    const store = new MemoryStore(svd.spec, INT4, 8, svd.ref);
    const s = ChatSession.fresh(svd, store, { codec: INT4, chunkTokens: 8 });
    await s.complete({ messages: userTurn(cases[1], 0), maxTokens: 4 });
    const chunks = store.latestChunks();
    const opts = { spec: svd.spec, params: INT4, chunkTokens: 8, codec: svd.codec };
    const sink = () => new SnapshotSink(svd.codec, svd.spec, store.tokens);
    const missing = new CacheAssembler(opts, store.tokens, sink());
    chunks.slice(1).forEach((c) => missing.add(c.bytes));
    expect(() => missing.finish()).toThrow(/missing token 0 of layer 0/);
    const twice = new CacheAssembler(opts, store.tokens, sink());
    twice.add(chunks[0].bytes);
    expect(() => twice.add(chunks[0].bytes)).toThrow(/overlaps/);
    const otherCodec = new CacheAssembler({ ...opts, params: { ...INT4, rope: "fp16" } }, store.tokens, sink());
    expect(() => otherCodec.add(chunks[0].bytes)).toThrow(/is not the session's/);
  });

  it("should refuse to open a session stored for another conversion", async () => {
    const full = await fullRankChatModel();
    await expect(ChatSession.open(full, new MemoryStore(svd.spec, INT4, 16, svd.ref))).rejects.toThrow(/stores the cache of spec/);
    // same geometry, another conversion: refused by the model reference
    await expect(ChatSession.open(svd, new MemoryStore(svd.spec, INT4, 16, { id: "tiny-qwen-vl", conversion: "other" }))).rejects.toThrow(/not of tiny-qwen-vl/);
  });
});

describe.each(DECODERS)("turn failures and truncation (%s)", (_label, model) => {
  it("should roll back an aborted turn and a turn the store rejects", async () => {
    const svd = model();
    const store = new MemoryStore(svd.spec, INT4, 8, svd.ref);
    const s = ChatSession.fresh(svd, store, { codec: INT4, chunkTokens: 8 });
    await s.complete({ messages: userTurn(cases[2], 0), maxTokens: 4 });
    const before = await s.inspectCache();
    for await (const ev of s.chat({ messages: userTurn(cases[2], 1), maxTokens: 4, stream: true })) {
      expect(ev.type).toBe("token");
      break; // aborts the turn
    }
    expectSameCache(before, await s.inspectCache());
    expect(store.turns.length).toBe(1);
    // another writer takes seq 2: our append conflicts, and the turn is rolled back
    const other = await ChatSession.open(svd, store);
    const theirs = await other.complete({ messages: userTurn(cases[2], 1), maxTokens: 4 });
    await expect(s.complete({ messages: userTurn(cases[2], 1), maxTokens: 4 })).rejects.toThrow(StoreConflictError);
    expectSameCache(before, await s.inspectCache());
    // the rolled-back session still decodes like the other writer did from the same state
    await s.truncate(1);
    expect((await s.complete({ messages: userTurn(cases[2], 1), maxTokens: 4 })).tokenIds).toEqual(theirs.tokenIds);
  });

  it("should refuse turns after a restore that did not finish, and answer like before once a restore does", async () => {
    const svd = model();
    const store = new MemoryStore(svd.spec, INT4, 8, svd.ref);
    const s = ChatSession.fresh(svd, store, { codec: INT4, chunkTokens: 8 });
    await s.complete({ messages: userTurn(cases[3], 0), maxTokens: 4 });
    await s.complete({ messages: userTurn(cases[3], 1), maxTokens: 4 });
    const reference = await (await ChatSession.open(svd, store)).complete({ messages: userTurn(cases[3], 2), maxTokens: 4 });
    store.turns = store.turns.slice(0, 2); // the reference's turn 3 is not part of this story
    // The connection dies after the first chunk (and the SDK has given up resuming).
    const realRestore = store.restore.bind(store);
    store.restore = async function* () {
      let n = 0;
      for await (const ev of realRestore()) {
        if (ev.type === "chunk" && n++ === 1) throw new Error("connection lost");
        yield ev;
      }
    };
    await expect(s.restore()).rejects.toThrow("connection lost");
    // A turn now would decode without the history: refused before anything is generated or uploaded.
    const events: string[] = [];
    const refused = await (async () => {
      for await (const ev of s.chat({ messages: userTurn(cases[3], 2), maxTokens: 4, stream: true })) events.push(ev.type);
    })().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RuntimeError);
    expect(refused).toMatchObject({ code: "out_of_sync", message: expect.stringContaining("connection lost") });
    expect(events).toEqual([]);
    expect(store.turns).toHaveLength(2);
    store.restore = realRestore;
    await s.restore();
    expect((await s.complete({ messages: userTurn(cases[3], 2), maxTokens: 4 })).tokenIds).toEqual(reference.tokenIds);
  });

  it("should fork and truncate at turn boundaries: cut locally while the slot is held raw, else restore", async () => {
    const svd = model();
    const c = cases[3];
    for (const C of [8, 64]) {
      const store = new MemoryStore(svd.spec, INT4, C, svd.ref);
      const s = ChatSession.fresh(svd, store, { codec: INT4, chunkTokens: C });
      const answers: number[][] = [];
      const caches: MlaCacheSnapshot[] = [];
      for (let t = 0; t < 3; t++) {
        answers.push([...(await s.complete({ messages: userTurn(c, t), maxTokens: 4 })).tokenIds]);
        caches.push(await s.inspectCache());
      }
      const f = await s.fork(1);
      expect(f.turns).toBe(1);
      expectSameCache(caches[0], await f.inspectCache());
      const again = await f.complete({ messages: userTurn(c, 1), maxTokens: 4 });
      expect([...again.tokenIds]).toEqual(answers[1]);
      const restoresBefore = store.calls.filter((x) => x === "restore").length;
      // C = 64: the whole chat sits in slot 0, still raw, so the cut is local; C = 8: turn 1 ends inside a slot that
      // later turns sealed and uploaded, so the cut restores from the edge.
      const how = await s.truncate(C === 64 ? 2 : 1);
      expect(how).toBe(C === 64 ? "local" : "restored");
      expect(store.calls.filter((x) => x === "restore").length - restoresBefore).toBe(how === "local" ? 0 : 1);
      const t = C === 64 ? 2 : 1;
      expect(s.turns).toBe(t);
      expectSameCache(caches[t - 1], await s.inspectCache());
      expect(s.kvBytes.stored).toBe((await store.manifest()).bytesStored);
      expect([...(await s.complete({ messages: userTurn(c, t), maxTokens: 4 })).tokenIds]).toEqual(answers[t]);
      expectSameCache(caches[t], await s.inspectCache());
      expectSameCache(caches[t], await (await ChatSession.open(svd, store)).inspectCache());
      await expect(s.fork(5)).rejects.toThrow(RuntimeError);
    }
  });
});

describe("SessionCache", () => {
  it("should pack slot-aligned chunks: sealed when full, raw for the tail", async () => {
    const store = new MemoryStore(svd.spec, INT4, 8, svd.ref);
    const s = ChatSession.fresh(svd, store, { codec: INT4, chunkTokens: 8 });
    await s.complete({ messages: userTurn(cases[4], 0), maxTokens: 4 });
    const n = store.tokens;
    const chunks = store.turns[0].chunks;
    expect(chunks.map((c) => c.tokenStart)).toEqual(Array.from({ length: Math.ceil(n / 8) }, (_, i) => i * 8));
    expect(chunks.map((c) => c.sealed)).toEqual(chunks.map((c) => c.tokenCount === 8));
    expect(chunks.at(-1)!.tokenCount).toBe(n % 8 || 8);
    expect(new SessionCache({ spec: svd.spec, params: INT4, chunkTokens: 8, codec: svd.codec }).length).toBe(0);
  });
});
