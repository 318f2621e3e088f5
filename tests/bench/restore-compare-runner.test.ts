// bench:store's timed restore client against a local HTTP server that streams framed restores: byte and frame counts
// from the stream, interleaved reps, a changing restore rejected, and the runner as the child process the bench spawns.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeFrame, FrameType, FRAMES_CONTENT_TYPE } from "../../format/wire/frames.ts";
import { controlFrame, encodeRestoreTrailer, packControl } from "../../format/wire/control-msgpack.ts";
import { runTsx } from "../helpers/run-tsx.ts";
import { compareRestores, type RestoreCompareInput, type RestoreCompareResult } from "./restore-compare-runner.ts";

/** A restore body: header, `runs` chunk-run frames of `size` bytes, then the done trailer. */
function restoreBody(runs: number, size: number): Buffer {
  const frames = [controlFrame(packControl({ from: 0, to: 64 }))];
  for (let i = 0; i < runs; i++) frames.push(encodeFrame(FrameType.chunks, new Uint8Array(size).fill(i + 1)));
  frames.push(controlFrame(encodeRestoreTrailer({ chunks: runs, bytes: runs * size })));
  return Buffer.concat(frames);
}

let server: Server;
let base = "";
const hits = new Map<string, number>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const n = (hits.get(req.url ?? "") ?? 0) + 1;
    hits.set(req.url ?? "", n);
    if (req.headers.authorization !== "Bearer ok") return void res.writeHead(401).end("no");
    // /growing answers one more frame from its third request on: a restore that changed between reps.
    const body = req.url === "/small" ? restoreBody(2, 1000) : req.url === "/large" ? restoreBody(5, 70_000) : restoreBody(n >= 3 ? 3 : 2, 1000);
    res.writeHead(200, { "content-type": FRAMES_CONTENT_TYPE });
    // Written in pieces that split frame headers, as a proxy's 4 KB writes do.
    for (let at = 0; at < body.length; at += 4093) res.write(body.subarray(at, at + 4093));
    res.end();
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

const target = (path: string) => ({ url: `${base}${path}`, headers: { authorization: "Bearer ok" } });

describe("compareRestores", () => {
  it("should time interleaved reps after one untimed restore of each and count the streamed bytes and frames", async () => {
    hits.clear();
    const r = await compareRestores({ compressed: target("/small"), uncompressed: target("/large"), reps: 3, serverPgid: null });
    expect(r.compressed).toMatchObject({ bytes: 2000, frames: 2, serverCpuMs: [] });
    expect(r.uncompressed).toMatchObject({ bytes: 350_000, frames: 5, serverCpuMs: [] });
    expect(r.compressed.ms).toHaveLength(3);
    expect(r.uncompressed.ms.every((ms) => ms > 0)).toBe(true);
    expect([hits.get("/small"), hits.get("/large")]).toEqual([4, 4]);
  });

  it("should reject a restore that returns other bytes than in the rep before", async () => {
    hits.clear();
    await expect(compareRestores({ compressed: target("/growing"), uncompressed: target("/large"), reps: 3, serverPgid: null })).rejects.toThrow(/returned 3000 B, earlier 2000 B/);
  });

  it("should reject a failed restore", async () => {
    const input = { compressed: { url: `${base}/small`, headers: {} }, uncompressed: target("/large"), reps: 1, serverPgid: null };
    await expect(compareRestores(input)).rejects.toThrow(/restore: 401/);
  });

  it("should print the result as one JSON line when run as the child process bench:store spawns", async () => {
    const input: RestoreCompareInput = { compressed: target("/small"), uncompressed: target("/large"), reps: 2, serverPgid: process.pid };
    const child = await runTsx(resolve(import.meta.dirname, "restore-compare-runner.ts"), [JSON.stringify(input)]);
    expect(child.code, child.stderr).toBe(0);
    const r = JSON.parse(child.stdout) as RestoreCompareResult;
    expect(r.compressed.bytes).toBe(2000);
    expect(r.uncompressed.ms).toHaveLength(2);
    // On Linux the server CPU is read per restore (here the test process's group stands in for the server's).
    if (process.platform === "linux") expect(r.uncompressed.serverCpuMs).toHaveLength(2);
  }, 30_000);
});
