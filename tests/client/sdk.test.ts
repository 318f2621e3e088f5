// The SDK's HTTP layer with an injected fetch: errors by status with our {error:{code,message}} body, retries,
// APIPromise's raw-response accessors, Stream semantics (break aborts, single use, tee), the append body's framing and
// the restore stream parser's malformed-input handling, and a restore body over a real socket (break closes it; a cut
// connection is an APIConnectionError, a stalled one times out, an abort ends a pending read).

import { describe, expect, it } from "vitest";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  createClient,
  encodeAppendBody,
  InternalServerError,
  MlaEdge,
  NotFoundError,
  parseRestoreStream,
  RateLimitError,
  Stream,
  StreamFormatError,
  UnsupportedFormatError,
  type Fetch,
} from "../../client/index.ts";
import { Packr } from "msgpackr";
import { decodeAppendControl } from "../../format/wire/control-msgpack.ts";
import { encodeFrame, encodeJsonFrame, FrameType, FRAMES_CONTENT_TYPE, FRAMES_MEDIA_TYPE, readFrames } from "../../format/wire/frames.ts";
import type { RestoreChunkInfo } from "../../format/wire/messages.ts";

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

function recordingFetch(responses: (() => Response)[]): { fetch: Fetch; calls: { url: string; init: RequestInit | undefined }[] } {
  const calls: { url: string; init: RequestInit | undefined }[] = [];
  let i = 0;
  return {
    calls,
    fetch: async (input, init) => {
      calls.push({ url: String(input), init });
      const make = responses[Math.min(i++, responses.length - 1)];
      return make();
    },
  };
}

const streamOf = (parts: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(p);
      c.close();
    },
  });

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("APIError.generate", () => {
  it("should map statuses to subclasses and keep the body's code and message", () => {
    const body = { error: { code: "turn_conflict", message: "head is 3" } };
    const h = new Headers({ "x-request-id": "req-1" });
    const cases: [number, unknown][] = [
      [400, BadRequestError],
      [401, AuthenticationError],
      [404, NotFoundError],
      [409, ConflictError],
      [429, RateLimitError],
      [503, InternalServerError],
    ];
    for (const [status, cls] of cases) {
      const e = APIError.generate(status, body, undefined, h);
      expect(e).toBeInstanceOf(cls as typeof APIError);
      expect(e.name).toBe((cls as typeof APIError).name);
      expect(e.status).toBe(status);
      expect(e.code).toBe("turn_conflict");
      expect(e.requestId).toBe("req-1");
      expect(e.message).toBe(`${status} turn_conflict: head is 3`);
    }
    expect(APIError.generate(undefined, undefined, "boom", undefined)).toBeInstanceOf(APIConnectionError);
    const quota = APIError.generate(413, { error: { code: "too_large", message: "tenant t stores …", reason: "tenant_quota" } }, undefined, h);
    expect([quota.name, quota.code, quota.reason]).toEqual(["PayloadTooLargeError", "too_large", "tenant_quota"]);
    expect(APIError.generate(418, "not json", "teapot", h).code).toBeUndefined();
  });
});

describe("requests", () => {
  it("should send the session token as the bearer, JSON bodies, and parse JSON", async () => {
    const { fetch, calls } = recordingFetch([() => json(200, { head: 1, tokens: 20 })]);
    const client = createClient({ baseUrl: "http://edge.test/", apiKey: "tenant-key", fetch });
    const r = await client.store.sessions.truncate("a b", { toSeq: 1 }, { token: "tok" });
    expect(r).toEqual({ head: 1, tokens: 20 });
    expect(calls[0].url).toBe("http://edge.test/v1/sessions/a%20b/truncate");
    const headers = calls[0].init!.headers as Record<string, string>;
    expect(headers.authorization).toBe("Bearer tok");
    expect(headers["content-type"]).toBe("application/json");
    expect(JSON.parse(calls[0].init!.body as string)).toEqual({ toSeq: 1 });
  });

  it("should read the tenant's usage with the tenant key", async () => {
    const { fetch, calls } = recordingFetch([() => json(200, { tenant: "t", bytes: 1234, quotaBytes: null })]);
    const client = createClient({ baseUrl: "http://edge.test", apiKey: "tenant-key", fetch });
    expect(await client.store.usage.retrieve()).toEqual({ tenant: "t", bytes: 1234, quotaBytes: null });
    expect(calls[0].url).toBe("http://edge.test/v1/usage");
    expect((calls[0].init!.headers as Record<string, string>).authorization).toBe("Bearer tenant-key");
  });

  it("should retry 5xx and 429 (honouring retry-after-ms) but not 409 or appends", async () => {
    const flaky = recordingFetch([() => json(503, { error: { code: "internal", message: "x" } }, { "retry-after-ms": "1" }), () => json(200, { ok: 1 })]);
    const client = createClient({ baseUrl: "http://edge.test", fetch: flaky.fetch });
    expect(await client.store.sessions.retrieve("s", { token: "t" })).toEqual({ ok: 1 });
    expect(flaky.calls.length).toBe(2);

    const conflict = recordingFetch([() => json(409, { error: { code: "turn_conflict", message: "head is 2" } })]);
    const c2 = createClient({ baseUrl: "http://edge.test", fetch: conflict.fetch });
    await expect(c2.store.sessions.retrieve("s", { token: "t" })).rejects.toBeInstanceOf(ConflictError);
    expect(conflict.calls.length).toBe(1);

    const down = recordingFetch([() => json(500, { error: { code: "internal", message: "x" } }, { "retry-after-ms": "1" })]);
    const c3 = createClient({ baseUrl: "http://edge.test", fetch: down.fetch });
    const control = { expectedSeq: 1, tokenIds: [1], modality: [0], positions: [0, 0, 0] };
    await expect(c3.store.sessions.append("s", { control, chunks: [] }, { token: "t" })).rejects.toBeInstanceOf(InternalServerError);
    expect(down.calls.length).toBe(1);
  });

  it("should resend an append only when wrangler dev's proxy dropped it before the Worker, at most twice", async () => {
    // What wrangler 4.86's ProxyWorker answers for a POST lost on a pooled connection (workers-sdk #14641).
    const dropped = () =>
      new Response("Your worker restarted mid-request. Please try sending the request again. Only GET or HEAD requests are retried automatically.", {
        status: 503,
        headers: { "Retry-After": "0" },
      });
    const control = { expectedSeq: 1, tokenIds: [1], modality: [0], positions: [0, 0, 0] };
    const once = recordingFetch([dropped, () => json(201, { seq: 1 })]);
    const c1 = createClient({ baseUrl: "http://edge.test", fetch: once.fetch });
    expect(await c1.store.sessions.append("s", { control, chunks: [] }, { token: "t" })).toEqual({ seq: 1 });
    expect(once.calls.length).toBe(2);
    expect(once.calls[1].init?.body).toEqual(once.calls[0].init?.body);

    const always = recordingFetch([dropped]);
    const c2 = createClient({ baseUrl: "http://edge.test", fetch: always.fetch });
    await expect(c2.store.sessions.append("s", { control, chunks: [] }, { token: "t" })).rejects.toBeInstanceOf(InternalServerError);
    expect(always.calls.length).toBe(3);

    // The Worker's own 503 (JSON) may follow a commit: not resent.
    const worker503 = recordingFetch([() => json(503, { error: { code: "internal", message: "x" } }), () => json(201, { seq: 1 })]);
    const c3 = createClient({ baseUrl: "http://edge.test", fetch: worker503.fetch });
    await expect(c3.store.sessions.append("s", { control, chunks: [] }, { token: "t" })).rejects.toBeInstanceOf(InternalServerError);
    expect(worker503.calls.length).toBe(1);
  });

  it("should turn fetch failures into APIConnectionError and aborts into APIUserAbortError", async () => {
    const failing: Fetch = async () => {
      throw new TypeError("connect ECONNREFUSED");
    };
    const client = createClient({ baseUrl: "http://edge.test", fetch: failing, maxRetries: 0 });
    await expect(client.store.sessions.retrieve("s", { token: "t" })).rejects.toBeInstanceOf(APIConnectionError);
    const ac = new AbortController();
    ac.abort();
    await expect(client.store.sessions.retrieve("s", { token: "t", signal: ac.signal })).rejects.toBeInstanceOf(APIUserAbortError);
    expect(MlaEdge.NotFoundError).toBe(NotFoundError);
  });

  it("should offer asResponse() and withResponse()", async () => {
    const { fetch } = recordingFetch([() => json(200, { id: "s1" }, { "x-request-id": "r-9" })]);
    const client = createClient({ baseUrl: "http://edge.test", apiKey: "k", fetch });
    const p = client.store.sessions.mintToken("s1");
    const { data, response, request_id } = await p.withResponse();
    expect(data).toEqual({ id: "s1" });
    expect(response.status).toBe(200);
    expect(request_id).toBe("r-9");
    const raw = await createClient({ baseUrl: "http://edge.test", fetch }).store.sessions.retrieve("s1", { token: "t" }).asResponse();
    expect(raw).toBeInstanceOf(Response);
  });
});

describe("append body", () => {
  it("should frame the control message then each chunk", async () => {
    const control = { expectedSeq: 2, tokenIds: [7, 8], modality: [0, 0], positions: [5, 5, 5, 6, 6, 6] };
    const body = encodeAppendBody({ control, chunks: [new Uint8Array([1, 2, 3]), new Uint8Array([9])] });
    const frames = await collect(readFrames(streamOf([body]), { 1: 1 << 20, 2: 1 << 20, 3: 0, 4: 0, 5: 0 }));
    expect(frames.map((f) => f.type)).toEqual([FrameType.control, FrameType.chunk, FrameType.chunk]);
    // The control frame is MessagePack (wire format version 2), any reader's plain map.
    expect(decodeAppendControl(frames[0].payload, { maxTokens: 8192, maxMedia: 256 })).toEqual({ ...control, media: [] });
    expect(plain.unpack(frames[0].payload)).toEqual(control);
    expect(Array.from(frames[1].payload)).toEqual([1, 2, 3]);
    expect(Array.from(body.subarray(body.length - 6))).toEqual([2, 1, 0, 0, 0, 9]); // [u8 type][u32 LE len][payload]
    expect(FRAMES_CONTENT_TYPE).toBe("application/vnd.mla-edge.frames; version=2");
  });
});

const plain = new Packr({ useRecords: false, mapsAsObjects: true });

/** Any value as a MessagePack control or error frame, as the store writes them: `chunks[].key` as 32 raw bytes. */
function mpFrame(type: typeof FrameType.control | typeof FrameType.error, value: unknown): Uint8Array {
  const v = value as { chunks?: unknown };
  const withKeys =
    typeof value === "object" && value !== null && Array.isArray(v.chunks)
      ? { ...value, chunks: (v.chunks as RestoreChunkInfo[]).map((c) => (typeof c.key === "string" ? { ...c, key: Buffer.from(c.key, "hex") } : c)) }
      : value;
  return encodeFrame(type, plain.pack(withKeys));
}

/** A header entry for chunk `i` of a stream: slot i, tokens 4i..4i+3, layers 0-1, sealed. */
const entry = (i: number, bytes: number, over: Partial<RestoreChunkInfo> = {}): RestoreChunkInfo => ({
  slot: i,
  tokenStart: 4 * i,
  tokenCount: 4,
  layerStart: 0,
  layerCount: 2,
  sealed: true,
  bytes,
  key: (i + 1).toString(16).padStart(64, "0"),
  ...over,
});

/** Chunk bytes whose fixed header says what `e` lists (magic, storage, token and layer range, byteLength); the body is `fill`. */
function fakeChunk(e: RestoreChunkInfo, fill: number): Uint8Array {
  const c = new Uint8Array(e.bytes).fill(fill);
  c.set([0x4d, 0x4c, 0x41, 0x43]);
  const v = new DataView(c.buffer);
  v.setUint8(6, e.sealed ? 1 : 0);
  v.setUint32(60, e.tokenStart, true);
  v.setUint32(64, e.tokenCount, true);
  v.setUint32(68, e.layerStart, true);
  v.setUint32(72, e.layerCount, true);
  v.setUint32(76, e.bytes, true);
  return c;
}

/** A full restore's header listing `entries` (tokens: up to the last entry's end). */
const headerFor = (entries: RestoreChunkInfo[], over: Record<string, unknown> = {}) => {
  const tokens = entries.reduce((m, e) => Math.max(m, e.tokenStart + e.tokenCount), 0);
  return mpFrame(FrameType.control, { head: tokens > 0 ? 1 : 0, tokens, from: 0, to: tokens, layerStart: 0, layerEnd: 2, chunks: entries, ...over });
};

describe("restore stream parser (malformed input)", () => {
  const e0 = entry(0, 84);
  const c0 = fakeChunk(e0, 4);
  const header = headerFor([e0]);
  const chunk = encodeFrame(FrameType.chunk, c0);
  const trailer = (chunks: number, bytes: number) => mpFrame(FrameType.control, { done: true, chunks, bytes });

  it("should yield the header then the chunks of a complete stream", async () => {
    const evs = await collect(parseRestoreStream(streamOf([header, chunk, trailer(1, 84)])));
    expect(evs.map((e) => e.type)).toEqual(["header", "chunk"]);
  });

  it("should reject a stream cut before its trailer, a frame cut in half, and a trailer that miscounts", async () => {
    await expect(collect(parseRestoreStream(streamOf([header, chunk])))).rejects.toMatchObject({ name: "StreamFormatError", code: "truncated" });
    await expect(collect(parseRestoreStream(streamOf([header, chunk.subarray(0, 7)])))).rejects.toMatchObject({ code: "truncated" });
    await expect(collect(parseRestoreStream(streamOf([header, chunk, trailer(2, 168)])))).rejects.toBeInstanceOf(StreamFormatError);
    await expect(collect(parseRestoreStream(streamOf([chunk])))).rejects.toMatchObject({ code: "unexpected_frame" });
  });

  /** The events handed on before the stream failed, and the failure. */
  async function eventsUntilError(parts: Uint8Array[]): Promise<{ types: string[]; error: unknown }> {
    const types: string[] = [];
    try {
      for await (const ev of parseRestoreStream(streamOf(parts))) types.push(ev.type === "chunk" ? `chunk:${[...ev.bytes].join(",")}` : ev.type);
    } catch (error) {
      return { types, error };
    }
    return { types, error: undefined };
  }

  it("should hand on no part of a frame cut inside its payload at the end of the stream (issue 21)", async () => {
    // Cut anywhere inside the chunk frame (5-byte frame header + the chunk), alone or after a whole chunk, as one read or byte by byte.
    for (let cut = 1; cut < chunk.length; cut++) {
      for (const before of [[], [chunk]]) {
        const bytes = new Uint8Array([...header, ...before.flatMap((c) => [...c]), ...chunk.subarray(0, cut)]);
        for (const parts of [[bytes], [...bytes].map((b) => new Uint8Array([b]))]) {
          const { types, error } = await eventsUntilError(parts);
          expect(types, `cut at ${cut}`).toEqual(before.length === 0 ? ["header"] : ["header", `chunk:${[...c0].join(",")}`]);
          expect(error, `cut at ${cut}`).toMatchObject({ name: "StreamFormatError", code: "truncated" });
          // the frame reader's message, not the missing trailer's: the cut was seen inside the frame
          expect((error as Error).message, `cut at ${cut}`).toMatch(cut < 5 ? /inside a frame header/ : new RegExp(`inside a frame: \\d+ of ${c0.length} payload bytes`));
        }
      }
    }
  });

  it("should yield each chunk of a chunk-run frame (one stored row's chunks) and count them against the trailer", async () => {
    // Splitting reads only the magic and the byteLength field (offset 76) of each chunk.
    const [e1, e2] = [entry(1, 96), entry(2, 84)];
    const a = fakeChunk(e1, 1);
    const b = fakeChunk(e2, 2);
    const hdr = headerFor([e0, e1, e2]);
    const run = encodeFrame(FrameType.chunks, new Uint8Array([...a, ...b]));
    const evs = await collect(parseRestoreStream(streamOf([hdr, chunk, run, trailer(3, 84 + 96 + 84)])));
    expect(evs.map((e) => (e.type === "chunk" ? [...e.bytes] : e.type))).toEqual(["header", [...c0], [...a], [...b]]);
    await expect(collect(parseRestoreStream(streamOf([headerFor([e1, e2]), run, trailer(1, 180)])))).rejects.toMatchObject({ code: "truncated" });
    const cut = encodeFrame(FrameType.chunks, new Uint8Array([...a, ...b.subarray(0, 83)]));
    await expect(collect(parseRestoreStream(streamOf([headerFor([e1, e2]), cut, trailer(2, 179)])))).rejects.toMatchObject({ name: "StreamFormatError", code: "bad_frame" });
  });

  it("should surface an error frame as an APIError with the store's code", async () => {
    const err = mpFrame(FrameType.error, { error: { code: "corrupt_chunk", message: "chunk k failed verification" } });
    await expect(collect(parseRestoreStream(streamOf([header, err])))).rejects.toMatchObject({ code: "corrupt_chunk", status: 500 });
    // A malformed error frame (JSON, an unknown field, a message that is not a string) is a malformed stream.
    const jsonErr = encodeJsonFrame(FrameType.error, { error: { code: "corrupt_chunk", message: "m" } });
    for (const bad of [jsonErr, mpFrame(FrameType.error, { error: { code: "x", message: "m", extra: 1 } }), mpFrame(FrameType.error, { error: { code: "x", message: 5 } })]) {
      await expect(collect(parseRestoreStream(streamOf([header, bad])))).rejects.toMatchObject({ name: "StreamFormatError", code: "bad_frame" });
    }
  });

  // Issue 16, defect 7: the header is checked, never trusted.
  const refused = async (frames: Uint8Array[]) => {
    const err = await collect(parseRestoreStream(streamOf(frames))).catch((e: unknown) => e);
    expect(err, String(err)).toBeInstanceOf(StreamFormatError);
    return err as StreamFormatError;
  };

  it("should refuse a header without tokens, or with head and tokens that disagree, even before an empty trailer", async () => {
    const empty = trailer(0, 0);
    const base = { head: 0, tokens: 0, from: 0, to: 0, layerStart: 0, layerEnd: 2, chunks: [] };
    // A valid empty session restores as empty.
    expect((await collect(parseRestoreStream(streamOf([mpFrame(FrameType.control, base), empty])))).map((e) => e.type)).toEqual(["header"]);
    const { tokens: _t, ...noTokens } = base;
    expect((await refused([mpFrame(FrameType.control, noTokens), empty])).code).toBe("bad_frame");
    expect((await refused([mpFrame(FrameType.control, { ...base, head: 3 }), empty])).message).toMatch(/head 3 with 0 tokens/);
    expect((await refused([mpFrame(FrameType.control, { ...base, head: 1, tokens: 1e12, to: 1e12 }), empty])).code).toBe("bad_frame");
    expect((await refused([mpFrame(FrameType.control, { ...base, head: 1, tokens: -1 }), empty])).code).toBe("bad_frame");
    expect((await refused([mpFrame(FrameType.control, { ...base, head: 1, tokens: 1.5 }), empty])).code).toBe("bad_frame");
    // Claims 9 tokens but lists chunks for 4: a restore that would leave the cache short.
    expect((await refused([headerFor([e0], { tokens: 9, to: 9 }), chunk, trailer(1, 84)])).message).toMatch(/cover 4/);
    expect((await refused([mpFrame(FrameType.control, "not a header"), empty])).code).toBe("bad_frame");
  });

  it("should refuse a control frame that is not MessagePack as a malformed stream, not a broken (resumable) connection", async () => {
    const err = await refused([encodeFrame(FrameType.control, new TextEncoder().encode("{head: 1")), trailer(0, 0)]);
    expect(err.code).toBe("bad_frame");
    const late = await refused([header, chunk, encodeFrame(FrameType.control, new Uint8Array([0xff, 0xfe]))]);
    expect(late.code).toBe("bad_frame");
    // A version-1 (JSON) header, a header with trailing bytes, an unknown field, a key that is hex text, not 32 bytes.
    const h = { head: 1, tokens: 4, from: 0, to: 4, layerStart: 0, layerEnd: 2, chunks: [e0] };
    expect((await refused([encodeJsonFrame(FrameType.control, h), chunk, trailer(1, 84)])).code).toBe("bad_frame");
    const packed = mpFrame(FrameType.control, h);
    const trailing = encodeFrame(FrameType.control, new Uint8Array([...packed.subarray(5), 0xc0]));
    expect((await refused([trailing, chunk, trailer(1, 84)])).message).toMatch(/not one MessagePack value/);
    expect((await refused([mpFrame(FrameType.control, { ...h, extra: 1 }), chunk, trailer(1, 84)])).message).toMatch(/unknown field\(s\) extra/);
    expect((await refused([encodeFrame(FrameType.control, plain.pack(h)), chunk, trailer(1, 84)])).message).toMatch(/key must be 32 bytes/);
    // The trailer is strict too: done must be true, no other fields, counts as integers.
    expect((await refused([header, chunk, mpFrame(FrameType.control, { done: false, chunks: 1, bytes: 84 })])).message).toMatch(/done must be true/);
    expect((await refused([header, chunk, mpFrame(FrameType.control, { done: true, chunks: 1, bytes: 84, more: 0 })])).message).toMatch(/unknown field/);
    expect((await refused([header, chunk, mpFrame(FrameType.control, { done: true, chunks: "1", bytes: 84 })])).message).toMatch(/chunks must be an integer/);
    // A second header where the trailer belongs.
    expect((await refused([header, chunk, header])).message).toMatch(/restore trailer/);
  });

  it("should refuse chunks that are not the ones the header lists (another session's, extra, missing, resized)", async () => {
    // Same size and slot, other token range: a chunk of another place (or session) mixed in.
    const foreign = encodeFrame(FrameType.chunk, fakeChunk({ ...e0, tokenStart: 8 }, 4));
    expect((await refused([header, foreign, trailer(1, 84)])).message).toMatch(/not the chunk its header lists/);
    const rawInstead = encodeFrame(FrameType.chunk, fakeChunk({ ...e0, sealed: false }, 4));
    expect((await refused([header, rawInstead, trailer(1, 84)])).code).toBe("bad_frame");
    const otherLayers = encodeFrame(FrameType.chunk, fakeChunk({ ...e0, layerStart: 1, layerCount: 1 }, 4));
    expect((await refused([header, otherLayers, trailer(1, 84)])).code).toBe("bad_frame");
    const resized = encodeFrame(FrameType.chunk, fakeChunk({ ...e0, bytes: 88 }, 4));
    expect((await refused([header, resized, trailer(1, 88)])).message).toMatch(/88 B, its header entry 84 B/);
    expect((await refused([header, chunk, chunk, trailer(2, 168)])).message).toMatch(/more chunks than the 1/);
    const two = headerFor([e0, entry(1, 84)]);
    expect((await refused([two, chunk, trailer(1, 84)])).message).toMatch(/after 1 chunks, its header lists 2/);
    const dupKeys = headerFor([e0, entry(1, 84, { key: e0.key })]);
    expect((await refused([dupKeys, trailer(0, 0)])).message).toMatch(/repeats key/);
  });
});

describe("Stream", () => {
  const counting = () => {
    const controller = new AbortController();
    let produced = 0;
    const s = new Stream<number>(async function* () {
      for (let i = 0; i < 10; i++) {
        if (controller.signal.aborted) return;
        produced++;
        yield i;
      }
    }, controller);
    return { s, controller, produced: () => produced };
  };

  it("should abort its controller when the loop breaks, and refuse a second iteration", async () => {
    const { s, controller, produced } = counting();
    for await (const x of s) if (x === 2) break;
    expect(controller.signal.aborted).toBe(true);
    expect(produced()).toBe(3);
    expect(() => s[Symbol.asyncIterator]()).toThrow(/use `.tee\(\)`/);
  });

  it("should tee into two complete copies", async () => {
    const [a, b] = counting().s.tee();
    expect(await collect(a)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await collect(b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe("restore stream over a real socket", () => {
  // A store stand-in that sends the header, then a chunk frame every 10 ms until the client goes away; after `cutAfter`
  // chunks it destroys the socket mid-body, after `stallAfter` it goes silent with the connection open.
  async function trickleServer({ cutAfter, stallAfter }: { cutAfter?: number; stallAfter?: number } = {}): Promise<{ url: string; sent: () => number; closed: Promise<number>; stop: () => Promise<void> }> {
    let sent = 0;
    let onClose: (n: number) => void = () => undefined;
    const closed = new Promise<number>((ok) => (onClose = ok));
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": FRAMES_CONTENT_TYPE });
      // A header listing more chunks than any test reads (a partial range, so it need not cover the session).
      const listed = Array.from({ length: 1000 }, (_, i) => entry(i, 84));
      res.write(headerFor(listed, { tokens: 8000, to: 4000 }));
      const timer = setInterval(() => {
        if (cutAfter !== undefined && sent === cutAfter) {
          res.socket?.destroy();
          return;
        }
        if (stallAfter !== undefined && sent === stallAfter) return;
        sent++;
        res.write(encodeFrame(FrameType.chunk, fakeChunk(entry(sent - 1, 84), 0)));
      }, 10);
      res.on("close", () => {
        clearInterval(timer);
        onClose(sent);
      });
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, sent: () => sent, closed, stop: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }) };
  }

  it("should close the connection when the loop breaks, not download on in the background", async () => {
    const srv = await trickleServer();
    const client = createClient({ baseUrl: srv.url, apiKey: "k" });
    let events = 0;
    for await (const _ of await client.store.sessions.restore("s", {}, { token: "t" })) if (++events === 3) break;
    // The server sees the close within a few of its 10 ms writes (before the fix it kept writing until the test ended).
    const sentAtClose = await Promise.race([srv.closed, new Promise<number>((ok) => setTimeout(() => ok(-1), 5000))]);
    expect(sentAtClose).toBeGreaterThanOrEqual(2);
    expect(sentAtClose).toBeLessThan(10);
    await srv.stop();
  });

  it("should turn a connection that breaks mid-body into APIConnectionError (resumable), naming how far it got", async () => {
    const srv = await trickleServer({ cutAfter: 3 });
    const client = createClient({ baseUrl: srv.url, apiKey: "k" });
    const err = await collect(await client.store.sessions.restore("s", {}, { token: "t" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIConnectionError);
    expect((err as Error).message).toMatch(/restore stream broke after 3 chunks \(252 B\)/);
    await srv.stop();
  });

  it("should fail a body that stalls with APIConnectionTimeoutError after streamIdleTimeout, and close it", async () => {
    const srv = await trickleServer({ stallAfter: 2 });
    const client = createClient({ baseUrl: srv.url, apiKey: "k", streamIdleTimeout: 300 });
    const err = await collect(await client.store.sessions.restore("s", {}, { token: "t" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIConnectionTimeoutError);
    expect((err as Error).message).toBe("restore stream sent nothing for 300 ms");
    expect(await Promise.race([srv.closed, new Promise<number>((ok) => setTimeout(() => ok(-1), 5000))])).toBe(2);
    await srv.stop();
  });

  it("should not time out a body that keeps sending, however long it runs", async () => {
    const srv = await trickleServer();
    const client = createClient({ baseUrl: srv.url, apiKey: "k", streamIdleTimeout: 100 });
    let chunks = 0;
    const started = performance.now();
    for await (const ev of await client.store.sessions.restore("s", {}, { token: "t" })) {
      if (ev.type === "chunk") chunks++;
      if (chunks === 40) break; // ≥ 400 ms at one chunk per 10 ms: four idle timeouts long
    }
    expect(performance.now() - started).toBeGreaterThan(300);
    await srv.stop();
  });

  it("should end a read waiting on a stalled body when the caller aborts", async () => {
    const srv = await trickleServer({ stallAfter: 1 });
    const client = createClient({ baseUrl: srv.url, apiKey: "k" }); // idle timeout 60 s: only the abort can end it
    const ac = new AbortController();
    const stream = await client.store.sessions.restore("s", {}, { token: "t", signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const started = performance.now();
    await expect(collect(stream)).rejects.toBeInstanceOf(APIUserAbortError);
    expect(performance.now() - started).toBeLessThan(5000);
    await srv.stop();
  });
});

describe("wire format version (issue 22)", () => {
  const v2Body = () => {
    const h = { head: 0, tokens: 0, from: 0, to: 0, layerStart: 0, layerEnd: 2, chunks: [] };
    return new Uint8Array([...mpFrame(FrameType.control, h), ...mpFrame(FrameType.control, { done: true, chunks: 0, bytes: 0 })]);
  };

  it("should ask for version-2 frames and refuse a restore answered in another version with UnsupportedFormatError", async () => {
    const v1Body = new Uint8Array([
      ...encodeJsonFrame(FrameType.control, { head: 0, tokens: 0, from: 0, to: 0, layerStart: 0, layerEnd: 2, chunks: [] }),
      ...encodeJsonFrame(FrameType.control, { done: true, chunks: 0, bytes: 0 }),
    ]);
    for (const type of [FRAMES_MEDIA_TYPE, `${FRAMES_MEDIA_TYPE}; version=3`, "application/octet-stream"]) {
      const { fetch, calls } = recordingFetch([() => new Response(v1Body, { status: 200, headers: { "content-type": type } })]);
      const client = createClient({ baseUrl: "https://store.test", apiKey: "k", fetch });
      const err = await client.store.sessions.restore("s", {}, { token: "t" }).catch((e: unknown) => e);
      expect(err, type).toBeInstanceOf(UnsupportedFormatError);
      expect(err).toMatchObject({ code: "unsupported_format", clientVersion: 2, serverVersion: type === FRAMES_MEDIA_TYPE ? 1 : type.endsWith("3") ? 3 : null });
      expect(new Headers(calls[0].init?.headers).get("accept")).toBe(FRAMES_CONTENT_TYPE);
    }
    const { fetch } = recordingFetch([() => new Response(v2Body(), { status: 200, headers: { "content-type": FRAMES_CONTENT_TYPE } })]);
    const ok = await collect(await createClient({ baseUrl: "https://store.test", apiKey: "k", fetch }).store.sessions.restore("s", {}, { token: "t" }));
    expect(ok.map((e) => e.type)).toEqual(["header"]);
  });

  it("should send appends as version-2 frames and surface the store's unsupported_format refusal with its code", async () => {
    const { fetch, calls } = recordingFetch([() => json(415, { error: { code: "unsupported_format", message: "this store reads version 3 only" } })]);
    const client = createClient({ baseUrl: "https://store.test", apiKey: "k", fetch });
    const control = { expectedSeq: 1, tokenIds: [7], modality: [0], positions: [0, 0, 0] };
    const err = await client.store.sessions.append("s", { control, chunks: [] }, { token: "t" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect(err).toMatchObject({ status: 415, code: "unsupported_format" });
    expect(new Headers(calls[0].init?.headers).get("content-type")).toBe(FRAMES_CONTENT_TYPE);
  });
});
