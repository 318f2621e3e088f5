// Child process of tests/convert/layer-forward-gpu.test.ts (dawn.node reads VK_ICD_FILENAMES at process start): the
// layer-by-layer calibration forward with its projections on WebGPU (`webgpu-f32`) against the f64 reference on
// fixtures/qwen25vl-mini's chat calibration (an image conversation and a text one), and `mla-edge convert --forward
// webgpu-f32` end to end. Prints one JSON line (GpuForwardReport).
// Usage: node --import tsx tests/convert/layer-forward-gpu-runner.ts

import { runReport } from "../helpers/run-tsx.ts";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { readChatCalibration } from "../../convert/calibration/chat-calib.ts";
import { LayerwiseCalibration, type CalibrationForward, type CalibrationSample, type LayerSequenceCapture } from "../../convert/calibration/layer-forward.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { nodeGpuContext } from "../../runtime/gpu/node-gpu.node.ts";
import { loadGqaModel, type GqaModelWeights } from "../../runtime/weights.ts";
import { runCli } from "../cli/run-cli.ts";

export interface GpuForwardReport {
  readonly adapter: string;
  /** Per layer × sequence × {x, q, k}: max |gpu − reference| / max |reference|. */
  readonly relErr: number[];
  /** Captures where the GPU forward differs from the reference at all (it really is another path). */
  readonly differing: number;
  readonly captures: number;
  /** The CLI with --forward webgpu-f32: exit code and the forward recorded in the output's config. */
  readonly cli: { readonly code: number; readonly recorded: unknown; readonly stderr: string };
  readonly ms: number;
}

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));

async function run(model: GqaModelWeights, samples: CalibrationSample[], forward: CalibrationForward, gpu: GpuContext | null): Promise<LayerSequenceCapture[][]> {
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

const t0 = performance.now();
let tmp = "";
await runReport(async () => {
  const gpu = await nodeGpuContext();
  if (gpu === null) throw new Error("no WebGPU adapter (dawn.node)");
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-gpu-forward-"));
  await mkdir(join(tmp, "images"));
  await cp(join(MINI, "images", "noisy_300x150.png"), join(tmp, "images", "a.png"));
  const file = join(tmp, "c.jsonl");
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
  let model: GqaModelWeights;
  let samples: CalibrationSample[];
  try {
    model = await loadGqaModel(ck.source, ck.config);
    samples = await readChatCalibration(file, MINI, ck.source, ck.rawConfig);
  } finally {
    await ck.source.close();
  }
  const ref = await run(model, samples, "reference", null);
  const fast = await run(model, samples, "webgpu-f32", gpu);
  const relErr: number[] = [];
  let differing = 0;
  for (let l = 0; l < ref.length; l++) {
    for (let s = 0; s < samples.length; s++) {
      for (const key of ["x", "q", "k"] as const) {
        const a = ref[l][s][key];
        const b = fast[l][s][key];
        let diff = 0;
        let scale = 0;
        for (let i = 0; i < a.length; i++) {
          diff = Math.max(diff, Math.abs(a[i] - b[i]));
          scale = Math.max(scale, Math.abs(a[i]));
        }
        relErr.push(a.length === b.length ? diff / scale : Infinity);
        if (diff > 0) differing++;
      }
    }
  }
  const out = join(tmp, "out");
  const r = await runCli(["convert", "--model", MINI, "--out", out, "--d-kv", "4", "--rope-dims", "4", "--strategy", "mkl", "--svd", "md", "--calib", file, "--forward", "webgpu-f32", "--json"]);
  let recorded: unknown = null;
  if (r.code === 0) {
    const cfg = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as { mla_edge?: { conversion?: { calibration_forward?: unknown } } };
    recorded = cfg.mla_edge?.conversion?.calibration_forward ?? null;
  }
  const info = gpu.device.adapterInfo;
  const report: GpuForwardReport = {
    adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "",
    relErr,
    differing,
    captures: relErr.length,
    cli: { code: r.code, recorded, stderr: r.code === 0 ? "" : r.stderr.slice(-1000) },
    ms: performance.now() - t0,
  };
  return report;
}, async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});
