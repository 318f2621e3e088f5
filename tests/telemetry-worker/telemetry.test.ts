// Telemetry inside workerd: scripted traffic through recordRequests + recordEvent + client reports, then /metrics,
// the dashboard series and the per-session view must show exactly the hand-computed values (traffic.ts).
import { env, SELF, createExecutionContext, waitOnExecutionContext, runInDurableObject } from "cloudflare:test";
import { Hono } from "hono";
import { describe, expect, it, beforeAll } from "vitest";
import type { SeriesResponse } from "../../worker/telemetry/series.ts";
import type { SessionView } from "../../worker/telemetry/session-log.ts";
import { recordRequests, flushTelemetry, type TelemetryEnv } from "../../worker/telemetry/index.ts";
import { EXPECTED, OPERATOR_KEY, SESSION_A, SESSION_B, sample, sendTraffic } from "./traffic.ts";

const BASE = "http://edge.test";
const auth = { authorization: `Bearer ${OPERATOR_KEY}` };
const testEnv = env as unknown as TelemetryEnv;

async function metrics(): Promise<string> {
  const r = await SELF.fetch(`${BASE}/metrics`, { headers: auth });
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return r.text();
}

describe("telemetry worker", () => {
  beforeAll(async () => {
    await sendTraffic((url, init) => SELF.fetch(url, init), BASE);
  });

  describe("operator auth", () => {
    it("should answer 401 JSON without a bearer token", async () => {
      const r = await SELF.fetch(`${BASE}/metrics`);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    });
    it("should answer 403 JSON with a wrong key, also on the dashboard data", async () => {
      for (const path of ["/metrics", "/dashboard/api/series", `/dashboard/api/sessions/${SESSION_A}`]) {
        const r = await SELF.fetch(`${BASE}${path}`, { headers: { authorization: "Bearer nope" } });
        expect(r.status).toBe(403);
        expect(((await r.json()) as { error: { code: string } }).error.code).toBe("forbidden");
      }
    });
  });

  describe("/metrics after scripted traffic", () => {
    it("should count requests by op and status, errors by code, and bytes in/out", async () => {
      const text = await metrics();
      expect(sample(text, 'mla_edge_requests_total{op="append",status="201"}')).toBe(EXPECTED.appendRequests201);
      expect(sample(text, 'mla_edge_requests_total{op="append",status="400"}')).toBe(EXPECTED.appendRequests400);
      expect(sample(text, 'mla_edge_request_errors_total{op="append",code="http_400"}')).toBe(1);
      expect(sample(text, 'mla_edge_requests_total{op="manifest",status="200"}')).toBe(EXPECTED.manifestRequests);
      // The thrown error's own code, not just its status.
      expect(sample(text, 'mla_edge_request_errors_total{op="manifest",code="not_found"}')).toBe(EXPECTED.manifestNotFound);
      expect(sample(text, 'mla_edge_request_bytes_total{op="append"}')).toBe(EXPECTED.appendBytesIn);
      expect(sample(text, 'mla_edge_response_bytes_total{op="restore"}')).toBe(EXPECTED.restoreBytesOut);
    });

    it("should expose latency histograms whose +Inf bucket equals _count", async () => {
      const text = await metrics();
      const count = sample(text, 'mla_edge_request_duration_seconds_count{op="append"}');
      expect(count).toBe(EXPECTED.appendRequests201 + EXPECTED.appendRequests400);
      expect(sample(text, 'mla_edge_request_duration_seconds_bucket{op="append",le="+Inf"}')).toBe(count);
      expect(sample(text, 'mla_edge_request_duration_seconds_count{op="restore"}')).toBe(EXPECTED.restoreRequests);
      // Cumulative buckets never decrease. (Durations themselves may be 0 here: workerd's clock only moves across I/O.)
      const buckets = text.split("\n").filter((l) => l.startsWith('mla_edge_request_duration_seconds_bucket{op="append"'));
      expect(buckets.length).toBeGreaterThan(10);
      const values = buckets.map((l) => Number(l.split(" ")[1]));
      for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1]);
      expect(sample(text, 'mla_edge_request_duration_seconds_sum{op="append"}')).toBeGreaterThanOrEqual(0);
    });

    it("should track KV bytes stored vs uncompressed, dedupe, forks and TTL evictions", async () => {
      const text = await metrics();
      expect(sample(text, "mla_edge_kv_bytes_stored")).toBe(EXPECTED.kvBytesStored);
      expect(sample(text, "mla_edge_kv_uncompressed_bytes_stored")).toBe(EXPECTED.kvUncompressedBytesStored);
      expect(sample(text, "mla_edge_kv_compression_ratio")).toBeCloseTo(EXPECTED.kvUncompressedBytesStored / EXPECTED.kvBytesStored, 12);
      expect(sample(text, "mla_edge_chunk_dedupe_queries_total")).toBe(EXPECTED.dedupeQueries);
      expect(sample(text, "mla_edge_chunk_dedupe_hits_total")).toBe(EXPECTED.dedupeHits);
      expect(sample(text, "mla_edge_dedupe_hit_tokens_total")).toBe(EXPECTED.dedupeHitTokens);
      expect(sample(text, "mla_edge_forks_total")).toBe(EXPECTED.forks);
      expect(sample(text, 'mla_edge_evictions_total{reason="ttl"}')).toBe(EXPECTED.ttlEvictions);
      expect(sample(text, "mla_edge_sessions_active")).toBe(2);
    });

    it("should count client restores, cached tokens and restores that were recomputed", async () => {
      const text = await metrics();
      expect(sample(text, "mla_edge_restore_requested_tokens_total")).toBe(EXPECTED.restoreRequestedTokens);
      expect(sample(text, "mla_edge_restore_hit_tokens_total")).toBe(EXPECTED.restoreHitTokens);
      expect(sample(text, "mla_edge_client_restores_total")).toBe(EXPECTED.clientRestores);
      expect(sample(text, "mla_edge_prompt_tokens_cached_total")).toBe(EXPECTED.promptTokensCached);
      expect(sample(text, "mla_edge_restores_recomputed_total")).toBe(EXPECTED.restoresRecomputed);
      expect(sample(text, "mla_edge_restore_recomputed_tokens_total")).toBe(EXPECTED.restoreRecomputedTokens);
      expect(sample(text, "mla_edge_time_to_first_token_seconds_count")).toBe(EXPECTED.ttftCount);
      expect(sample(text, "mla_edge_time_to_first_token_seconds_sum")).toBeCloseTo(EXPECTED.ttftSumSeconds, 12);
      expect(sample(text, 'mla_edge_restore_phase_seconds_count{phase="upload"}')).toBe(2);
    });

    it("should expose the client-reported device KV cache as byte histograms (le in bytes, not seconds)", async () => {
      const text = await metrics();
      expect(sample(text, "mla_edge_client_kv_cache_bytes_count")).toBe(EXPECTED.deviceKvCount);
      expect(sample(text, "mla_edge_client_kv_cache_bytes_sum")).toBe(EXPECTED.deviceKvSum);
      expect(sample(text, 'mla_edge_client_kv_cache_bytes_bucket{le="65536"}')).toBe(0);
      expect(sample(text, 'mla_edge_client_kv_cache_bytes_bucket{le="262144"}')).toBe(1);
      expect(sample(text, 'mla_edge_client_kv_cache_bytes_bucket{le="4194304"}')).toBe(1);
      expect(sample(text, 'mla_edge_client_kv_cache_bytes_bucket{le="16777216"}')).toBe(2);
      expect(sample(text, "mla_edge_client_kv_cache_uncompressed_bytes_sum")).toBe(EXPECTED.deviceKvUncompressedSum);
      expect(sample(text, 'mla_edge_client_kv_cache_uncompressed_bytes_bucket{le="16777216"}')).toBe(0);
      expect(sample(text, 'mla_edge_client_kv_cache_uncompressed_bytes_bucket{le="67108864"}')).toBe(2);
    });
  });

  describe("dashboard data", () => {
    it("should return series whose last KV point equals the gauges", async () => {
      const r = await SELF.fetch(`${BASE}/dashboard/api/series?window=900`, { headers: auth });
      expect(r.status).toBe(200);
      const s = (await r.json()) as SeriesResponse;
      expect(s.t.length).toBeGreaterThan(0);
      expect(s.kvBytesStored.at(-1)).toBe(EXPECTED.kvBytesStored);
      expect(s.kvUncompressedBytesStored.at(-1)).toBe(EXPECTED.kvUncompressedBytesStored);
      const appendP50 = s.latencyP50Ms.append.filter((v) => v !== null);
      expect(appendP50.length).toBeGreaterThan(0);
      expect(s.requests.reduce((a, b) => a + b, 0)).toBe(6 + 3 + 1 + 2);
      expect(s.errors.reduce((a, b) => a + b, 0)).toBe(2);
      expect(s.restoresRecomputed.reduce((a, b) => a + b, 0)).toBe(1);
      expect(s.restoreReuseRate.filter((v) => v !== null).at(-1)).toBeCloseTo(256 / 512, 12);
      expect(s.clientKvBytesMean.filter((v) => v !== null)).toEqual([EXPECTED.deviceKvMean]);
      expect(s.clientKvUncompressedBytesMean.filter((v) => v !== null)).toEqual([EXPECTED.deviceKvUncompressedSum / 2]);
    });

    it("should show one session's events and exact latency quantiles", async () => {
      const r = await SELF.fetch(`${BASE}/dashboard/api/sessions/${SESSION_A}`, { headers: auth });
      const v = (await r.json()) as SessionView;
      expect(v.latency.append.count).toBe(6);
      expect(v.latency.restore.count).toBe(2);
      expect(v.bytesStored).toBe(400_000);
      expect(v.bytesUncompressed).toBe(1_800_000);
      expect(v.dedupeHitChunks).toBe(2);
      expect(v.recomputedTokens).toBe(256);
      expect(v.deviceKvBytes).toBe(5_000_000); // the newest report's
      expect(v.deviceKvUncompressedBytes).toBe(22_937_600);
      expect(v.entries.some((e) => e.kind === "fork" && e.detail === `forked to ${SESSION_B}`)).toBe(true);
      const child = (await (await SELF.fetch(`${BASE}/dashboard/api/sessions/${SESSION_B}`, { headers: auth })).json()) as SessionView;
      expect(child.entries.map((e) => e.kind)).toEqual(["fork", "chunks_stored", "eviction"]);
    });

    it("should serve the page and uPlot from the Worker", async () => {
      const page = await SELF.fetch(`${BASE}/dashboard`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('src="/dashboard/assets/uPlot.iife.min.js"');
      const js = await SELF.fetch(`${BASE}/dashboard/assets/uPlot.iife.min.js`);
      expect(await js.text()).toContain("uPlot");
    });
  });

  describe("client reports", () => {
    it("should reject a report whose reused + recomputed exceeds restored", async () => {
      const bad = { v: 1, reports: [{ sessionId: "x", restore: { restoredTokens: 10, reusedTokens: 8, recomputedTokens: 8, fetchMs: 1, decodeMs: 1, uploadMs: 1 } }] };
      const r = await SELF.fetch(`${BASE}/v1/telemetry`, { method: "POST", body: JSON.stringify(bad) });
      expect(r.status).toBe(400);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("invalid_report");
      expect(body.error.message).toContain("exceeds restoredTokens");
    });
  });

  describe("persistence", () => {
    it("should keep the aggregate in the object's SQLite", async () => {
      await flushTelemetry(testEnv);
      const stub = testEnv.METRICS.get(testEnv.METRICS.idFromName("global"));
      const stored = await runInDurableObject(stub, (_instance, state) =>
        state.storage.sql.exec<{ value: string }>("SELECT value FROM telemetry_meta WHERE key = 'aggregate'").one().value,
      );
      expect((JSON.parse(stored) as { kvBytesStored: number }).kvBytesStored).toBe(EXPECTED.kvBytesStored);
    });
  });

  describe("TELEMETRY=off", () => {
    it("should record nothing", async () => {
      const before = await metrics();
      const app = new Hono<{ Bindings: TelemetryEnv }>();
      app.use("*", recordRequests());
      app.get("/v1/sessions/:id", (c) => c.json({ ok: true }));
      const ctx = createExecutionContext();
      const r = await app.request(`${BASE}/v1/sessions/${SESSION_A}`, {}, { ...testEnv, TELEMETRY: "off" }, ctx);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
      await waitOnExecutionContext(ctx);
      const after = await metrics();
      expect(sample(after, 'mla_edge_requests_total{op="manifest",status="200"}')).toBe(
        sample(before, 'mla_edge_requests_total{op="manifest",status="200"}'),
      );
    });
  });
});
