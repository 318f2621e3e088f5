// generate() on qwen25vl-mini, for the original decoder and for its MLA conversion at full rank with every rope pair
// kept (r = head_dim, no SVD (nothing left to compress): the conversion is exact on the real architecture), both read paths:
// every reference case's 12 greedy ids, the top-20 logits at the first generated position, and seeded sampling
// reproducing itself.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { convertModel } from "../../convert/pipeline/convert-model.ts";
import { GqaAttentionBackend } from "../../runtime/gqa-attention.ts";
import { MlaAttentionBackend } from "../../runtime/mla/attention.ts";
import { readImageFile } from "../../runtime/inputs/image-decode.node.ts";
import { QwenImageProcessor } from "../../runtime/inputs/image-processor.ts";
import { generate } from "../../runtime/generate.ts";
import { appendTurn, createQwen25VLSession, loadQwen25VL, type Qwen25VLModel, type VisionInput } from "../../runtime/qwen2_5_vl-model.ts";
import { loadReference, MINI_DIR, pixelValuesNoResize, refCase, type RefCase, type Reference } from "./qwen25vl-fixture.ts";

let ref: Reference;
let original: Qwen25VLModel;
let mla: Qwen25VLModel;

beforeAll(async () => {
  ref = loadReference();
  const ck = await openCheckpointDir(MINI_DIR);
  original = await loadQwen25VL(ck.source, JSON.parse(readFileSync(join(MINI_DIR, "config.json"), "utf8")));
  await ck.source.close();
  if (original.decoder.kind !== "original") throw new Error("expected the original decoder");
  const dh = original.config.text.headDim;
  const converted = convertModel(original.decoder.model, { strategy: "high", ropeDims: dh, svd: "none", dKv: dh }, null);
  mla = { ...original, decoder: { kind: "mla", model: converted.model } };
}, 120_000);

function images(c: RefCase): VisionInput[] {
  return c.images.map((img) => {
    const { pixels, grid } = pixelValuesNoResize(join(MINI_DIR, ref.images[img.url].resized_file ?? img.url));
    return { pixelValues: pixels, grid };
  });
}

const variants: [string, () => Qwen25VLModel, "absorbed" | "expanded"][] = [
  ["original", () => original, "absorbed"],
  ["MLA full rank, absorbed", () => mla, "absorbed"],
  ["MLA full rank, expanded", () => mla, "expanded"],
];

describe("generate on qwen25vl-mini", () => {
  for (const [label, get, path] of variants) {
    it(`${label}: greedy ids and top-20 logits of every case equal the reference`, () => {
      for (const name of ["text_only", "one_image", "two_turn"]) {
        const c = refCase(ref, name);
        const model = get();
        const { session, backend } = createQwen25VLSession(model, path);
        expect(backend).toBeInstanceOf(model.decoder.kind === "mla" ? MlaAttentionBackend : GqaAttentionBackend);
        const streamed: number[] = [];
        const r = generate(model, session, c.input_ids, images(c), { temperature: 0, maxTokens: c.greedy.n, onToken: (id) => streamed.push(id) });
        expect(r.outputIds, name).toEqual(c.greedy.ids);
        expect(streamed).toEqual(r.outputIds);
        expect(r.topLogits.map(([id]) => id), name).toEqual(c.logits_last.top20.map(([id]) => id));
        for (let i = 0; i < 20; i++) expect(Math.abs(r.topLogits[i][1] - c.logits_last.top20[i][1]), `${name} top ${i}`).toBeLessThanOrEqual(2e-3);
        expect(r.timings.promptTokens).toBe(c.num_tokens);
        expect(r.timings.generatedTokens).toBe(c.greedy.n);
      }
    });
  }

  it("one_image and two_turn from the original PNGs through the image processor (PIL-exact resize): ids and logits equal the reference", async () => {
    const processor = QwenImageProcessor.fromJson(JSON.parse(readFileSync(join(MINI_DIR, "preprocessor_config.json"), "utf8")));
    for (const name of ["one_image", "two_turn"]) {
      const c = refCase(ref, name);
      const inputs: VisionInput[] = [];
      for (const img of c.images) {
        const p = processor.process(await readImageFile(join(MINI_DIR, img.url)));
        expect([...p.gridThw]).toEqual(img.image_grid_thw);
        inputs.push({ pixelValues: p.pixelValues, grid: { t: p.gridThw[0], h: p.gridThw[1], w: p.gridThw[2] } });
      }
      const r = generate(original, createQwen25VLSession(original).session, c.input_ids, inputs, { temperature: 0, maxTokens: c.greedy.n });
      expect(r.outputIds, name).toEqual(c.greedy.ids);
      for (let i = 0; i < 20; i++) expect(Math.abs(r.topLogits[i][1] - c.logits_last.top20[i][1]), `${name} top ${i}`).toBeLessThanOrEqual(2e-3);
    }
  });

  it("two_turn with turn 1's latent cache exported and imported into a fresh MLA session (what a restore from the edge does) answers turn 2 like the single pass", () => {
    const c = refCase(ref, "two_turn");
    const t1 = c.turn1!;
    const first = createQwen25VLSession(mla);
    appendTurn(mla, first.session, c.input_ids.slice(0, t1.input_ids_len), images(c), { logits: "none" });
    const rest = c.input_ids.slice(t1.input_ids_len);
    // turn 1's answer is appended as turn 2's prefix, as a chat does after the reply streamed
    const snap = (first.backend as MlaAttentionBackend).exportCache();
    const stored = { length: first.session.length, nextPosition: first.session.nextPosition };
    expect(stored.nextPosition - stored.length).toBe(t1.rope_deltas);
    const second = createQwen25VLSession(mla);
    (second.backend as MlaAttentionBackend).importCache(structuredClone(snap));
    second.session.adoptCache(stored.length, stored.nextPosition);
    const r = generate(mla, second.session, rest, [], { temperature: 0, maxTokens: c.greedy.n });
    expect(r.outputIds).toEqual(c.greedy.ids);
    for (let i = 0; i < 20; i++) expect(Math.abs(r.topLogits[i][1] - c.logits_last.top20[i][1])).toBeLessThanOrEqual(2e-3);
  });

  it("a checkpoint in the newer transformers layout (model.language_model.*, model.visual.*) loads and runs the same", async () => {
    const ck = await openCheckpointDir(MINI_DIR);
    try {
      const src = ck.source;
      const toNew = (n: string) => (n.startsWith("visual.") ? `model.${n}` : n.startsWith("model.") ? `model.language_model.${n.slice(6)}` : n);
      const back = new Map(src.names().map((n) => [toNew(n), n]));
      const orig = (n: string) => back.get(n) ?? `<absent ${n}>`;
      const renamed: TensorSource = {
        names: () => [...back.keys()],
        has: (n) => back.has(n),
        info: (n) => src.info(orig(n)),
        readFloat32: (n, shape) => src.readFloat32(orig(n), shape),
        readInt32: (n, shape) => src.readInt32(orig(n), shape),
        readBytes: (n) => src.readBytes(orig(n)),
        close: () => Promise.resolve(),
      };
      const model = await loadQwen25VL(renamed, ck.rawConfig);
      expect(model.visionPrefix).toBe("model.visual.");
      const c = refCase(ref, "one_image");
      const r = generate(model, createQwen25VLSession(model).session, c.input_ids, images(c), { temperature: 0, maxTokens: c.greedy.n });
      expect(r.outputIds).toEqual(c.greedy.ids);
    } finally {
      await ck.source.close();
    }
  });

  it("stops at a stop id; seeded sampling reproduces itself and differs from greedy", () => {
    const c = refCase(ref, "text_only");
    const run = (opts: Parameters<typeof generate>[4]) => generate(original, createQwen25VLSession(original).session, c.input_ids, [], opts);
    expect(run({ temperature: 0, maxTokens: 12, stopTokenIds: [c.greedy.ids[2]] }).outputIds).toEqual(c.greedy.ids.slice(0, 3));
    const a = run({ temperature: 1.5, topK: 50, topP: 0.95, seed: 11, maxTokens: 8 });
    const b = run({ temperature: 1.5, topK: 50, topP: 0.95, seed: 11, maxTokens: 8 });
    expect(a.outputIds).toEqual(b.outputIds);
    expect(a.outputIds).not.toEqual(c.greedy.ids.slice(0, 8));
  });
});
