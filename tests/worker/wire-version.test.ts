// Wire format version 2 in the Worker (issue 22): control and error frames are MessagePack; a client of another version
// (the bare media type of version 1, another `version=`, an Accept without the framed type, a WebSocket without the
// subprotocol) gets 4xx `unsupported_format` before anything is read or stored; malformed MessagePack control frames —
// JSON, truncated, trailing bytes, unknown or missing fields, wrong types, oversize arrays — are 400 bad_request
// (reason bad_control), and nothing of the turn is stored.
import { describe, expect, it } from "vitest";
import { Packr } from "msgpackr";
import { controlFrame, decodeRestoreHeaderMsgpack, encodeAppendControl } from "../../format/wire/control-msgpack.ts";
import { encodeFrame, encodeJsonFrame, FRAMES_CONTENT_TYPE, FRAMES_MEDIA_TYPE, FRAMES_WS_PROTOCOL, FrameType } from "../../format/wire/frames.ts";
import type { Manifest } from "../../format/wire/messages.ts";
import { concatFrames, Conversation } from "./helpers/conversation.ts";
import { append, call, createSession, errorOf, readRestore, tenantChunkStats, TINY_C, TINY_CODEC, TINY_SPEC, type Session } from "./helpers/store.ts";

const plain = new Packr({ useRecords: false, mapsAsObjects: true });

async function head(s: Session): Promise<number> {
  return ((await (await call(`/v1/sessions/${s.id}`, { headers: s.auth })).json()) as Manifest).head;
}

describe("wire format version", () => {
  it("should answer /v1/health with formatVersion 2 and frames of `version=2`", async () => {
    expect(await (await call("/v1/health")).json()).toEqual({ ok: true, formatVersion: 2, chunkFormatVersion: 1 });
    expect(FRAMES_CONTENT_TYPE).toBe("application/vnd.mla-edge.frames; version=2");
    const s = await createSession();
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const t = conv.build(5);
    expect((await append(s, t.frames)).status).toBe(201);
    const res = await call(`/v1/sessions/${s.id}/chunks`, { headers: { ...s.auth, accept: FRAMES_CONTENT_TYPE } });
    expect(res.headers.get("content-type")).toBe(FRAMES_CONTENT_TYPE);
    // The header is MessagePack: the first frame's payload decodes strictly and is not JSON.
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes[0]).toBe(FrameType.control);
    const payload = bytes.subarray(5, 5 + new DataView(bytes.buffer).getUint32(1, true));
    expect(decodeRestoreHeaderMsgpack(payload)).toMatchObject({ head: 1, tokens: 5, from: 0, to: 5 });
    expect(() => JSON.parse(new TextDecoder().decode(payload)) as unknown).toThrow();
  });

  it("should refuse a version-1 append (bare media type, JSON control) with 415 unsupported_format and store nothing", async () => {
    const s = await createSession("beta");
    const before = await tenantChunkStats("beta");
    const t = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(5);
    const v1Body = concatFrames([encodeJsonFrame(FrameType.control, t.control), ...t.frames.slice(1)]);
    for (const type of [FRAMES_MEDIA_TYPE, `${FRAMES_MEDIA_TYPE}; version=1`, `${FRAMES_MEDIA_TYPE}; version=3`, `${FRAMES_MEDIA_TYPE}; version=x`]) {
      const res = await call(`/v1/sessions/${s.id}/turns`, { method: "POST", headers: { ...s.auth, "content-type": type }, body: v1Body });
      expect(res.status, type).toBe(415);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      const err = await errorOf(res);
      expect(err.code).toBe("unsupported_format");
      expect(err.message).toMatch(/version 2/);
    }
    // Not the framed type at all stays a plain 400.
    const other = await call(`/v1/sessions/${s.id}/turns`, { method: "POST", headers: { ...s.auth, "content-type": "application/json" }, body: "{}" });
    expect([other.status, (await errorOf(other)).code]).toEqual([400, "bad_request"]);
    expect(await head(s)).toBe(0);
    expect(await tenantChunkStats("beta")).toEqual(before);
  });

  it("should refuse a restore for a client of another version with 406 unsupported_format, and serve version 2 otherwise", async () => {
    const s = await createSession();
    expect((await append(s, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(3).frames)).status).toBe(201);
    // A version-1 SDK asks for application/json; a v1 or v3 reader names its own version.
    for (const accept of ["application/json", FRAMES_MEDIA_TYPE, `${FRAMES_MEDIA_TYPE}; version=1`, `${FRAMES_MEDIA_TYPE}; version=3, application/json`]) {
      const res = await call(`/v1/sessions/${s.id}/chunks`, { headers: { ...s.auth, accept } });
      expect(res.status, accept).toBe(406);
      expect((await errorOf(res)).code).toBe("unsupported_format");
    }
    for (const accept of [undefined, "*/*", FRAMES_CONTENT_TYPE, `application/json, ${FRAMES_MEDIA_TYPE};version="2"`]) {
      const res = await call(`/v1/sessions/${s.id}/chunks`, { headers: { ...s.auth, ...(accept === undefined ? {} : { accept }) } });
      expect(res.status, accept).toBe(200);
      const r = await readRestore(res);
      expect(r.end).toEqual({ done: true, chunks: r.header.chunks.length, bytes: r.chunks.reduce((a, c) => a + c.length, 0) });
      expect(r.chunks.length).toBeGreaterThan(0);
    }
  });

  it("should refuse a WebSocket append without the version-2 subprotocol", async () => {
    const s = await createSession();
    for (const protocol of [undefined, "mla-edge.frames.v1", "chat"]) {
      const res = await call(`/v1/sessions/${s.id}/turns/ws?token=${s.token}`, {
        headers: { upgrade: "websocket", ...(protocol === undefined ? {} : { "sec-websocket-protocol": protocol }) },
      });
      expect(res.status, protocol).toBe(400);
      expect((await errorOf(res)).code).toBe("unsupported_format");
    }
    const ok = await call(`/v1/sessions/${s.id}/turns/ws?token=${s.token}`, { headers: { upgrade: "websocket", "sec-websocket-protocol": `chat, ${FRAMES_WS_PROTOCOL}` } });
    expect(ok.status).toBe(101);
    expect(ok.headers.get("sec-websocket-protocol")).toBe(FRAMES_WS_PROTOCOL);
    ok.webSocket?.accept();
    ok.webSocket?.close(1000);
  });
});

describe("strict MessagePack control frames", () => {
  async function expectBadControl(control: Uint8Array, pattern: RegExp): Promise<void> {
    const s = await createSession("beta");
    const before = await tenantChunkStats("beta");
    const t = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(4);
    const res = await append(s, [encodeFrame(FrameType.control, control), ...t.frames.slice(1)]);
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err).toMatchObject({ code: "bad_request", reason: "bad_control" });
    expect(err.message).toMatch(pattern);
    expect(await head(s)).toBe(0);
    expect(await tenantChunkStats("beta")).toEqual(before);
  }

  it("should accept the SDK's encoding and the same map from any MessagePack writer", async () => {
    const t = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(4);
    const s = await createSession();
    expect((await append(s, [controlFrame(plain.pack({ ...t.control })), ...t.frames.slice(1)])).status).toBe(201);
    expect((await append(await createSession(), [controlFrame(encodeAppendControl(t.control)), ...t.frames.slice(1)])).status).toBe(201);
  });

  it("should refuse JSON, truncated MessagePack, trailing bytes and a value that is not a map", async () => {
    const t = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(4);
    const good = encodeAppendControl(t.control);
    await expectBadControl(new TextEncoder().encode(JSON.stringify(t.control)), /MessagePack|map/);
    await expectBadControl(good.subarray(0, good.length - 2), /not one MessagePack value/);
    await expectBadControl(new Uint8Array([...good, 0x00]), /not one MessagePack value/);
    await expectBadControl(plain.pack([1, 2, 3]), /must be a map/);
  });

  it("should refuse unknown and missing fields, wrong types and oversize arrays", async () => {
    const c = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(4).control;
    await expectBadControl(plain.pack({ ...c, extra: 1 }), /unknown field\(s\) extra/);
    const { positions: _p, ...noPositions } = c;
    await expectBadControl(plain.pack(noPositions), /lacks positions/);
    await expectBadControl(plain.pack({ ...c, expectedSeq: "1" }), /expectedSeq must be an integer/);
    await expectBadControl(plain.pack({ ...c, tokenIds: c.tokenIds.map(String) }), /tokenIds\[0\] must be an integer/);
    await expectBadControl(plain.pack({ ...c, modality: [0, 0, 0, 2] }), /modality\[3\] must be an integer in \[0, 1\]/);
    await expectBadControl(plain.pack({ ...c, tokenIds: new Uint8Array(4) }), /tokenIds must be an array/);
    await expectBadControl(plain.pack({ ...c, media: [{ hash: "ab".repeat(32), start: 0, length: 1, extra: true }] }), /media\[0\] has unknown field/);
    await expectBadControl(plain.pack({ ...c, tokenIds: new Array(8193).fill(1) }), /tokenIds has 8193 entries, above 8192/);
    await expectBadControl(plain.pack({ ...c, media: new Array(257).fill({ hash: "ab".repeat(32), start: 0, length: 1 }) }), /media has 257 spans, above 256/);
  });
});
