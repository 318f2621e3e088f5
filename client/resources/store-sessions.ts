// The raw edge-store API (docs/api.md), one method per route: create (tenant key), manifest, append a framed turn,
// restore stream, fork, truncate, delete, mint a token. Session routes authenticate with the session token.

import { ChunkError, MAX_CHUNK_BYTES } from "../../format/chunk/types.ts";
import { readFixedHeader } from "../../format/chunk/header.ts";
import { FRAME_HEADER_BYTES } from "../../format/wire/frames.ts";
import { MAX_APPEND_BODY_BYTES, MAX_STAGED_TURN_TOKENS, MAX_TURN_TOKENS } from "../../format/wire/limits.ts";
import { splitChunkRun } from "../../format/wire/chunk-run.ts";
import { checkRestoreChunk, RestoreCheckError } from "../../format/wire/restore-check.ts";
import { encodeFrameHeader, FrameError, FrameType, FRAMES_CONTENT_TYPE, framesVersionOf, readFrames, WIRE_FORMAT_VERSION, type FrameLimits } from "../../format/wire/frames.ts";
import {
  ControlDecodeError,
  controlFrame,
  decodeErrorBody,
  decodeRestoreHeaderMsgpack,
  decodeRestoreTrailer,
  encodeAppendControl,
  type RestoreTrailer,
} from "../../format/wire/control-msgpack.ts";
import type {
  AppendControl,
  AppendResult,
  AppendStaged,
  MediaSpan,
  CreateSessionRequest,
  ErrorBody,
  ForkRequest,
  Manifest,
  MintTokenRequest,
  RestoreHeader,
  SessionCreated,
  TruncateRequest,
} from "../../format/wire/messages.ts";
import type { APIPromise, RawResponse } from "../core/api-promise.ts";
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, MlaEdgeError, StreamFormatError, UnsupportedFormatError } from "../core/error.ts";
import { APIResource } from "../core/resource.ts";
import { Stream } from "../core/stream.ts";
import { concatBytes } from "../internal/utils/concat-bytes.ts";
import { withIdleTimeout } from "../internal/utils/idle-timeout.ts";
import { path } from "../internal/utils/path.ts";
import type { RestoreEvent } from "../../runtime/cache-store.ts";

export interface SessionAuth {
  /** The session's capability token (from create or fork). */
  readonly token: string;
  readonly signal?: AbortSignal;
}

export interface AppendBody {
  readonly control: AppendControl;
  /** Packed chunks in the order the store plans them (slot, then layer range). */
  readonly chunks: readonly Uint8Array[];
}

export interface RestoreQuery {
  /** Token range [from, to); default the whole session. */
  readonly from?: number;
  readonly to?: number;
  /** Inclusive layer range [first, last]. */
  readonly layers?: readonly [number, number];
}

export interface TruncateResult {
  readonly head: number;
  readonly tokens: number;
}

/** What a restore stream's reader accepts per frame (a chunk, or a run of the chunks of one row, is at most one DO row). */
const RESTORE_FRAME_LIMITS: FrameLimits = {
  [FrameType.control]: 16 * 1024 * 1024,
  [FrameType.chunk]: MAX_CHUNK_BYTES,
  [FrameType.latents]: 0,
  [FrameType.error]: 64 * 1024,
  [FrameType.chunks]: MAX_CHUNK_BYTES,
};

/** Per-request bounds a long turn is split by (the store's: format/wire/limits.ts). */
export interface PartLimits {
  readonly maxTokens: number;
  readonly maxBytes: number;
}

export const STORE_PART_LIMITS: PartLimits = { maxTokens: MAX_TURN_TOKENS, maxBytes: MAX_APPEND_BODY_BYTES };

/** Bytes of the framed body of `control` plus chunks of `chunkBytes` bytes. */
const bodyBytes = (control: AppendControl, chunkBytes: number, chunks: number): number =>
  FRAME_HEADER_BYTES + encodeAppendControl(control).length + chunkBytes + FRAME_HEADER_BYTES * chunks;

/** The media spans of [from, to) (session tokens), a span cut at a part boundary keeping its place in the item (`offset`). */
function mediaIn(media: readonly MediaSpan[], from: number, to: number): MediaSpan[] {
  const out: MediaSpan[] = [];
  for (const m of media) {
    const a = Math.max(m.start, from);
    const b = Math.min(m.start + m.length, to);
    if (a < b) out.push({ hash: m.hash, start: a, length: b - a, offset: (m.offset ?? 0) + (a - m.start) });
  }
  return out;
}

/**
 * Splits a turn that one request cannot carry (more than `maxTokens` tokens, or a body above `maxBytes`) into parts
 * the store stages and commits as one turn (docs/api.md "Turns of any length"): every part but the last ends at a slot
 * boundary (a chunk's tokenStart, read from the chunks' fixed headers) and is marked `final: false`; media spans are
 * cut with their offsets. A turn that fits is returned as is (one part). Throws a RangeError when one slot's chunks
 * alone exceed the limits.
 */
export function splitAppendBody(body: AppendBody, limits: PartLimits = STORE_PART_LIMITS): AppendBody[] {
  const { control, chunks } = body;
  const n = control.tokenIds.length;
  const total = chunks.reduce((a, c) => a + c.length, 0);
  if (n <= limits.maxTokens && bodyBytes(control, total, chunks.length) <= limits.maxBytes) return [body];
  if (chunks.length === 0) throw new RangeError(`a turn of ${n} tokens without chunks cannot be split`);
  const headers = chunks.map((c) => readFixedHeader(c));
  const last = headers[headers.length - 1];
  const turnStart = last.tokenStart + last.tokenCount - n;
  // Slots in upload order: [tokenStart, its chunks).
  const slots: Array<{ start: number; end: number; chunks: Uint8Array[]; bytes: number }> = [];
  headers.forEach((h, i) => {
    const cur = slots[slots.length - 1];
    if (cur !== undefined && cur.start === h.tokenStart) {
      cur.chunks.push(chunks[i]);
      cur.bytes += chunks[i].length;
    } else slots.push({ start: h.tokenStart, end: h.tokenStart + h.tokenCount, chunks: [chunks[i]], bytes: chunks[i].length });
  });
  const parts: AppendBody[] = [];
  const media = control.media ?? [];
  const make = (from: number, to: number, partChunks: Uint8Array[], final: boolean): AppendBody => {
    const i0 = from - turnStart;
    const i1 = to - turnStart;
    const part: AppendControl = {
      expectedSeq: control.expectedSeq,
      tokenIds: control.tokenIds.slice(i0, i1),
      modality: control.modality.slice(i0, i1),
      positions: control.positions.slice(3 * i0, 3 * i1),
      media: mediaIn(media, from, to),
      ...(final ? {} : { final: false }),
    };
    return { control: part, chunks: partChunks };
  };
  let from = turnStart;
  let partChunks: Uint8Array[] = [];
  let partBytes = 0;
  for (const slot of slots) {
    const to = Math.max(slot.end, from);
    // Worst-case control size of a part: ~16 B per token of MessagePack ids, modality and positions, plus media.
    const fits = (end: number, bytes: number, count: number) => end - from <= limits.maxTokens && 64 * 1024 + 16 * (end - from) + bytes + FRAME_HEADER_BYTES * (count + 1) <= limits.maxBytes;
    if (partChunks.length > 0 && !fits(to, partBytes + slot.bytes, partChunks.length + slot.chunks.length)) {
      parts.push(make(from, slot.start, partChunks, false));
      from = slot.start;
      partChunks = [];
      partBytes = 0;
    }
    if (!fits(Math.max(slot.end, from), slot.bytes, slot.chunks.length)) {
      throw new RangeError(`slot at token ${slot.start} (${slot.chunks.length} chunks, ${slot.bytes} B) does not fit one append request`);
    }
    partChunks.push(...slot.chunks);
    partBytes += slot.bytes;
  }
  parts.push(make(from, turnStart + n, partChunks, true));
  return parts;
}

/** The framed body of one append: control frame, then one chunk frame per chunk. */
export function encodeAppendBody(body: AppendBody): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [controlFrame(encodeAppendControl(body.control))];
  for (const c of body.chunks) parts.push(encodeFrameHeader(FrameType.chunk, c.length), c);
  return concatBytes(parts);
}

/**
 * Parses a restore response body: header, chunks, then the `{done, chunks, bytes}` trailer that proves the stream is
 * complete. An error frame ends it with an APIError, a body that ends early (before the trailer or inside a frame)
 * with StreamFormatError("truncated"), a body whose connection breaks with APIConnectionError (APIUserAbortError once
 * `signal` is aborted).
 */
export async function* parseRestoreStream(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<RestoreEvent> {
  let header: RestoreHeader | null = null;
  let trailer: RestoreTrailer | null = null;
  let chunks = 0;
  let bytes = 0;
  try {
    for await (const frame of readFrames(body, RESTORE_FRAME_LIMITS)) {
      if (trailer !== null) throw new StreamFormatError("unexpected_frame", "restore stream continues after its trailer");
      if (frame.type === FrameType.error) {
        // The store failed mid-stream (e.g. a corrupt row): surface its {error:{code,message}} like an HTTP error.
        throw APIError.generate(500, decoded(() => decodeErrorBody(frame.payload), "error frame"), "restore stream failed", new Headers());
      }
      if (frame.type === FrameType.control) {
        if (header === null) {
          header = decoded(() => decodeRestoreHeaderMsgpack(frame.payload), "restore header");
          yield { type: "header", header };
        } else {
          // After the header, the only control frame is the trailer (a second header is not one: missing `done`).
          trailer = decoded(() => decodeRestoreTrailer(frame.payload), "restore trailer");
          if (trailer.chunks !== chunks || trailer.bytes !== bytes) {
            throw new StreamFormatError("truncated", `restore trailer counts ${trailer.chunks} chunks / ${trailer.bytes} B, received ${chunks} / ${bytes} B`);
          }
          if (chunks !== header.chunks.length) {
            throw new StreamFormatError("unexpected_frame", `restore stream ended after ${chunks} chunks, its header lists ${header.chunks.length}`);
          }
        }
      } else if (frame.type === FrameType.chunk || frame.type === FrameType.chunks) {
        if (header === null) throw new StreamFormatError("unexpected_frame", "restore stream sent a chunk before its header");
        for (const chunk of frame.type === FrameType.chunk ? [frame.payload] : splitRun(frame.payload)) {
          // Each chunk must be the one the header lists at its place: no more chunks than listed, none of another size,
          // storage, token or layer range (a stream mixing in other chunks is refused, not assembled).
          const info = header.chunks[chunks];
          if (info === undefined) throw new StreamFormatError("unexpected_frame", `restore stream sent more chunks than the ${header.chunks.length} its header lists`);
          const index = chunks;
          checked(() => checkRestoreChunk(chunk, info, index));
          chunks++;
          bytes += chunk.length;
          yield { type: "chunk", bytes: chunk };
        }
      } else {
        throw new StreamFormatError("unexpected_frame", `restore stream has a frame of type ${frame.type}`);
      }
    }
  } catch (e) {
    if (e instanceof FrameError) throw new StreamFormatError(e.code === "truncated" ? "truncated" : "bad_frame", e.message, { cause: e });
    if (e instanceof MlaEdgeError) throw e;
    if (signal?.aborted) throw new APIUserAbortError();
    // The body's connection broke (fetch rejects the read with a TypeError, e.g. undici's "terminated").
    throw new APIConnectionError({
      message: `restore stream broke after ${chunks} chunks (${bytes} B): ${(e as Error).message}`,
      cause: e instanceof Error ? e : undefined,
    });
  }
  if (header === null) throw new StreamFormatError("unexpected_frame", "restore stream ended without a header");
  if (trailer === null) throw new StreamFormatError("truncated", `restore stream ended after ${chunks} chunks without its trailer`);
}

/** A strictly decoded control or error frame; malformed MessagePack or a wrong field set is a malformed stream (final). */
function decoded<T>(f: () => T, what: string): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ControlDecodeError) throw new StreamFormatError("bad_frame", `${what}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Runs a format/wire restore check, mapping its error to StreamFormatError("bad_frame"). */
function checked<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RestoreCheckError) throw new StreamFormatError("bad_frame", e.message, { cause: e });
    throw e;
  }
}

/**
 * Refuses a restore response of another wire version before reading it: its Content-Type must be this SDK's framed type
 * (a version-1 store answers with the bare type and JSON control frames).
 */
export function checkFramesResponse(contentType: string | null): void {
  const version = framesVersionOf(contentType ?? "");
  if (version === WIRE_FORMAT_VERSION) return;
  throw new UnsupportedFormatError(
    WIRE_FORMAT_VERSION,
    version === null || Number.isNaN(version) ? null : version,
    `the store answered a restore with ${JSON.stringify((contentType ?? "no content type").slice(0, 80))}: this SDK reads wire format version ${WIRE_FORMAT_VERSION} (${FRAMES_CONTENT_TYPE}) only`,
  );
}

/** The chunks of a chunk-run frame; a run that does not split into whole chunks is a malformed stream. */
function splitRun(payload: Uint8Array): Uint8Array[] {
  try {
    return splitChunkRun(payload);
  } catch (e) {
    if (e instanceof ChunkError) throw new StreamFormatError("bad_frame", e.message, { cause: e });
    throw e;
  }
}

export class StoreSessions extends APIResource {
  /** Creates an empty session (tenant API key): its id and capability token. */
  create(body: CreateSessionRequest, options?: { signal?: AbortSignal }): APIPromise<SessionCreated> {
    return this._client.request({ method: "POST", path: "/v1/sessions", body, signal: options?.signal, maxRetries: 0, resendUndelivered: true });
  }

  /** The manifest: spec, codec, turns, sizes, next M-RoPE position. */
  retrieve(id: string, auth: SessionAuth): APIPromise<Manifest> {
    return this._client.request({ method: "GET", path: path`/v1/sessions/${id}`, token: auth.token, signal: auth.signal });
  }

  /**
   * Appends one turn. Not retried on errors (a retry of a committed turn would answer 409 turn_conflict), only resent
   * when the local dev server's proxy answered instead of the Worker (client.ts `neverDelivered`). A turn above the
   * store's per-request limits is sent in parts (`splitAppendBody`): every part but the last is staged by the store,
   * invisible to readers, and the last commits them all as one turn; a part that fails leaves nothing of the turn, and
   * the error is thrown (append the turn again from the start).
   */
  async append(id: string, body: AppendBody, auth: SessionAuth, limits: PartLimits = STORE_PART_LIMITS): Promise<AppendResult> {
    if (body.control.tokenIds.length > MAX_STAGED_TURN_TOKENS) {
      throw new RangeError(`a turn has at most ${MAX_STAGED_TURN_TOKENS} tokens (got ${body.control.tokenIds.length}): append it as several turns`);
    }
    const parts = splitAppendBody(body, limits);
    let stage: string | undefined;
    for (let i = 0; i < parts.length - 1; i++) {
      const control: AppendControl = { ...parts[i].control, ...(stage !== undefined ? { stage } : {}) };
      const staged = await this.appendPart<AppendStaged>(id, { control, chunks: parts[i].chunks }, auth);
      if (staged.staged !== true || typeof staged.stage !== "string") throw new StreamFormatError("bad_json", `a staged part was answered without its stage: ${JSON.stringify(staged).slice(0, 200)}`);
      stage = staged.stage;
    }
    const last = parts[parts.length - 1];
    return this.appendPart<AppendResult>(id, { control: { ...last.control, ...(stage !== undefined ? { stage } : {}) }, chunks: last.chunks }, auth);
  }

  /** One append request (a whole turn, or one part of a long one). */
  appendPart<T extends AppendResult | AppendStaged>(id: string, body: AppendBody, auth: SessionAuth): APIPromise<T> {
    return this._client.request({
      method: "POST",
      path: path`/v1/sessions/${id}/turns`,
      body: encodeAppendBody(body),
      contentType: FRAMES_CONTENT_TYPE,
      token: auth.token,
      signal: auth.signal,
      maxRetries: 0,
      resendUndelivered: true,
    });
  }

  /** Streams the stored chunks of a token/layer range; `break` out of the loop cancels the download. */
  restore(id: string, query: RestoreQuery, auth: SessionAuth): APIPromise<Stream<RestoreEvent>> {
    const controller = new AbortController();
    if (auth.signal) {
      if (auth.signal.aborted) controller.abort();
      else auth.signal.addEventListener("abort", () => controller.abort(), { once: true });
    }
    return this._client.request(
      {
        method: "GET",
        path: path`/v1/sessions/${id}/chunks`,
        query: { from: query.from, to: query.to, layers: query.layers ? `${query.layers[0]}-${query.layers[1]}` : undefined },
        token: auth.token,
        signal: controller.signal,
        accept: FRAMES_CONTENT_TYPE,
      },
      async (raw: RawResponse) => {
        const body = raw.response.body;
        if (body === null) throw new StreamFormatError("unexpected_frame", "restore response has no body");
        try {
          checkFramesResponse(raw.response.headers.get("content-type"));
        } catch (e) {
          await body.cancel().catch(() => undefined);
          throw e;
        }
        const idleMs = this._client.streamIdleTimeout;
        const guarded = withIdleTimeout(body, idleMs, () => new APIConnectionTimeoutError({ message: `restore stream sent nothing for ${idleMs} ms` }), controller.signal);
        return new Stream(() => parseRestoreStream(guarded, controller.signal), controller);
      },
    );
  }

  /** A new session holding turns 1..atSeq (its own token). */
  fork(id: string, body: ForkRequest, auth: SessionAuth): APIPromise<SessionCreated> {
    return this._client.request({ method: "POST", path: path`/v1/sessions/${id}/fork`, body, token: auth.token, signal: auth.signal, maxRetries: 0, resendUndelivered: true });
  }

  /** Keeps turns 1..toSeq. */
  truncate(id: string, body: TruncateRequest, auth: SessionAuth): APIPromise<TruncateResult> {
    return this._client.request({ method: "POST", path: path`/v1/sessions/${id}/truncate`, body, token: auth.token, signal: auth.signal });
  }

  delete(id: string, auth: SessionAuth): APIPromise<void> {
    return this._client.request({ method: "DELETE", path: path`/v1/sessions/${id}`, token: auth.token, signal: auth.signal });
  }

  /** Another capability token for a session (tenant API key). */
  mintToken(id: string, body: MintTokenRequest = {}, options?: { signal?: AbortSignal }): APIPromise<SessionCreated> {
    return this._client.request({ method: "POST", path: path`/v1/sessions/${id}/tokens`, body, signal: options?.signal });
  }
}

export type { ErrorBody };
