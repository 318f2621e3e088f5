// `mla-edge generate` in process on fixtures/qwen25vl-mini: every reference case through --messages (input ids equal,
// 12 greedy ids equal, top-20 logits within 2e-3), for the original checkpoint and for its MLA conversion at full rank
// with every rope pair kept by `mla-edge convert` (its streamed bf16 sharded output); --prompt/--image; streamed text;
// usage errors.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateJson } from "../../convert/cli/generate.ts";
import { loadReference, type RefCase, type Reference } from "../runtime/qwen25vl-fixture.ts";
import { runCli } from "./run-cli.ts";
import { runTsx } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
let tmp: string;
let mlaDir: string;
let ref: Reference;

beforeAll(async () => {
  ref = loadReference();
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-generate-"));
  // The MLA conversion at full rank (r = head_dim: every rope pair kept, nothing left to compress) by `mla-edge convert`:
  // decoder in our layout, the vision tower's bf16 tensors and the side files copied as they are.
  mlaDir = join(tmp, "mini-mla");
  const r = await runCli(["convert", "--model", MINI, "--out", mlaDir, "--strategy", "high", "--rope-dims", "16", "--svd", "none", "--json"]);
  if (r.code !== 0) throw new Error(r.stderr);
  // the streamed conversion's default output: bf16 (so the reference is reproduced through bf16 weights)
  const cfg = JSON.parse(await readFile(join(mlaDir, "config.json"), "utf8")) as { torch_dtype: string; mla_edge: { conversion: { dtype: string } } };
  if (cfg.torch_dtype !== "bfloat16" || cfg.mla_edge.conversion.dtype !== "bf16") throw new Error("convert did not write bf16");
}, 120_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The case's messages in tmp/<case>/messages.json with its images copied next to it (urls stay relative). */
async function messagesFile(c: RefCase): Promise<string> {
  const dir = join(tmp, c.name);
  await mkdir(join(dir, "images"), { recursive: true });
  for (const img of c.images) await copyFile(join(MINI, img.url), join(dir, img.url));
  const file = join(dir, "messages.json");
  await writeFile(file, JSON.stringify((c as unknown as { messages: unknown[] }).messages));
  return file;
}

function expectCase(doc: GenerateJson, c: RefCase): void {
  expect(doc.input_ids).toEqual(c.input_ids);
  expect(doc.output_ids).toEqual(c.greedy.ids);
  expect(doc.top_logits.map(([id]) => id)).toEqual(c.logits_last.top20.map(([id]) => id));
  for (let i = 0; i < 20; i++) expect(Math.abs(doc.top_logits[i][1] - c.logits_last.top20[i][1])).toBeLessThanOrEqual(2e-3);
  expect(doc.timings.prompt_tokens).toBe(c.num_tokens);
  expect(typeof doc.text).toBe("string");
}

describe("mla-edge generate (qwen25vl-mini)", () => {
  for (const kind of ["original", "mla"] as const) {
    it(`${kind}: every reference case through --messages --json --temperature 0 reproduces ids and logits`, async () => {
      for (const c of ref.cases) {
        const r = await runCli(["generate", "--model", kind === "original" ? MINI : mlaDir, "--messages", await messagesFile(c), "--max-tokens", String(c.greedy.n), "--temperature", "0", "--json"]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const doc = JSON.parse(r.stdout) as GenerateJson;
        expect(doc.kind).toBe(kind);
        expectCase(doc, c);
      }
    }, 120_000);
  }

  it("--prompt with --image gives the one_image case; without --json the text streams and stats go to stderr", async () => {
    const c = ref.cases.find((x) => x.name === "one_image")!;
    const args = ["generate", "--model", MINI, "--prompt", "Describe the image in one sentence.", "--image", join(MINI, "images/noisy_300x150.png"), "--max-tokens", "12"];
    const j = await runCli([...args, "--json"]);
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.stdout) as GenerateJson;
    expectCase(doc, c);
    expect(doc.sampling.temperature).toBe(0); // generation_config.json: do_sample false
    const s = await runCli(args);
    expect(s.code).toBe(0);
    expect(s.stdout).toBe(doc.text + "\n");
    expect(s.stderr).toMatch(/83 prompt tokens \(1 image\), 12 generated/);
  }, 60_000);

  it("an image_url given as a data: URL gives the same ids as the file", async () => {
    const c = ref.cases.find((x) => x.name === "two_turn")!;
    const png = await readFile(join(MINI, "images/gradient_252x56.png"));
    const msgs = JSON.parse(JSON.stringify((c as unknown as { messages: unknown[] }).messages), (k, v: unknown) =>
      k === "url" ? `data:image/png;base64,${png.toString("base64")}` : v,
    ) as unknown;
    const file = join(tmp, "data-url.json");
    await writeFile(file, JSON.stringify(msgs));
    const r = await runCli(["generate", "--model", MINI, "--messages", file, "--max-tokens", "12", "--json"]);
    expect(r.code).toBe(0);
    expectCase(JSON.parse(r.stdout) as GenerateJson, c);
  }, 60_000);

  it("seeded sampling is reproducible and honours the flags", async () => {
    const args = ["generate", "--model", MINI, "--prompt", "Name three colors.", "--max-tokens", "6", "--temperature", "1.2", "--top-k", "40", "--top-p", "0.9", "--seed", "5", "--json"];
    const a = JSON.parse((await runCli(args)).stdout) as GenerateJson;
    const b = JSON.parse((await runCli(args)).stdout) as GenerateJson;
    expect(a.output_ids).toEqual(b.output_ids);
    expect(a.sampling).toEqual({ temperature: 1.2, top_k: 40, top_p: 0.9, seed: 5, max_tokens: 6 });
  }, 60_000);

  it("usage and input errors are one-line errors with exit 1", async () => {
    const cases: [string[], RegExp][] = [
      [["generate", "--model", MINI], /either --prompt/],
      [["generate", "--model", MINI, "--prompt", "hi", "--messages", "x.json"], /either --prompt/],
      [["generate", "--model", MINI, "--prompt", "hi", "--temperature=-1"], /--temperature must be a number/],
      [["generate", "--model", MINI, "--prompt", "hi", "--top-p", "0"], /--top-p must be a number in \(0, 1\]/],
      [["generate", "--model", MINI, "--prompt", "hi", "--image", join(tmp, "missing.png")], /missing\.png/],
      [["generate", "--model", join(tmp, "nope"), "--prompt", "hi"], /nope/],
      [["generate", "--model", MINI, "--prompt", "hi", "--device", "tpu"], /--device must be auto, gpu or cpu/],
      [["generate", "--model", MINI, "--prompt", "hi", "--device", "gpu"], /--device gpu: the GPU engine runs MLA conversions/],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  }, 60_000);

  // dawn.node reads VK_ICD_FILENAMES at start: a child process with SwiftShader. Slow there (the 151,936-row LM head and
  // sampler are millions of SwiftShader invocations), so two tokens.
  it.skipIf(skipWithout(import.meta.url, "swiftshader"))("--device gpu (dawn.node) runs the MLA conversion on the GPU engine with the CPU path's ids and top logits", async () => {
    const args = ["--model", mlaDir, "--prompt", "Name three colors.", "--max-tokens", "2", "--temperature", "0", "--json"];
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const gpu = await runTsx("bin/mla-edge.mjs", ["generate", ...args, "--device", "gpu"], { cwd: root, env: swiftShaderEnv() });
    const cpu = await runCli(["generate", ...args, "--device", "cpu"]);
    expect(gpu.code, gpu.stderr).toBe(0);
    const g = JSON.parse(gpu.stdout) as GenerateJson;
    const c = JSON.parse(cpu.stdout) as GenerateJson;
    expect(g.device).toBe("gpu");
    expect(c.device).toBe("cpu");
    expect(g.output_ids).toEqual(c.output_ids);
    expect(g.top_logits.map(([id]) => id)).toEqual(c.top_logits.map(([id]) => id));
    for (let i = 0; i < 20; i++) expect(Math.abs(g.top_logits[i][1] - c.top_logits[i][1])).toBeLessThanOrEqual(1e-4 * Math.abs(c.top_logits[0][1]));
  }, 600_000);
});
