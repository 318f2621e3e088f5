// Session lifecycle inside workerd: fork shares rows (copy-on-write), truncate restores an earlier raw tail, delete and
// TTL release every hold and row, dedupe within a tenant but never across tenants, abandoned uploads are reaped by the
// lease alarm, corrupt rows are reported as corrupt_chunk, and WebSocket appends commit turn by turn.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { controlFrame, encodeAppendControl } from "../../format/wire/control-msgpack.ts";
import type { AppendResult, Manifest, SessionCreated } from "../../format/wire/messages.ts";
import { sessionObjectName } from "../../worker/keys.ts";
import type { ChunkObject } from "../../worker/objects/chunk-object.ts";
import type { SessionObject } from "../../worker/objects/session-object.ts";
import { chunkShardStub } from "../../worker/objects/stubs.ts";
import { concatFrames, Conversation } from "./helpers/conversation.ts";
import { append, call, createSession, errorOf, flipStoredChunkByte, openTurnSocket, readRestore, tenantChunkStats, testEnv, TINY_C, TINY_CODEC, TINY_SPEC, type Session } from "./helpers/store.ts";

const IMAGE_A = "a1".repeat(32);
const IMAGE_B = "b2".repeat(32);

async function commit(s: Session, conv: Conversation, count: number, opts = {}): Promise<AppendResult> {
  const turn = conv.build(count, opts);
  const res = await append(s, turn.frames);
  expect(res.status, await res.clone().text()).toBe(201);
  conv.accept(turn);
  return (await res.json()) as AppendResult;
}

const post = (s: { id: string; auth: Record<string, string> }, path: string, body: unknown) =>
  call(`/v1/sessions/${s.id}${path}`, { method: "POST", headers: { ...s.auth, "content-type": "application/json" }, body: JSON.stringify(body) });

async function manifest(s: Session): Promise<Manifest> {
  return (await (await call(`/v1/sessions/${s.id}`, { headers: s.auth })).json()) as Manifest;
}

async function restoreBytes(s: Session, query = ""): Promise<number[][]> {
  const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks${query}`, { headers: s.auth }));
  expect(r.error).toBeNull();
  return r.chunks.map((c) => [...c]);
}

/** Row-count tests use tenant beta and compare counts before/after within one test (tests of a file run in sequence). */
const COUNTED = "beta";

describe("dedupe and tenancy", () => {
  it("should reuse the rows of a shared prefix (system prompt + same image) within a tenant", async () => {
    const tenant = COUNTED;
    const before = await tenantChunkStats(tenant);
    const seed = 4242;
    const a = await createSession(tenant);
    const convA = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, seed);
    const ra = await commit(a, convA, 10, { image: { hash: IMAGE_A, at: 2, length: 4 } });
    expect(ra.chunksStored).toBe(3);
    const afterA = await tenantChunkStats(tenant);
    // Full slots 0 and 1 pack into one row; the raw tail of slot 2 is a row of its own (the next turn replaces it).
    expect([afterA.rows - before.rows, afterA.chunks - before.chunks]).toEqual([2, 3]);

    const b = await createSession(tenant);
    const convB = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, seed);
    const rb = await commit(b, convB, 10, { image: { hash: IMAGE_A, at: 2, length: 4 } });
    expect([rb.chunksStored, rb.chunksReused]).toEqual([0, 3]);
    const afterB = await tenantChunkStats(tenant);
    expect([afterB.rows, afterB.chunks]).toEqual([afterA.rows, afterA.chunks]);
    expect(afterB.holds - afterA.holds).toBe(2); // one per row


    // Same tokens, different image: the slots holding image tokens (and every later slot, by the chain) get new rows.
    const c = await createSession(tenant);
    const convC = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, seed);
    const rc = await commit(c, convC, 10, { image: { hash: IMAGE_B, at: 2, length: 4 } });
    expect([rc.chunksStored, rc.chunksReused]).toEqual([3, 0]);
  });

  it("should never reuse another tenant's rows for the same prefix", async () => {
    const seed = 777;
    const a = await createSession("alpha");
    await commit(a, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, seed), 8);
    const betaBefore = await tenantChunkStats("beta");
    const b = await createSession("beta");
    const r = await commit(b, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, seed), 8);
    expect([r.chunksStored, r.chunksReused]).toEqual([2, 0]);
    const betaAfter = await tenantChunkStats("beta");
    expect([betaAfter.rows - betaBefore.rows, betaAfter.chunks - betaBefore.chunks]).toEqual([1, 2]);
    const keysA = (await readRestore(await call(`/v1/sessions/${a.id}/chunks`, { headers: a.auth }))).header.chunks.map((c) => c.key);
    const keysB = (await readRestore(await call(`/v1/sessions/${b.id}/chunks`, { headers: b.auth }))).header.chunks.map((c) => c.key);
    expect(keysA.every((k) => /^[0-9a-f]{64}$/.test(k))).toBe(true);
    expect(keysA.filter((k) => keysB.includes(k))).toEqual([]);
  });
});

describe("fork, truncate, delete", () => {
  it("should fork at a turn sharing the parent's rows (no new rows), then diverge", async () => {
    const tenant = COUNTED;
    const s = await createSession(tenant);
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    await commit(s, conv, 6);
    await commit(s, conv, 5);
    const before = await tenantChunkStats(tenant);
    const res = await post(s, "/fork", { atSeq: 1 });
    expect(res.status).toBe(201);
    const forkCreated = (await res.json()) as SessionCreated;
    const fork: Session = { ...forkCreated, tenant, auth: { authorization: `Bearer ${forkCreated.token}` } };
    const after = await tenantChunkStats(tenant);
    expect(after.rows).toBe(before.rows);
    expect(after.holds - before.holds).toBe(2); // turn 1's two rows: sealed slot 0 and the raw tail of slot 1

    const fm = await manifest(fork);
    expect([fm.head, fm.tokens, fm.parent]).toEqual([1, 6, { id: s.id, seq: 1 }]);
    // The fork restores turn 1's raw tail (slot 1 with 2 tokens), the parent its sealed slot 1.
    const forkChunks = await readRestore(await call(`/v1/sessions/${fork.id}/chunks`, { headers: fork.auth }));
    expect(forkChunks.header.chunks.map((c) => [c.slot, c.tokenCount, c.sealed])).toEqual([
      [0, 4, true],
      [1, 2, false],
    ]);

    // Diverge: the fork (same history as the parent's turn 1) appends its own turn 2; the parent is unchanged.
    const parentBytes = await restoreBytes(s);
    const forkConv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, conv.seed);
    forkConv.accept(forkConv.build(6));
    const turn = forkConv.build(3, { ids: [1, 2, 3] });
    expect((await append(fork, turn.frames)).status).toBe(201);
    expect(await restoreBytes(s)).toEqual(parentBytes);

    // Deleting the parent keeps the fork whole: its holds keep the shared rows.
    expect((await call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth })).status).toBe(204);
    const again = await readRestore(await call(`/v1/sessions/${fork.id}/chunks`, { headers: fork.auth }));
    expect(again.error).toBeNull();
    expect(again.header.chunks.map((c) => [c.slot, c.tokenCount])).toEqual([
      [0, 4],
      [1, 4],
      [2, 1],
    ]);
  });

  it("should truncate to a turn, restoring its raw tail, and release rows only the dropped turns held", async () => {
    const tenant = COUNTED;
    const s = await createSession(tenant);
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    await commit(s, conv, 6);
    const afterTurn1 = await restoreBytes(s);
    const rowsAfter1 = await tenantChunkStats(tenant);
    await commit(s, conv, 7);
    const rowsAfter2 = await tenantChunkStats(tenant);
    // Sealed slots 1 and 2 in one row, the raw tail of slot 3 in another.
    expect([rowsAfter2.rows - rowsAfter1.rows, rowsAfter2.chunks - rowsAfter1.chunks]).toEqual([2, 3]);
    const res = await post(s, "/truncate", { toSeq: 1 });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ head: 1, tokens: 6 });
    expect(await restoreBytes(s)).toEqual(afterTurn1);
    expect(await tenantChunkStats(tenant)).toEqual(rowsAfter1);

    // Regenerate: a different turn 2 appends cleanly after the truncation.
    const regen = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, conv.seed);
    const t1 = regen.build(6);
    regen.accept(t1);
    const t2 = regen.build(2, { ids: [5, 6] });
    expect((await append(s, t2.frames)).status).toBe(201);
    expect((await manifest(s)).tokens).toBe(8);
  });

  it("should delete a session with all its holds and unshared rows", async () => {
    const tenant = COUNTED;
    const before = await tenantChunkStats(tenant);
    const s = await createSession(tenant);
    await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 9);
    const after = await tenantChunkStats(tenant);
    expect([after.rows - before.rows, after.chunks - before.chunks]).toEqual([2, 3]);
    expect((await call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth })).status).toBe(204);
    expect(await tenantChunkStats(tenant)).toEqual(before);
    expect((await call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth })).status).toBe(404);
  });
});

describe("TTL and leases", () => {
  it("should delete everything when the TTL alarm fires after expiry, and extend the TTL on access", async () => {
    const tenant = COUNTED;
    const before = await tenantChunkStats(tenant);
    const s = await createSession(tenant, { ttlSeconds: 3600 });
    await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 5);
    const stub = testEnv.SESSIONS.get(testEnv.SESSIONS.idFromName(sessionObjectName(tenant, s.id)));
    // Not yet expired: the alarm only re-arms.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await manifest(s)).head).toBe(1);
    // Move the expiry into the past (as if an hour had passed without access), then fire the alarm.
    await runInDurableObject(stub, (_o: SessionObject, state) => {
      state.storage.sql.exec("UPDATE session SET expires_at = ?", Date.now() - 1);
    });
    expect((await call(`/v1/sessions/${s.id}`, { headers: s.auth })).status).toBe(404);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await tenantChunkStats(tenant)).toEqual(before);
    const leftover = await runInDurableObject(stub, (_o: SessionObject, state) =>
      state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'").toArray(),
    );
    expect(leftover).toEqual([]);
  });

  it("should extend expiresAt on access", async () => {
    const s = await createSession("alpha", { ttlSeconds: 1000 });
    const stub = testEnv.SESSIONS.get(testEnv.SESSIONS.idFromName(sessionObjectName("alpha", s.id)));
    await runInDurableObject(stub, (_o: SessionObject, state) => {
      state.storage.sql.exec("UPDATE session SET expires_at = ?", Date.now() + 10_000);
    });
    const m = await manifest(s);
    expect(m.expiresAt).toBeGreaterThan(Date.now() + 900_000);
    expect(await runInDurableObject(stub, (_o: SessionObject, state) => state.storage.getAlarm())).toBe(m.expiresAt);
  });

  it("should reap the rows of an abandoned upload when its lease expires", async () => {
    const tenant = COUNTED;
    const before = await tenantChunkStats(tenant);
    const key = "0".repeat(63) + "1";
    const target = chunkShardStub(testEnv, tenant, 0);
    await runInDurableObject(target, (o: ChunkObject) => o.putChunks([{ key, bytes: new Uint8Array([1, 2, 3]), uncompressed: 0 }], "some-session", "upload:x", Date.now() + 60_000));
    expect((await tenantChunkStats(tenant)).rows - before.rows).toBe(1);
    // The upload never commits; move its lease into the past (as if 15 minutes had passed) and fire the alarm.
    await runInDurableObject(target, (_o: ChunkObject, state) => {
      state.storage.sql.exec("UPDATE holds SET expires_at = ? WHERE tag = 'upload:x'", Date.now() - 1);
    });
    expect(await runDurableObjectAlarm(target)).toBe(true);
    expect(await tenantChunkStats(tenant)).toEqual(before);
  });
});

describe("corruption", () => {
  const corrupt = (tenant: string, key: string) => flipStoredChunkByte(tenant, key);

  it("should report a flipped byte as corrupt_chunk: 500 JSON for the first chunk, an error frame later, never the data", async () => {
    const tenant = "alpha";
    const s = await createSession(tenant);
    await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 10);
    const keys = (await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }))).header.chunks.map((c) => c.key);
    await corrupt(tenant, keys[1]);
    const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(r.chunks).toHaveLength(1);
    expect(r.error).toMatchObject({ code: "corrupt_chunk", reason: "checksum_mismatch" });
    expect(r.end).toBeNull();

    await corrupt(tenant, keys[0]);
    const first = await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth });
    expect(first.status).toBe(500);
    expect(await errorOf(first)).toMatchObject({ code: "corrupt_chunk" });
  });
});

describe("WebSocket append", () => {
  it("should commit turn after turn from binary frames and report errors with a close code", async () => {
    const s = await createSession("alpha");
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const { ws, messages, closed, waitForMessages: waitFor, waitForClose } = await openTurnSocket(s);

    const t1 = conv.build(5);
    // Split one turn across messages at odd offsets: framing is a byte stream.
    const body = concatFrames(t1.frames);
    ws.send(body.slice(0, 7));
    ws.send(body.slice(7));
    await waitFor(1);
    expect(messages[0]).toMatchObject({ seq: 1, tokenCount: 5 });
    conv.accept(t1);
    const t2 = conv.build(4);
    for (const f of t2.frames) ws.send(f);
    await waitFor(2);
    expect(messages[1]).toMatchObject({ seq: 2, tokenStart: 5 });
    conv.accept(t2);

    // A stale seq: error message then close 4409.
    ws.send(controlFrame(encodeAppendControl({ ...conv.build(2).control, expectedSeq: 1 })));
    await waitFor(3);
    expect(messages[2]).toMatchObject({ error: { code: "turn_conflict" } });
    await waitForClose();
    expect(closed()).toMatchObject({ code: 4409 });
    expect((await manifest(s)).head).toBe(2);
  });

  it("should refuse a WebSocket append without a token", async () => {
    const s = await createSession("alpha");
    const res = await call(`/v1/sessions/${s.id}/turns/ws`, { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(401);
  });
});
