// `npm run -s bench:decode -- --json`: Qwen2.5-VL-3B's language model (hidden 2048, 36 layers, 16 q / 2 kv heads, head
// 128, intermediate 11008, vocab 151,936, tied) with deterministic random int4 block-32 weights: our GPU engine on the
// MLA-converted shapes (d_kv 64, 32 rope dims, int4 latent cache) vs onnxruntime-web's WebGPU EP running the GQA decoder
// graph as transformers.js does, same browser (Debian Chromium, WebGPU on SwiftShader), same run. Decode tokens/s
// after a 1K and a 4K-token history (restored into our cache; f32 past K/V for the baseline), prefill tokens/s of a
// 1K prompt, the GPU vision tower on a 448×448 image, GPU bytes, bundle bytes, per-layer times and
// ratios.{decode1k, decode4k, prefill1k} = ours ÷ baseline (tokens/s). `--layers N` truncates both stacks the same
// (SwiftShader runs the whole 36 layers for minutes); `--vision-layers N` the vision tower. Prints ONE JSON object on
// stdout (progress on stderr). On SwiftShader absolute times mean little; the ratios do.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { chromiumAvailable, openInChromium } from "../kernels/chromium.ts";
import { mlaBundleBytes, QWEN25VL_3B_VISION, type DecodeBenchResult } from "./decode-bench.ts";
import { QWEN25VL_3B_TEXT } from "./onnx-decoder.ts";

const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    layers: { type: "string", default: "2" },
    "vision-layers": { type: "string", default: "2" },
    contexts: { type: "string", default: "1024,4096" },
    prefill: { type: "string", default: "1024" },
    steps: { type: "string", default: "5" },
    /** Diagnostics: run only these sides, comma-separated: ours, baseline, vision. */
    only: { type: "string" },
  },
});

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null => (a && b ? a / b : null);

async function main(): Promise<void> {
  if (!chromiumAvailable()) {
    console.log(JSON.stringify({ bench: "decode", skipped: "/usr/bin/chromium is missing (apt-get install chromium)" }));
    return;
  }
  const cfg = {
    layers: Number(values.layers),
    visionLayers: Number(values["vision-layers"]),
    contexts: values.contexts.split(",").map(Number),
    prefill: Number(values.prefill),
    decodeSteps: Number(values.steps),
    only: values.only === undefined ? undefined : (values.only.split(",") as ("ours" | "baseline" | "vision")[]),
  };
  const session = await openInChromium(resolve(import.meta.dirname, "decode-page.ts"), { serveOrt: true });
  session.page.on("console", (m) => {
    if (m.type() === "error" || m.text().startsWith("[decode-bench]")) console.error(`[page] ${m.text()}`);
  });
  try {
    await session.page.waitForFunction(() => "runDecodeBench" in globalThis);
    console.error(`bench:decode in Chromium: ${cfg.layers} of ${QWEN25VL_3B_TEXT.layers} layers, vision ${cfg.visionLayers} of ${QWEN25VL_3B_VISION.depth} blocks…`);
    session.page.setDefaultTimeout(0);
    const r = (await session.page.evaluate((c) => (globalThis as unknown as { runDecodeBench(c: unknown): Promise<unknown> }).runDecodeBench(c), cfg)) as DecodeBenchResult;
    const [k1, k4] = [String(cfg.contexts[0]), String(cfg.contexts[1] ?? cfg.contexts[0])];
    const out = {
      bench: "decode",
      runtime: "Chromium WebGPU",
      adapter: r.adapter,
      emulated: /swiftshader/i.test(r.adapter) || r.adapter === "",
      model: { ...QWEN25VL_3B_TEXT, layersRun: r.layers, dKv: 64, ropeDims: 32, weights: "int4 b32", cache: "int4 g32 latent, int8 rope" },
      ratios: { decode1k: ratio(r.ours.decodeTps[k1], r.baseline.decodeTps[k1]), decode4k: ratio(r.ours.decodeTps[k4], r.baseline.decodeTps[k4]), prefill1k: ratio(r.ours.prefillTps, r.baseline.prefillTps) },
      ours: r.ours,
      baseline: r.baseline,
      vision: { image: "448x448", ...r.vision },
      bundleBytes: mlaBundleBytes(),
      ms: Math.round(r.ms),
    };
    console.log(values.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
  } finally {
    await session.close();
  }
}

await main();
