// `mla-edge eval` in process: the original fixture answers every turn (its reference accuracy is 100 %), --json has
// accuracy.all and per-kind accuracy, a codec needs an MLA model, bad files are one-line errors.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/tiny-qwen-vl/", import.meta.url));
const EVAL = join(FIXTURE, "eval.jsonl");
let tmp: string;

const run = runCli;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-eval-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("mla-edge eval", () => {
  it("--json should print accuracy.all and per-kind accuracy of the original model (100 % on the fixture)", async () => {
    const r = await run(["eval", "--model", FIXTURE, "--eval", EVAL, "--limit", "12", "--json"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const doc = JSON.parse(r.stdout) as { kind: string; cases: number; accuracy: Record<string, number>; turns: Record<string, number>; settings: { cache: string } };
    expect(doc.kind).toBe("original");
    expect(doc.cases).toBe(12);
    expect(doc.turns.all).toBe(36);
    expect(doc.accuracy).toEqual({ all: 1, color: 1, shape: 1, where: 1 });
    expect(doc.settings.cache).toBe("float32");
    expect(r.stderr).toMatch(/eval +\[#{20}\] case 12\/12/);
  });

  it("should print a per-kind table without --json", async () => {
    const r = await run(["eval", "--model", FIXTURE, "--eval", EVAL, "--limit", "4"]);
    expect(r.code).toBe(0);
    const rows = r.stdout.split("\n").filter((l) => /^(color|shape|where|all) /.test(l));
    expect(rows.at(-1)).toMatch(/^all +12\/12 +100\.0 %$/);
    expect(rows).toHaveLength(4);
  });

  it("should refuse a codec on an original model and a malformed eval file", async () => {
    const a = await run(["eval", "--model", FIXTURE, "--eval", EVAL, "--limit", "1", "--codec", "int4"]);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/^error: --codec quantizes an MLA latent cache/);
    const bad = join(tmp, "bad.jsonl");
    await writeFile(bad, '{"turns": []}\n');
    const b = await run(["eval", "--model", FIXTURE, "--eval", bad]);
    expect(b.code).toBe(1);
    expect(b.stderr).toBe(`error: ${bad}:1: an eval case needs patches_u8 (base64) and turns [{kind, question, answer}]\n`);
    const words = join(tmp, "words.jsonl");
    const line = JSON.parse((await readFile(EVAL, "utf8")).split("\n")[0]) as { turns: { question: string }[] };
    line.turns[0].question = "colour at b3";
    await writeFile(words, JSON.stringify(line) + "\n");
    const w = await run(["eval", "--model", FIXTURE, "--eval", words]);
    expect(w.code).toBe(1);
    expect(w.stderr).toBe('error: word "colour" is not in the vocabulary\n');
    const c = await run(["eval", "--model", FIXTURE, "--eval", EVAL, "--seal-all"]);
    expect(c.stderr).toBe("error: --seal-all needs --codec\n");
  });

  it("should store a converted model's latent through the codec (int2 on every token costs accuracy, int8 does not)", async () => {
    const out = join(tmp, "high-joint-16");
    expect((await run(["convert", "--model", FIXTURE, "--out", out, "--d-kv", "16", "--strategy", "high", "--svd", "joint"])).code).toBe(0);
    const acc = async (...extra: string[]) => {
      const r = await run(["eval", "--model", out, "--eval", EVAL, "--limit", "15", "--json", ...extra]);
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout) as { accuracy: { all: number }; settings: { codec: { sealAll: boolean } | null } };
    };
    const float = await acc();
    const int8 = await acc("--codec", "int8", "--rope", "int8", "--seal-all");
    const int2 = await acc("--codec", "int2", "--rope", "int4", "--seal-all");
    const sealed64 = await acc("--codec", "int2", "--rope", "int4");
    expect(float.accuracy.all).toBe(1);
    expect(int8.accuracy.all).toBe(1);
    expect(int8.settings.codec?.sealAll).toBe(true);
    expect(int2.accuracy.all).toBeLessThan(float.accuracy.all);
    // fixture conversations are 34 tokens: with C = 64 nothing is ever sealed, so the stored cache is the float one
    expect(sealed64.accuracy.all).toBe(float.accuracy.all);
  });
});
