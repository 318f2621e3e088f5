// Resuming a restore whose stream breaks: against a scripted store of 4 slots × 2 layer-range chunks that lists
// chunks like the Worker (every chunk overlapping [from, to), slot then layer order) and breaks each response where
// the test says, the resumed restore yields the header once and every chunk once, in order, asks again from the right
// slot, refuses a changed session, and never resumes a store error, a malformed stream or an abort.

import { describe, expect, it } from "vitest";
import { APIConnectionError, APIError, APIUserAbortError, parseRestoreStream, RuntimeError, StreamFormatError, type RestoreEvent } from "../../client/index.ts";
import { encodeFrame, FrameType } from "../../format/wire/frames.ts";
import { controlFrame, encodeRestoreHeaderMsgpack, encodeRestoreTrailer } from "../../format/wire/control-msgpack.ts";
import { isResumableBreak, resumableRestore, type OpenRestore } from "../../client/internal/resumable-restore.ts";
import type { RestoreChunkInfo, RestoreHeader } from "../../format/wire/messages.ts";

const SLOT_TOKENS = 16;
const TOKENS = 56; // slots 0–2 full, slot 3 a raw tail of 8 tokens

function chunkInfos(head: number): RestoreChunkInfo[] {
  const out: RestoreChunkInfo[] = [];
  for (let slot = 0; slot * SLOT_TOKENS < TOKENS; slot++) {
    const tokenStart = slot * SLOT_TOKENS;
    const tokenCount = Math.min(SLOT_TOKENS, TOKENS - tokenStart);
    for (const layerStart of [0, 4]) {
      out.push({ slot, tokenStart, tokenCount, layerStart, layerCount: 4, sealed: tokenCount === SLOT_TOKENS, bytes: CHUNK_BYTES, key: keyFor(`h${head}-s${slot}-l${layerStart}`) });
    }
  }
  return out;
}

/** A 64-hex-digit key (as the store's) that still reads as the chunk's name: the name's bytes in hex, zero-padded. */
function keyFor(name: string): string {
  return [...new TextEncoder().encode(name)].map((b) => b.toString(16).padStart(2, "0")).join("").padEnd(64, "0");
}

/** A chunk's fixed header fields (what the SDK checks against its header entry) and then its key, so the test can check what arrived. */
const CHUNK_BYTES = 80 + 64;
function bytesOf(c: RestoreChunkInfo): Uint8Array {
  const b = new Uint8Array(CHUNK_BYTES);
  b.set([0x4d, 0x4c, 0x41, 0x43]);
  const v = new DataView(b.buffer);
  v.setUint8(6, c.sealed ? 1 : 0);
  v.setUint32(60, c.tokenStart, true);
  v.setUint32(64, c.tokenCount, true);
  v.setUint32(68, c.layerStart, true);
  v.setUint32(72, c.layerCount, true);
  v.setUint32(76, c.bytes, true);
  b.set(new TextEncoder().encode(c.key), 80);
  return b;
}
const keyOf = (ev: RestoreEvent) => (ev.type === "chunk" ? new TextDecoder().decode(ev.bytes.subarray(80)) : "header");

interface Script {
  /** Per request: how many chunks it sends before breaking with `error` (undefined: the whole range). */
  readonly breakAfter: ReadonlyArray<number | undefined>;
  readonly error?: () => unknown;
  /** Head the store reports from request i on. */
  readonly headFrom?: ReadonlyArray<number>;
}

function scriptedStore(script: Script): { open: OpenRestore; requests: Array<{ from?: number; to?: number }> } {
  const requests: Array<{ from?: number; to?: number }> = [];
  const open: OpenRestore = async (range) => {
    const i = requests.length;
    requests.push(range);
    const head = script.headFrom?.[i] ?? 3;
    const from = range.from ?? 0;
    const to = range.to ?? TOKENS;
    const chunks = chunkInfos(head).filter((c) => c.tokenStart < to && c.tokenStart + c.tokenCount > from);
    const header: RestoreHeader = { head, tokens: TOKENS, from, to, layerStart: 0, layerEnd: 8, chunks };
    const limit = script.breakAfter[i];
    return (async function* () {
      yield { type: "header", header } as const;
      for (const [n, c] of chunks.entries()) {
        if (limit !== undefined && n === limit) break;
        yield { type: "chunk", bytes: bytesOf(c) } as const;
      }
      if (limit !== undefined) throw (script.error ?? (() => new APIConnectionError({ message: "terminated" })))();
    })();
  };
  return { open, requests };
}

/**
 * The same store, but each response is real framed bytes (header frame, one chunk frame per chunk, trailer) parsed by
 * the SDK's parseRestoreStream, and request i's body ends cleanly after `cutAt[i]` bytes (undefined: whole body).
 */
function framedStore(cutAt: ReadonlyArray<number | undefined>): { open: OpenRestore; requests: Array<{ from?: number; to?: number }>; bodies: Uint8Array[] } {
  const requests: Array<{ from?: number; to?: number }> = [];
  const bodies: Uint8Array[] = [];
  const open: OpenRestore = async (range) => {
    const i = requests.length;
    requests.push(range);
    const from = range.from ?? 0;
    const to = range.to ?? TOKENS;
    const chunks = chunkInfos(3).filter((c) => c.tokenStart < to && c.tokenStart + c.tokenCount > from);
    const header: RestoreHeader = { head: 3, tokens: TOKENS, from, to, layerStart: 0, layerEnd: 8, chunks };
    const frames = [controlFrame(encodeRestoreHeaderMsgpack(header)), ...chunks.map((c) => encodeFrame(FrameType.chunk, bytesOf(c)))];
    frames.push(controlFrame(encodeRestoreTrailer({ chunks: chunks.length, bytes: chunks.reduce((a, c) => a + bytesOf(c).length, 0) })));
    const body = new Uint8Array(frames.flatMap((f) => [...f]));
    bodies.push(body);
    const sent = body.subarray(0, cutAt[i] ?? body.length);
    return parseRestoreStream(
      new ReadableStream<Uint8Array>({
        start(c) {
          // two reads, so a cut frame can also straddle reads
          const half = sent.length >> 1;
          c.enqueue(sent.slice(0, half));
          c.enqueue(sent.slice(half));
          c.close();
        },
      }),
    );
  };
  return { open, requests, bodies };
}

async function collect(it: AsyncIterable<RestoreEvent>): Promise<string[]> {
  const out: string[] = [];
  for await (const ev of it) out.push(keyOf(ev));
  return out;
}

const whole = ["header", ...chunkInfos(3).map((c) => c.key)];

describe("resumable restore", () => {
  it("should deliver header and chunks exactly once wherever one break happens, resuming at the missing chunk's slot", async () => {
    for (let k = 0; k <= 8; k++) {
      const { open, requests } = scriptedStore({ breakAfter: [k] });
      expect(await collect(resumableRestore(open, { maxResumes: 2 })), `break after ${k} chunks`).toEqual(whole);
      // the 8 chunks are slots 0..3 × 2 layer ranges; after all 8 only the trailer was lost: ask for the last slot again
      const slot = Math.min(k, 7) >> 1;
      expect(requests, `break after ${k} chunks`).toEqual([{}, { from: slot * SLOT_TOKENS, to: TOKENS }]);
    }
  });

  it("should survive as many breaks as it may resume, then give up with the last break", async () => {
    const twice = scriptedStore({ breakAfter: [1, 2, undefined] });
    expect(await collect(resumableRestore(twice.open, { maxResumes: 2 }))).toEqual(whole);
    // slot 0's second chunk missing → from 0; that response repeats slot 0's first chunk (skipped), sends its second,
    // then breaks → from 16
    expect(twice.requests).toEqual([{}, { from: 0, to: TOKENS }, { from: 16, to: TOKENS }]);

    const thrice = scriptedStore({ breakAfter: [1, 2, 1] });
    await expect(collect(resumableRestore(thrice.open, { maxResumes: 2 }))).rejects.toBeInstanceOf(APIConnectionError);
    expect(thrice.requests).toHaveLength(3);
    const never = scriptedStore({ breakAfter: [3] });
    await expect(collect(resumableRestore(never.open, { maxResumes: 0 }))).rejects.toBeInstanceOf(APIConnectionError);
    expect(never.requests).toHaveLength(1);
  });

  it("should resume a body that ended early (no trailer) and report each resume", async () => {
    const { open } = scriptedStore({ breakAfter: [5], error: () => new StreamFormatError("truncated", "ended without trailer") });
    const seen: Array<{ attempt: number; from: number; received: number }> = [];
    const out = await collect(resumableRestore(open, { maxResumes: 1, onResume: ({ attempt, from, received }) => seen.push({ attempt, from, received }) }));
    expect(out).toEqual(whole);
    expect(seen).toEqual([{ attempt: 1, from: 32, received: 5 }]);
  });

  it("should resume real framed bytes cut at a clean end of stream anywhere after the header, never handing on a partial chunk (issue 21)", async () => {
    const probe = framedStore([undefined]);
    expect(await collect(resumableRestore(probe.open, { maxResumes: 0 }))).toEqual(whole);
    const bodyLength = probe.bodies[0].length;
    const headerLength = controlFrame(encodeRestoreHeaderMsgpack({ head: 3, tokens: TOKENS, from: 0, to: TOKENS, layerStart: 0, layerEnd: 8, chunks: chunkInfos(3) })).length;
    const chunkFrame = 5 + bytesOf(chunkInfos(3)[0]).length; // every key has the same length
    const cuts = Array.from({ length: bodyLength - headerLength }, (_, k) => headerLength + k);
    // concurrently: each resume waits its 250 ms backoff
    const runs = await Promise.all(
      cuts.map(async (cut) => {
        const { open, requests } = framedStore([cut, undefined]);
        const seen: Array<{ from: number; received: number }> = [];
        const out = await collect(resumableRestore(open, { maxResumes: 1, onResume: ({ from, received }) => seen.push({ from, received }) }));
        return { cut, out, seen, requests };
      }),
    );
    for (const { cut, out, seen, requests } of runs) {
      expect(out, `cut at ${cut}`).toEqual(whole);
      // only whole chunk frames before the cut count as received; the resume asks from the first missing chunk's slot
      const received = Math.min(8, Math.floor((cut - headerLength) / chunkFrame));
      const slot = Math.min(received, 7) >> 1;
      expect(seen, `cut at ${cut}`).toEqual([{ from: slot * SLOT_TOKENS, received }]);
      expect(requests, `cut at ${cut}`).toEqual([{}, { from: slot * SLOT_TOKENS, to: TOKENS }]);
    }
    expect(runs.length).toBeGreaterThan(8 * chunkFrame);
  });

  it("should refuse to stitch two versions of the session together", async () => {
    const { open, requests } = scriptedStore({ breakAfter: [3], headFrom: [3, 4] });
    const err = await collect(resumableRestore(open, { maxResumes: 2 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: "out_of_sync" });
    expect(requests).toHaveLength(2);
  });

  it("should not resume a store error, a malformed stream or an abort", async () => {
    const finals: Array<() => unknown> = [
      () => APIError.generate(500, { error: { code: "corrupt_chunk", message: "chunk failed verification" } }, undefined, new Headers()),
      () => new StreamFormatError("bad_frame", "unknown frame type 9"),
      () => new APIUserAbortError(),
    ];
    for (const make of finals) {
      const error = make();
      const { open, requests } = scriptedStore({ breakAfter: [2], error: () => error });
      await expect(collect(resumableRestore(open, { maxResumes: 2 }))).rejects.toBe(error);
      expect(requests).toHaveLength(1);
    }
    expect(isResumableBreak(new APIConnectionError())).toBe(true);
    expect(isResumableBreak(new StreamFormatError("truncated", "x"))).toBe(true);
    expect(isResumableBreak(new StreamFormatError("bad_json", "x"))).toBe(false);
    expect(isResumableBreak(new APIUserAbortError())).toBe(false);
    expect(isResumableBreak(new TypeError("terminated"))).toBe(false);
  });

  it("should not resume a request that failed before its response started (the client already retried it)", async () => {
    const { open, requests } = scriptedStore({ breakAfter: [3] });
    const refused = new APIConnectionError({ message: "connect ECONNREFUSED" });
    const failingSecond: OpenRestore = (range) => (requests.length === 1 ? Promise.reject(refused).finally(() => requests.push(range)) : open(range));
    await expect(collect(resumableRestore(failingSecond, { maxResumes: 2 }))).rejects.toBe(refused);
    expect(requests).toHaveLength(2);
    const down: OpenRestore = () => Promise.reject(refused);
    await expect(collect(resumableRestore(down, { maxResumes: 2 }))).rejects.toBe(refused);
  });

  it("should stop waiting to resume when aborted", async () => {
    const ac = new AbortController();
    const { open, requests } = scriptedStore({ breakAfter: [2, undefined] });
    const out: string[] = [];
    const run = (async () => {
      for await (const ev of resumableRestore(open, { maxResumes: 2, signal: ac.signal, onResume: () => ac.abort() })) out.push(keyOf(ev));
    })();
    await expect(run).rejects.toBeInstanceOf(APIUserAbortError);
    expect(requests).toHaveLength(1);
    expect(out).toEqual(whole.slice(0, 3));
  });
});
