// The loader in a real browser (Debian Chromium + playwright-core): Cache Storage makes a reload fetch only the
// manifest, a damaged cached shard is re-fetched, and gpuWeightSink fills WebGPU buffers (SwiftShader) byte-exactly.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { chromiumAvailable, openInChromium, type BrowserSession } from "../kernels/chromium.ts";
import type { LoadStats } from "../../runtime/loader/bundle-loader.ts";

type Page = BrowserSession["page"];
const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
  page.evaluate(([f, a]) => (globalThis as unknown as Record<string, (...x: unknown[]) => Promise<unknown>>)[f as string](...(a as unknown[])), [fn, args] as const) as Promise<T>;

describe.skipIf(!chromiumAvailable())("bundle loader in Chromium", () => {
  let work: string;
  let session: BrowserSession;
  let base: string;
  const requests: string[] = [];
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "mla-chromium-bundle-"));
    await packBundle(resolve("fixtures/tiny-qwen-vl"), join(work, "b"), { zeroPoints: true, maxShardBytes: 256 * 1024 });
    session = await openInChromium(resolve(import.meta.dirname, "browser-entry.ts"), {
      serveDir: { prefix: "/bundle/", dir: join(work, "b"), onRequest: (f) => requests.push(f) },
    });
    base = `${session.url}bundle/`;
    await session.page.waitForFunction(() => "gpuLoad" in globalThis);
  }, 110_000);
  afterAll(async () => {
    await session?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("a reload from Cache Storage fetches only the manifest; a damaged cached shard is fetched again", async () => {
    requests.length = 0;
    const first = await call<{ stats: LoadStats; lastProgress: [number, number] }>(session.page, "loadWithCache", base);
    expect(first.stats.bytesFromCache).toBe(0);
    expect(first.stats.bytesFetched).toBeGreaterThan(600_000);
    expect(first.lastProgress).toEqual([first.stats.bytesFetched, first.stats.bytesFetched]);
    requests.length = 0;
    const second = await call<{ stats: LoadStats }>(session.page, "loadWithCache", base);
    expect(second.stats.bytesFetched).toBe(0);
    expect(second.stats.bytesFromCache).toBe(first.stats.bytesFetched);
    expect(requests).toEqual(["manifest.json"]);
    const victim = await call<string>(session.page, "corruptCachedShard", base, 1);
    requests.length = 0;
    const third = await call<{ stats: LoadStats }>(session.page, "loadWithCache", base);
    expect(third.stats.corruptCached).toEqual([victim]);
    expect(third.stats.fetched).toEqual([victim]);
    expect(requests).toEqual(["manifest.json", victim]);
  }, 60_000);

  it("gpuWeightSink fills Chromium WebGPU buffers byte-exactly", async () => {
    const r = await call<{ adapter: string; buffers: number; mismatched: string[] }>(session.page, "gpuLoad", base);
    expect(r.buffers).toBeGreaterThan(100);
    expect(r.mismatched).toEqual([]);
  }, 60_000);
});
