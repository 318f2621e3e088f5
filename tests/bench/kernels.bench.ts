// `npm run bench:kernels -- --json`: decode time per token per layer of absorbed MLA attention (Qwen2.5-VL-7B, d_kv = 64,
// int4 latent g64, int8 rope) vs onnxruntime-web's WebGPU GroupQueryAttention on the uncompressed f32 GQA cache, at 1K,
// 4K and 16K context, same device and run: in Debian Chromium (WebGPU on SwiftShader) by default, or on dawn.node with
// `--runtime node` (`--adapter system` picks the machine's own Vulkan driver: a real GPU, where `--peak-gbs` states
// achieved bandwidth against the card's). Prints ONE JSON object on stdout (progress on stderr). On SwiftShader absolute
// times mean little; the ratio and the bytes do.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { chromiumAvailable, openInChromium } from "../kernels/chromium.ts";
import type { KernelBenchResult } from "../kernels/kernel-bench.ts";
import { runTsx } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { kernelBenchReport } from "./kernels-report.ts";

const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    contexts: { type: "string", default: "1024,4096,16384" },
    "min-ms": { type: "string", default: "1500" },
    "max-iters": { type: "string", default: "10" },
    batch: { type: "string", default: "20" },
    /** chromium (default: Debian Chromium, SwiftShader) or node (dawn.node). */
    runtime: { type: "string", default: "chromium" },
    /** node runtime only: swiftshader (default) or system (the machine's Vulkan driver, i.e. a real GPU). */
    adapter: { type: "string", default: "swiftshader" },
    /** The card's memory bandwidth in GB/s, to report achieved bandwidth as a fraction of it. */
    "peak-gbs": { type: "string" },
  },
});

async function main(): Promise<void> {
  const contexts = values.contexts.split(",").map(Number);
  const cfg = { contexts, minMs: Number(values["min-ms"]), maxIters: Number(values["max-iters"]), batch: Number(values.batch) };
  const peakGBs = values["peak-gbs"] ? Number(values["peak-gbs"]) : undefined;
  if (values.runtime === "node") return runInNode(peakGBs);
  if (!chromiumAvailable()) {
    console.log(JSON.stringify({ bench: "kernels", skipped: "/usr/bin/chromium is missing (apt-get install chromium)" }));
    return;
  }
  const session = await openInChromium(resolve(import.meta.dirname, "../kernels/bench-page.ts"), { serveOrt: true });
  session.page.on("console", (m) => {
    if (m.type() === "error") console.error(`[page] ${m.text()}`);
  });
  try {
    await session.page.waitForFunction(() => "runKernelBench" in globalThis);
    console.error(`running contexts ${contexts.join(", ")} in Chromium (SwiftShader)…`);
    const r = (await session.page.evaluate(
      (c) => (globalThis as unknown as { runKernelBench(c: typeof cfg): Promise<unknown> }).runKernelBench(c),
      cfg,
    )) as KernelBenchResult;
    const out = kernelBenchReport(r, { runtime: "Chromium WebGPU", emulated: /swiftshader/i.test(r.adapter) || r.adapter === "", peakGBs });
    console.log(values.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
  } finally {
    await session.close();
  }
}

/** Runs kernels-node-runner.ts in a child: dawn.node reads its Vulkan driver choice at process start. */
async function runInNode(peakGBs: number | undefined): Promise<void> {
  const env = values.adapter === "swiftshader" ? swiftShaderEnv() : process.env;
  const args = ["--json", "--contexts", values.contexts,
    "--min-ms", values["min-ms"], "--max-iters", values["max-iters"], "--batch", values.batch];
  if (peakGBs) args.push("--peak-gbs", String(peakGBs));
  console.error(`running contexts ${values.contexts} on dawn.node (${values.adapter} Vulkan driver)…`);
  const { stdout } = await runTsx(resolve(import.meta.dirname, "kernels-node-runner.ts"), args, { env, stderr: "inherit" });
  const out = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
  console.log(values.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
  if ("fatal" in out) process.exitCode = 1;
}

await main();
