// Every metric family /metrics exposes: name, help, type, labels, buckets. Names follow vLLM/LMCache semantics (tokens
// counted, hits over queries, latency split by phase) with Prometheus-native `mla_edge_` prefixes: vLLM's `vllm:` colon
// form is reserved for recording rules and `promtool check metrics` flags it. docs/telemetry.md maps each to its anchor.
import { DEVICE_KV_BOUNDS_BYTES, LATENCY_BOUNDS_MS, RESTORE_PHASE_BOUNDS_MS, TPOT_BOUNDS_MS, TTFT_BOUNDS_MS } from "./buckets.ts";

export interface CounterFamily {
  readonly type: "counter";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
}

/**
 * Durations are recorded in ms and exposed in seconds, the Prometheus base unit (`unit: "seconds"`); byte counts are
 * recorded and exposed in bytes. `bounds` are in the recorded unit.
 */
export interface HistogramFamily {
  readonly type: "histogram";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly unit: "seconds" | "bytes";
  readonly bounds: readonly number[];
}

export interface GaugeFamily {
  readonly type: "gauge";
  readonly name: string;
  readonly help: string;
}

const counter = (name: string, help: string, ...labelNames: string[]): CounterFamily => ({ type: "counter", name, help, labelNames });
const histogram = (name: string, help: string, boundsMs: readonly number[], ...labelNames: string[]): HistogramFamily => ({
  type: "histogram",
  name,
  help,
  labelNames,
  unit: "seconds",
  bounds: boundsMs,
});
const byteHistogram = (name: string, help: string, bounds: readonly number[]): HistogramFamily => ({
  type: "histogram",
  name,
  help,
  labelNames: [],
  unit: "bytes",
  bounds,
});
const gauge = (name: string, help: string): GaugeFamily => ({ type: "gauge", name, help });

export const COUNTERS = {
  requests: counter("mla_edge_requests_total", "Store API requests by operation and HTTP status.", "op", "status"),
  requestErrors: counter("mla_edge_request_errors_total", "Failed store API requests by operation and error code.", "op", "code"),
  requestBytes: counter("mla_edge_request_bytes_total", "Request body bytes received (Content-Length) by operation.", "op"),
  responseBytes: counter("mla_edge_response_bytes_total", "Response body bytes sent by operation.", "op"),
  kvBytesWritten: counter("mla_edge_kv_bytes_written_total", "Compressed KV chunk bytes written (dedupe misses)."),
  kvUncompressedBytesWritten: counter(
    "mla_edge_kv_uncompressed_bytes_written_total",
    "Uncompressed (bf16) equivalent of the KV chunk bytes written.",
  ),
  kvBytesFreed: counter("mla_edge_kv_bytes_freed_total", "Compressed KV chunk bytes freed, by reason.", "reason"),
  chunksWritten: counter("mla_edge_chunks_written_total", "KV chunks written (dedupe misses)."),
  dedupeQueries: counter("mla_edge_chunk_dedupe_queries_total", "KV chunks looked up for dedupe on append (hits + misses)."),
  dedupeHits: counter("mla_edge_chunk_dedupe_hits_total", "KV chunks found already stored on append (not written again)."),
  dedupeQueryTokens: counter("mla_edge_dedupe_query_tokens_total", "Tokens in chunks looked up for dedupe (vLLM prefix_cache_queries semantics)."),
  dedupeHitTokens: counter("mla_edge_dedupe_hit_tokens_total", "Tokens in chunks that were dedupe hits (vLLM prefix_cache_hits semantics)."),
  dedupeBytesSaved: counter("mla_edge_dedupe_bytes_saved_total", "Compressed bytes dedupe hits avoided writing."),
  sessionsCreated: counter("mla_edge_sessions_created_total", "Sessions created (forks excluded)."),
  forks: counter("mla_edge_forks_total", "Sessions forked."),
  evictions: counter("mla_edge_evictions_total", "Sessions removed, by reason (ttl = idle expiry).", "reason"),
  evictedChunks: counter("mla_edge_evicted_chunks_total", "KV chunks freed, by reason.", "reason"),
  restoreRequestedTokens: counter("mla_edge_restore_requested_tokens_total", "Tokens requested by restores (LMCache num_requested_tokens)."),
  restoreHitTokens: counter("mla_edge_restore_hit_tokens_total", "Requested restore tokens found and served (LMCache num_hit_tokens)."),
  restoresServed: counter("mla_edge_restores_served_total", "Restore streams that ended, by outcome (complete, or failed mid-stream).", "outcome"),
  restoreBytes: counter("mla_edge_restore_bytes_total", "KV chunk bytes sent by restores."),
  clientReports: counter("mla_edge_client_reports_total", "Client SDK turn reports accepted."),
  clientRestores: counter("mla_edge_client_restores_total", "Restores reported by clients."),
  clientRestoredTokens: counter("mla_edge_client_restored_tokens_total", "Tokens clients report as restored into the runtime."),
  promptTokensCached: counter(
    "mla_edge_prompt_tokens_cached_total",
    "Restored tokens clients reused without recompute (vLLM prompt_tokens_cached, OTel gen_ai.usage.cache_read.input_tokens).",
  ),
  restoreRecomputedTokens: counter("mla_edge_restore_recomputed_tokens_total", "Restored tokens clients prefilled again anyway."),
  restoresRecomputed: counter(
    "mla_edge_restores_recomputed_total",
    "Restores whose tokens were then recomputed by the client (restore reported success but missed, llama.cpp #26676).",
  ),
  promptTokens: counter("mla_edge_prompt_tokens_total", "Prompt tokens clients report (OTel gen_ai.usage.input_tokens)."),
  generationTokens: counter("mla_edge_generation_tokens_total", "Generated tokens clients report (OTel gen_ai.usage.output_tokens)."),
  droppedSeries: counter(
    "mla_edge_telemetry_dropped_series_total",
    "Observations folded into the overflow series because a family reached its series cap.",
  ),
} as const satisfies Record<string, CounterFamily>;

export const HISTOGRAMS = {
  requestDuration: histogram(
    "mla_edge_request_duration_seconds",
    "Store API latency by operation: request start to response headers, or to the last byte of a streamed body.",
    LATENCY_BOUNDS_MS,
    "op",
  ),
  timeToFirstToken: histogram(
    "mla_edge_time_to_first_token_seconds",
    "Client-reported time to first token (vLLM time_to_first_token_seconds, OTel gen_ai.server.time_to_first_token).",
    TTFT_BOUNDS_MS,
  ),
  timePerOutputToken: histogram(
    "mla_edge_time_per_output_token_seconds",
    "Client-reported mean time per output token (OTel gen_ai.server.time_per_output_token).",
    TPOT_BOUNDS_MS,
  ),
  restorePhase: histogram(
    "mla_edge_restore_phase_seconds",
    "Client-reported restore time by phase: fetch, decode (decode + dequantize), upload (GPU).",
    RESTORE_PHASE_BOUNDS_MS,
    "phase",
  ),
  clientKvCacheBytes: byteHistogram(
    "mla_edge_client_kv_cache_bytes",
    "Client-reported bytes a session's KV cache holds allocated on the device after a turn (GPU buffers or host memory).",
    DEVICE_KV_BOUNDS_BYTES,
  ),
  clientKvCacheUncompressedBytes: byteHistogram(
    "mla_edge_client_kv_cache_uncompressed_bytes",
    "The same sessions' tokens as the original model's bf16 K/V cache: what the device would hold without MLA + quantization.",
    DEVICE_KV_BOUNDS_BYTES,
  ),
} as const satisfies Record<string, HistogramFamily>;

export const GAUGES = {
  kvBytesStored: gauge("mla_edge_kv_bytes_stored", "Compressed KV bytes the edge holds (written minus freed)."),
  kvUncompressedBytesStored: gauge(
    "mla_edge_kv_uncompressed_bytes_stored",
    "Uncompressed (bf16) equivalent of the KV bytes the edge holds.",
  ),
  kvCompressionRatio: gauge("mla_edge_kv_compression_ratio", "Uncompressed equivalent over compressed KV bytes held (0 when empty)."),
  sessionsActive: gauge("mla_edge_sessions_active", "Distinct sessions with recorded activity in the last 5 minutes."),
} as const satisfies Record<string, GaugeFamily>;

export type CounterKey = keyof typeof COUNTERS;
export type HistogramKey = keyof typeof HISTOGRAMS;

/** Distinct label sets a family may hold; further ones go to an `__overflow__` series so memory stays bounded. */
export const MAX_SERIES_PER_FAMILY = 256;
/** Label value used for observations beyond {@link MAX_SERIES_PER_FAMILY}. */
export const OVERFLOW_LABEL = "__overflow__";
