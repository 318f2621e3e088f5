// Ordered, bounded read-ahead of a restore's chunk rows. The refs ahead of the one being sent are read while it is
// sent, up to a byte budget; the refs of one refill that live on the same shard are read in one RPC (getMany), and
// every read has a deadline, so a restore never waits on storage without bound.
import { hexToBytes } from "@noble/hashes/utils.js";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { shardOf } from "../keys.ts";
import type { ChunkRef } from "../objects/session-types.ts";
import { chunkShardStub } from "../objects/stubs.ts";
import { describeRef, verifyStoredChunk } from "./verify-chunk.ts";

/** A shard read that has not answered by then is retried once, then fails the stream (never a silent stall). */
export const CHUNK_LOAD_TIMEOUT_MS = 20_000;

/**
 * Bytes of rows read ahead of the one being sent. It bounds a stream's memory when an isolate serves many streams
 * (128 MB isolates); refills start once half of it has been sent, so each refill is large enough to batch.
 */
export const RESTORE_READ_AHEAD_BYTES = 2_000_000;

export type Loaded = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly error: unknown };

class LoadTimeout extends Error {
  override readonly name = "LoadTimeout";
  readonly code = "timeout";
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

/** Reads `refs`' rows from one shard in one RPC, retrying once on a timeout. */
async function readShard(stub: ShardStub, refs: readonly ChunkRef[]): Promise<Array<Uint8Array | null>> {
  const keys = refs.map((r) => r.key);
  const read = () => stub.getMany(keys);
  try {
    return await withTimeout(read(), CHUNK_LOAD_TIMEOUT_MS).catch((e: unknown) => {
      if (e instanceof LoadTimeout) return withTimeout(read(), CHUNK_LOAD_TIMEOUT_MS);
      throw e;
    });
  } catch (e) {
    if (e instanceof LoadTimeout) {
      throw new ApiError(500, "internal", `${describeRef(refs[0])}: storage did not answer twice in ${CHUNK_LOAD_TIMEOUT_MS} ms`, "timeout");
    }
    throw e;
  }
}

/** Fetches and re-verifies one chunk row; throws ApiError(500, corrupt_chunk) when it is missing or damaged. */
export async function loadVerifiedChunk(env: Env, tenant: string, ref: ChunkRef, specHash: string): Promise<Uint8Array> {
  const [bytes] = await readShard(chunkShardStub(env, tenant, shardOf(ref.key)), [ref]);
  return verifyStoredChunk(bytes, ref, hexToBytes(specHash));
}

/** Hands out the verified rows of `refs` in order; `first`, when given, is refs[0]'s row already read and verified. */
export class ChunkPrefetcher {
  readonly #env: Env;
  readonly #tenant: string;
  readonly #refs: readonly ChunkRef[];
  readonly #specHash: Uint8Array;
  readonly #budget: number;
  /** Loads of refs[#next …] in order. */
  readonly #loads: Array<Promise<Loaded>> = [];
  /** One stub per shard for the whole stream (stubs belong to this request; never shared across requests). */
  readonly #stubs = new Map<number, ShardStub>();
  #next = 0;
  #issued = 0;
  #aheadBytes = 0;

  constructor(env: Env, tenant: string, refs: readonly ChunkRef[], specHash: string, first: Uint8Array | null, budget = RESTORE_READ_AHEAD_BYTES) {
    this.#env = env;
    this.#tenant = tenant;
    this.#refs = refs;
    this.#specHash = hexToBytes(specHash);
    this.#budget = budget;
    if (first !== null && refs.length > 0) {
      this.#loads.push(Promise.resolve({ ok: true, bytes: first }));
      this.#issued = 1;
      this.#aheadBytes = refs[0].bytes;
    }
    this.#refill();
  }

  /** Refs handed out so far. */
  get taken(): number {
    return this.#next;
  }

  /** The next ref's row (or why it could not be read); call at most refs.length times. */
  async take(): Promise<Loaded> {
    if (this.#next >= this.#refs.length) throw new RangeError("every chunk of the restore was taken");
    this.#refill();
    const loaded = await (this.#loads.shift() as Promise<Loaded>);
    this.#aheadBytes -= this.#refs[this.#next].bytes;
    this.#next++;
    this.#refill();
    return loaded;
  }

  /** Issues the reads that fit the budget once at most half of it is in flight, one RPC per shard. */
  #refill(): void {
    const refs = this.#refs;
    if (this.#issued >= refs.length) return;
    if (this.#issued > this.#next && this.#aheadBytes > this.#budget / 2) return;
    const batch: number[] = [];
    while (this.#issued < refs.length && (this.#issued === this.#next || this.#aheadBytes + refs[this.#issued].bytes <= this.#budget)) {
      batch.push(this.#issued);
      this.#aheadBytes += refs[this.#issued].bytes;
      this.#issued++;
    }
    const byShard = new Map<number, number[]>();
    for (const i of batch) {
      const shard = shardOf(refs[i].key);
      const list = byShard.get(shard);
      if (list === undefined) byShard.set(shard, [i]);
      else list.push(i);
    }
    const results = new Map<number, Promise<Loaded>>();
    for (const [shard, indices] of byShard) {
      let stub = this.#stubs.get(shard);
      if (stub === undefined) {
        stub = chunkShardStub(this.#env, this.#tenant, shard);
        this.#stubs.set(shard, stub);
      }
      const read = readShard(stub, indices.map((i) => refs[i]));
      indices.forEach((i, j) => {
        results.set(
          i,
          read.then(
            (rows): Loaded => {
              try {
                return { ok: true, bytes: verifyStoredChunk(rows[j], refs[i], this.#specHash) };
              } catch (error) {
                return { ok: false, error };
              }
            },
            (error: unknown): Loaded => ({ ok: false, error }),
          ),
        );
      });
    }
    for (const i of batch) this.#loads.push(results.get(i) as Promise<Loaded>);
  }
}
