// `npm run bench:linear -- --json`: decode GEMV (M = 1) over int4 / int8 MatMulNBits (block 32) vs f16 / f32 weights
// of Qwen2.5-VL-3B's shapes, same device and run: in Debian Chromium (WebGPU on SwiftShader) by default, or on dawn.node
// with `--runtime node` (`--adapter system`: the machine's own Vulkan driver, i.e. a real GPU; `--peak-gbs` adds the
// fraction of the card's bandwidth). Prints ONE JSON object on stdout (progress on stderr). `ratios[shape][format]` =
// that format's time ÷ int4's. On SwiftShader (a CPU) the ratios reflect unpacking cost more than bytes.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { chromiumAvailable, openInChromium } from "../kernels/chromium.ts";
import type { LinearBenchConfig, LinearBenchFormat, LinearBenchResult } from "../kernels/linear-bench.ts";
import { runTsx } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";

const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    /** N×K pairs: q/o_proj-like 2048×2048, gate/up 11008×2048 (add 2048x11008 for down_proj). */
    shapes: { type: "string", default: "2048x2048,11008x2048" },
    formats: { type: "string", default: "int4,int8,f16,f32" },
    "min-ms": { type: "string", default: "500" },
    "max-iters": { type: "string", default: "3" },
    batch: { type: "string", default: "2" },
    /** Rows of x: 1 = decode GEMV (default); e.g. 256 = one prefill block through the GEMM. */
    m: { type: "string", default: "1" },
    runtime: { type: "string", default: "chromium" },
    adapter: { type: "string", default: "swiftshader" },
    "peak-gbs": { type: "string" },
  },
});

const cfg: LinearBenchConfig = {
  shapes: values.shapes.split(",").map((s) => s.split("x").map(Number) as [number, number]),
  formats: values.formats.split(",") as LinearBenchFormat[],
  minMs: Number(values["min-ms"]),
  maxIters: Number(values["max-iters"]),
  batch: Number(values.batch),
  m: Number(values.m),
};

function report(r: LinearBenchResult | { fatal: string }, runtime: string): Record<string, unknown> {
  if ("fatal" in r) return { bench: "linear", runtime, fatal: r.fatal };
  const peak = values["peak-gbs"] ? Number(values["peak-gbs"]) : undefined;
  return {
    bench: "linear",
    runtime,
    adapter: r.adapter,
    emulated: /swiftshader/i.test(r.adapter),
    batch: r.batch,
    rows: r.rows.map((row) => ({ ...row, fractionOfPeak: peak ? row.achievedGBs / peak : null })),
    ratios: r.ratios,
  };
}

async function main(): Promise<void> {
  let out: Record<string, unknown>;
  if (values.runtime === "node") {
    const env = values.adapter === "swiftshader" ? swiftShaderEnv() : process.env;
    console.error(`GEMV bench on dawn.node (${values.adapter} Vulkan driver)…`);
    const { stdout } = await runTsx(resolve(import.meta.dirname, "linear-node-runner.ts"), [JSON.stringify(cfg)], { env, stderr: "inherit" });
    out = report(JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as LinearBenchResult | { fatal: string }, `Node ${process.version} dawn.node WebGPU`);
  } else {
    if (!chromiumAvailable()) {
      console.log(JSON.stringify({ bench: "linear", skipped: "/usr/bin/chromium is missing (apt-get install chromium)" }));
      return;
    }
    const session = await openInChromium(resolve(import.meta.dirname, "../kernels/linear-bench-page.ts"));
    session.page.on("console", (m) => console.error(`[page] ${m.text()}`));
    try {
      await session.page.waitForFunction(() => "runLinearBench" in globalThis);
      console.error("GEMV bench in Chromium (SwiftShader)…");
      const r = (await session.page.evaluate((c) => (globalThis as unknown as { runLinearBench(c: LinearBenchConfig): Promise<unknown> }).runLinearBench(c), cfg)) as LinearBenchResult;
      out = report(r, "Chromium WebGPU");
    } finally {
      await session.close();
    }
  }
  console.log(values.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
  if ("fatal" in out) process.exitCode = 1;
}

await main();
