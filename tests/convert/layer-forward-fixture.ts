// Shared by the calibration-forward tests (tests/convert/layer-forward.test.ts in process, layer-forward-gpu-runner.ts
// in a dawn.node child): qwen25vl-mini's chat calibration (an image conversation and a text one) and the captures of
// every layer under one forward.
import { cp, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { readChatCalibration } from "../../convert/calibration/chat-calib.ts";
import { LayerwiseCalibration, type CalibrationForward, type CalibrationSample, type LayerSequenceCapture } from "../../convert/calibration/layer-forward.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { loadGqaModel, type GqaModelWeights } from "../../runtime/weights.ts";

export const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));

/** Writes `dir`/c.jsonl (+ images/a.png) and reads it with the mini checkpoint: the model and its samples. */
export async function miniChatCalibration(dir: string): Promise<{ file: string; model: GqaModelWeights; samples: CalibrationSample[] }> {
  await mkdir(join(dir, "images"));
  await cp(join(MINI, "images", "noisy_300x150.png"), join(dir, "images", "a.png"));
  const file = join(dir, "c.jsonl");
  await writeFile(
    file,
    [
      { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "images/a.png" } }, { type: "text", text: "Describe it." }] }, { role: "assistant", content: "Noise." }] },
      { messages: [{ role: "user", content: "Hello there." }] },
    ]
      .map((l) => JSON.stringify(l))
      .join("\n"),
  );
  const ck = await openCheckpointDir(MINI);
  try {
    return { file, model: await loadGqaModel(ck.source, ck.config), samples: await readChatCalibration(file, MINI, ck.source, ck.rawConfig) };
  } finally {
    await ck.source.close();
  }
}

/** Every layer's captures (x copied: the forward reuses its buffer) for every sample under `forward`. */
export async function layerCaptures(model: GqaModelWeights, samples: CalibrationSample[], forward: CalibrationForward, gpu: GpuContext | null = null): Promise<LayerSequenceCapture[][]> {
  const e = model.shell.embedTokens;
  const d = model.config.hiddenSize;
  const cal = new LayerwiseCalibration(model.config, samples, (ids) => {
    const out = new Float32Array(ids.length * d);
    ids.forEach((id, i) => out.set(e.subarray(id * d, (id + 1) * d), i * d));
    return out;
  }, forward, gpu);
  const layers: LayerSequenceCapture[][] = [];
  try {
    for (let l = 0; l < model.config.numLayers; l++) {
      const got: LayerSequenceCapture[] = [];
      await cal.runLayer(l, model.attention[l], model.shell.layers[l], (c) => got.push({ ...c, x: c.x.slice() }));
      layers.push(got);
    }
  } finally {
    await cal.close();
  }
  return layers;
}
