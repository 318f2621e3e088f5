// Child process of tests/convert/layer-forward-gpu.test.ts (dawn.node reads VK_ICD_FILENAMES at process start): the
// layer-by-layer calibration forward with its projections on WebGPU (`webgpu-f32`) against the f64 reference on
// fixtures/qwen25vl-mini's chat calibration (an image conversation and a text one), and `mla-edge convert --forward
// webgpu-f32` end to end. Prints one JSON line (GpuForwardReport).
// Usage: node --import tsx tests/convert/layer-forward-gpu-runner.ts

import { layerCaptures, MINI, miniChatCalibration } from "./layer-forward-fixture.ts";
import { runReport } from "../helpers/run-tsx.ts";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeGpuContext } from "../../runtime/gpu/node-gpu.node.ts";
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


const t0 = performance.now();
let tmp = "";
await runReport(async () => {
  const gpu = await nodeGpuContext();
  if (gpu === null) throw new Error("no WebGPU adapter (dawn.node)");
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-gpu-forward-"));
  const { file, model, samples } = await miniChatCalibration(tmp);
  const ref = await layerCaptures(model, samples, "reference");
  const fast = await layerCaptures(model, samples, "webgpu-f32", gpu);
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
