// The layer-by-layer calibration forward on fixtures/qwen25vl-mini with real chat inputs (tokenizer, template, image
// processor, vision tower): the reference forward gives exactly the whole-model capture (captureCalibration) layer by
// layer; the wasm f32 forward (SIMD projections) stays within f32 rounding of it.
import { layerCaptures, MINI, miniChatCalibration } from "./layer-forward-fixture.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { captureCalibration } from "../../convert/calibration/capture.ts";
import { readChatCalibration } from "../../convert/calibration/chat-calib.ts";
import type { CalibrationSample, LayerSequenceCapture } from "../../convert/calibration/layer-forward.ts";
import type { GqaModelWeights } from "../../runtime/weights.ts";
import { parseQwen25VLConfig, qwen25VisionPrefix } from "../../checkpoint/families/qwen2_5_vl.ts";
import { loadQwen25VisionWeights } from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { embedImages } from "../../runtime/qwen2_5_vl-model.ts";
import { loadInputProcessor, nodeImageLoader } from "../../runtime/inputs/processor.node.ts";

let tmp: string;
let model: GqaModelWeights;
let samples: CalibrationSample[];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-layerfwd-"));
  ({ model, samples } = await miniChatCalibration(tmp));
}, 60_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const run = (forward: "reference" | "wasm-f32"): Promise<LayerSequenceCapture[][]> => layerCaptures(model, samples, forward);

const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float64Array, b: Float64Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe("layer-by-layer calibration forward (qwen25vl-mini)", () => {
  it("reference: every layer's x, q, k equal the whole-model capture bit for bit", async () => {
    const whole = captureCalibration(
      model,
      samples.map((s) => ({ inputIds: s.inputIds, patches: new Float32Array(0), imageEmbeds: s.imageEmbeds, imageGrids: s.imageGrids })),
    );
    const layered = await run("reference");
    expect(samples[0].imageGrids).toEqual([{ rows: 5, cols: 11 }]);
    for (let l = 0; l < model.config.numLayers; l++) {
      for (let s = 0; s < samples.length; s++) {
        const a = layered[l][s];
        const b = whole[s].layers[l];
        expect(Buffer.from(a.x.buffer).equals(Buffer.from(b.x.buffer))).toBe(true);
        expect(Buffer.from(a.q.buffer).equals(Buffer.from(b.q.buffer))).toBe(true);
        expect(Buffer.from(a.k.buffer).equals(Buffer.from(b.k.buffer))).toBe(true);
        expect(Array.from(a.modality)).toEqual(Array.from(whole[s].modality));
      }
    }
  });

  it("chat calibration's image embeddings: reference = the runtime's embedImages bit for bit; wasm-f32 within 1e-5 relative", async () => {
    const ck = await openCheckpointDir(MINI);
    try {
      const ref = await readChatCalibration(join(tmp, "c.jsonl"), MINI, ck.source, ck.rawConfig, { forward: "reference" });
      const cfg = parseQwen25VLConfig(ck.rawConfig);
      const prefix = qwen25VisionPrefix(ck.source.names());
      const vision = await loadQwen25VisionWeights(ck.source, cfg.vision, prefix);
      const processor = await loadInputProcessor(MINI);
      const inputs = await processor.encode(
        [{ role: "user", content: [{ type: "image_url", image_url: { url: "images/a.png" } }, { type: "text", text: "Describe it." }] }, { role: "assistant", content: "Noise." }],
        { loadImage: nodeImageLoader(tmp), addGenerationPrompt: false },
      );
      expect(ref[0].inputIds).toEqual(inputs.inputIds);
      const direct = embedImages({ config: cfg, vision, visionPrefix: prefix }, inputs.images.map((im) => ({ pixelValues: im.pixelValues, grid: { t: im.gridThw[0], h: im.gridThw[1], w: im.gridThw[2] } })));
      expect(Buffer.from(ref[0].imageEmbeds!.buffer).equals(Buffer.from(direct.buffer))).toBe(true);
      const fastEmbeds = samples[0].imageEmbeds!; // beforeAll read them with the default wasm-f32 forward
      const scale = direct.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const diff = direct.reduce((m, v, i) => Math.max(m, Math.abs(v - fastEmbeds[i])), 0);
      expect(diff).toBeLessThan(1e-5 * scale);
      expect(diff).toBeGreaterThan(0);
    } finally {
      await ck.source.close();
    }
  });

  it("wasm-f32: within f32 rounding of the reference (relative 1e-5 of each capture's scale)", async () => {
    const ref = await run("reference");
    const fast = await run("wasm-f32");
    for (let l = 0; l < model.config.numLayers; l++) {
      for (let s = 0; s < samples.length; s++) {
        for (const key of ["x", "q", "k"] as const) {
          const a = ref[l][s][key];
          const b = fast[l][s][key];
          const d = maxDiff(a, b);
          expect(d).toBeLessThanOrEqual(1e-5 * maxAbs(a));
          if (l > 0 || key !== "x") expect(d).toBeGreaterThan(0); // it really is another path
        }
      }
    }
  });
});
