// Ordered, bounded read-ahead of a restore's chunks. Consecutive chunks that lie back to back in one row are read as
// one span; the first span is read alone, then the spans ahead of the one being sent are read while it is sent, up to
// a byte budget; the spans of one refill that live on the same shard are read in one RPC (readSpans), and every read
// has a deadline, so a restore never waits on storage without bound.
import { hexToBytes } from "@noble/hashes/utils.js";
import type { Env } from "../env.ts";
import { ApiError, WorkerError } from "../errors.ts";
import { MAX_ROW_BYTES } from "../limits.ts";
import type { RowSpan } from "../objects/chunk-object.ts";
import type { ChunkRef } from "../objects/session-types.ts";
import { chunkShardStub } from "../objects/stubs.ts";
import { describeRef, verifyStoredChunk } from "./verify-chunk.ts";

/** A shard read that has not answered by then is retried once, then fails the stream (never a silent stall). */
export const CHUNK_LOAD_TIMEOUT_MS = 20_000;

/**
 * Bytes of chunks read ahead of the one being sent: two full rows, so the next row is always on its way while one is
 * sent. It bounds a stream's memory when an isolate serves many streams (128 MB isolates).
 */
export const RESTORE_READ_AHEAD_BYTES = 2 * MAX_ROW_BYTES;

/**
 * One span read, verified: refs[first, first + count) as consecutive chunks of `bytes`; or, when the read or a chunk
 * failed, the chunks before the first bad one (`good`, each verified) and why the next one could not be sent.
 */
export type LoadedSpan =
  | { readonly ok: true; readonly first: number; readonly count: number; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly first: number; readonly good: readonly Uint8Array[]; readonly error: unknown };

class LoadTimeout extends WorkerError<"timeout"> {
  override readonly name = "LoadTimeout";
  constructor(message: string) {
    super("timeout", message);
  }
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

type ShardStub = ReturnType<typeof chunkShardStub>;

/** One span read: refs[first, first + count) lie back to back in one row of one shard. */
interface SpanRead extends RowSpan {
  readonly shard: number;
  readonly first: number;
  readonly count: number;
}

/** Groups refs into span reads, in order. */
function spanReads(refs: readonly ChunkRef[]): SpanRead[] {
  const reads: SpanRead[] = [];
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i];
    const last = reads.at(-1);
    if (last !== undefined && last.shard === r.shard && last.row === r.row && last.offset + last.length === r.offset && last.length + r.bytes <= MAX_ROW_BYTES) {
      reads[reads.length - 1] = { ...last, length: last.length + r.bytes, count: last.count + 1 };
    } else {
      reads.push({ shard: r.shard, row: r.row, offset: r.offset, length: r.bytes, first: i, count: 1 });
    }
  }
  return reads;
}

/** Reads `spans` from one shard in one RPC, retrying once on a timeout; `what` names the first chunk for errors. */
async function readShard(stub: ShardStub, spans: readonly RowSpan[], what: ChunkRef): Promise<Array<Uint8Array | null>> {
  const plain = spans.map((s) => ({ row: s.row, offset: s.offset, length: s.length }));
  const read = () => stub.readSpans(plain);
  try {
    return await withTimeout(read(), CHUNK_LOAD_TIMEOUT_MS).catch((e: unknown) => {
      if (e instanceof LoadTimeout) return withTimeout(read(), CHUNK_LOAD_TIMEOUT_MS);
      throw e;
    });
  } catch (e) {
    if (e instanceof LoadTimeout) {
      throw new ApiError(500, "internal", `${describeRef(what)}: storage did not answer twice in ${CHUNK_LOAD_TIMEOUT_MS} ms`, "timeout");
    }
    throw e;
  }
}

/**
 * The chunk of `ref` within a span read that starts at `spanOffset`: null when the row is missing, cut short when the
 * row came back short (its verification then fails).
 */
function sliceChunk(span: Uint8Array | null, spanOffset: number, ref: ChunkRef): Uint8Array | null {
  if (span === null) return null;
  const at = ref.offset - spanOffset;
  return span.subarray(at, Math.min(span.length, at + ref.bytes));
}

/** Hands out the verified spans of `refs`' chunks in order. */
export class ChunkPrefetcher {
  readonly #env: Env;
  readonly #tenant: string;
  readonly #refs: readonly ChunkRef[];
  readonly #reads: readonly SpanRead[];
  readonly #specHash: Uint8Array;
  readonly #budget: number;
  /** Loads of reads[#next …] in order. */
  readonly #loads: Array<Promise<LoadedSpan>> = [];
  /** One stub per shard for the whole stream (stubs belong to this request; never shared across requests). */
  readonly #stubs = new Map<number, ShardStub>();
  #next = 0;
  #issued = 0;
  #aheadBytes = 0;

  constructor(env: Env, tenant: string, refs: readonly ChunkRef[], specHash: string, budget = RESTORE_READ_AHEAD_BYTES) {
    this.#env = env;
    this.#tenant = tenant;
    this.#refs = refs;
    this.#specHash = hexToBytes(specHash);
    this.#budget = budget;
    this.#reads = spanReads(refs);
    this.#refill(1);
  }

  /** True when every span was handed out. */
  get done(): boolean {
    return this.#next === this.#reads.length;
  }

  /** The next span (or what of it could be verified, and why not the rest); call only while !done. */
  async take(): Promise<LoadedSpan> {
    if (this.done) throw new RangeError("every span of the restore was taken");
    // The read-ahead starts once the first span is in hand: rows read before it would delay the response's first byte.
    if (this.#next > 0) this.#refill();
    const loaded = await (this.#loads.shift() as Promise<LoadedSpan>);
    this.#aheadBytes -= this.#reads[this.#next].length;
    this.#next++;
    this.#refill();
    return loaded;
  }

  /**
   * Issues the span reads that fit the budget (at most `maxReads` of them) once at most half of it is in flight, one
   * RPC per shard.
   */
  #refill(maxReads = Infinity): void {
    const reads = this.#reads;
    if (this.#issued >= reads.length) return;
    if (this.#issued > this.#next && this.#aheadBytes > this.#budget / 2) return;
    const batch: number[] = [];
    while (batch.length < maxReads && this.#issued < reads.length && (this.#issued === this.#next || this.#aheadBytes + reads[this.#issued].length <= this.#budget)) {
      batch.push(this.#issued);
      this.#aheadBytes += reads[this.#issued].length;
      this.#issued++;
    }
    const byShard = new Map<number, number[]>();
    for (const r of batch) {
      const list = byShard.get(reads[r].shard);
      if (list === undefined) byShard.set(reads[r].shard, [r]);
      else list.push(r);
    }
    const results = new Map<number, Promise<LoadedSpan>>();
    for (const [shard, list] of byShard) {
      let stub = this.#stubs.get(shard);
      if (stub === undefined) {
        stub = chunkShardStub(this.#env, this.#tenant, shard);
        this.#stubs.set(shard, stub);
      }
      const done = readShard(
        stub,
        list.map((r) => reads[r]),
        this.#refs[reads[list[0]].first],
      );
      list.forEach((r, j) => {
        const read = reads[r];
        results.set(
          r,
          done.then(
            (spans) => this.#verify(read, spans[j]),
            (error: unknown): LoadedSpan => ({ ok: false, first: read.first, good: [], error }),
          ),
        );
      });
    }
    for (const r of batch) this.#loads.push(results.get(r) as Promise<LoadedSpan>);
  }

  /** Verifies each chunk of a span read; stops at the first bad one. */
  #verify(read: SpanRead, span: Uint8Array | null): LoadedSpan {
    const good: Uint8Array[] = [];
    for (let i = read.first; i < read.first + read.count; i++) {
      const ref = this.#refs[i];
      try {
        good.push(verifyStoredChunk(sliceChunk(span, read.offset, ref), ref, this.#specHash));
      } catch (error) {
        return { ok: false, first: read.first, good, error };
      }
    }
    return { ok: true, first: read.first, count: read.count, bytes: span as Uint8Array };
  }
}
