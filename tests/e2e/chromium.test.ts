// End to end in Chromium (Debian chromium, WebGPU on SwiftShader, playwright-core): the demo page against the real edge
// store, decoding on the GPU engine (the whole model on WebGPU over the bundle's int4 weights; the logits check runs the
// WebGPU attention kernels). (1) 50 eval cases in the page: every turn after a restore into the GPU
// cache equals the uninterrupted session, caches are bit-identical, restores never call the vision tower, and every
// answer equals the CPU reference decoder's (same page, same image embeddings). (2) A real page reload: the page restores the session from the
// edge (no vision call, usage.cached_tokens = restored prefix) and answers like an uninterrupted session. (3) A reload
// whose restore fails on the network keeps the saved session; one the store deleted is forgotten.

import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type Page } from "playwright-core";
import { skipWithout, SYSTEM_TOOLS } from "../helpers/system-tools.ts";
import { startDemoServer, type DemoServer } from "../../client/demo/server.ts";
import { startEdgeServer, type EdgeServer } from "./edge-server.ts";
import type { CheckCase, CheckResult, LogitsCheck } from "./browser-restore-check.ts";

const CHROMIUM = SYSTEM_TOOLS.chromium.path;
const ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"];
const CASES = 50;

let edge: EdgeServer;
let demo: DemoServer;
let browser: Browser;
let page: Page;

interface DemoState {
  sessionId: string | null;
  turns: number;
  tokens: number;
  restoredTokens: number;
  visionCalls: number;
  visionKind: string;
}

interface DemoWindow {
  mlaDemoReady: Promise<void>;
  mlaDemo: {
    ask(q: string): Promise<{ answer: string; usage: { cached_tokens: number; prompt_tokens: number }; tokenIds: number[] }>;
    useSample(i: number): void;
    state(): DemoState;
    client: unknown;
    model: unknown;
  };
}

async function openPage(): Promise<void> {
  await page.goto(demo.url);
  await page.evaluate(() => (window as unknown as DemoWindow).mlaDemoReady);
}

const demoState = (): Promise<DemoState> => page.evaluate(() => (window as unknown as DemoWindow).mlaDemo.state());

/** A real page reload: the page restores whatever session localStorage names; resolves with its state once ready. */
async function reloadPage(): Promise<DemoState> {
  await page.reload();
  await page.evaluate(() => (window as unknown as DemoWindow).mlaDemoReady);
  return demoState();
}

describe.skipIf(skipWithout(import.meta.url, "chromium"))("chat demo in Chromium", () => {
  beforeAll(async () => {
    edge = await startEdgeServer();
    demo = await startDemoServer({ edgeUrl: edge.url, apiKey: edge.apiKey, samples: CASES, extraEntries: { "restore-check": fileURLToPath(new URL("./browser-restore-check.ts", import.meta.url)) } });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await openPage();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    await edge?.stop();
  });

  it(`should answer every turn of ${CASES} eval cases after a restore like the uninterrupted session (in the page)`, async () => {
    // a module script tag, not import() inside evaluate (vitest would rewrite that import)
    await page.addScriptTag({ type: "module", content: 'import { runRestoreCheck, runLogitsCheck } from "/restore-check.js"; window.runRestoreCheck = runRestoreCheck; window.runLogitsCheck = runLogitsCheck;' });
    await page.waitForFunction(() => "runRestoreCheck" in window);
    const result = await page.evaluate(async () => {
      const w = window as unknown as DemoWindow & { runRestoreCheck: (c: unknown, m: unknown, cases: CheckCase[]) => Promise<CheckResult> };
      const samples = (await (await fetch("/samples.json")).json()) as CheckCase[];
      return w.runRestoreCheck(w.mlaDemo.client, w.mlaDemo.model, samples);
    });
    expect(result.cases).toBe(CASES);
    expect(result.turns).toBe(3 * CASES);
    expect(result.mismatches).toEqual([]);
    expect(result.cacheDiffs).toBe(0);
    expect(result.visionCallsOnRestore).toBe(0);
    expect(result.cachedTokenErrors).toBe(0);
    expect(result.correct / result.turns).toBeGreaterThan(0.8);
    expect(result.decoder).toBe("webgpu/engine");
    expect(result.referenceDecoder).toBe("cpu/reference");
    expect(result.restoreDecoders).toEqual(["webgpu"]);
    expect(result.cpuMismatches).toEqual([]);
    // logits of the page's WebGPU decoder vs the CPU reference: within 1e-4 relative (f32 attention vs f64)
    const logits = await page.evaluate(async () => {
      const w = window as unknown as DemoWindow & { runLogitsCheck: (m: unknown, cases: CheckCase[]) => Promise<LogitsCheck> };
      const samples = (await (await fetch("/samples.json")).json()) as CheckCase[];
      return w.runLogitsCheck(w.mlaDemo.model, samples.slice(0, 3));
    });
    expect(logits.relErr.length).toBe(3);
    for (const e of logits.relErr) expect(e).toBeLessThan(1e-4);
    expect(logits.rows).toBeGreaterThan(60);
  }, 600_000);

  it("should restore after a page reload without calling the vision tower, and answer like an uninterrupted session", async () => {
    // the uninterrupted reference, in this page: sample 3, three questions
    const reference = await page.evaluate(async () => {
      const w = window as unknown as DemoWindow;
      const samples = (await (await fetch("/samples.json")).json()) as CheckCase[];
      const out: number[][] = [];
      localStorage.clear();
      w.mlaDemo.useSample(3);
      for (const q of samples[3].questions) out.push((await w.mlaDemo.ask(q)).tokenIds);
      localStorage.clear();
      return { answers: out, questions: samples[3].questions };
    });
    await openPage(); // a fresh page with no saved session
    const first = await page.evaluate(async (q) => {
      const w = window as unknown as DemoWindow;
      w.mlaDemo.useSample(3);
      const r = await w.mlaDemo.ask(q);
      return { tokenIds: r.tokenIds, state: w.mlaDemo.state() };
    }, reference.questions[0]);
    expect(first.tokenIds).toEqual(reference.answers[0]);
    expect(first.state.visionCalls).toBe(1);
    for (let t = 1; t < 3; t++) {
      const s = await reloadPage();
      expect(s.sessionId).toBe(first.state.sessionId);
      expect(s.turns).toBe(t);
      expect(s.visionCalls).toBe(0);
      const r = await page.evaluate(async (q) => (window as unknown as DemoWindow).mlaDemo.ask(q), reference.questions[t]);
      expect(r.tokenIds).toEqual(reference.answers[t]);
      expect(r.usage.cached_tokens).toBe(s.restoredTokens);
      expect(s.restoredTokens).toBe(s.tokens);
      expect((await demoState()).visionCalls).toBe(0);
    }
    await page.screenshot({ path: "/tmp/mla-edge-demo.png" });
  }, 300_000);

  it("should keep the saved session when a reload's restore fails on the network, and forget it only once the store says it is gone", async () => {
    await page.evaluate(() => localStorage.clear());
    await openPage(); // a fresh page with no session: the question below starts one
    const saved = await page.evaluate(async () => {
      const w = window as unknown as DemoWindow;
      const samples = (await (await fetch("/samples.json")).json()) as CheckCase[];
      w.mlaDemo.useSample(4);
      await w.mlaDemo.ask(samples[4].questions[0]);
      return JSON.parse(localStorage.getItem("mla-edge-demo") ?? "null") as { id: string; token: string };
    });
    expect(saved.id).toMatch(/\S/);
    const savedId = () => page.evaluate(() => (JSON.parse(localStorage.getItem("mla-edge-demo") ?? "null") as { id: string } | null)?.id ?? null);

    // Every restore request fails at the network: the page says so and keeps the session for the next reload.
    await page.route("**/v1/sessions/*/chunks*", (route) => route.abort("connectionreset"));
    expect((await reloadPage()).sessionId).toBeNull();
    expect(await page.textContent("#log")).toContain("could not restore the saved session (kept: reload to try again)");
    expect(await savedId()).toBe(saved.id);

    await page.unroute("**/v1/sessions/*/chunks*");
    const back = await reloadPage();
    expect(back.sessionId).toBe(saved.id);
    expect(back.turns).toBe(1);

    // Deleted on the edge (as TTL expiry would): the reload reports it gone and forgets it.
    const del = await fetch(`${edge.url}/v1/sessions/${saved.id}`, { method: "DELETE", headers: { authorization: `Bearer ${saved.token}` } });
    expect(del.status).toBe(204);
    expect((await reloadPage()).sessionId).toBeNull();
    expect(await page.textContent("#log")).toContain("the saved session is gone");
    expect(await savedId()).toBeNull();
  }, 300_000);
});
