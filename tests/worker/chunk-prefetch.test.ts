// ChunkPrefetcher over a fake shard namespace that records every readSpans call: spans in order with the stored bytes,
// the first span read alone before any read-ahead (so a restore's first byte waits for one row only), the read-ahead
// bounded by its byte budget with one RPC per shard, and a flipped byte ending a span at the chunk before it.
import { describe, expect, it } from "vitest";
import { specHashHex } from "../../format/hash/spec-hash.ts";
import type { Env } from "../../worker/env.ts";
import type { RowSpan } from "../../worker/objects/chunk-object.ts";
import type { ChunkRef } from "../../worker/objects/session-types.ts";
import { ChunkPrefetcher, type LoadedSpan } from "../../worker/restore/chunk-prefetch.ts";
import { concatFrames, Conversation } from "./helpers/conversation.ts";
import { TINY_C, TINY_CODEC, TINY_SPEC } from "./helpers/store.ts";

interface Layout {
  readonly refs: ChunkRef[];
  readonly chunks: Uint8Array[];
  /** shard → row → bytes */
  readonly rows: Map<number, Map<string, Uint8Array>>;
}

/** Six sealed slots of one chunk each, packed two to a row; rows alternate between shards 0 and 1. */
function layout(): Layout {
  const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C, 7);
  const chunks = conv.build(6 * TINY_C).chunks.map((c) => c.bytes);
  expect(chunks.length).toBe(6);
  const rows = new Map<number, Map<string, Uint8Array>>([
    [0, new Map()],
    [1, new Map()],
  ]);
  const refs: ChunkRef[] = [];
  for (let r = 0; r < 3; r++) {
    const [a, b] = [chunks[2 * r], chunks[2 * r + 1]];
    const row = concatFrames([a, b]);
    const shard = r % 2;
    rows.get(shard)?.set(`row-${r}`, row);
    for (const [j, c] of [a, b].entries()) {
      const slot = 2 * r + j;
      refs.push({
        slot,
        layerStart: 0,
        layerCount: TINY_SPEC.layers,
        sealed: true,
        tokenStart: slot * TINY_C,
        tokenCount: TINY_C,
        key: `key-${slot}`,
        bytes: c.length,
        prefix: `prefix-${slot}`,
        shard,
        row: `row-${r}`,
        offset: j === 0 ? 0 : a.length,
      });
    }
  }
  return { refs, chunks, rows };
}

interface ReadCall {
  readonly shard: number;
  readonly spans: RowSpan[];
}

/** An Env whose CHUNKS namespace serves `rows` and logs each readSpans call. */
function fakeEnv(rows: Layout["rows"], calls: ReadCall[]): Env {
  const CHUNKS = {
    idFromName: (name: string) => ({ name }),
    get: (id: { name: string }) => {
      const shard = Number(/(\d+)$/.exec(id.name)?.[1]);
      return {
        readSpans: async (spans: RowSpan[]) => {
          calls.push({ shard, spans });
          return spans.map((s) => rows.get(shard)?.get(s.row)?.slice(s.offset, s.offset + s.length) ?? null);
        },
      };
    },
  };
  return { CHUNKS } as unknown as Env;
}

describe("ChunkPrefetcher", () => {
  it("hands out each row's span in order, reading the first alone and the rest within the budget", async () => {
    const { refs, chunks, rows } = layout();
    const calls: ReadCall[] = [];
    const rowBytes = chunks[0].length + chunks[1].length;
    // Room for two rows ahead: after the first take, rows 1 and 2 (on shards 1 and 0) are read, one RPC each.
    const prefetch = new ChunkPrefetcher(fakeEnv(rows, calls), "alpha", refs, specHashHex(TINY_SPEC), 2 * rowBytes);
    expect(calls).toEqual([{ shard: 0, spans: [{ row: "row-0", offset: 0, length: rowBytes }] }]);

    const spans: LoadedSpan[] = [];
    spans.push(await prefetch.take());
    expect(calls.map((c) => c.spans.map((s) => s.row))).toEqual([["row-0"], ["row-1"], ["row-2"]]);
    expect(calls.map((c) => c.shard)).toEqual([0, 1, 0]);
    while (!prefetch.done) spans.push(await prefetch.take());
    expect(calls.length).toBe(3);

    expect(spans.map((s) => (s.ok ? [s.first, s.count] : null))).toEqual([
      [0, 2],
      [2, 2],
      [4, 2],
    ]);
    const sent = concatFrames(spans.map((s) => (s.ok ? s.bytes : new Uint8Array())));
    expect(sent).toEqual(concatFrames(chunks));
    await expect(prefetch.take()).rejects.toThrow(RangeError);
  });

  it("ends a span at the chunk before a flipped byte, with corrupt_chunk", async () => {
    const { refs, chunks, rows } = layout();
    const row = rows.get(1)?.get("row-1") as Uint8Array;
    row[chunks[2].length + 20] ^= 0x01; // inside the second chunk of row 1 (slot 3)
    const prefetch = new ChunkPrefetcher(fakeEnv(rows, []), "alpha", refs, specHashHex(TINY_SPEC));
    const first = await prefetch.take();
    expect(first.ok).toBe(true);
    const second = await prefetch.take();
    expect(second.ok).toBe(false);
    if (second.ok) return;
    expect(second.first).toBe(2);
    expect(second.good).toEqual([chunks[2]]);
    expect(second.error).toMatchObject({ code: "corrupt_chunk" });
  });

  it("reports a missing row as corrupt_chunk on the first chunk of its span", async () => {
    const { refs, rows } = layout();
    rows.get(0)?.delete("row-0");
    const prefetch = new ChunkPrefetcher(fakeEnv(rows, []), "alpha", refs, specHashHex(TINY_SPEC));
    const first = await prefetch.take();
    expect(first).toMatchObject({ ok: false, first: 0, good: [] });
    if (!first.ok) expect(first.error).toMatchObject({ code: "corrupt_chunk" });
  });
});
