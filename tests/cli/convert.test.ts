// `mla-edge convert` in process: converts the fixture (mkl + MD-SVD, d_kv 8) with progress/ETA on stderr, writes our
// MLA layout that `mla-edge eval` loads back, and refuses bad input with one-line errors.

import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";
import { copyTensors } from "../../checkpoint/copy-tensors.ts";
import { openCheckpointDir, writeShardedCheckpoint } from "../../checkpoint/io.node.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/tiny-qwen-vl/", import.meta.url));
let tmp: string;

const run = runCli;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-convert-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("mla-edge convert", () => {
  it("should convert the fixture with mkl + MD-SVD and write a folder that eval loads", async () => {
    const out = join(tmp, "mkl-md-8");
    const r = await run(["convert", "--model", FIXTURE, "--out", out, "--d-kv", "8", "--rope-dims", "8", "--strategy", "mkl", "--svd", "md", "--calib", join(FIXTURE, "calib.jsonl"), "--calib-count", "16", "--json"]);
    expect(r.stderr).toMatch(/calibrate +\[#####-+\] layer 1\/4 · sequence 16\/16 · .* elapsed · ETA/);
    expect(r.stderr).toMatch(/calibrate +\[#{20}\] layer 4\/4 · sequence 16\/16 · .* elapsed · ETA 0\.0s/);
    expect(r.stderr).toMatch(/convert +\[#{20}\] layer 4\/4 · .* ETA 0\.0s/);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { files: string[]; dKv: number; ropeDims: number; latentSpaces: number; keptPairs: number[][][]; calibrationTokens: { image: number } };
    expect(summary).toMatchObject({ dKv: 8, ropeDims: 8, latentSpaces: 2, calibrationTokens: { image: 16 * 18 } });
    expect(summary.keptPairs).toHaveLength(4);
    expect((await readdir(out)).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vision.onnx", "visual.safetensors"]);
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as { mha2mla: Record<string, unknown>; mla_edge: Record<string, unknown> };
    expect(config.mha2mla).toMatchObject({ partial_rope_version: "mkl", rope_dim_for_mla: 8, svd_init_method: "md-svd", low_rank: 8 });
    expect(config.mla_edge).toMatchObject({ rope_pairs: "in_checkpoint", latent_spaces: 2 });

    const ev = await run(["eval", "--model", out, "--eval", join(FIXTURE, "eval.jsonl"), "--limit", "20", "--json"]);
    expect(ev.code).toBe(0);
    const doc = JSON.parse(ev.stdout) as { kind: string; accuracy: { all: number }; conversion: { dKv: number; strategy: string } };
    expect(doc.kind).toBe("mla");
    expect(doc.conversion).toMatchObject({ dKv: 8, strategy: "mkl" });
    expect(doc.accuracy.all).toBeGreaterThanOrEqual(0.95);
  });

  it("should convert without calibration for a fixed strategy and joint SVD", async () => {
    const r = await run(["convert", "--model", FIXTURE, "--out", join(tmp, "high-joint"), "--d-kv", "16", "--strategy", "high", "--svd", "joint"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`wrote ${join(tmp, "high-joint")}: high + joint, d_kv 16, rope dims 8, 1 latent space(s)\n`);
    expect(r.stderr).not.toMatch(/calibrate/);
  });

  describe("errors", () => {
    it("should reject an unsupported architecture", async () => {
      const dir = join(tmp, "gpt2");
      await run(["convert", "--model", FIXTURE, "--out", dir, "--d-kv", "8", "--strategy", "high", "--svd", "joint"]);
      const cfg = JSON.parse(await readFile(join(FIXTURE, "config.json"), "utf8")) as Record<string, unknown>;
      await writeFile(join(dir, "config.json"), JSON.stringify({ ...cfg, model_type: "gpt2" }));
      const r = await run(["convert", "--model", dir, "--out", join(tmp, "x"), "--d-kv", "8", "--strategy", "high", "--svd", "joint"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: unsupported architecture model_type "gpt2"; supported: qwen2_5_vl/);
    });

    it("should name a missing tensor", async () => {
      const dir = join(tmp, "missing");
      const src = await openCheckpointDir(FIXTURE);
      const names = src.source.names().filter((n) => n !== "model.layers.2.self_attn.k_proj.weight");
      await writeShardedCheckpoint(dir, copyTensors(src.source, names));
      await src.source.close();
      await copyFile(join(FIXTURE, "config.json"), join(dir, "config.json"));
      const r = await run(["convert", "--model", dir, "--out", join(tmp, "y"), "--d-kv", "8", "--strategy", "high", "--svd", "joint"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: missing tensor: .*model\.layers\.2\.self_attn\.k_proj\.weight/m);
    });

    it("should report a shape mismatch between config and weights", async () => {
      const dir = join(tmp, "shape");
      await run(["convert", "--model", FIXTURE, "--out", dir, "--d-kv", "8", "--strategy", "high", "--svd", "joint"]);
      await copyFile(join(FIXTURE, "model.safetensors"), join(dir, "model.safetensors"));
      const cfg = JSON.parse(await readFile(join(FIXTURE, "config.json"), "utf8")) as Record<string, unknown>;
      await writeFile(join(dir, "config.json"), JSON.stringify({ ...cfg, intermediate_size: 192 }));
      const r = await run(["convert", "--model", dir, "--out", join(tmp, "z"), "--d-kv", "8", "--strategy", "high", "--svd", "joint"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: shape mismatch: .*mlp\.gate_proj\.weight has shape \[256, 128\], expected \[192, 128\]/m);
    });

    it("should refuse d_kv beyond the rank of [W_k,nope; W_v]", async () => {
      const r = await run(["convert", "--model", FIXTURE, "--out", join(tmp, "w"), "--d-kv", "64", "--strategy", "high", "--svd", "joint"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        "error: --d-kv 64 is too large: D_c = n_kv·d_kv = 128 exceeds the rank 112 of [W_k,nope; W_v] (n_kv 2, head_dim 32, rope dims 8, hidden 128); use --d-kv ≤ 56\n",
      );
    });

    it("should ask for --calib when the strategy or SVD needs it, and for --d-kv", async () => {
      const a = await run(["convert", "--model", FIXTURE, "--out", join(tmp, "v"), "--d-kv", "8", "--strategy", "mkl", "--svd", "joint"]);
      expect(a.code).toBe(1);
      expect(a.stderr).toBe("error: --calib FILE is required: the mkl strategy ranks on calibration data\n");
      const b = await run(["convert", "--model", FIXTURE, "--out", join(tmp, "v"), "--strategy", "high", "--svd", "joint"]);
      expect(b.stderr).toBe("error: missing required flag --d-kv (needed by --svd joint)\n");
      const c = await run(["convert", "--model", join(tmp, "nope"), "--out", join(tmp, "v"), "--d-kv", "8", "--strategy", "high", "--svd", "joint"]);
      expect(c.code).toBe(1);
      expect(c.stderr).toMatch(/^error: cannot read .*nope\/config\.json/);
    });
  });
});
