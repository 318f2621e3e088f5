// Row packing inside workerd: the full slots of a row group that one turn uploads share one row (never above the row
// budget) on the shard of the group's anchor, also when the turn starts inside a group; restores of whole and partial
// ranges return exactly the uploaded chunks, one frame per row span; dedupe is per chunk, whatever the turn boundaries were.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { qwen25vl7bSpec } from "../../format/cache-spec.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { plannedChunkBytes } from "../../format/chunk/plan.ts";
import type { AppendResult } from "../../format/wire/messages.ts";
import { CHUNK_SHARDS } from "../../worker/keys.ts";
import { MAX_ROW_BYTES } from "../../worker/limits.ts";
import type { ChunkObject } from "../../worker/objects/chunk-object.ts";
import { chunkShardStub } from "../../worker/objects/stubs.ts";
import { rowGroupSlots } from "../../worker/row-groups.ts";
import { Conversation, type BuiltTurn } from "./helpers/conversation.ts";
import { append, call, createSession, readRestore, testEnv, type Session } from "./helpers/store.ts";

/** The benchmark's geometry: a 64-token sealed int4 slot of Qwen2.5-VL-7B at d_kv 64 is ≈ 0.4 MB, four to a row. */
const SPEC = qwen25vl7bSpec(64);
const CODEC: CodecParams = { bits: 4, group: 64, axis: "token", rope: "int4" };
const C = 64;
const G = 4;

interface Placement {
  readonly shard: number;
  readonly row: string;
  readonly at: number;
  readonly rowBytes: number;
}

/** Where each chunk lives, found in the shards' `members` tables (independently of the session's refs). */
async function placements(tenant: string, keys: readonly string[]): Promise<Placement[]> {
  const found = new Map<string, Placement>();
  for (let shard = 0; shard < CHUNK_SHARDS; shard++) {
    const rows = await runInDurableObject(chunkShardStub(testEnv, tenant, shard), (_o: ChunkObject, state) =>
      state.storage.sql
        .exec<{ chunk: string; row_key: string; at: number; size: number }>(
          "SELECT m.chunk AS chunk, m.row_key AS row_key, m.at AS at, c.size AS size FROM members m JOIN chunks c ON c.key = m.row_key",
        )
        .toArray(),
    );
    for (const r of rows) if (keys.includes(r.chunk)) found.set(r.chunk, { shard, row: r.row_key, at: r.at, rowBytes: r.size });
  }
  return keys.map((k) => {
    const p = found.get(k);
    if (p === undefined) throw new Error(`chunk ${k} is not stored`);
    return p;
  });
}

async function commit(s: Session, conv: Conversation, count: number): Promise<{ result: AppendResult; turn: BuiltTurn }> {
  const turn = conv.build(count);
  const res = await append(s, turn.frames);
  expect(res.status, await res.clone().text()).toBe(201);
  conv.accept(turn);
  return { result: (await res.json()) as AppendResult, turn };
}

async function restoreChunks(s: Session, query = "") {
  const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks${query}`, { headers: s.auth }));
  expect(r.error).toBeNull();
  return r;
}

describe("row packing", () => {
  it("should size row groups from the slot bytes: four sealed 7B slots per row, one raw slot", () => {
    const sealed = plannedChunkBytes(SPEC, { sealed: true, ...CODEC }, C);
    expect(sealed).toBeGreaterThan(MAX_ROW_BYTES / (G + 1));
    expect(sealed).toBeLessThanOrEqual(MAX_ROW_BYTES / G);
    expect(rowGroupSlots(SPEC, CODEC, "quantized", C)).toBe(G);
    // A raw (float32) slot is above half a row: one per group.
    expect(plannedChunkBytes(SPEC, { sealed: false, ...CODEC }, C)).toBeGreaterThan(MAX_ROW_BYTES / 2);
    expect(rowGroupSlots(SPEC, CODEC, "raw", C)).toBe(1);
  });

  it("should pack a turn's full slots per row group, on the shard of the group's anchor, even from inside a group", async () => {
    const tenant = "alpha";
    const s = await createSession(tenant, { chunkTokens: C }, SPEC, CODEC);
    const conv = new Conversation(SPEC, CODEC, C);
    // Turn 1: slots 0-1 full, slot 2 a raw tail. Turn 2 starts inside group 0 (slots 0-3), after its anchor and the
    // slot before it, and fills slots 2-6.
    const t1 = await commit(s, conv, 2 * C + 32);
    const t2 = await commit(s, conv, 7 * C - (2 * C + 32));
    expect([t1.result.chunksStored, t2.result.chunksStored]).toEqual([t1.turn.chunks.length, 5]);

    const restored = await restoreChunks(s);
    const refs = restored.header.chunks;
    expect(refs.map((c) => [c.slot, c.tokenCount, c.sealed])).toEqual([0, 1, 2, 3, 4, 5, 6].map((slot) => [slot, C, true]));
    // Exactly the uploaded bytes: slots 0-1 from turn 1, slots 2-6 from turn 2.
    const uploaded = [t1.turn.chunks[0], t1.turn.chunks[1], ...t2.turn.chunks].map((c) => [...c.bytes]);
    expect(restored.chunks.map((c) => [...c])).toEqual(uploaded);
    // One frame per row span: slots 0-1, 2-3 and 4-6 each arrive as a chunk run.
    expect(restored.frames).toEqual([2, 2, 3]);

    const p = await placements(tenant, refs.map((c) => c.key));
    // Group 0 (slots 0-3) on one shard: turn 2 placed slots 2-3 by slot 0's prefix, which turn 1 stored.
    expect(new Set(p.slice(0, G).map((x) => x.shard)).size).toBe(1);
    // Slots 0-1 share turn 1's row, slots 2-3 turn 2's row of group 0, slots 4-6 group 1's row.
    expect(p[1].row).toBe(p[0].row);
    expect(p[3].row).toBe(p[2].row);
    expect(p[2].row).not.toBe(p[0].row);
    expect(new Set([p[4].row, p[5].row, p[6].row]).size).toBe(1);
    expect(new Set([p[4].shard, p[5].shard, p[6].shard]).size).toBe(1);
    expect([p[0].at, p[1].at, p[2].at, p[3].at]).toEqual([0, refs[0].bytes, 0, refs[2].bytes]);
    expect(p[4].rowBytes).toBe(refs[4].bytes + refs[5].bytes + refs[6].bytes);
    for (const x of p) expect(x.rowBytes).toBeLessThanOrEqual(MAX_ROW_BYTES);

    // A range inside a row returns only its chunks, byte for byte.
    const mid = await restoreChunks(s, `?from=${5 * C + 1}&to=${6 * C}`);
    expect(mid.header.chunks.map((c) => c.slot)).toEqual([5]);
    expect(mid.chunks.map((c) => [...c])).toEqual([uploaded[5]]);
    const two = await restoreChunks(s, `?from=${3 * C}&to=${5 * C}`);
    expect(two.chunks.map((c) => [...c])).toEqual([uploaded[3], uploaded[4]]);
    expect(two.frames).toEqual([1, 1]);
  });

  it("should dedupe per chunk whatever the turn boundaries: one turn reuses the chunks another session stored in two", async () => {
    const tenant = "beta";
    const seed = 9191;
    const a = await createSession(tenant, { chunkTokens: C }, SPEC, CODEC);
    const convA = new Conversation(SPEC, CODEC, C, seed);
    await commit(a, convA, C);
    await commit(a, convA, 3 * C);
    const b = await createSession(tenant, { chunkTokens: C }, SPEC, CODEC);
    const convB = new Conversation(SPEC, CODEC, C, seed);
    const { result } = await commit(b, convB, 4 * C);
    expect([result.chunksStored, result.chunksReused]).toEqual([0, 4]);
    const ra = await restoreChunks(a);
    const rb = await restoreChunks(b);
    expect(rb.header.chunks.map((c) => c.key)).toEqual(ra.header.chunks.map((c) => c.key));
    expect(rb.chunks.map((c) => [...c])).toEqual(ra.chunks.map((c) => [...c]));
  });
});
