// The Prometheus text output, parsed and linted by the real Prometheus parser (`promtool check metrics`), with values
// compared to hand-computed ones, label escaping, and the per-family series cap.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { applyToAggregate, emptyAggregate } from "../../worker/telemetry/aggregate.ts";
import { MAX_SERIES_PER_FAMILY } from "../../worker/telemetry/catalogue.ts";
import type { TelemetryEvent } from "../../worker/telemetry/events.ts";
import { renderExposition } from "../../worker/telemetry/exposition.ts";
import { hasSystemTool, skipWithout, SYSTEM_TOOLS } from "../helpers/system-tools.ts";

const PROMTOOL = SYSTEM_TOOLS.promtool.path;
/** Skipped (and listed in the run's summary) only when promtool is missing; CI requires it. */
const noPromtool = skipWithout(import.meta.url, "promtool");

/** promtool's verdict: exit 0 and no lint output means the text parses and follows Prometheus naming rules. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

const op = (status: number, durationMs: number, errorCode?: string): TelemetryEvent => ({
  kind: "operation",
  op: "append",
  status,
  durationMs,
  bytesIn: 100,
  bytesOut: 10,
  sessionId: "s",
  ...(errorCode !== undefined ? { errorCode } : {}),
});

describe("renderExposition", () => {
  it.skipIf(noPromtool)("should find promtool installed (CI installs Debian's prometheus package)", () => {
    expect(hasSystemTool("promtool")).toBe(true);
  });

  it.skipIf(noPromtool)("should pass promtool check metrics on an empty aggregate", () => {
    const r = promtoolCheck(renderExposition(emptyAggregate(), { sessionsActive: 0 }));
    expect(r.output).toBe("");
    expect(r.status).toBe(0);
  });

  it.skipIf(noPromtool)("should pass promtool and carry hand-computed values after events", () => {
    const s = emptyAggregate();
    for (const e of [op(201, 3), op(201, 7), op(409, 12, "turn_conflict")]) applyToAggregate(s, e);
    applyToAggregate(s, { kind: "chunks_stored", sessionId: "s", chunks: 2, tokens: 128, bytesStored: 1000, bytesUncompressed: 4500 });
    applyToAggregate(s, { kind: "eviction", reason: "ttl", sessions: 1, chunks: 1, bytesStored: 400, bytesUncompressed: 1800 });
    applyToAggregate(s, { kind: "client_report", report: { sessionId: "s", memory: { kvCacheBytes: 300_000, kvCacheTokens: 64, kvCacheUncompressedBytes: 3_670_016 } } });
    const text = renderExposition(s, { sessionsActive: 1 });
    const r = promtoolCheck(text);
    expect(r.output).toBe("");
    expect(r.status).toBe(0);
    expect(text).toContain('mla_edge_requests_total{op="append",status="201"} 2\n');
    expect(text).toContain('mla_edge_request_errors_total{op="append",code="turn_conflict"} 1\n');
    expect(text).toContain('mla_edge_request_bytes_total{op="append"} 300\n');
    // 3, 7, 12 ms → buckets le=0.003 (1), le=0.008 (2), le=0.0125 (3); sum 0.022 s.
    expect(text).toContain('mla_edge_request_duration_seconds_bucket{op="append",le="0.003"} 1\n');
    expect(text).toContain('mla_edge_request_duration_seconds_bucket{op="append",le="0.008"} 2\n');
    expect(text).toContain('mla_edge_request_duration_seconds_bucket{op="append",le="0.0125"} 3\n');
    expect(text).toContain('mla_edge_request_duration_seconds_bucket{op="append",le="+Inf"} 3\n');
    expect(text).toContain('mla_edge_request_duration_seconds_sum{op="append"} 0.022\n');
    expect(text).toContain('mla_edge_request_duration_seconds_count{op="append"} 3\n');
    expect(text).toContain("mla_edge_kv_bytes_stored 600\n");
    expect(text).toContain("mla_edge_kv_uncompressed_bytes_stored 2700\n");
    expect(text).toContain("mla_edge_kv_compression_ratio 4.5\n");
    expect(text).toContain('mla_edge_evictions_total{reason="ttl"} 1\n');
    // Byte histograms keep bytes: 300,000 B → first bucket le=1048576 (1 MiB); 3,670,016 B → le=4194304.
    expect(text).toContain('mla_edge_client_kv_cache_bytes_bucket{le="262144"} 0\n');
    expect(text).toContain('mla_edge_client_kv_cache_bytes_bucket{le="1048576"} 1\n');
    expect(text).toContain("mla_edge_client_kv_cache_bytes_sum 300000\n");
    expect(text).toContain('mla_edge_client_kv_cache_uncompressed_bytes_bucket{le="1048576"} 0\n');
    expect(text).toContain('mla_edge_client_kv_cache_uncompressed_bytes_bucket{le="4194304"} 1\n');
  });

  it.skipIf(noPromtool)("should escape label values so the text still parses", () => {
    const s = emptyAggregate();
    applyToAggregate(s, op(500, 1, 'bad"code\\with\nnewline'));
    const text = renderExposition(s, { sessionsActive: 0 });
    expect(text).toContain('code="bad\\"code\\\\with\\nnewline"');
    expect(promtoolCheck(text).status).toBe(0);
  });

  it.skipIf(noPromtool)("should cap series per family and count the overflow", () => {
    const s = emptyAggregate();
    for (let i = 0; i < 300; i++) applyToAggregate(s, op(500, 1, `code_${i}`));
    const text = renderExposition(s, { sessionsActive: 0 });
    const lines = text.split("\n").filter((l) => l.startsWith("mla_edge_request_errors_total{"));
    expect(lines.length).toBe(MAX_SERIES_PER_FAMILY);
    expect(text).toContain('mla_edge_request_errors_total{op="__overflow__",code="__overflow__"} 45\n');
    expect(text).toContain("mla_edge_telemetry_dropped_series_total 45\n");
    expect(promtoolCheck(text).status).toBe(0);
  });
});
