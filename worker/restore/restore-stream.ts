// Restore: a framed stream of a session's chunks for a token range × layer range, in slot then layer order. Chunks are
// read a row span at a time, a bounded distance ahead (chunk-prefetch.ts, never the whole session in memory), and
// re-verified before sending: a bad chunk ends the stream with an error frame `corrupt_chunk`, never with its bytes.
import { FrameType, encodeFrameHeader } from "../../format/wire/frames.ts";
import { controlFrame, encodeRestoreHeaderMsgpack, encodeRestoreTrailer, errorFrame } from "../../format/wire/control-msgpack.ts";
import type { ErrorBody, RestoreHeader } from "../../format/wire/messages.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import type { ChunkRef } from "../objects/session-types.ts";
import { recordEvent, type WaitUntil } from "../telemetry/index.ts";
import { ChunkPrefetcher, type LoadedSpan } from "./chunk-prefetch.ts";

export interface RestoreSource {
  readonly env: Env;
  /** The request's execution context: the stream's telemetry flush runs under its waitUntil. */
  readonly ctx: WaitUntil;
  readonly tenant: string;
  readonly sessionId: string;
  readonly specHash: string;
}

/** Tokens of [from, to) that lie before `tokenEnd` (what a stream that stopped there delivered in full). */
const tokensBefore = (header: RestoreHeader, tokenEnd: number): number => Math.max(0, Math.min(header.to, tokenEnd) - header.from);

/**
 * Opens the restore body. It waits for the first span (the first chunk and the ones after it in the same row), so a
 * missing or corrupt first chunk throws and becomes a plain 500 JSON response; later failures become a type-4 error
 * frame, after the verified chunks before it, followed by the end of the stream. A span of one chunk is a chunk frame
 * (type 2), a longer one a chunk-run frame (type 5). The stream is pulled: a client that reads slowly holds back the
 * reads (at most the read-ahead budget ahead), and one that goes away cancels it.
 */
export async function openRestoreStream(src: RestoreSource, header: RestoreHeader, refs: readonly ChunkRef[]): Promise<ReadableStream<Uint8Array>> {
  const prefetch = new ChunkPrefetcher(src.env, src.tenant, refs, src.specHash);
  let first: LoadedSpan | null = prefetch.done ? null : await prefetch.take();
  if (first !== null && !first.ok && first.good.length === 0) throw first.error;
  let sentHeader = false;
  let bytes = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!sentHeader) {
          sentHeader = true;
          controller.enqueue(controlFrame(encodeRestoreHeaderMsgpack(header)));
          return;
        }
        if (first === null && prefetch.done) {
          controller.enqueue(controlFrame(encodeRestoreTrailer({ chunks: refs.length, bytes })));
          controller.close();
          recordServed(src, header, tokensBefore(header, header.to), bytes, undefined);
          return;
        }
        const span = first ?? (await prefetch.take());
        first = null;
        if (span.ok) {
          bytes += span.bytes.length;
          controller.enqueue(encodeFrameHeader(span.count === 1 ? FrameType.chunk : FrameType.chunks, span.bytes.length));
          controller.enqueue(span.bytes);
          return;
        }
        for (const chunk of span.good) {
          bytes += chunk.length;
          controller.enqueue(encodeFrameHeader(FrameType.chunk, chunk.length));
          controller.enqueue(chunk);
        }
        const ref = refs[span.first + span.good.length];
        const e = span.error;
        const body: ErrorBody = e instanceof ApiError ? e.body() : { error: { code: "internal", message: `reading chunk ${ref.key} failed: ${String(e)}` } };
        controller.enqueue(errorFrame(body));
        controller.close();
        recordServed(src, header, tokensBefore(header, ref.tokenStart), bytes, body.error.code);
      },
    },
    // The current span (its 5-byte frame header and its bytes are two queue entries, so the row span is never copied)
    // waits in the queue while the next one is taken: sending and storage reads overlap.
    { highWaterMark: 2 },
  );
}

function recordServed(src: RestoreSource, header: RestoreHeader, hitTokens: number, bytes: number, errorCode: string | undefined): void {
  recordEvent(src.env, src.ctx, {
    kind: "restore_served",
    sessionId: src.sessionId,
    requestedTokens: header.to - header.from,
    hitTokens,
    bytes,
    ...(errorCode !== undefined ? { errorCode } : {}),
  });
}
