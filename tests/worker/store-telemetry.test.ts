// The edge Worker records its own store events into telemetry: after real appends, restores, forks, truncates, deletes
// and TTL expiry, /metrics on the main Worker moves by exactly the chunks, tokens and bytes the store handled. Expected
// bytes come from the chunks the test packed itself and bf16 sizes from format/size (the original GQA K/V cache).
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { cacheBytesPerToken } from "../../format/size/bytes-per-token.ts";
import { sessionObjectName } from "../../worker/keys.ts";
import type { SessionObject } from "../../worker/objects/session-object.ts";
import { flushTelemetry } from "../../worker/telemetry/index.ts";
import { controlFrame, encodeAppendControl } from "../../format/wire/control-msgpack.ts";
import { concatFrames, Conversation, type BuiltTurn } from "./helpers/conversation.ts";
import { append, call, createSession, flipStoredChunkByte, OPERATOR_KEY, openTurnSocket, readRestore, testEnv, TINY_C, TINY_CODEC, TINY_SPEC, type Session } from "./helpers/store.ts";

type Scrape = ReadonlyMap<string, number>;

/** Every sample of /metrics, keyed by `name{labels}` as exposed. */
async function scrape(): Promise<Scrape> {
  await flushTelemetry(testEnv);
  const res = await call("/metrics", { headers: { authorization: `Bearer ${OPERATOR_KEY}` } });
  expect(res.status).toBe(200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** How much each named sample moved between two scrapes (absent samples count as 0). */
function moved(before: Scrape, after: Scrape, names: readonly string[]): Record<string, number> {
  return Object.fromEntries(names.map((n) => [n, (after.get(n) ?? 0) - (before.get(n) ?? 0)]));
}

/** bf16 K+V bytes of one token in one layer of the original model: format/size's originalBf16 over the layers. */
const BF16_PER_TOKEN_LAYER = cacheBytesPerToken(TINY_SPEC, { bits: 4 }).originalBf16 / TINY_SPEC.layers;

const storedBytes = (turn: BuiltTurn): number => turn.chunks.reduce((s, c) => s + c.bytes.length, 0);
const bf16Bytes = (turn: BuiltTurn): number => turn.chunks.reduce((s, c) => s + c.tokenCount * c.layerCount * BF16_PER_TOKEN_LAYER, 0);

async function commit(s: Session, conv: Conversation, count: number): Promise<BuiltTurn> {
  const turn = conv.build(count);
  const res = await append(s, turn.frames);
  expect(res.status, await res.clone().text()).toBe(201);
  conv.accept(turn);
  return turn;
}

const post = (s: Session, path: string, body: unknown) =>
  call(`/v1/sessions/${s.id}${path}`, { method: "POST", headers: { ...s.auth, "content-type": "application/json" }, body: JSON.stringify(body) });

const STORE_COUNTERS = [
  "mla_edge_chunks_written_total",
  "mla_edge_kv_bytes_written_total",
  "mla_edge_kv_uncompressed_bytes_written_total",
  "mla_edge_chunk_dedupe_queries_total",
  "mla_edge_chunk_dedupe_hits_total",
  "mla_edge_dedupe_query_tokens_total",
  "mla_edge_dedupe_hit_tokens_total",
  "mla_edge_dedupe_bytes_saved_total",
] as const;

const evictionCounters = (reason: string) => [
  `mla_edge_evictions_total{reason="${reason}"}`,
  `mla_edge_evicted_chunks_total{reason="${reason}"}`,
  `mla_edge_kv_bytes_freed_total{reason="${reason}"}`,
];

const RESTORE_COUNTERS = [
  'mla_edge_restores_served_total{outcome="complete"}',
  'mla_edge_restores_served_total{outcome="failed"}',
  "mla_edge_restore_bytes_total",
  "mla_edge_restore_requested_tokens_total",
  "mla_edge_restore_hit_tokens_total",
  'mla_edge_request_errors_total{op="restore",code="corrupt_chunk"}',
] as const;

describe("store telemetry", () => {
  it("should count created sessions and forks on /metrics", async () => {
    const before = await scrape();
    const s = await createSession("alpha");
    await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 5);
    expect((await post(s, "/fork", { atSeq: 1 })).status).toBe(201);
    expect(moved(before, await scrape(), ["mla_edge_sessions_created_total", "mla_edge_forks_total"])).toEqual({
      mla_edge_sessions_created_total: 1,
      mla_edge_forks_total: 1,
    });
  });

  it("should count chunks stored with their stored and bf16 bytes, then a second session's dedupe hits", async () => {
    const seed = 31_337;
    const a = await createSession("alpha");
    const s0 = await scrape();
    // 6 tokens: sealed slot 0 (4 tokens) and a raw tail of 2, one chunk each (2 layers fit one row).
    const turn = await commit(a, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, seed), 6);
    expect(turn.chunks).toHaveLength(2);
    const s1 = await scrape();
    expect(moved(s0, s1, STORE_COUNTERS)).toEqual({
      mla_edge_chunks_written_total: 2,
      mla_edge_kv_bytes_written_total: storedBytes(turn),
      mla_edge_kv_uncompressed_bytes_written_total: 6 * 2 * BF16_PER_TOKEN_LAYER,
      mla_edge_chunk_dedupe_queries_total: 2,
      mla_edge_chunk_dedupe_hits_total: 0,
      mla_edge_dedupe_query_tokens_total: 6,
      mla_edge_dedupe_hit_tokens_total: 0,
      mla_edge_dedupe_bytes_saved_total: 0,
    });
    expect(bf16Bytes(turn)).toBe(6 * 2 * BF16_PER_TOKEN_LAYER);

    // Same tenant, same prefix: both rows exist already, nothing is written.
    const b = await createSession("alpha");
    await commit(b, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, seed), 6);
    const s2 = await scrape();
    expect(moved(s1, s2, STORE_COUNTERS)).toEqual({
      mla_edge_chunks_written_total: 0,
      mla_edge_kv_bytes_written_total: 0,
      mla_edge_kv_uncompressed_bytes_written_total: 0,
      mla_edge_chunk_dedupe_queries_total: 2,
      mla_edge_chunk_dedupe_hits_total: 2,
      mla_edge_dedupe_query_tokens_total: 6,
      mla_edge_dedupe_hit_tokens_total: 6,
      mla_edge_dedupe_bytes_saved_total: storedBytes(turn),
    });

    // Deleting b removes a session but frees no row (a still holds both).
    expect((await call(`/v1/sessions/${b.id}`, { method: "DELETE", headers: b.auth })).status).toBe(204);
    expect(moved(s2, await scrape(), evictionCounters("delete"))).toEqual({
      'mla_edge_evictions_total{reason="delete"}': 1,
      'mla_edge_evicted_chunks_total{reason="delete"}': 0,
      'mla_edge_kv_bytes_freed_total{reason="delete"}': 0,
    });
  });

  it("should count restores served with their tokens and bytes, and a mid-stream corrupt row as a restore error", async () => {
    const s = await createSession("alpha");
    const turn = await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 6);
    const s0 = await scrape();
    const full = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(full.end).not.toBeNull();
    const part = await readRestore(await call(`/v1/sessions/${s.id}/chunks?from=0&to=4`, { headers: s.auth }));
    expect(part.chunks).toHaveLength(1);
    const s1 = await scrape();
    expect(moved(s0, s1, RESTORE_COUNTERS)).toEqual({
      'mla_edge_restores_served_total{outcome="complete"}': 2,
      'mla_edge_restores_served_total{outcome="failed"}': 0,
      mla_edge_restore_bytes_total: storedBytes(turn) + turn.chunks[0].bytes.length,
      mla_edge_restore_requested_tokens_total: 6 + 4,
      mla_edge_restore_hit_tokens_total: 6 + 4,
      'mla_edge_request_errors_total{op="restore",code="corrupt_chunk"}': 0,
    });

    // Flip a byte of the second row: the stream sends slot 0 (4 tokens), then an error frame.
    const key = full.header.chunks[1].key;
    await flipStoredChunkByte("alpha", key, 0x10);
    const broken = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(broken.error?.code).toBe("corrupt_chunk");
    expect(moved(s1, await scrape(), RESTORE_COUNTERS)).toEqual({
      'mla_edge_restores_served_total{outcome="complete"}': 0,
      'mla_edge_restores_served_total{outcome="failed"}': 1,
      mla_edge_restore_bytes_total: turn.chunks[0].bytes.length,
      mla_edge_restore_requested_tokens_total: 6,
      mla_edge_restore_hit_tokens_total: 4,
      'mla_edge_request_errors_total{op="restore",code="corrupt_chunk"}': 1,
    });
  });

  it("should record a restore as one request timed to its end, with its exact body bytes", async () => {
    const s = await createSession("alpha");
    await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 6);
    const names = [
      'mla_edge_requests_total{op="restore",status="200"}',
      'mla_edge_response_bytes_total{op="restore"}',
      'mla_edge_request_duration_seconds_count{op="restore"}',
    ];
    const s0 = await scrape();
    const res = await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth });
    expect(res.status).toBe(200);
    const body = new Uint8Array(await res.arrayBuffer());
    expect(moved(s0, await scrape(), names)).toEqual({
      'mla_edge_requests_total{op="restore",status="200"}': 1,
      'mla_edge_response_bytes_total{op="restore"}': body.length,
      'mla_edge_request_duration_seconds_count{op="restore"}': 1,
    });
  });

  it("should count a truncate's freed rows, and a delete's, with their bytes", async () => {
    const s = await createSession("alpha");
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const turn1 = await commit(s, conv, 6);
    // Turn 2 (7 tokens) seals slot 1 again, fills slot 2 and leaves a tail in slot 3: three new rows only it holds.
    const turn2 = await commit(s, conv, 7);
    expect(turn2.chunks).toHaveLength(3);
    const s0 = await scrape();
    expect((await post(s, "/truncate", { toSeq: 1 })).status).toBe(200);
    const s1 = await scrape();
    expect(moved(s0, s1, evictionCounters("truncate"))).toEqual({
      'mla_edge_evictions_total{reason="truncate"}': 0,
      'mla_edge_evicted_chunks_total{reason="truncate"}': 3,
      'mla_edge_kv_bytes_freed_total{reason="truncate"}': storedBytes(turn2),
    });
    expect(bf16Bytes(turn2)).toBe(7 * 2 * BF16_PER_TOKEN_LAYER + 2 * 2 * BF16_PER_TOKEN_LAYER); // slot 1 is re-sent whole
    // The held-bytes gauges drop by exactly what was freed, uncompressed equivalent included.
    expect(moved(s0, s1, ["mla_edge_kv_bytes_stored", "mla_edge_kv_uncompressed_bytes_stored"])).toEqual({
      mla_edge_kv_bytes_stored: -storedBytes(turn2),
      mla_edge_kv_uncompressed_bytes_stored: -bf16Bytes(turn2),
    });

    expect((await call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth })).status).toBe(204);
    expect(moved(s1, await scrape(), evictionCounters("delete"))).toEqual({
      'mla_edge_evictions_total{reason="delete"}': 1,
      'mla_edge_evicted_chunks_total{reason="delete"}': 2,
      'mla_edge_kv_bytes_freed_total{reason="delete"}': storedBytes(turn1),
    });
  });

  it("should count a TTL expiry as a ttl eviction of the session and its rows", async () => {
    const s = await createSession("alpha", { ttlSeconds: 3600 });
    const turn = await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 5);
    const stub = testEnv.SESSIONS.get(testEnv.SESSIONS.idFromName(sessionObjectName("alpha", s.id)));
    const s0 = await scrape();
    // Not expired yet: the alarm only re-arms and evicts nothing.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(moved(s0, await scrape(), evictionCounters("ttl"))).toEqual(Object.fromEntries(evictionCounters("ttl").map((n) => [n, 0])));
    await runInDurableObject(stub, (_o: SessionObject, state) => {
      state.storage.sql.exec("UPDATE session SET expires_at = ?", Date.now() - 1);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(moved(s0, await scrape(), evictionCounters("ttl"))).toEqual({
      'mla_edge_evictions_total{reason="ttl"}': 1,
      'mla_edge_evicted_chunks_total{reason="ttl"}': 2,
      'mla_edge_kv_bytes_freed_total{reason="ttl"}': storedBytes(turn),
    });
  });

  it("should record each WebSocket turn as one append (with its error code), and not the upgrade", async () => {
    const s = await createSession("alpha");
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const names = [
      'mla_edge_requests_total{op="append",status="201"}',
      'mla_edge_requests_total{op="append",status="409"}',
      'mla_edge_requests_total{op="append",status="101"}',
      'mla_edge_request_errors_total{op="append",code="turn_conflict"}',
      'mla_edge_request_bytes_total{op="append"}',
      'mla_edge_request_duration_seconds_count{op="append"}',
      "mla_edge_chunks_written_total",
    ];
    const s0 = await scrape();
    const { ws, messages, waitForMessages, waitForClose } = await openTurnSocket(s);
    const t1 = conv.build(5);
    const b1 = concatFrames(t1.frames);
    ws.send(b1);
    await waitForMessages(1);
    conv.accept(t1);
    const t2 = conv.build(4);
    const b2 = concatFrames(t2.frames);
    ws.send(b2);
    await waitForMessages(2);
    conv.accept(t2);
    const stale = controlFrame(encodeAppendControl({ ...conv.build(2).control, expectedSeq: 1 }));
    ws.send(stale);
    await waitForClose();
    expect(messages[2]).toMatchObject({ error: { code: "turn_conflict" } });
    expect(moved(s0, await scrape(), names)).toEqual({
      'mla_edge_requests_total{op="append",status="201"}': 2,
      'mla_edge_requests_total{op="append",status="409"}': 1,
      'mla_edge_requests_total{op="append",status="101"}': 0,
      'mla_edge_request_errors_total{op="append",code="turn_conflict"}': 1,
      'mla_edge_request_bytes_total{op="append"}': b1.length + b2.length + stale.length,
      'mla_edge_request_duration_seconds_count{op="append"}': 3,
      mla_edge_chunks_written_total: t1.chunks.length + t2.chunks.length,
    });
  });
});
