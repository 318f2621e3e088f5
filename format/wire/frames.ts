// Binary framing shared by the Worker and the client SDK: `[u8 type][u32 LE length][payload]`, used for append bodies,
// WebSocket appends and restore streams (docs/api.md). Nothing here knows about Durable Objects or the HTTP layer.

import { MlaError } from "../errors.ts";
/**
 * What a restore's `Accept` header asks for: "ok" when it names this version's framed type, or allows any type
 * (absent, `*\/*`, `application/*`); "other_version" when it names the framed type of another version (or the bare
 * type, version 1); "not_frames" when it lists only other types (e.g. a version-1 SDK's `application/json`).
 */
export function framesAcceptance(accept: string | null | undefined): "ok" | "other_version" | "not_frames" {
  if (accept === null || accept === undefined || accept.trim() === "") return "ok";
  let other = false;
  let any = false;
  for (const range of accept.split(",")) {
    const v = framesVersionOf(range);
    if (v === WIRE_FORMAT_VERSION) return "ok";
    if (v !== null) other = true;
    const type = range.split(";")[0].trim().toLowerCase();
    if (type === "*/*" || type === "application/*") any = true;
  }
  if (other) return "other_version";
  return any ? "ok" : "not_frames";
}

/** Frame types. Numbered explicitly: the value is on the wire. */
export const FrameType = {
  /** MessagePack control message (append control, restore header, restore trailer, append result): control-msgpack.ts. */
  control: 1,
  /** One packed chunk (docs/chunk-format.md). */
  chunk: 2,
  /** Proxy mode: float16/float32 latents of one chunk that the Worker quantizes and packs (format/wire/latents.ts). */
  latents: 3,
  /** MessagePack `{error:{code,message,reason?}}`: the stream failed here and nothing after it is data. */
  error: 4,
  /**
   * Several packed chunks back to back, each delimited by its own header's byteLength (format/wire/chunk-run.ts): a
   * restore sends the chunks that one stored row holds for the range in one frame. Restore streams only.
   */
  chunks: 5,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Type byte + u32 length. */
export const FRAME_HEADER_BYTES = 5;

/**
 * Version of the framed protocol: 1 carried control and error frames as UTF-8 JSON, 2 as MessagePack (issue 22). The
 * frame types and the chunk format (format/chunk, its own version) are the same in both. `/v1/health` reports it.
 */
export const WIRE_FORMAT_VERSION = 2;

/** Media type of a framed body, without its version parameter. */
export const FRAMES_MEDIA_TYPE = "application/vnd.mla-edge.frames";

/** Content-Type of a framed body of this version (append requests, restore responses, the `Accept` of a restore). */
export const FRAMES_CONTENT_TYPE = `${FRAMES_MEDIA_TYPE}; version=${WIRE_FORMAT_VERSION}`;

/** WebSocket subprotocol of framed appends of this version (`Sec-WebSocket-Protocol`). */
export const FRAMES_WS_PROTOCOL = `mla-edge.frames.v${WIRE_FORMAT_VERSION}`;

/**
 * The wire version a media type names: null when it is not the framed media type at all, 1 for the bare type (version
 * 1 had no parameter), else its `version` parameter (NaN when that is not a positive integer).
 */
export function framesVersionOf(mediaType: string): number | null {
  const [type, ...params] = mediaType.split(";").map((p) => p.trim());
  if (type.toLowerCase() !== FRAMES_MEDIA_TYPE) return null;
  for (const p of params) {
    const eq = p.indexOf("=");
    if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== "version") continue;
    const v = p.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
    return /^[1-9][0-9]{0,5}$/.test(v) ? Number(v) : Number.NaN;
  }
  return 1;
}

/** What a reader accepts per frame type: payloads above it are refused before anything is allocated (CWE-770). */
export type FrameLimits = Readonly<Record<FrameType, number>>;

export type FrameErrorCode = "truncated" | "too_large" | "unknown_type";

/** Malformed framing: an unknown type byte, a payload above its limit, or a stream ending inside a frame. */
export class FrameError extends MlaError<FrameErrorCode> {
  override readonly name = "FrameError";
  constructor(code: FrameErrorCode, message: string) {
    super(code, message);
  }
}

export interface Frame {
  readonly type: FrameType;
  /** Own memory (byteOffset 0), so typed views of it are aligned. */
  readonly payload: Uint8Array;
}

const TYPES: ReadonlySet<number> = new Set(Object.values(FrameType));

/** One frame's bytes. */
export function encodeFrame(type: FrameType, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, payload.length, true);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Only the 5 header bytes, for writers that send the payload separately (no copy of a large chunk). */
export function encodeFrameHeader(type: FrameType, payloadLength: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, payloadLength, true);
  return out;
}

/**
 * A version-1 JSON frame (control or error). Version 2 sends MessagePack (control-msgpack.ts); this stays for tests
 * that play an old peer.
 */
export function encodeJsonFrame(type: typeof FrameType.control | typeof FrameType.error, value: unknown): Uint8Array {
  return encodeFrame(type, new TextEncoder().encode(JSON.stringify(value)));
}

/**
 * Pull-based frame reader over a byte stream: holds at most one frame's payload plus one network read, so a body of
 * any length is processed in bounded memory. `next()` returns null at a clean end of stream.
 */
export class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #limits: FrameLimits;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #done = false;
  /** Bytes consumed so far (framing included). */
  bytesRead = 0;

  constructor(stream: ReadableStream<Uint8Array>, limits: FrameLimits) {
    this.#reader = stream.getReader();
    this.#limits = limits;
  }

  async next(): Promise<Frame | null> {
    if (!(await this.#fill(1))) {
      if (this.#pendingBytes === 0) return null;
    }
    if (!(await this.#fill(FRAME_HEADER_BYTES))) {
      throw new FrameError("truncated", `stream ended inside a frame header (${this.#pendingBytes} of ${FRAME_HEADER_BYTES} bytes)`);
    }
    const head = this.#take(FRAME_HEADER_BYTES);
    const type = head[0];
    const length = new DataView(head.buffer, head.byteOffset, FRAME_HEADER_BYTES).getUint32(1, true);
    if (!TYPES.has(type)) throw new FrameError("unknown_type", `unknown frame type ${type}`);
    const limit = this.#limits[type as FrameType];
    if (length > limit) throw new FrameError("too_large", `frame type ${type} declares ${length} bytes, above the limit ${limit}`);
    if (!(await this.#fill(length))) {
      throw new FrameError("truncated", `stream ended inside a frame: ${this.#pendingBytes} of ${length} payload bytes`);
    }
    this.bytesRead += FRAME_HEADER_BYTES + length;
    return { type: type as FrameType, payload: this.#take(length) };
  }

  /** Releases the underlying stream (e.g. after an error, so the body is not read further). */
  async cancel(reason?: unknown): Promise<void> {
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.#reader.cancel(reason).catch(() => undefined);
  }

  /** Reads until `n` bytes are pending; false when the stream ends first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#pendingBytes < n) {
      if (this.#done) return false;
      const { value, done } = await this.#reader.read();
      if (done) {
        this.#done = true;
        return this.#pendingBytes >= n;
      }
      if (value.length > 0) {
        this.#pending.push(value);
        this.#pendingBytes += value.length;
      }
    }
    return true;
  }

  /** Removes `n` pending bytes into a fresh buffer. */
  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const head = this.#pending[0];
      const use = Math.min(head.length, n - at);
      out.set(head.subarray(0, use), at);
      at += use;
      if (use === head.length) this.#pending.shift();
      else this.#pending[0] = head.subarray(use);
    }
    this.#pendingBytes -= n;
    return out;
  }
}

/**
 * Async iteration over a framed stream; throws FrameError on malformed framing. A consumer that stops early (`break`,
 * an error in its loop) or a framing error cancels the stream, so a fetch body stops downloading and frees its
 * connection instead of running on in the background.
 */
export async function* readFrames(stream: ReadableStream<Uint8Array>, limits: FrameLimits): AsyncGenerator<Frame> {
  const reader = new FrameReader(stream, limits);
  let ended = false;
  try {
    for (;;) {
      const frame = await reader.next();
      if (frame === null) {
        ended = true;
        return;
      }
      yield frame;
    }
  } finally {
    if (!ended) await reader.cancel();
  }
}
