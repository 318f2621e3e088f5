// End to end on a real workerd (wrangler dev, test Worker mounting telemetry alone): scripted traffic, the live
// /metrics checked by promtool with values moving as expected, and the dashboard loaded in headless Chromium with
// every chart drawn from non-empty data. A screenshot goes to tests/artifacts/telemetry-dashboard.png.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXPECTED, OPERATOR_KEY, SESSION_A, sample, sendTraffic } from "../telemetry-worker/traffic.ts";
import { startWranglerDev, type DevServer } from "./wrangler-dev.ts";
import { skipWithout, SYSTEM_TOOLS } from "../helpers/system-tools.ts";

const CONFIG = "tests/telemetry-worker/wrangler.jsonc";
const ARTIFACTS = "tests/artifacts";
const CHARTS = ["latency", "kv", "ratio", "device", "sessions", "restore", "errors", "session"] as const;

let server: DevServer;
let browser: Browser;

async function scrape(): Promise<string> {
  const r = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${OPERATOR_KEY}` } });
  expect(r.status).toBe(200);
  return r.text();
}

function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync(SYSTEM_TOOLS.promtool.path, ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

// Skipped (and listed in the run's summary) only when promtool or Chromium is missing; CI requires both.
describe.skipIf(skipWithout(import.meta.url, "promtool", "chromium"))("telemetry under wrangler dev", () => {
  beforeAll(async () => {
    [server, browser] = await Promise.all([
      startWranglerDev(CONFIG, "/dashboard"),
      chromium.launch({
        executablePath: SYSTEM_TOOLS.chromium.path,
        headless: true,
        args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"],
      }),
    ]);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("should expose metrics that promtool accepts and that move with scripted traffic", async () => {
    const before = await scrape();
    expect(promtool(before)).toEqual({ status: 0, output: "" });
    expect(sample(before, "mla_edge_kv_bytes_stored")).toBe(0);
    await sendTraffic(fetch, server.url);
    const after = await scrape();
    expect(promtool(after)).toEqual({ status: 0, output: "" });
    expect(sample(after, 'mla_edge_requests_total{op="append",status="201"}')).toBe(EXPECTED.appendRequests201);
    expect(sample(after, 'mla_edge_request_bytes_total{op="append"}')).toBe(EXPECTED.appendBytesIn);
    expect(sample(after, 'mla_edge_response_bytes_total{op="restore"}')).toBe(EXPECTED.restoreBytesOut);
    expect(sample(after, "mla_edge_kv_bytes_stored")).toBe(EXPECTED.kvBytesStored);
    expect(sample(after, "mla_edge_restores_recomputed_total")).toBe(EXPECTED.restoresRecomputed);
    expect(sample(after, "mla_edge_client_kv_cache_bytes_sum")).toBe(EXPECTED.deviceKvSum);
    // Real clocks here (unlike vitest-pool-workers): latencies are positive and the sum is in seconds.
    const sum = sample(after, 'mla_edge_request_duration_seconds_sum{op="append"}')!;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(60);
  });

  it("should draw every dashboard chart from non-empty data and refresh live", async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
    const problems: string[] = [];
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    page.on("pageerror", (e) => problems.push(String(e)));
    await page.goto(`${server.url}/dashboard#key=${OPERATOR_KEY}&session=${SESSION_A}`);
    await page.waitForFunction(() => (window as unknown as { mlaEdgeDashboard?: { updates: number } }).mlaEdgeDashboard?.updates! >= 1, null, { timeout: 20_000 });
    // The key left the address bar once read.
    expect(page.url()).not.toContain(OPERATOR_KEY);

    const points = await page.evaluate((names) => {
      const charts = (window as unknown as { mlaEdgeDashboard: { charts: Record<string, { data: (number | null)[][]; root: HTMLElement }> } }).mlaEdgeDashboard.charts;
      return Object.fromEntries(
        names.map((n) => {
          const c = charts[n];
          const nonNull = c.data.slice(1).map((s) => s.filter((v) => v !== null && v !== undefined).length);
          return [n, { x: c.data[0].length, series: nonNull, canvas: c.root.querySelector("canvas") !== null }];
        }),
      );
    }, [...CHARTS]);
    for (const name of CHARTS) {
      expect(points[name].canvas, name).toBe(true);
      expect(points[name].x, name).toBeGreaterThan(0);
      expect(Math.max(...points[name].series), name).toBeGreaterThan(0);
    }
    // Session view: 6 appends + 3 manifests + 2 restores of sess-a.
    expect(points.session.x).toBe(11);
    const rows = await page.locator("#session-log tbody tr").count();
    expect(rows).toBeGreaterThanOrEqual(11);
    expect(await page.textContent("#session-summary")).toContain("client device KV 5.00 MB (bf16 22.94 MB)");

    // Live refresh: more traffic shows up on the next poll without a reload.
    const requestsBefore = await page.evaluate(() => (window as unknown as { mlaEdgeDashboard: { series: { requests: number[] } } }).mlaEdgeDashboard.series.requests.reduce((a, b) => a + b, 0));
    const updates = await page.evaluate(() => (window as unknown as { mlaEdgeDashboard: { updates: number } }).mlaEdgeDashboard.updates);
    for (let i = 0; i < 4; i++) await (await fetch(`${server.url}/v1/sessions/${SESSION_A}`)).arrayBuffer();
    await page.waitForFunction((u) => (window as unknown as { mlaEdgeDashboard: { updates: number } }).mlaEdgeDashboard.updates > u, updates, { timeout: 20_000 });
    const requestsAfter = await page.evaluate(() => (window as unknown as { mlaEdgeDashboard: { series: { requests: number[] } } }).mlaEdgeDashboard.series.requests.reduce((a, b) => a + b, 0));
    expect(requestsAfter).toBe(requestsBefore + 4);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}/telemetry-dashboard.png`, fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});
