// An in-memory edge store with the Worker's semantics (turns, per-slot latest chunks, expectedSeq conflicts, fork,
// truncate), for testing the chat runtime without HTTP. Chunks are checked with verifyChunk like the Worker does.

import type { CacheSpec } from "../../format/cache-spec.ts";
import { readChunkHeader, verifyChunk } from "../../format/chunk/index.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { specHash, specHashHex } from "../../format/hash/spec-hash.ts";
import type { AppendControl, AppendResult, Manifest, ModelRef, RestoreChunkInfo, SessionCreated } from "../../format/wire/messages.ts";
import type { RestoreEvent, SessionStore, TurnUpload } from "../../runtime/cache-store.ts";

interface StoredTurn {
  readonly seq: number;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly nextPosition: number;
  readonly chunks: readonly { slot: number; layerStart: number; layerCount: number; sealed: boolean; tokenStart: number; tokenCount: number; bytes: Uint8Array }[];
}

export class StoreConflictError extends Error {
  override readonly name = "StoreConflictError";
  readonly code = "turn_conflict";
}

let counter = 0;

export class MemoryStore implements SessionStore {
  readonly id = `mem-${++counter}`;
  readonly token = `token-${counter}`;
  turns: StoredTurn[] = [];
  /** Every call, for assertions. */
  readonly calls: string[] = [];

  constructor(
    readonly spec: CacheSpec,
    readonly codec: CodecParams,
    readonly chunkTokens: number,
    readonly model: ModelRef = { id: "tiny-qwen-vl", conversion: "test" },
  ) {}

  get tokens(): number {
    const t = this.turns[this.turns.length - 1];
    return t ? t.tokenStart + t.tokenCount : 0;
  }

  async manifest(): Promise<Manifest> {
    this.calls.push("manifest");
    const latest = this.latestChunks();
    const s = this.spec;
    const perToken = 2 * s.layers * s.kvHeads * s.headDim * 2;
    const last = this.turns[this.turns.length - 1];
    return {
      id: this.id,
      spec: this.spec,
      specHash: specHashHex(this.spec),
      model: this.model,
      codec: this.codec,
      storage: "quantized",
      chunkTokens: this.chunkTokens,
      head: last?.seq ?? 0,
      tokens: this.tokens,
      turns: this.turns.map((t) => ({
        seq: t.seq,
        tokenStart: t.tokenStart,
        tokenCount: t.tokenCount,
        chunks: t.chunks.length,
        bytesStored: t.chunks.reduce((a, c) => a + c.bytes.length, 0),
        bytesUncompressed: t.tokenCount * perToken,
        nextPosition: t.nextPosition,
        createdAt: 0,
      })),
      bytesStored: latest.reduce((a, c) => a + c.bytes.length, 0),
      bytesUploaded: this.turns.reduce((a, t) => a + t.chunks.reduce((b, c) => b + c.bytes.length, 0), 0),
      bytesUncompressed: this.tokens * perToken,
      nextPosition: last?.nextPosition ?? 0,
      ropeDelta: (last?.nextPosition ?? 0) - this.tokens,
      parent: null,
      createdAt: 0,
      expiresAt: 0,
    };
  }

  async append(upload: TurnUpload): Promise<AppendResult> {
    this.calls.push("append");
    const head = this.turns.length;
    const c = upload.control;
    if (c.expectedSeq !== head + 1) throw new StoreConflictError(`expectedSeq ${c.expectedSeq}, head is ${head}`);
    const tokenStart = this.tokens;
    const n = c.tokenIds.length;
    if (c.modality.length !== n || c.positions.length !== 3 * n) throw new Error("control arrays disagree with tokenIds");
    const hash = specHash(this.spec);
    const chunks = upload.chunks.map((p) => {
      verifyChunk(p.bytes, hash);
      const h = readChunkHeader(p.bytes);
      const end = h.tokenStart + h.tokenCount;
      if (h.tokenStart % this.chunkTokens !== 0 || end > tokenStart + n || end <= tokenStart) throw new Error(`chunk ${h.tokenStart}+${h.tokenCount} outside the turn`);
      if (h.codec.sealed !== (h.tokenCount === this.chunkTokens)) throw new Error("sealed flag disagrees with the slot fill");
      // the chunk's per-token metadata must agree with the control for the turn's own tokens
      for (let t = Math.max(h.tokenStart, tokenStart); t < end; t++) {
        const i = t - tokenStart;
        const k = t - h.tokenStart;
        if (h.modality[k] !== c.modality[i]) throw new Error(`modality of token ${t} differs between chunk and control`);
        for (let s = 0; s < 3; s++) if (h.positions[3 * k + s] !== c.positions[3 * i + s]) throw new Error(`position of token ${t} differs`);
      }
      return { slot: h.tokenStart / this.chunkTokens, layerStart: h.layerStart, layerCount: h.layerCount, sealed: h.codec.sealed, tokenStart: h.tokenStart, tokenCount: h.tokenCount, bytes: p.bytes.slice() };
    });
    let maxPos = -1;
    for (const p of c.positions) maxPos = Math.max(maxPos, p);
    const prev = this.turns[this.turns.length - 1]?.nextPosition ?? 0;
    const turn: StoredTurn = { seq: head + 1, tokenStart, tokenCount: n, nextPosition: Math.max(prev, maxPos + 1), chunks };
    this.turns.push(turn);
    return {
      seq: turn.seq,
      tokenStart,
      tokenCount: n,
      chunksStored: chunks.length,
      chunksReused: 0,
      bytes: chunks.reduce((a, x) => a + x.bytes.length, 0),
      nextPosition: turn.nextPosition,
    };
  }

  /** For each slot, the chunks of the latest turn that wrote it. */
  latestChunks(): StoredTurn["chunks"][number][] {
    const bySlot = new Map<number, StoredTurn["chunks"][number][]>();
    for (const t of this.turns) {
      const fresh = new Map<number, StoredTurn["chunks"][number][]>();
      for (const c of t.chunks) fresh.set(c.slot, [...(fresh.get(c.slot) ?? []), c]);
      for (const [slot, cs] of fresh) bySlot.set(slot, cs);
    }
    return [...bySlot.keys()].sort((a, b) => a - b).flatMap((s) => bySlot.get(s)!);
  }

  async *restore(): AsyncIterable<RestoreEvent> {
    this.calls.push("restore");
    const chunks = this.latestChunks();
    const info: RestoreChunkInfo[] = chunks.map((c) => ({ slot: c.slot, tokenStart: c.tokenStart, tokenCount: c.tokenCount, layerStart: c.layerStart, layerCount: c.layerCount, sealed: c.sealed, bytes: c.bytes.length, key: `k${c.slot}.${c.layerStart}` }));
    yield { type: "header", header: { head: this.turns.length, tokens: this.tokens, from: 0, to: this.tokens, layerStart: 0, layerEnd: this.spec.layers, chunks: info } };
    for (const c of chunks) yield { type: "chunk", bytes: c.bytes.slice() };
  }

  async truncate(toSeq: number): Promise<void> {
    this.calls.push(`truncate ${toSeq}`);
    this.turns = this.turns.slice(0, toSeq);
  }

  async fork(atSeq: number): Promise<{ store: SessionStore; created: SessionCreated }> {
    this.calls.push(`fork ${atSeq}`);
    const child = new MemoryStore(this.spec, this.codec, this.chunkTokens, this.model);
    child.turns = this.turns.slice(0, atSeq);
    return { store: child, created: { id: child.id, token: child.token, tokenExpiresAt: 0, expiresAt: 0, specHash: specHashHex(this.spec) } };
  }

  async delete(): Promise<void> {
    this.turns = [];
  }
}

/** A MemoryStore that also keeps every uploaded turn's control (token ids, positions). */
export class RecordingStore extends MemoryStore {
  readonly controls: AppendControl[] = [];
  override async append(upload: TurnUpload) {
    const r = await super.append(upload);
    this.controls.push(upload.control);
    return r;
  }
}
