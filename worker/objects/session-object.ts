// One session's metadata: the session row, its turns (token ranges, per-token modality/positions, media) and the chunk
// references of each turn. Chunk bytes live in ChunkObject shards; this object only holds keys. One alarm per object
// implements the idle TTL and the cleanup of an interrupted fork. This class only routes RPCs to worker/objects/session/.
import { DurableObject } from "cloudflare:workers";
import type { ObjectBindings } from "./bindings.ts";
import { appendContext, commitTurn } from "./session/append.ts";
import { createSession } from "./session/create.ts";
import { destroySession } from "./session/delete.ts";
import { initFork, snapshot, type InitForkOutcome } from "./session/fork.ts";
import type { SessionHost } from "./session/host.ts";
import { manifest, resolve, type ManifestData, type Resolved } from "./session/restore.ts";
import { SessionTables } from "./session/tables.ts";
import { truncate, type TruncateOutcome } from "./session/truncate.ts";
import { liveSession, sessionAlarm } from "./session/ttl.ts";
import { dropStage, stagePart } from "./session/staged.ts";
import type { AppendContext, ChunkRef, CommitOutcome, ForkSnapshot, PartCounts, SessionMeta, StageOutcome, TurnRecord } from "./session-types.ts";

export class SessionObject extends DurableObject<ObjectBindings> {
  readonly #host: SessionHost;

  constructor(ctx: DurableObjectState, env: ObjectBindings) {
    super(ctx, env);
    const tables = new SessionTables(ctx.storage);
    this.#host = { ctx, env, tables };
    void ctx.blockConcurrencyWhile(async () => tables.open());
  }

  /** Creates the session; false when this object already holds one. */
  create(meta: SessionMeta): Promise<boolean> {
    return createSession(this.#host, meta);
  }

  /** Session metadata (extends the TTL), or null when there is no live session. */
  touch(): Promise<SessionMeta | null> {
    return liveSession(this.#host, true);
  }

  /** With `stage`: the context of the next part of that staged turn ("stage_unknown" when it is gone). */
  appendContext(stage: string | null = null): Promise<AppendContext | "stage_unknown" | null> {
    return appendContext(this.#host, stage);
  }

  /** Commits a turn; with `stage`, the staged parts of that upload and this final part as one turn. */
  commitTurn(expectedSeq: number, turn: TurnRecord, refs: readonly ChunkRef[], counts: PartCounts, stage: string | null = null): Promise<CommitOutcome> {
    return commitTurn(this.#host, expectedSeq, turn, refs, counts, stage);
  }

  /** Stages a non-final part of a long turn (invisible until the final part commits). */
  stagePart(stage: string | null, part: TurnRecord, refs: readonly ChunkRef[], counts: PartCounts, leaseUntil: number): Promise<StageOutcome> {
    return stagePart(this.#host, stage, part, refs, counts, leaseUntil);
  }

  /** Drops a staged turn whose part failed, with its chunk holds. */
  dropStage(tag: string): Promise<void> {
    return dropStage(this.#host, tag);
  }

  manifest(): Promise<ManifestData | null> {
    return manifest(this.#host);
  }

  /** The newest chunk of every slot overlapping tokens [from, to) and layers [layerStart, layerEnd), in restore order. */
  resolve(from: number, to: number, layerStart: number, layerEnd: number): Promise<Resolved | null> {
    return resolve(this.#host, from, to, layerStart, layerEnd);
  }

  truncate(toSeq: number): Promise<TruncateOutcome> {
    return truncate(this.#host, toSeq);
  }

  snapshot(atSeq: number): Promise<ForkSnapshot | { status: "bad_seq"; head: number } | null> {
    return snapshot(this.#host, atSeq);
  }

  initFork(meta: SessionMeta, snap: ForkSnapshot): Promise<InitForkOutcome> {
    return initFork(this.#host, meta, snap);
  }

  /** Client delete; true when the session was live. */
  destroy(): Promise<boolean> {
    return destroySession(this.#host, "delete");
  }

  override alarm(): Promise<void> {
    return sessionAlarm(this.#host);
  }
}
