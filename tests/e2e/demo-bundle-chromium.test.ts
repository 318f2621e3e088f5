// The demo on a real bundle, in Debian Chromium (playwright-core, WebGPU on SwiftShader) against the real edge store:
// the page downloads the default bundle (the converted tiny fixture packed by `mla-edge pack`) with a progress bar,
// caches it in Cache Storage (the next load downloads no shard), streams answers through
// client.chat.completions.create({ stream: true }), shows tokens/s, cached tokens and the session's KV bytes next to
// the bf16 equivalent, and after a page reload continues the conversation from the edge without prefill or a vision
// call, answering like an uninterrupted session.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type Page } from "playwright-core";
import { skipWithout, SYSTEM_TOOLS } from "../helpers/system-tools.ts";
import { ensureDemoBundle, startDemoServer, type DemoServer } from "../../client/demo/server.ts";
import { startEdgeServer, type EdgeServer } from "./edge-server.ts";

const ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"];

interface LoadStats {
  bytesFetched: number;
  bytesFromCache: number;
  fetched: string[];
  fromCache: string[];
}
interface DemoState {
  engine: string;
  sessionId: string | null;
  turns: number;
  tokens: number;
  restoredTokens: number;
  visionCalls: number;
  bundle: { url: string; stats: LoadStats } | null;
  kv: { stored: number; uncompressed: number; device: number } | null;
}
interface AskResult {
  answer: string;
  tokenIds: number[];
  finishReason: string;
  usage: { prompt_tokens: number; completion_tokens: number; cached_tokens: number; tokens_per_second: number | null };
}
interface DemoWindow {
  mlaDemoReady: Promise<void>;
  mlaDemo: { ask(q: string): Promise<AskResult>; useSample(i: number): void; state(): DemoState; model: unknown };
}

let edge: EdgeServer;
let demo: DemoServer;
let browser: Browser;
let page: Page;
let work: string;
let shardFiles: string[];
/** Sample 2's first two answers on the page's own engine (test 1), for the worker engine to match. */
let pageAnswers: AskResult[] = [];

const state = (): Promise<DemoState> => page.evaluate(() => (window as unknown as DemoWindow).mlaDemo.state());
const ready = () => page.evaluate(() => (window as unknown as DemoWindow).mlaDemoReady);
const statText = (name: string) => page.textContent(`[data-stat="${name}"]`);

describe.skipIf(skipWithout(import.meta.url, "chromium"))("demo on a real bundle in Chromium", () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "mla-demo-bundle-"));
    const bundleDir = await ensureDemoBundle(join(work, "bundle"));
    shardFiles = (JSON.parse(await readFile(join(bundleDir, "manifest.json"), "utf8")) as { shards: { file: string }[] }).shards.map((s) => s.file);
    edge = await startEdgeServer();
    demo = await startDemoServer({ edgeUrl: edge.url, apiKey: edge.apiKey, samples: 4, bundleDir });
    browser = await chromium.launch({ executablePath: SYSTEM_TOOLS.chromium.path, headless: true, args: ARGS });
    page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    await edge?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("should download the bundle with progress, cache it, stream answers, and continue after a reload without prefill", async () => {
    await page.goto(demo.url);
    await ready();
    const first = await state();
    expect(first.bundle!.url).toBe(`${demo.url}/bundle/`);
    expect(first.bundle!.stats.bytesFetched).toBeGreaterThan(0);
    expect(first.bundle!.stats.fetched).toEqual(expect.arrayContaining(shardFiles));
    const bar = await page.evaluate(() => {
      const p = document.getElementById("download") as HTMLProgressElement;
      return { value: p.value, max: p.max };
    });
    expect(bar.max).toBeGreaterThan(1);
    expect(bar.value).toBe(bar.max);
    expect(await page.textContent("#download-text")).toMatch(/downloaded/);

    // the uninterrupted reference in this page: sample 2, two questions on one session
    const samples = (await (await fetch(`${demo.url}/samples.json`)).json()) as { questions: string[] }[];
    const q = samples[2].questions;
    const reference = await page.evaluate(async (qs) => {
      const w = window as unknown as DemoWindow;
      localStorage.clear();
      w.mlaDemo.useSample(2);
      const out: AskResult[] = [];
      for (const x of qs) out.push(await w.mlaDemo.ask(x));
      localStorage.clear();
      return out;
    }, q.slice(0, 2));
    pageAnswers = reference;
    expect(reference[0].usage.cached_tokens).toBe(0);
    expect(reference[1].usage.cached_tokens).toBeGreaterThan(0); // held by the page's session cache

    // a fresh page: the bundle comes from Cache Storage
    await page.goto(demo.url);
    await ready();
    const cachedLoad = await state();
    expect(cachedLoad.sessionId).toBeNull();
    expect(cachedLoad.bundle!.stats.fetched.filter((f) => shardFiles.includes(f))).toEqual([]);
    expect(cachedLoad.bundle!.stats.fromCache).toEqual(expect.arrayContaining(shardFiles));
    const r0 = await page.evaluate(async (x) => {
      const w = window as unknown as DemoWindow;
      w.mlaDemo.useSample(2);
      return w.mlaDemo.ask(x);
    }, q[0]);
    expect(r0.tokenIds).toEqual(reference[0].tokenIds);
    expect(r0.usage.cached_tokens).toBe(0);
    expect(await page.textContent("#log")).toContain(`assistant: ${r0.answer}`);
    const afterFirst = await state();
    expect(await statText("cached tokens (last turn)")).toBe("0");
    expect(await statText("KV stored")).toBe(`${afterFirst.kv!.stored.toLocaleString("en-US")} B`);
    expect(await statText("KV bf16 equivalent (original GQA)")).toBe(`${afterFirst.kv!.uncompressed.toLocaleString("en-US")} B`);
    if (r0.tokenIds.length > 1) expect(Number(await statText("tokens/s"))).toBeGreaterThan(0);

    // reload: the session comes back from the edge (no vision call, no prefill of turn 1) and answers as before
    await page.reload();
    await ready();
    const back = await state();
    expect(back.sessionId).toBe(afterFirst.sessionId);
    expect(back.turns).toBe(1);
    expect(back.restoredTokens).toBe(afterFirst.tokens);
    expect(back.visionCalls).toBe(0);
    expect(back.bundle!.stats.bytesFetched).toBe(0);
    const r1 = await page.evaluate(async (x) => (window as unknown as DemoWindow).mlaDemo.ask(x), q[1]);
    expect(r1.tokenIds).toEqual(reference[1].tokenIds);
    expect(r1.usage.cached_tokens).toBe(back.restoredTokens);
    expect(r1.usage.prompt_tokens).toBe(back.restoredTokens + (reference[1].usage.prompt_tokens - reference[1].usage.cached_tokens));
    expect(await statText("cached tokens (last turn)")).toBe(String(back.restoredTokens));
    expect((await state()).visionCalls).toBe(0);
    await page.screenshot({ path: "/tmp/mla-edge-demo-bundle.png" });

    // image_url parts decoded by the browser (createImageBitmap): a PNG File / Blob and a data: URL of the sample's
    // pixels answer exactly as the pixels themselves (new sessions, greedy)
    const viaUrls = await page.evaluate(async (x) => {
      const w = window as unknown as DemoWindow & { mlaDemo: { client: { chat: { completions: { create(p: unknown): Promise<{ mla_edge: { completion_ids: number[] } }> } } } } };
      const canvas = document.getElementById("image") as HTMLCanvasElement;
      const blob = await new Promise<Blob>((r) => canvas.toBlob((b) => r(b!), "image/png"));
      const file = new File([blob], "grid.png", { type: "image/png" });
      const ctx = canvas.getContext("2d")!;
      const rgba = ctx.getImageData(0, 0, 32, 32).data;
      const mla = { codec: { bits: 4, group: 32, axis: "token", rope: "int8" }, chunk_tokens: 16 };
      const ask = async (part: unknown) =>
        (await w.mlaDemo.client.chat.completions.create({ messages: [{ role: "user", content: [part, { type: "text", text: x }] }], temperature: 0, max_tokens: 4, mla_edge: mla })).mla_edge.completion_ids;
      return {
        pixels: await ask({ type: "image", image: { width: 32, height: 32, data: rgba, channels: 4 } }),
        file: await ask({ type: "image_url", image_url: { url: file } }),
        dataUrl: await ask({ type: "image_url", image_url: { url: canvas.toDataURL("image/png") } }),
      };
    }, q[0]);
    expect(viaUrls.pixels).toEqual(reference[0].tokenIds);
    expect(viaUrls.file).toEqual(reference[0].tokenIds);
    expect(viaUrls.dataUrl).toEqual(reference[0].tokenIds);
  }, 300_000);

  it("should run the engine in a dedicated Web Worker (?engine=worker): same answers, streamed back, and a reload restored in the worker", async () => {
    expect(pageAnswers.length).toBe(2);
    const url = `${demo.url}/?engine=worker`;
    await page.evaluate(() => localStorage.clear());
    await page.goto(url);
    await ready();
    const w0 = await state();
    expect(w0.engine).toBe("worker");
    expect(await page.evaluate(() => (window as unknown as DemoWindow).mlaDemo.model === undefined)).toBe(true); // no model on the page
    expect(w0.bundle!.stats.fromCache).toEqual(expect.arrayContaining(shardFiles)); // the worker reads the page's Cache Storage
    expect(await page.textContent("#status")).toContain("engine: Web Worker");
    const samples = (await (await fetch(`${demo.url}/samples.json`)).json()) as { questions: string[] }[];
    const q = samples[2].questions;
    const r0 = await page.evaluate(async (x) => {
      const w = window as unknown as DemoWindow;
      w.mlaDemo.useSample(2);
      return w.mlaDemo.ask(x);
    }, q[0]);
    expect(r0.tokenIds).toEqual(pageAnswers[0].tokenIds);
    expect(await page.textContent("#log")).toContain(`assistant: ${r0.answer}`);
    const after0 = await state();
    expect(after0.visionCalls).toBe(1); // counted in the worker
    expect(after0.turns).toBe(1);
    expect(await statText("engine")).toBe("Web Worker");
    expect(await statText("KV stored")).toBe(`${after0.kv!.stored.toLocaleString("en-US")} B`);

    await page.reload();
    await ready();
    const back = await state();
    expect(back.sessionId).toBe(after0.sessionId);
    expect(back.visionCalls).toBe(0);
    const r1 = await page.evaluate(async (x) => (window as unknown as DemoWindow).mlaDemo.ask(x), q[1]);
    expect(r1.tokenIds).toEqual(pageAnswers[1].tokenIds);
    expect(r1.usage.cached_tokens).toBe(after0.tokens);
    const after1 = await state();
    expect(after1.restoredTokens).toBe(after0.tokens); // restored from the edge by the worker, not prefilled
    expect(after1.visionCalls).toBe(0);
    expect(after1.turns).toBe(2);
    await page.screenshot({ path: "/tmp/mla-edge-demo-worker.png" });

    // a PNG File crosses postMessage and is decoded in the worker (createImageBitmap + OffscreenCanvas there)
    const viaFile = await page.evaluate(async (x) => {
      const w = window as unknown as { mlaDemo: { client: { chat: { completions: { create(p: unknown): Promise<{ mla_edge: { completion_ids: number[] } }> } } } } };
      const canvas = document.getElementById("image") as HTMLCanvasElement;
      const blob = await new Promise<Blob>((r) => canvas.toBlob((b) => r(b!), "image/png"));
      const file = new File([blob], "grid.png", { type: "image/png" });
      const r = await w.mlaDemo.client.chat.completions.create({
        messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: file } }, { type: "text", text: x }] }],
        temperature: 0,
        max_tokens: 4,
        mla_edge: { codec: { bits: 4, group: 32, axis: "token", rope: "int8" }, chunk_tokens: 16 },
      });
      return r.mla_edge.completion_ids;
    }, q[0]);
    expect(viaFile).toEqual(pageAnswers[0].tokenIds);
  }, 300_000);
});
