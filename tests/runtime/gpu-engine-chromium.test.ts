// The GPU engine in a real browser (Debian Chromium + playwright-core, WebGPU on SwiftShader): the demo conversion of
// tiny-qwen-vl packed as an int4 (block 32) bundle, served over HTTP, streamed into GPU buffers, decoding a prompt and 30
// steps across slot seals; logits within 1e-5 (relative) of the CPU reference decoder on the same dequantized weights
// and the same greedy ids.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { codecSlotQuantizer, SlotSealing } from "../../runtime/mla/slot-sealing.ts";
import { chromiumAvailable, openInChromium, type BrowserSession } from "../kernels/chromium.ts";
import { DEMO_MODEL_DIR, demoChatModel } from "../client/fixture-model.ts";
import { roundModel } from "./engine-helpers.ts";

const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const C = 16;
const PROMPT = [1, 6, 7, 8, 9, 10, 11, 12, 13];
const FEED = Array.from({ length: 30 }, (_, i) => 6 + ((i * 7) % 25));

describe.skipIf(!chromiumAvailable())("GPU engine in Chromium (WebGPU on SwiftShader)", () => {
  let session: BrowserSession;
  let tmp = "";
  let out: { adapter: string; logits: number[][]; ids: number[]; submissions: number };
  let ref: Float32Array[] = [];

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "engine-chromium-"));
    await packBundle(DEMO_MODEL_DIR, join(tmp, "b"), { weights: "int4", block: 32 });
    const model = await demoChatModel();
    const w = roundModel(model.weights, { bits: 4, block: 32 });
    const spec = model.spec;
    const dims = { latentWidth: spec.kvHeads * spec.dKv, ropeWidth: spec.kvHeads * spec.ropeDims, ropeDims: spec.ropeDims };
    const sealing = new SlotSealing(spec.layers, C, dims.latentWidth, dims.ropeWidth, codecSlotQuantizer(model.codec, CODEC, dims));
    const cpu = createMlaSession(w, "absorbed", { sealing }).session;
    ref = [cpu.append(PROMPT), ...FEED.map((t) => cpu.append([t]))];
    session = await openInChromium(resolve(import.meta.dirname, "engine-browser-entry.ts"), { serveDir: { prefix: "/bundle/", dir: join(tmp, "b") } });
    await session.page.waitForFunction(() => "runEngine" in globalThis);
    out = (await session.page.evaluate(
      ([p, f, c, n]) => (globalThis as unknown as { runEngine(p: number[], f: number[], c: unknown, n: number): Promise<unknown> }).runEngine(p, f, c, n),
      [PROMPT, FEED, CODEC, C] as const,
    )) as typeof out;
  }, 600_000);

  afterAll(async () => {
    await session?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("should run on the SwiftShader WebGPU adapter", () => {
    expect(out.adapter).toMatch(/swiftshader/i);
  });

  it("should give logits within 1e-5 of the CPU reference on the same int4 weights, and its greedy ids", () => {
    expect(out.logits.length).toBe(ref.length);
    let num = 0;
    let den = 0;
    out.logits.forEach((row, i) => {
      row.forEach((v, j) => {
        num = Math.max(num, Math.abs(v - ref[i][j]));
        den = Math.max(den, Math.abs(ref[i][j]));
      });
      const am = ref[i].reduce((b, v, j, a) => (v > a[b] ? j : b), 0);
      expect(out.ids[i], `row ${i}`).toBe(am);
    });
    expect(num / den).toBeLessThan(1e-5);
  });

  it("should submit once per step except on the steps that seal a slot", () => {
    // prompt 9 tokens + 30 steps with C = 16: the steps reaching 16 and 32 tokens seal (4 layers: L + 2 = 6 submissions).
    expect(out.submissions).toBe(1 + 28 + 2 * 6);
  });
});
