// `mla-edge generate` in process on fixtures/qwen25vl-mini: every reference case through --messages (input ids equal,
// 12 greedy ids equal, top-20 logits within 2e-3), for the original checkpoint and for its MLA conversion at full rank
// with every rope pair kept written as a sharded mla-edge checkpoint; --prompt/--image; streamed text; usage errors.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCheckpointDir } from "../../convert/checkpoint/node-io.ts";
import { writeShardedCheckpoint } from "../../convert/checkpoint/node-io.ts";
import type { TensorToWrite } from "../../convert/checkpoint/safetensors-writer.ts";
import { convertModel } from "../../convert/pipeline/convert-model.ts";
import type { GenerateJson } from "../../convert/cli/generate.ts";
import { mlaCheckpointConfig, mlaCheckpointTensors } from "../../model/mla/checkpoint.ts";
import { loadQwen25VL } from "../../runtime/qwen2_5_vl-model.ts";
import { loadReference, type RefCase, type Reference } from "../runtime/qwen25vl-fixture.ts";
import { runCli } from "./run-cli.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const SIDE_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json", "generation_config.json"];
let tmp: string;
let mlaDir: string;
let ref: Reference;

beforeAll(async () => {
  ref = loadReference();
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-generate-"));
  // The MLA conversion at full rank (r = head_dim: every rope pair kept, nothing to compress), written as an
  // mla-edge checkpoint in shards, with the vision tower's bf16 tensors and the side files copied as they are.
  const ck = await openCheckpointDir(MINI);
  try {
    const model = await loadQwen25VL(ck.source, ck.rawConfig);
    if (model.decoder.kind !== "original") throw new Error("expected the original model");
    const dh = model.config.text.headDim;
    const mla = convertModel(model.decoder.model, { strategy: "high", ropeDims: dh, svd: "none", dKv: dh }, null).model;
    const tensors: TensorToWrite[] = mlaCheckpointTensors(mla);
    for (const name of ck.source.names().filter((n) => n.startsWith("visual."))) {
      const info = ck.source.info(name);
      tensors.push({ name, dtype: "BF16", shape: info.shape, data: await ck.source.readBytes(name) });
    }
    mlaDir = join(tmp, "mini-mla");
    await writeShardedCheckpoint(mlaDir, tensors, { maxShardBytes: 30_000_000 });
    await writeFile(join(mlaDir, "config.json"), JSON.stringify(mlaCheckpointConfig(mla, ck.rawConfig), null, 2));
    for (const f of SIDE_FILES) await copyFile(join(MINI, f), join(mlaDir, f));
  } finally {
    await ck.source.close();
  }
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
    ];
    for (const [args, msg] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  }, 60_000);
});
