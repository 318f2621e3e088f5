// The loader writing straight into real WebGPU buffers (dawn.node on SwiftShader, in a child process as
// tests/kernels/webgpu-node.test.ts does): every tensor array read back from the GPU equals the packed bytes.
import { createServer, type Server } from "node:http";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { runTsx } from "../helpers/run-tsx.ts";
import { swiftShaderAvailable, swiftShaderEnv } from "../helpers/swiftshader-env.ts";

const root = resolve(import.meta.dirname, "../..");

describe.skipIf(!swiftShaderAvailable())("bundle → GPU buffers on Node WebGPU (SwiftShader)", () => {
  let work: string;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "mla-gpu-bundle-"));
    // int4 + zero points (odd-sized zero-point rows) and 256 KiB shards so arrays are split across shards
    await packBundle(join(root, "fixtures/tiny-qwen-vl"), join(work, "b"), { zeroPoints: true, norms: "f16", maxShardBytes: 256 * 1024 });
    server = createServer((req, res) => {
      readFile(join(work, "b", decodeURIComponent((req.url ?? "/").slice(1)))).then(
        (bytes) => res.writeHead(200).end(bytes),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(work, { recursive: true, force: true });
  });

  it("every array read back from its GPU buffer equals the packed bytes", async () => {
    const child = await runTsx("tests/bundle/gpu-load-runner.ts", [base, join(work, "b")], { cwd: root, env: swiftShaderEnv() });
    const line = child.stdout.trim().split("\n").pop() ?? "";
    const r = JSON.parse(line || `{"fatal":"no output: ${child.stderr.slice(-500).replace(/"/g, "'")}"}`) as {
      fatal?: string;
      adapter: string;
      buffers: number;
      mismatched: string[];
      bytesFetched: number;
      progressEvents: number;
    };
    expect(r.fatal).toBeUndefined();
    expect(r.buffers).toBeGreaterThan(100);
    expect(r.mismatched).toEqual([]);
    expect(r.bytesFetched).toBeGreaterThan(600_000);
    expect(r.progressEvents).toBeGreaterThan(3);
  }, 110_000);
});
