// Restore: a framed stream of a session's chunks for a token range × layer range, in slot then layer order. Pulls one
// chunk at a time from its ChunkObject (never the whole session in memory) and re-verifies it (CRC-32C, spec hash,
// range) before sending: a bad row ends the stream with an error frame `corrupt_chunk`, never with its bytes.
import { hexToBytes } from "@noble/hashes/utils.js";
import { readChunkHeader } from "../../format/chunk/decode.ts";
import { hashesEqual } from "../../format/hash/spec-hash.ts";
import { ChunkError } from "../../format/chunk/types.ts";
import { FrameType, encodeFrameHeader, encodeJsonFrame } from "../../format/wire/frames.ts";
import type { ErrorBody, RestoreHeader } from "../../format/wire/messages.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { chunkObjectName, shardOf } from "../keys.ts";
import type { ChunkRef } from "../objects/session-types.ts";

/** A chunk read that has not answered by then is retried once, then fails the stream (never a silent stall). */
export const CHUNK_LOAD_TIMEOUT_MS = 20_000;

class LoadTimeout extends Error {
  override readonly name = "LoadTimeout";
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LoadTimeout(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => {
    if (timer !== null) clearTimeout(timer);
  });
}

/** Fetches and re-verifies one chunk row; throws ApiError(500, corrupt_chunk) when it is missing or damaged. */
export async function loadVerifiedChunk(env: Env, tenant: string, ref: ChunkRef, specHash: string): Promise<Uint8Array> {
  const where = `chunk ${ref.key} (tokens ${ref.tokenStart}+${ref.tokenCount}, layers ${ref.layerStart}+${ref.layerCount})`;
  const read = () => env.CHUNKS.get(env.CHUNKS.idFromName(chunkObjectName(tenant, shardOf(ref.key)))).get(ref.key);
  let bytes: Uint8Array | null;
  try {
    bytes = await withTimeout(read(), CHUNK_LOAD_TIMEOUT_MS).catch((e: unknown) => {
      if (e instanceof LoadTimeout) return withTimeout(read(), CHUNK_LOAD_TIMEOUT_MS);
      throw e;
    });
  } catch (e) {
    if (e instanceof LoadTimeout) throw new ApiError(500, "internal", `${where}: storage did not answer twice in ${CHUNK_LOAD_TIMEOUT_MS} ms`, "timeout");
    throw e;
  }
  if (bytes === null) throw new ApiError(500, "corrupt_chunk", `${where} is missing from storage`, "missing");
  try {
    // CRC-32C over the whole row (readChunkHeader) proves the bytes are the ones verifyChunk accepted at upload, so the
    // payload value checks are not repeated here; the spec hash and the range must still be the session's.
    const h = readChunkHeader(bytes);
    if (!hashesEqual(h.specHash, hexToBytes(specHash))) throw new ApiError(500, "corrupt_chunk", `${where}: stored row names another spec`, "spec_mismatch");
    if (h.tokenStart !== ref.tokenStart || h.tokenCount !== ref.tokenCount || h.layerStart !== ref.layerStart || h.layerCount !== ref.layerCount) {
      throw new ApiError(500, "corrupt_chunk", `${where}: stored row describes another range`, "range_mismatch");
    }
  } catch (e) {
    if (e instanceof ChunkError) throw new ApiError(500, "corrupt_chunk", `${where} failed verification: ${e.message}`, e.code);
    throw e;
  }
  return bytes;
}

/**
 * Bytes of chunks being loaded ahead of the one being sent. DO reads are latency-bound for small (sealed) chunks, so a
 * few are loaded in parallel from their shards; the budget keeps a stream's memory small when an isolate serves many.
 */
export const RESTORE_READ_AHEAD_BYTES = 2_000_000;

type Loaded = { ok: true; bytes: Uint8Array } | { ok: false; error: unknown };

/**
 * The restore body. The first chunk is loaded by the caller (so a corrupt first row can still be a plain 500 JSON
 * response); later failures become a type-4 error frame followed by the end of the stream.
 */
export function restoreStream(env: Env, tenant: string, specHash: string, header: RestoreHeader, refs: readonly ChunkRef[], first: Uint8Array | null): ReadableStream<Uint8Array> {
  let sent = 0;
  let sentHeader = false;
  let bytes = 0;
  // Loads in flight, in stream order, for refs[sent], refs[sent + 1], …
  const loads: Array<Promise<Loaded>> = [];
  let loadedUpTo = 0;
  const refill = (): void => {
    let budget = RESTORE_READ_AHEAD_BYTES;
    for (let i = sent; i < loadedUpTo; i++) budget -= refs[i].bytes;
    while (loadedUpTo < refs.length && (loads.length === 0 || budget >= refs[loadedUpTo].bytes)) {
      const i = loadedUpTo++;
      budget -= refs[i].bytes;
      loads.push(
        i === 0 && first !== null
          ? Promise.resolve({ ok: true, bytes: first })
          : loadVerifiedChunk(env, tenant, refs[i], specHash).then(
              (b): Loaded => ({ ok: true, bytes: b }),
              (error: unknown): Loaded => ({ ok: false, error }),
            ),
      );
    }
  };
  // Start reading before the client asks: the first loads overlap the response headers and the header frame.
  refill();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!sentHeader) {
          sentHeader = true;
          controller.enqueue(encodeJsonFrame(FrameType.control, header));
          return;
        }
        if (sent === refs.length) {
          controller.enqueue(encodeJsonFrame(FrameType.control, { done: true, chunks: refs.length, bytes }));
          controller.close();
          return;
        }
        refill();
        const loaded = await (loads.shift() as Promise<Loaded>);
        const ref = refs[sent++];
        if (!loaded.ok) {
          const e = loaded.error;
          const body: ErrorBody =
            e instanceof ApiError ? e.body() : { error: { code: "internal", message: `reading chunk ${ref.key} failed: ${String(e)}` } };
          controller.enqueue(encodeJsonFrame(FrameType.error, body));
          controller.close();
          return;
        }
        bytes += loaded.bytes.length;
        controller.enqueue(encodeFrameHeader(FrameType.chunk, loaded.bytes.length));
        controller.enqueue(loaded.bytes);
        refill();
      },
    },
    // The current chunk (its 5-byte frame header + payload are two queue entries) waits in the queue while the next
    // ones load: sending and DO reads overlap.
    { highWaterMark: 2 },
  );
}
