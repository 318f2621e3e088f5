// A restore that survives a dropped connection: when a response breaks mid-body, the rest is requested again
// from the slot of the first chunk not yet received (`from` = its first token), checked to be the same snapshot, and
// the chunks already delivered are skipped. A phone changing networks mid-restore costs one slot again, not the session.

import type { RestoreChunkInfo, RestoreHeader } from "../../format/wire/messages.ts";
import { APIConnectionError, APIUserAbortError, StreamFormatError } from "../core/error.ts";
import type { RestoreEvent } from "../../runtime/cache-store.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import { sleep } from "./utils/sleep.ts";

/** Opens one restore request for a token range (`from`/`to` absent: the whole session). */
export type OpenRestore = (range: { readonly from?: number; readonly to?: number }) => Promise<AsyncIterable<RestoreEvent>>;

export interface ResumeOptions {
  /** Further requests after a broken stream (0: never resume). */
  readonly maxResumes: number;
  readonly signal?: AbortSignal;
  /** Called before each resumed request, e.g. to count or log it. */
  readonly onResume?: (resume: ResumeInfo) => void;
}

export interface ResumeInfo {
  /** 1 for the first resume. */
  readonly attempt: number;
  /** First token of the resumed range. */
  readonly from: number;
  /** Chunks delivered before the break. */
  readonly received: number;
  readonly cause: unknown;
}

/**
 * Whether a broken restore may be requested again: the connection failed or the body ended early. A store error
 * (e.g. `corrupt_chunk` in an error frame), a malformed stream or an abort is final.
 */
export function isResumableBreak(e: unknown): boolean {
  if (e instanceof APIUserAbortError) return false;
  if (e instanceof APIConnectionError) return true;
  return e instanceof StreamFormatError && e.code === "truncated";
}

const sameChunk = (a: RestoreChunkInfo, b: RestoreChunkInfo): boolean =>
  a.key === b.key && a.slot === b.slot && a.tokenStart === b.tokenStart && a.tokenCount === b.tokenCount &&
  a.layerStart === b.layerStart && a.layerCount === b.layerCount && a.sealed === b.sealed && a.bytes === b.bytes;

/** The header, then every chunk once, in the first header's order, across as many requests as it takes. */
export async function* resumableRestore(open: OpenRestore, options: ResumeOptions): AsyncGenerator<RestoreEvent> {
  let header: RestoreHeader | null = null;
  let received = 0;
  for (let resumes = 0; ; resumes++) {
    const { first, range } = resumePoint(header, received);
    let skip = received - first;
    // A request that fails before its response starts was already retried by the client (maxRetries): final.
    const stream = await open(range);
    try {
      let resumedHeader = false;
      for await (const ev of stream) {
        if (ev.type === "header") {
          if (header === null) {
            header = ev.header;
            yield ev;
          } else {
            checkContinuation(header, ev.header, first);
          }
          resumedHeader = true;
        } else if (skip > 0) {
          skip--;
        } else {
          received++;
          yield ev;
        }
      }
      if (!resumedHeader) throw new RuntimeError("bad_restore", "restore stream ended without a header");
      return;
    } catch (e) {
      if (!isResumableBreak(e) || resumes >= options.maxResumes || options.signal?.aborted) throw e;
      options.onResume?.({ attempt: resumes + 1, from: resumePoint(header, received).range.from ?? 0, received, cause: e });
      // A short pause so a resume does not hit the same failing hop at once (0.25 s, 0.5 s, 1 s, … ≤ 4 s).
      await sleep(Math.min(250 * 2 ** resumes, 4000), options.signal).catch(() => {
        throw new APIUserAbortError();
      });
    }
  }
}

/**
 * Where to ask again: the slot of the next chunk (or of the last one, when only the trailer was lost). Chunks are whole
 * and listed slot by slot, so the resumed header lists the original's chunks from index `first` (that slot's first) on.
 */
function resumePoint(header: RestoreHeader | null, received: number): { first: number; range: { from?: number; to?: number } } {
  if (header === null || header.chunks.length === 0) return { first: 0, range: {} };
  const anchor = header.chunks[Math.min(received, header.chunks.length - 1)];
  return { first: header.chunks.findIndex((c) => c.slot === anchor.slot), range: { from: anchor.tokenStart, to: header.to } };
}

/** The resumed request must describe the same snapshot: same head and the same chunks from the resume slot on. */
function checkContinuation(original: RestoreHeader, resumed: RestoreHeader, first: number): void {
  const expected = original.chunks.slice(first);
  const same =
    resumed.head === original.head &&
    resumed.tokens === original.tokens &&
    resumed.chunks.length === expected.length &&
    resumed.chunks.every((c, i) => sameChunk(c, expected[i]));
  if (!same) {
    throw new RuntimeError(
      "out_of_sync",
      `the session changed while its restore was resumed (head ${original.head} → ${resumed.head}, tokens ${original.tokens} → ${resumed.tokens}); restore again`,
    );
  }
}
