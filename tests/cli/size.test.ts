// `mla-edge size` run in process (main with a capturing io), plus one run of the real binary.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const run = (line: string) => runCli(line.split(/\s+/).filter(Boolean));

/** The table row starting with `label`, split into its columns. */
function row(table: string, label: string): string[] {
  const line = table.split("\n").find((l) => l.startsWith(label));
  if (!line) throw new Error(`no row "${label}" in:\n${table}`);
  return line.slice(label.length).trim().split(/\s{2,}/);
}

describe("mla-edge size", () => {
  it("prints MHA2MLA's Llama-2-7B figures: d_kv 64 → -68.75 %, + int4 → -92.19 %", async () => {
    const r = await run("size --model llama-2-7b --d-kv 64 --bits 4");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(row(r.stdout, "original bf16 K+V")).toEqual(["524,288", "100.00 %", "0.00 %"]);
    expect(row(r.stdout, "MLA bf16 (latent + rope)")).toEqual(["163,840", "31.25 %", "-68.75 %"]);
    expect(row(r.stdout, "paper convention (MLA × 4/16)")).toEqual(["7.81 %", "-92.19 %"]);
  });

  it("prints d_kv 16 + int4 → -96.87 % with the default r = 16 for llama-2-7b", async () => {
    const r = await run("size --model llama-2-7b --d-kv 16 --bits 4");
    expect(r.code).toBe(0);
    expect(row(r.stdout, "MLA bf16 (latent + rope)")).toEqual(["65,536", "12.50 %", "-87.50 %"]);
    expect(row(r.stdout, "paper convention (MLA × 4/16)")).toEqual(["3.13 %", "-96.87 %"]);
  });

  it("--json prints one object with exact bytes and fractions (Qwen2.5-VL-7B d_kv 64, §9.4)", async () => {
    const r = await run("size --model qwen2.5-vl-7b --d-kv 64 --rope-dims 32 --bits 4 --json");
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const doc = JSON.parse(r.stdout) as {
      spec: { layers: number; dKv: number };
      options: { bits: number; group: number; axis: string; rope: string; chunkTokens: number };
      bytesPerToken: { originalBf16: number; mlaBf16: number; symmetricTable: number; quantized: { total: number } };
      fractions: { mla: number; paper: number };
      percent: { paper: { change: number } };
    };
    expect(doc.spec).toMatchObject({ layers: 28, dKv: 64 });
    expect(doc.options).toEqual({ bits: 4, group: 64, axis: "token", rope: "fp16", chunkTokens: 64 });
    expect(doc.bytesPerToken).toMatchObject({ originalBf16: 57_344, mlaBf16: 21_504, symmetricTable: 10_976 });
    expect(doc.bytesPerToken.quantized.total).toBe(11_200 + 916 / 64);
    expect(doc.fractions).toMatchObject({ mla: 0.375, paper: 0.09375 });
    expect(doc.percent.paper.change).toBe(-90.62);
  });

  it("reads a config.json path (the tiny fixture) with rope dims head_dim/4", async () => {
    const r = await run("size --model fixtures/tiny-qwen-vl/config.json --d-kv 8 --bits 8 --rope int8 --json");
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { spec: Record<string, unknown>; bytesPerToken: { originalBf16: number; mlaBf16: number } };
    expect(doc.spec).toEqual({ layers: 4, heads: 4, kvHeads: 2, headDim: 32, ropeDims: 8, dKv: 8, latentSpaces: 2, mropeSection: [4, 6, 6] });
    expect(doc.bytesPerToken.originalBf16).toBe(2 * 4 * 2 * 32 * 2);
    expect(doc.bytesPerToken.mlaBf16).toBe(4 * (16 + 16) * 2);
  });

  it("reports the user's mistakes on stderr with exit code 1", async () => {
    const cases: Array<[string, RegExp]> = [
      ["size --model llama-2-7b --d-kv 64", /missing required flag --bits/],
      ["size --model llama-2-7b --d-kv 64 --bits 3", /--bits must be one of 8, 4, 2/],
      ["size --model llama-2-7b --d-kv sixty --bits 4", /--d-kv must be an integer/],
      ["size --model llama-2-7b --d-kv 64 --bits 4 --axis diagonal", /--axis must be one of token, channel/],
      ["size --model llama-2-7b --d-kv 64 --bits 4 --frobnicate", /Unknown option '--frobnicate'/],
      ["size --model no-such-model --d-kv 64 --bits 4", /neither a preset .* nor a readable file/],
      ["size --model package.json --d-kv 64 --bits 4", /config needs num_hidden_layers/],
      ["size --model qwen2.5-vl-7b --d-kv 1000 --bits 4", /above the full rank/],
      ["size --model qwen2.5-vl-7b --d-kv 64 --rope-dims 31 --bits 4", /must be even/],
      ["frobnicate", /unknown command "frobnicate"/],
    ];
    for (const [line, message] of cases) {
      const r = await run(line);
      expect(r.code, line).toBe(1);
      expect(r.stdout, line).toBe("");
      expect(r.stderr, line).toMatch(/^error: /);
      expect(r.stderr, line).toMatch(message);
    }
  });

  it("prints help: global and per command", async () => {
    const top = await run("--help");
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^ {2}size {2,}bytes per token/m);
    const none = await run("");
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("Usage: mla-edge <command>");
    const help = await run("size --help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--rope fp16|int8|int4");
    expect(help.stdout).toContain("--bits 8|4|2");
  });

  it("runs as the installed binary (bin/mla-edge.mjs)", () => {
    const out = execFileSync(process.execPath, ["bin/mla-edge.mjs", "size", "--model", "llama-2-7b", "--d-kv", "16", "--bits", "4", "--json"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect((JSON.parse(out) as { percent: { paper: { change: number } } }).percent.paper.change).toBe(-96.87);
  });
});
