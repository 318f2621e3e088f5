// Issue 16: a cache must never be served wrong. The race windows of fork, append and delete are hit on purpose by
// holding one request at a named step (worker/testing/pause-points.ts) while another runs; plus the interrupted delete,
// `?token=` outside the WebSocket route and ids that are not well-formed UTF-16.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { FRAMES_WS_PROTOCOL } from "../../format/wire/frames.ts";
import type { Manifest, SessionCreated } from "../../format/wire/messages.ts";
import { CHUNK_SHARDS, sessionObjectName } from "../../worker/keys.ts";
import type { ChunkObject } from "../../worker/objects/chunk-object.ts";
import { DELETE_RETRY_MS } from "../../worker/objects/session/delete.ts";
import type { SessionObject } from "../../worker/objects/session-object.ts";
import { chunkShardStub } from "../../worker/objects/stubs.ts";
import { setPauseHook, type PausePoint } from "../../worker/testing/pause-points.ts";
import { Conversation } from "./helpers/conversation.ts";
import { append, call, createSession, errorOf, readRestore, tenantChunkStats, testEnv, TENANT_KEYS, TINY_C, TINY_CODEC, TINY_SPEC, type Session } from "./helpers/store.ts";

/** Tenant of the tests that compare row/hold counts before and after (no other file's sessions run meanwhile). */
const TENANT = "beta";

interface Held {
  /** Resolves once a request of the session reached the step (it waits there). */
  readonly reached: Promise<void>;
  /** Lets it go on. */
  release(): void;
}

// Flags polled with timers on both sides, never a promise resolved across requests: workerd runs a continuation in the
// I/O context of whoever resolved the promise, so a Durable Object released by the test would go on in the test's.
const holds = new Map<string, { reached: boolean; released: boolean }>();

const poll = async (done: () => boolean): Promise<void> => {
  while (!done()) await new Promise((r) => setTimeout(r, 2));
};

/** Holds the next request of `sessionId` that reaches `point`, until release(). */
function holdAt(point: PausePoint, sessionId: string): Held {
  const h = { reached: false, released: false };
  holds.set(`${point} ${sessionId}`, h);
  setPauseHook(async (p, id) => {
    const mine = holds.get(`${p} ${id}`);
    if (mine === undefined || mine.reached) return;
    mine.reached = true;
    await poll(() => mine.released);
  });
  return {
    reached: poll(() => h.reached),
    release: () => {
      h.released = true;
    },
  };
}

afterEach(() => {
  holds.clear();
  setPauseHook(null);
});

const post = (s: { id: string; auth: Record<string, string> }, path: string, body: unknown) =>
  call(`/v1/sessions/${s.id}${path}`, { method: "POST", headers: { ...s.auth, "content-type": "application/json" }, body: JSON.stringify(body) });

async function commit(s: Session, conv: Conversation, count: number, ids?: number[]): Promise<void> {
  const turn = conv.build(count, ids === undefined ? {} : { ids });
  const res = await append(s, turn.frames);
  expect(res.status, await res.clone().text()).toBe(201);
  conv.accept(turn);
}

const sessionStubOf = (s: Session) => testEnv.SESSIONS.get(testEnv.SESSIONS.idFromName(sessionObjectName(s.tenant, s.id)));

describe("fork racing a truncate and re-append of the parent (defect 1)", () => {
  it("should answer 409 when a row the fork holds was re-created with other chunks at the refs' offsets", async () => {
    const before = await tenantChunkStats(TENANT);
    const p = await createSession(TENANT);
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const ids = Array.from({ length: 8 }, (_, i) => 5000 + i + conv.seed);
    await commit(p, conv, 8, ids); // slots 0 and 1, sealed, packed into one row keyed by slot 0's chunk
    const original = (await readRestore(await call(`/v1/sessions/${p.id}/chunks`, { headers: p.auth }))).header.chunks.map((c) => c.key);

    const held = holdAt("fork.afterSnapshot", p.id);
    const fork = post(p, "/fork", { atSeq: 1 });
    await held.reached;
    // Meanwhile the parent drops turn 1 (its row is freed) and appends it again: same slot 0, another slot 1. The new
    // row has slot 0's key again, but another chunk at slot 1's offset.
    expect((await post(p, "/truncate", { toSeq: 0 })).status).toBe(200);
    const again = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, conv.seed);
    await commit(p, again, 8, [...ids.slice(0, 4), 9, 8, 7, 6]);
    const now = (await readRestore(await call(`/v1/sessions/${p.id}/chunks`, { headers: p.auth }))).header.chunks.map((c) => c.key);
    expect(now[0]).toBe(original[0]);
    expect(now[1]).not.toBe(original[1]);
    held.release();

    const res = await fork;
    expect(res.status, await res.clone().text()).toBe(409);
    expect(await errorOf(res)).toMatchObject({ code: "turn_conflict", reason: "parent_changed" });
    // The undone fork holds nothing: deleting the parent leaves the tenant as it was.
    expect((await call(`/v1/sessions/${p.id}`, { method: "DELETE", headers: p.auth })).status).toBe(204);
    const after = await tenantChunkStats(TENANT);
    expect([after.rows, after.holds, after.leasedHolds]).toEqual([before.rows, before.holds, before.leasedHolds]);
  });

  it("should still fork when the parent's rows did not move meanwhile", async () => {
    const p = await createSession(TENANT);
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    await commit(p, conv, 8);
    const held = holdAt("fork.afterSnapshot", p.id);
    const fork = post(p, "/fork", { atSeq: 1 });
    await held.reached;
    await commit(p, conv, 3); // a later turn: turn 1's rows stay where they are
    held.release();
    const res = await fork;
    expect(res.status).toBe(201);
    const child = (await res.json()) as SessionCreated;
    const restoredChild = await readRestore(await call(`/v1/sessions/${child.id}/chunks`, { headers: { authorization: `Bearer ${child.token}` } }));
    const restoredParent = await readRestore(await call(`/v1/sessions/${p.id}/chunks?to=8`, { headers: p.auth }));
    expect(restoredChild.error).toBeNull();
    expect(restoredChild.chunks.map((c) => [...c])).toEqual(restoredParent.chunks.map((c) => [...c]));
  });
});

/** Expires the leased holds of `holder` on every shard of `tenant` and runs the shards' alarms (what a lease end does). */
async function expireUploadLeases(tenant: string, holder: string): Promise<number> {
  let expired = 0;
  for (let s = 0; s < CHUNK_SHARDS; s++) {
    const stub = chunkShardStub(testEnv, tenant, s);
    const n = await runInDurableObject(stub, async (_o: ChunkObject, state) => {
      const rows = state.storage.sql.exec("UPDATE holds SET expires_at = 1 WHERE holder = ? AND expires_at IS NOT NULL RETURNING key", holder).toArray().length;
      if (rows > 0) await state.storage.setAlarm(Date.now() + 60_000);
      return rows;
    });
    if (n > 0) await runDurableObjectAlarm(stub);
    expired += n;
  }
  return expired;
}

describe("an append slower than its upload lease (defect 2)", () => {
  it("should refuse the turn (409 upload_lease_expired) when its rows were reaped before the commit, never 201", async () => {
    const before = await tenantChunkStats(TENANT);
    const s = await createSession(TENANT);
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const turn = conv.build(10);
    const held = holdAt("append.beforeConfirm", s.id);
    const res = append(s, turn.frames);
    await held.reached;
    expect(await expireUploadLeases(TENANT, s.id)).toBeGreaterThan(0);
    held.release();
    const r = await res;
    expect(r.status, await r.clone().text()).toBe(409);
    expect(await errorOf(r)).toMatchObject({ code: "turn_conflict", reason: "upload_lease_expired" });
    const m = (await (await call(`/v1/sessions/${s.id}`, { headers: s.auth })).json()) as Manifest;
    expect([m.head, m.tokens]).toEqual([0, 0]);
    // Appended again, the turn restores whole.
    const retry = await append(s, turn.frames);
    expect(retry.status).toBe(201);
    const restored = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(restored.error).toBeNull();
    expect(restored.chunks).toHaveLength(3);
    expect((await call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth })).status).toBe(204);
    const after = await tenantChunkStats(TENANT);
    expect([after.rows, after.holds]).toEqual([before.rows, before.holds]);
  });

  it("should extend the lease of an upload's earlier rows on a shard as its later batches arrive there (put and renew)", async () => {
    const stub = chunkShardStub(testEnv, TENANT, 7);
    const holder = `lease-test-${crypto.randomUUID()}`;
    const tag = "upload:lease-test";
    const chunk = (n: number) => ({ key: `${n.toString(16).padStart(2, "0")}${"e".repeat(62)}${holder}`, bytes: new Uint8Array(64).fill(n), uncompressed: 256 });
    const t0 = Date.now();
    const leases = () =>
      runInDurableObject(stub, (_o: ChunkObject, state) =>
        state.storage.sql.exec<{ e: number }>("SELECT expires_at AS e FROM holds WHERE holder = ? ORDER BY key", holder).toArray().map((r) => r.e),
      );
    await runInDurableObject(stub, (o: ChunkObject) => o.putChunks([chunk(1)], holder, tag, t0 + 1_000));
    // A later batch of the same upload: the first row's lease now runs to the later batch's end as well.
    await runInDurableObject(stub, (o: ChunkObject) => o.putChunks([chunk(2)], holder, tag, t0 + 900_000));
    expect(await leases()).toEqual([t0 + 900_000, t0 + 900_000]);
    // renew (the other shards of a long upload) moves every leased hold of the upload forward, never back.
    expect(await runInDurableObject(stub, (o: ChunkObject) => o.renew(holder, tag, t0 + 1_800_000))).toBe(2);
    expect(await runInDurableObject(stub, (o: ChunkObject) => o.renew(holder, tag, t0 + 5_000))).toBe(0);
    expect(await leases()).toEqual([t0 + 1_800_000, t0 + 1_800_000]);
    // confirm is all or nothing: a row whose hold is gone fails it and leaves the others leased.
    const lost = await runInDurableObject(stub, (o: ChunkObject) => o.confirm(holder, tag, [chunk(1).key, "f".repeat(64)]));
    expect(lost).toEqual(["f".repeat(64)]);
    expect(await leases()).toEqual([t0 + 1_800_000, t0 + 1_800_000]);
    await runInDurableObject(stub, (o: ChunkObject) => o.release(holder, null));
  });
});

describe("an append committing while a DELETE runs (defect 3)", () => {
  it("should answer 404 and release its holds when the session is being deleted at commit time", async () => {
    const before = await tenantChunkStats(TENANT);
    const s = await createSession(TENANT);
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    await commit(s, conv, 5);
    const turn = conv.build(7);
    const upload = holdAt("append.beforeUpload", s.id);
    const res = append(s, turn.frames);
    await upload.reached;
    const deleting = holdAt("delete.afterRelease", s.id);
    const del = call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth });
    await deleting.reached;
    // The DELETE released every hold of the session; the append now uploads, confirms and tries to commit.
    upload.release();
    const r = await res;
    deleting.release();
    expect((await del).status).toBe(204);
    expect(r.status, await r.clone().text()).toBe(404);
    const after = await tenantChunkStats(TENANT);
    expect([after.rows, after.holds, after.leasedHolds]).toEqual([before.rows, before.holds, before.leasedHolds]);
  });
});

describe("a DELETE cut short (defect 4)", () => {
  it("should arm a short alarm before releasing holds, and let a retried DELETE finish an interrupted one (204)", async () => {
    const before = await tenantChunkStats(TENANT);
    const s = await createSession(TENANT);
    await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 9);
    const stub = sessionStubOf(s);

    const held = holdAt("delete.afterMark", s.id);
    const del = call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth });
    await held.reached;
    const alarm = await runInDurableObject(stub, (_o: SessionObject, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(alarm ?? Infinity).toBeLessThanOrEqual(Date.now() + DELETE_RETRY_MS);
    held.release();
    expect((await del).status).toBe(204);

    // A crash after the mark leaves a "deleting" session with its holds: here made by hand, as the crash would.
    const t = await createSession(TENANT);
    await commit(t, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 9);
    await runInDurableObject(sessionStubOf(t), (_o: SessionObject, state) => {
      state.storage.sql.exec("UPDATE session SET state = 'deleting'");
    });
    expect((await call(`/v1/sessions/${t.id}`, { headers: t.auth })).status).toBe(404);
    expect((await call(`/v1/sessions/${t.id}`, { method: "DELETE", headers: t.auth })).status).toBe(204);
    expect((await call(`/v1/sessions/${t.id}`, { method: "DELETE", headers: t.auth })).status).toBe(404);
    const after = await tenantChunkStats(TENANT);
    expect([after.rows, after.holds]).toEqual([before.rows, before.holds]);
  });
});

describe("?token= outside the WebSocket route (defect 5)", () => {
  it("should ignore ?token= on every session route but /turns/ws, even with Upgrade: websocket", async () => {
    const s = await createSession();
    await commit(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C), 5);
    for (const path of ["", "/chunks"]) {
      for (const headers of [{ upgrade: "websocket" }, {}] as Array<Record<string, string>>) {
        const res = await call(`/v1/sessions/${s.id}${path}?token=${s.token}`, { headers });
        expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        expect((await errorOf(res)).code).toBe("unauthorized");
      }
    }
    const fork = await call(`/v1/sessions/${s.id}/fork?token=${s.token}`, {
      method: "POST",
      headers: { upgrade: "websocket", "content-type": "application/json" },
      body: JSON.stringify({ atSeq: 1 }),
    });
    expect(fork.status).toBe(401);
    const ws = await call(`/v1/sessions/${s.id}/turns/ws?token=${s.token}`, { headers: { upgrade: "websocket", "sec-websocket-protocol": FRAMES_WS_PROTOCOL } });
    expect(ws.status).toBe(101);
    ws.webSocket?.accept();
    ws.webSocket?.close(1000, "done");
  });
});

describe("ids that are not well-formed UTF-16 (defect 6)", () => {
  const create = (model: { id: string; conversion: string }) =>
    call("/v1/sessions", {
      method: "POST",
      headers: { authorization: `Bearer ${TENANT_KEYS.alpha}`, "content-type": "application/json" },
      body: JSON.stringify({ spec: TINY_SPEC, codec: TINY_CODEC, model, chunkTokens: TINY_C }),
    });

  it("should refuse a lone surrogate in model.id or model.conversion with 400 bad_request", async () => {
    for (const model of [
      { id: "m\ud800", conversion: "c" },
      { id: "m\udc00", conversion: "c" },
      { id: "\udc00\ud800", conversion: "c" },
      { id: "m", conversion: "c\ud800" },
    ]) {
      const res = await create(model);
      expect(res.status, JSON.stringify(model)).toBe(400);
      expect(await errorOf(res)).toMatchObject({ code: "bad_request", reason: "ill_formed_text" });
    }
    // U+FFFD itself and a proper pair are well-formed ids.
    expect((await create({ id: "m\ufffd", conversion: "c" })).status).toBe(201);
    expect((await create({ id: "m\ud83d\ude00", conversion: "c" })).status).toBe(201);
  });
});
