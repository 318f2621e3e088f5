// The decoder's async loop over the attention kernels (runtime/mla/kernel-attention.ts), in process on the kernels' f32
// CPU fallback: logits track the f64 CPU reference (same slot sealing) through a causal prefill block and decode steps;
// (token- and channel-axis codecs); a truncation inside a sealed slot unseals it and decodes the same tokens again
// bit-identically; the synchronous
// `append` refuses an async backend; unsupported sessions fall back to the CPU reference with a reason.

import { beforeAll, describe, expect, it } from "vitest";
import { chooseDecoder } from "../../runtime/decoder-kernels.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { createCpuBackend } from "../../kernels/backend.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { DecoderSession, DecoderSessionError } from "../../runtime/decoder-session.ts";
import { kernelCacheLayout, MlaKernelAttentionBackend } from "../../runtime/mla/kernel-attention.ts";
import { codecSlotQuantizer, SlotSealing } from "../../runtime/mla/slot-sealing.ts";
import { imagePrefixTokens } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import type { ChatModel, HostChatModel } from "../../runtime/chat-model.ts";
import { demoChatModel, fullRankChatModel, readEvalCases, tinyFixture, type EvalCase } from "../client/fixture-model.ts";
import { relativeError } from "./helpers.ts";

const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
/** KIVI-style: one scale per latent channel per slot of C tokens (the effective group is min(32, C)). */
const CHANNEL_CODEC: CodecParams = { bits: 4, group: 32, axis: "channel", rope: "int8" };
const C = 8;
let model: HostChatModel;
let cases: EvalCase[];

beforeAll(async () => {
  model = await demoChatModel();
  cases = await readEvalCases(3);
});

function sealing(m: HostChatModel, codec = CODEC): SlotSealing {
  const s = m.spec;
  const dims = { latentWidth: s.kvHeads * s.dKv, ropeWidth: s.kvHeads * s.ropeDims, ropeDims: s.ropeDims };
  return new SlotSealing(s.layers, C, dims.latentWidth, dims.ropeWidth, codecSlotQuantizer(m.codec, codec, dims));
}

function kernelDecoder(m: HostChatModel, codec = CODEC): { session: DecoderSession; attention: MlaKernelAttentionBackend } {
  const w = m.weights;
  const attention = new MlaKernelAttentionBackend(w, createCpuBackend(), kernelCacheLayout(w, codec, C), sealing(m, codec), { initialCapacity: 64 });
  return { session: new DecoderSession(w.config, w.shell, attention, { defaultImageGrid: m.imageGrid }), attention };
}

/** The case's true 3-turn sequence: turn 1 as a block, every later token one by one. */
async function sequence(c: EvalCase): Promise<{ first: number[]; rest: number[]; embeds: Float32Array }> {
  const fx = await tinyFixture();
  const first = [...imagePrefixTokens(fx.tokenizer, 16), ...fx.tokenizer.encode(c.turns[0].question)];
  const rest: number[] = [];
  c.turns.forEach((t, i) => {
    if (i > 0) rest.push(...fx.tokenizer.encode(t.question));
    rest.push(...fx.tokenizer.encode(t.answer), fx.tokenizer.encode("<end>")[0]);
  });
  return { first, rest, embeds: runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8))) };
}

describe("MLA attention through the kernels", () => {
  it("should track the f64 CPU reference within 1e-4 (relative) over prefill rows and decode steps, across slot seals", async () => {
    for (const c of cases) {
      const { first, rest, embeds } = await sequence(c);
      const ref = createMlaSession(model.weights, "absorbed", { defaultImageGrid: model.imageGrid, sealing: sealing(model) }).session;
      const { session, attention } = kernelDecoder(model);
      expect(relativeError(await session.appendAsync(first, { imageEmbeds: embeds, logits: "all" }), ref.append(first, { imageEmbeds: embeds, logits: "all" }))).toBeLessThan(1e-4);
      for (const t of rest) {
        expect(relativeError(await session.appendAsync([t]), ref.append([t]))).toBeLessThan(1e-4);
        // after every token: nothing sealed at C·k − 1, the seal exactly at C·k (issue 21)
        expect(attention.cache.sealedLength, `length ${session.length}`).toBe(Math.floor(session.length / C) * C);
      }
      // the async loop over the sync reference backend gives the reference's own logits
      const again = createMlaSession(model.weights, "absorbed", { defaultImageGrid: model.imageGrid, sealing: sealing(model) }).session;
      const a = await again.appendAsync(first, { imageEmbeds: embeds });
      const b = createMlaSession(model.weights, "absorbed", { defaultImageGrid: model.imageGrid, sealing: sealing(model) }).session.append(first, { imageEmbeds: embeds });
      expect(Array.from(a)).toEqual(Array.from(b));
    }
  });

  it("should track the f64 CPU reference with a channel-axis codec (per-channel scales over each slot)", async () => {
    const { first, rest, embeds } = await sequence(cases[0]);
    const ref = createMlaSession(model.weights, "absorbed", { defaultImageGrid: model.imageGrid, sealing: sealing(model, CHANNEL_CODEC) }).session;
    const { session, attention } = kernelDecoder(model, CHANNEL_CODEC);
    expect(attention.cache.layout.latentAxis).toBe("channel");
    expect(relativeError(await session.appendAsync(first, { imageEmbeds: embeds, logits: "all" }), ref.append(first, { imageEmbeds: embeds, logits: "all" }))).toBeLessThan(1e-4);
    for (const t of rest) expect(relativeError(await session.appendAsync([t]), ref.append([t]))).toBeLessThan(1e-4);
    expect(attention.cache.sealedLength).toBeGreaterThan(0);
  });

  it("should unseal a slot on truncation and decode the dropped tokens again bit-identically", async () => {
    const { first, rest, embeds } = await sequence(cases[0]);
    const { session, attention } = kernelDecoder(model);
    await session.appendAsync(first, { imageEmbeds: embeds });
    const cut = session.length;
    expect(cut % C).not.toBe(0);
    const before: Float32Array[] = [];
    for (const t of rest.slice(0, C)) before.push(await session.appendAsync([t])); // fills and seals the slot holding `cut`
    expect(attention.cache.sealedLength).toBeGreaterThan(Math.floor(cut / C) * C);
    session.truncate(cut);
    expect(attention.cache.sealedLength).toBe(Math.floor(cut / C) * C);
    expect(attention.cache.length).toBe(cut);
    for (const [i, t] of rest.slice(0, C).entries()) expect(Array.from(await session.appendAsync([t]))).toEqual(Array.from(before[i]));
  });

  it("should refuse the synchronous append on the kernels", async () => {
    const { session } = kernelDecoder(model);
    expect(() => session.append([1])).toThrow(DecoderSessionError);
    expect(() => session.append([1])).toThrow(/appendAsync/);
  });

  it("should fall back to the CPU reference, saying why, where the kernels cannot hold the cache", async () => {
    const kernels = createCpuBackend();
    const w = model.weights;
    expect(chooseDecoder(kernels, w, CODEC, false, C)).toEqual({ kind: "cpu", path: "kernels", fallback: null });
    expect(chooseDecoder(kernels, w, CHANNEL_CODEC, false, C)).toEqual({ kind: "cpu", path: "kernels", fallback: null });
    expect(chooseDecoder(null, w, CODEC, false, C).fallback).toMatch(/no WebGPU adapter/);
    expect(chooseDecoder(kernels, w, CODEC, true, C).fallback).toMatch(/raw/);
    const full = await fullRankChatModel(); // D_c = 112
    expect(chooseDecoder(kernels, full.weights, { ...CODEC, group: 128 }, false, C).fallback).toMatch(/multiple of 32, this model's is 112/);
  });
});
