// Turns of any length (issue 20 item 2) inside workerd: a turn longer than one request (8,192 tokens) is appended in
// parts — every part but the last staged (`final: false`, answered 202 with its `stage`), the last committing them all
// as one turn — and no reader ever sees half of it: restore, manifest and fork between parts see the previous turn
// only; a part that fails, a quota refusal or an abandoned upload leaves nothing (staged rows and chunk holds) once its
// lease ends; concurrent writers still conflict (turn_conflict).
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { controlFrame, encodeAppendControl } from "../../format/wire/control-msgpack.ts";
import { encodeFrame, FrameType } from "../../format/wire/frames.ts";
import { MAX_TURN_TOKENS } from "../../format/wire/limits.ts";
import type { AppendControl, AppendResult, AppendStaged, Manifest, MediaSpan, SessionCreated } from "../../format/wire/messages.ts";
import { CHUNK_SHARDS, sessionObjectName } from "../../worker/keys.ts";
import type { ChunkObject } from "../../worker/objects/chunk-object.ts";
import type { SessionObject } from "../../worker/objects/session-object.ts";
import { chunkShardStub } from "../../worker/objects/stubs.ts";
import { Conversation, type BuiltTurn } from "./helpers/conversation.ts";
import { append, call, createSession, errorOf, openTurnSocket, readRestore, tenantChunkStats, testEnv, TINY_CODEC, TINY_SPEC, type Session } from "./helpers/store.ts";

const C = 64;
const IMAGE = "cd".repeat(32);

/** The frames of the part of `turn` covering session tokens [from, to): its control (cut media spans keep their offset) and the chunks of its slots. */
function part(turn: BuiltTurn, turnStart: number, from: number, to: number, extra: Partial<AppendControl>): Uint8Array[] {
  const c = turn.control;
  const i0 = from - turnStart;
  const i1 = to - turnStart;
  const media: MediaSpan[] = [];
  for (const m of c.media ?? []) {
    const a = Math.max(m.start, from);
    const b = Math.min(m.start + m.length, to);
    if (a < b) media.push({ hash: m.hash, start: a, length: b - a, offset: (m.offset ?? 0) + a - m.start });
  }
  const control: AppendControl = { expectedSeq: c.expectedSeq, tokenIds: c.tokenIds.slice(i0, i1), modality: c.modality.slice(i0, i1), positions: c.positions.slice(3 * i0, 3 * i1), media, ...extra };
  // The first part also carries the slot it starts inside (re-covered from its first token); later parts start at slot boundaries.
  const chunks = turn.chunks.filter((k) => (from === turnStart ? k.tokenStart < to : k.tokenStart >= from && k.tokenStart < to));
  return [controlFrame(encodeAppendControl(control)), ...chunks.map((k) => encodeFrame(FrameType.chunk, k.bytes))];
}

async function stagePart(s: Session, frames: Uint8Array[], withEnv = {}): Promise<AppendStaged> {
  const res = await append(s, frames, withEnv);
  expect(res.status, await res.clone().text()).toBe(202);
  return (await res.json()) as AppendStaged;
}

async function manifest(s: Session): Promise<Manifest> {
  return (await (await call(`/v1/sessions/${s.id}`, { headers: s.auth })).json()) as Manifest;
}

const sessionStub = (s: Session) => testEnv.SESSIONS.get(testEnv.SESSIONS.idFromName(sessionObjectName(s.tenant, s.id)));

/** Rows of the staged tables of a session (0 and 0 once nothing of a staged turn is left). */
function stagedRows(s: Session): Promise<{ parts: number; refs: number }> {
  return runInDurableObject(sessionStub(s), (_o: SessionObject, state) => {
    const sql = state.storage.sql;
    return {
      parts: sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM staged_parts").one().n,
      refs: sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM staged_refs").one().n,
    };
  });
}

/** What a lease end does: the shards' leased holds of this session expire and their alarms reap them; the session's staged lease expires and its alarm drops it. */
async function endLeases(s: Session): Promise<void> {
  for (let shard = 0; shard < CHUNK_SHARDS; shard++) {
    const stub = chunkShardStub(testEnv, s.tenant, shard);
    const n = await runInDurableObject(stub, async (_o: ChunkObject, state) => {
      const rows = state.storage.sql.exec("UPDATE holds SET expires_at = 1 WHERE holder = ? AND expires_at IS NOT NULL RETURNING key", s.id).toArray().length;
      if (rows > 0) await state.storage.setAlarm(Date.now() + 60_000);
      return rows;
    });
    if (n > 0) await runDurableObjectAlarm(stub);
  }
  await runInDurableObject(sessionStub(s), (_o: SessionObject, state) => {
    state.storage.sql.exec("UPDATE staged_parts SET lease_until = 1");
  });
  await runDurableObjectAlarm(sessionStub(s));
}

/** A session with one short turn (5 tokens: the long turn starts inside slot 0), and a long turn of `tokens` built on it. */
async function withLongTurn(tenant: "alpha" | "beta", tokens: number): Promise<{ s: Session; conv: Conversation; first: BuiltTurn; long: BuiltTurn }> {
  const s = await createSession(tenant, { chunkTokens: C });
  const conv = new Conversation(TINY_SPEC, TINY_CODEC, C);
  const first = conv.build(5);
  expect((await append(s, first.frames)).status).toBe(201);
  conv.accept(first);
  // An image across the first part boundary (tokens 8,000–8,299 of the session), so a media span is cut in two.
  const long = conv.build(tokens, { image: { hash: IMAGE, at: 8000 - 5, length: 300 } });
  return { s, conv, first, long };
}

describe("a turn longer than one request", () => {
  it("should round-trip a turn of 3× the per-request limit bit-exactly, and show none of it between parts", async () => {
    const n = 3 * MAX_TURN_TOKENS + 100;
    const { s, first, long } = await withLongTurn("alpha", n);
    const end = 5 + n;
    // Parts end at slot boundaries, each ≤ 8,192 tokens: [5, 8192), [8192, 16384), [16384, 24576), [24576, end).
    const cuts = [5, 8192, 16384, 24576, end];
    const beforeRestore = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    let stage: string | undefined;
    for (let i = 0; i < 3; i++) {
      const staged = await stagePart(s, part(long, 5, cuts[i], cuts[i + 1], { final: false, ...(stage ? { stage } : {}) }));
      expect(staged).toMatchObject({ staged: true, seq: 2, tokenStart: 5, tokenCount: cuts[i + 1] - 5 });
      stage = staged.stage;
      // Between parts a reader sees the previous turn only: manifest, restore (same bytes) and a fork.
      const m = await manifest(s);
      expect([m.head, m.tokens, m.turns.length]).toEqual([1, 5, 1]);
      const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
      expect(r.header).toMatchObject({ head: 1, tokens: 5 });
      expect(r.chunks.map((c) => [...c])).toEqual(beforeRestore.chunks.map((c) => [...c]));
      expect(r.chunks.map((c) => [...c])).toEqual(first.chunks.map((c) => [...c.bytes]));
    }
    const fork = await call(`/v1/sessions/${s.id}/fork`, { method: "POST", headers: { ...s.auth, "content-type": "application/json" }, body: JSON.stringify({ atSeq: 1 }) });
    expect(fork.status).toBe(201);
    const child = (await fork.json()) as SessionCreated;
    expect(await stagedRows(s)).toMatchObject({ parts: 3 });

    const res = await append(s, part(long, 5, cuts[3], cuts[4], { stage }));
    expect(res.status, await res.clone().text()).toBe(201);
    const result = (await res.json()) as AppendResult;
    expect(result).toMatchObject({ seq: 2, tokenStart: 5, tokenCount: n, chunksStored: long.chunks.length, bytes: long.chunks.reduce((a, c) => a + c.bytes.length, 0) });
    const m = await manifest(s);
    expect([m.head, m.tokens, m.turns.map((t) => t.tokenCount)]).toEqual([2, end, [5, n]]);
    expect(m.nextPosition).toBe(result.nextPosition);
    // The long turn re-covers slot 0, so the whole session restores as exactly its chunks, in order, bit for bit.
    const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(r.end).toMatchObject({ done: true, chunks: long.chunks.length });
    expect(r.chunks.length).toBe(long.chunks.length);
    const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
    expect(r.chunks.every((c, i) => same(c, long.chunks[i].bytes))).toBe(true);
    expect(await stagedRows(s)).toEqual({ parts: 0, refs: 0 });
    // The fork taken between parts holds turn 1 only.
    const cm = (await (await call(`/v1/sessions/${child.id}`, { headers: { authorization: `Bearer ${child.token}` } })).json()) as Manifest;
    expect([cm.head, cm.tokens]).toEqual([1, 5]);
  });

  it("should leave nothing of an abandoned multi-part turn once its lease ends", async () => {
    const { s, long: built } = await withLongTurn("beta", 2 * MAX_TURN_TOKENS - 100);
    const before = await tenantChunkStats("beta");
    const a = await stagePart(s, part(built, 5, 5, 8192, { final: false }));
    await stagePart(s, part(built, 5, 8192, 12288, { final: false, stage: a.stage }));
    const during = await tenantChunkStats("beta");
    expect(during.leasedHolds).toBeGreaterThan(before.leasedHolds);
    expect(during.bytes).toBeGreaterThan(before.bytes); // staged chunks are stored (and count against the quota)
    await endLeases(s);
    expect(await stagedRows(s)).toEqual({ parts: 0, refs: 0 });
    expect(await tenantChunkStats("beta")).toEqual(before);
    // The uploader coming back gets a conflict naming the lost stage; the session is unchanged.
    const late = await append(s, part(built, 5, 12288, 5 + built.control.tokenIds.length, { stage: a.stage }));
    expect(late.status).toBe(409);
    expect(await errorOf(late)).toMatchObject({ code: "turn_conflict", reason: "stage_unknown" });
    expect((await manifest(s)).head).toBe(1);
  });

  it("should refuse an over-quota part with nothing of the staged turn left", async () => {
    const { s, long: built } = await withLongTurn("beta", 2 * MAX_TURN_TOKENS - 100);
    const before = await tenantChunkStats("beta");
    // Room for the first part only: the quota is read before each part's upload.
    const quota = { TENANT_QUOTAS: JSON.stringify({ beta: before.bytes + 1 }) };
    const a = await stagePart(s, part(built, 5, 5, 8192, { final: false }), quota);
    const res = await append(s, part(built, 5, 8192, 5 + built.control.tokenIds.length, { stage: a.stage }), quota);
    expect(res.status).toBe(413);
    expect(await errorOf(res)).toMatchObject({ code: "too_large", reason: "tenant_quota" });
    expect(await stagedRows(s)).toEqual({ parts: 0, refs: 0 });
    expect(await tenantChunkStats("beta")).toEqual(before);
    expect((await manifest(s)).head).toBe(1);
  });

  it("should keep concurrent writers exclusive: a newer first part replaces a staged turn, a committed turn ends it", async () => {
    const { s, conv, long: built } = await withLongTurn("alpha", 2 * MAX_TURN_TOKENS - 100);
    const endTok = 5 + built.control.tokenIds.length;
    const a = await stagePart(s, part(built, 5, 5, 8192, { final: false }));
    const b = await stagePart(s, part(built, 5, 5, 8192, { final: false }));
    expect(b.stage).not.toBe(a.stage);
    // A's next part: its staged turn was replaced.
    const lateA = await append(s, part(built, 5, 8192, endTok, { stage: a.stage }));
    expect([lateA.status, (await errorOf(lateA)).reason]).toEqual([409, "stage_unknown"]);
    // A one-request turn commits over B's staged turn (head 1 → 2); B's last part then conflicts and nothing of B stays.
    expect((await append(s, conv.build(95).frames)).status).toBe(201);
    const lateB = await append(s, part(built, 5, 8192, endTok, { stage: b.stage }));
    expect(lateB.status).toBe(409);
    expect((await errorOf(lateB)).code).toBe("turn_conflict");
    expect(await stagedRows(s)).toEqual({ parts: 0, refs: 0 });
    const m = await manifest(s);
    expect([m.head, m.tokens]).toEqual([2, 100]);
  });

  it("should drop a staged turn whose session was truncated under it, at its next part", async () => {
    const { s, long: built } = await withLongTurn("beta", 2 * MAX_TURN_TOKENS - 100);
    const before = await tenantChunkStats("beta");
    const a = await stagePart(s, part(built, 5, 5, 8192, { final: false }));
    const t = await call(`/v1/sessions/${s.id}/truncate`, { method: "POST", headers: { ...s.auth, "content-type": "application/json" }, body: JSON.stringify({ toSeq: 0 }) });
    expect(t.status).toBe(200);
    const late = await append(s, part(built, 5, 8192, 5 + built.control.tokenIds.length, { stage: a.stage }));
    expect([late.status, (await errorOf(late)).reason]).toEqual([409, "stage_unknown"]);
    expect(await stagedRows(s)).toEqual({ parts: 0, refs: 0 });
    // The truncated turn's rows are freed by the truncate, the staged part's by the drop: fewer rows than before.
    const after = await tenantChunkStats("beta");
    expect(after.leasedHolds).toBe(before.leasedHolds);
    expect(after.bytes).toBeLessThan(before.bytes);
    expect(await manifest(s)).toMatchObject({ head: 0, tokens: 0 });
  });

  it("should stage and commit the parts of a long turn over one WebSocket, answering each part", async () => {
    const { s, long } = await withLongTurn("alpha", 2 * MAX_TURN_TOKENS - 100);
    const end = 5 + long.control.tokenIds.length;
    const sock = await openTurnSocket(s);
    for (const f of part(long, 5, 5, 8192, { final: false })) sock.ws.send(f);
    await sock.waitForMessages(1);
    const staged = sock.messages[0] as AppendStaged;
    expect(staged).toMatchObject({ staged: true, seq: 2, tokenStart: 5, tokenCount: 8187 });
    expect((await manifest(s)).head).toBe(1);
    for (const f of part(long, 5, 8192, end, { stage: staged.stage })) sock.ws.send(f);
    await sock.waitForMessages(2);
    expect(sock.messages[1]).toMatchObject({ seq: 2, tokenStart: 5, tokenCount: end - 5, chunksStored: long.chunks.length });
    sock.ws.close(1000, "done");
    const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(r.chunks.length).toBe(long.chunks.length);
    expect(await stagedRows(s)).toEqual({ parts: 0, refs: 0 });
  });

  it("should refuse a non-final part that does not end at a slot boundary (and drop the staged turn it continues)", async () => {
    const { s, long: built } = await withLongTurn("alpha", 2 * MAX_TURN_TOKENS - 100);
    const bad = await append(s, part(built, 5, 5, 8001, { final: false }));
    expect(bad.status).toBe(400);
    expect(await errorOf(bad)).toMatchObject({ code: "bad_request", reason: "part_boundary" });
    const a = await stagePart(s, part(built, 5, 5, 8192, { final: false }));
    const bad2 = await append(s, part(built, 5, 8192, 9000, { final: false, stage: a.stage }));
    expect(bad2.status).toBe(400);
    expect(await stagedRows(s)).toEqual({ parts: 0, refs: 0 });
  });
});
