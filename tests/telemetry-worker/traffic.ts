// Scripted traffic shared by the telemetry tests: known requests and store events whose effect on every metric is
// computed here by hand, independently of the aggregation code, so the tests compare against these numbers.
import type { ClientReportBatch } from "../../format/telemetry/client-report.ts";
import type { StoreEvent } from "../../worker/telemetry/events.ts";

export const OPERATOR_KEY = "test-operator-key";
export const SESSION_A = "sess-a";
export const SESSION_B = "sess-b";

export const APPEND_BODIES = [1000, 2000, 3000, 4000, 5000];
export const RESTORE_BYTES = 3000; // the stand-in restore streams 3 × 1000 B

export const STORE_EVENTS: StoreEvent[] = [
  { kind: "session_created", sessionId: SESSION_A },
  { kind: "chunks_stored", sessionId: SESSION_A, chunks: 4, tokens: 256, bytesStored: 400_000, bytesUncompressed: 1_800_000 },
  { kind: "dedupe_hit", sessionId: SESSION_A, chunks: 2, tokens: 128, bytesSaved: 200_000 },
  { kind: "fork", sessionId: SESSION_A, childSessionId: SESSION_B },
  { kind: "chunks_stored", sessionId: SESSION_B, chunks: 1, tokens: 64, bytesStored: 100_000, bytesUncompressed: 450_000 },
  { kind: "eviction", reason: "ttl", sessionId: SESSION_B, sessions: 1, chunks: 1, bytesStored: 100_000, bytesUncompressed: 450_000 },
  { kind: "restore_served", sessionId: SESSION_A, requestedTokens: 256, hitTokens: 192, bytes: 300_000 },
];

export const CLIENT_REPORTS: ClientReportBatch = {
  v: 1,
  reports: [
    {
      sessionId: SESSION_A,
      turnSeq: 2,
      ttftMs: 120,
      tpotMs: 22,
      inputTokens: 300,
      outputTokens: 40,
      restore: { restoredTokens: 256, reusedTokens: 256, recomputedTokens: 0, fetchMs: 30, decodeMs: 4, uploadMs: 2 },
      memory: { kvCacheBytes: 200_000, kvCacheTokens: 340, kvCacheUncompressedBytes: 19_496_960 },
    },
    // The llama.cpp #26676 failure: the restore "succeeded" and the client prefilled everything again.
    {
      sessionId: SESSION_A,
      turnSeq: 3,
      ttftMs: 900,
      restore: { restoredTokens: 256, reusedTokens: 0, recomputedTokens: 256, fetchMs: 35, decodeMs: 5, uploadMs: 3 },
      memory: { kvCacheBytes: 5_000_000, kvCacheTokens: 400, kvCacheUncompressedBytes: 22_937_600 },
    },
  ],
};

/** What the traffic must leave in /metrics (hand-computed from the constants above). */
export const EXPECTED = {
  appendRequests201: APPEND_BODIES.length,
  appendRequests400: 1,
  appendBytesIn: APPEND_BODIES.reduce((a, b) => a + b, 0),
  manifestRequests: 3,
  manifestNotFound: 1,
  restoreRequests: 2,
  restoreBytesOut: 2 * RESTORE_BYTES,
  kvBytesStored: 400_000 + 100_000 - 100_000,
  kvUncompressedBytesStored: 1_800_000 + 450_000 - 450_000,
  dedupeQueries: 4 + 2 + 1,
  dedupeHits: 2,
  dedupeHitTokens: 128,
  forks: 1,
  ttlEvictions: 1,
  restoreRequestedTokens: 256,
  restoreHitTokens: 192,
  clientRestores: 2,
  promptTokensCached: 256,
  restoresRecomputed: 1,
  restoreRecomputedTokens: 256,
  ttftCount: 2,
  ttftSumSeconds: (120 + 900) / 1000,
  // Device KV: 200,000 B lands in le=262144 (4·65536), 5,000,000 B in le=16777216; bf16 19.5 MB and 22.9 MB both in le=67108864.
  deviceKvCount: 2,
  deviceKvSum: 200_000 + 5_000_000,
  deviceKvUncompressedSum: 19_496_960 + 22_937_600,
  deviceKvMean: (200_000 + 5_000_000) / 2,
};

/** Sends the traffic through `fetch` (SELF.fetch in workerd, global fetch against wrangler dev). */
export async function sendTraffic(fetchFn: (url: string, init?: RequestInit) => Promise<Response>, base: string): Promise<void> {
  for (const size of APPEND_BODIES) {
    const r = await fetchFn(`${base}/v1/sessions/${SESSION_A}/turns`, { method: "POST", body: new Uint8Array(size) });
    await r.arrayBuffer();
  }
  await (await fetchFn(`${base}/v1/sessions/${SESSION_A}/turns`, { method: "POST" })).arrayBuffer();
  for (let i = 0; i < EXPECTED.manifestRequests; i++) await (await fetchFn(`${base}/v1/sessions/${SESSION_A}`)).arrayBuffer();
  await (await fetchFn(`${base}/v1/sessions/missing`)).arrayBuffer(); // 404 not_found, thrown like the store's ApiError
  for (let i = 0; i < EXPECTED.restoreRequests; i++) await (await fetchFn(`${base}/v1/sessions/${SESSION_A}/chunks?from=0&to=256`)).arrayBuffer();
  for (const e of STORE_EVENTS) {
    const r = await fetchFn(`${base}/test/store-event`, { method: "POST", body: JSON.stringify(e), headers: { "content-type": "application/json" } });
    await r.arrayBuffer();
  }
  const r = await fetchFn(`${base}/v1/telemetry`, { method: "POST", body: JSON.stringify(CLIENT_REPORTS), headers: { "content-type": "application/json" } });
  if (r.status !== 202) throw new Error(`client report rejected: ${r.status} ${await r.text()}`);
}

/** Value of one sample line (`name{labels} value`) in exposition text, or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}
