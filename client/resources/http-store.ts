// SessionStore over HTTP: the chat runtime's view of one edge session, through the raw store resource.

import type { AppendResult, Manifest, SessionCreated } from "../../format/wire/messages.ts";
import { APIConnectionError, APIUserAbortError } from "../core/error.ts";
import type { StoreSessions } from "./store-sessions.ts";
import type { RestoreEvent, SessionStore, TurnUpload } from "../../runtime/cache-store.ts";
import { resumableRestore } from "../internal/resumable-restore.ts";

export interface HttpSessionStoreOptions {
  /** Requests after a restore stream broke mid-way (resumed at the first missing slot); default 2. */
  readonly maxRestoreResumes?: number;
}

export class HttpSessionStore implements SessionStore {
  constructor(
    private readonly api: StoreSessions,
    readonly id: string,
    readonly token: string,
    private readonly options: HttpSessionStoreOptions = {},
  ) {}

  manifest(signal?: AbortSignal): Promise<Manifest> {
    return this.api.retrieve(this.id, { token: this.token, signal });
  }

  /**
   * Appends a turn. A connection error leaves it unknown whether the turn committed (appends are not retried blindly:
   * a committed turn would answer 409), so the manifest decides: head unchanged → send once more; head = this turn
   * with its token count → it committed, answer from the manifest.
   */
  async append(upload: TurnUpload, signal?: AbortSignal): Promise<AppendResult> {
    const body = { control: upload.control, chunks: upload.chunks.map((c) => c.bytes) };
    try {
      return await this.api.append(this.id, body, { token: this.token, signal });
    } catch (e) {
      if (!(e instanceof APIConnectionError) || e instanceof APIUserAbortError) throw e;
      const m = await this.api.retrieve(this.id, { token: this.token, signal });
      const seq = upload.control.expectedSeq;
      if (m.head === seq - 1) return this.api.append(this.id, body, { token: this.token, signal });
      const turn = m.turns.find((t) => t.seq === seq);
      if (m.head === seq && turn !== undefined && turn.tokenCount === upload.control.tokenIds.length) {
        return { seq, tokenStart: turn.tokenStart, tokenCount: turn.tokenCount, chunksStored: turn.chunks, chunksReused: 0, bytes: turn.bytesStored, nextPosition: turn.nextPosition };
      }
      throw e;
    }
  }

  /** The whole session; a stream that breaks after its header is resumed from the first slot not yet received. */
  async *restore(signal?: AbortSignal): AsyncIterable<RestoreEvent> {
    yield* resumableRestore((range) => this.api.restore(this.id, range, { token: this.token, signal }), {
      maxResumes: this.options.maxRestoreResumes ?? 2,
      signal,
    });
  }

  async truncate(toSeq: number, signal?: AbortSignal): Promise<void> {
    await this.api.truncate(this.id, { toSeq }, { token: this.token, signal });
  }

  async fork(atSeq: number, signal?: AbortSignal): Promise<{ store: SessionStore; created: SessionCreated }> {
    const created = await this.api.fork(this.id, { atSeq }, { token: this.token, signal });
    return { store: new HttpSessionStore(this.api, created.id, created.token, this.options), created };
  }

  async delete(signal?: AbortSignal): Promise<void> {
    await this.api.delete(this.id, { token: this.token, signal });
  }
}
