// Calls into the edge-store Worker from tests running inside workerd: the Worker's fetch with the test bindings plus
// test-only secrets (no secrets live in wrangler.jsonc), and helpers to create sessions and read restore streams.
import { createExecutionContext, env, runInDurableObject } from "cloudflare:test";
import type { CacheSpec } from "../../../format/cache-spec.ts";
import type { CodecParams } from "../../../format/codec/types.ts";
import { decodeAppendResult, decodeAppendStaged, decodeErrorBody, decodeRestoreHeaderMsgpack, decodeRestoreTrailer, unpackControl } from "../../../format/wire/control-msgpack.ts";
import { FRAME_HEADER_BYTES, FrameType, FRAMES_CONTENT_TYPE, FRAMES_WS_PROTOCOL, readFrames, type FrameLimits } from "../../../format/wire/frames.ts";
import { splitChunkRun } from "../../../format/wire/chunk-run.ts";
import type { AppendResult, AppendStaged, ErrorBody, RestoreHeader, SessionCreated } from "../../../format/wire/messages.ts";
import worker from "../../../worker/index.ts";
import type { Env } from "../../../worker/env.ts";
import { CHUNK_SHARDS } from "../../../worker/keys.ts";
import type { ChunkObject, ChunkStats } from "../../../worker/objects/chunk-object.ts";
import { chunkShardStub } from "../../../worker/objects/stubs.ts";
import { concatFrames } from "./conversation.ts";

export const TENANT_KEYS = { alpha: "alpha-key-0123456789abcdef", beta: "beta-key-0123456789abcdef" } as const;
export const OPERATOR_KEY = "operator-key-0123456789";

export const testEnv: Env = {
  ...(env as unknown as Env),
  TENANT_KEYS: JSON.stringify(TENANT_KEYS),
  SIGNING_SECRET: "test-signing-secret-0123456789abcdef",
  OPERATOR_KEY,
};

export const BASE = "https://store.test";

/** A request to the Worker; `withEnv` replaces test bindings (e.g. TENANT_QUOTAS) for this request only. */
export async function call(path: string, init: RequestInit = {}, withEnv: Partial<Env> = {}): Promise<Response> {
  return worker.fetch(new Request(BASE + path, init) as Request<unknown, IncomingRequestCfProperties>, { ...testEnv, ...withEnv }, createExecutionContext());
}

/** Two layers, one KV head, D_c 4, R 2: chunks of a few hundred bytes, every code path of the format. */
export const TINY_SPEC: CacheSpec = { layers: 2, heads: 2, kvHeads: 1, headDim: 8, ropeDims: 2, dKv: 4, latentSpaces: 1, mropeSection: [1, 1, 2] };
export const TINY_CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
export const TINY_C = 4;

export interface Session extends SessionCreated {
  readonly tenant: keyof typeof TENANT_KEYS;
  readonly auth: { authorization: string };
}

export async function createSession(
  tenant: keyof typeof TENANT_KEYS = "alpha",
  extra: Record<string, unknown> = {},
  spec: CacheSpec = TINY_SPEC,
  codec: CodecParams = TINY_CODEC,
): Promise<Session> {
  const res = await call("/v1/sessions", {
    method: "POST",
    headers: { authorization: `Bearer ${TENANT_KEYS[tenant]}`, "content-type": "application/json" },
    body: JSON.stringify({ spec, codec, model: { id: "test/tiny", conversion: "conv-1" }, chunkTokens: TINY_C, ...extra }),
  });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${await res.text()}`);
  const created = (await res.json()) as SessionCreated;
  return { ...created, tenant, auth: { authorization: `Bearer ${created.token}` } };
}

export function append(s: { id: string; auth: { authorization: string } }, frames: readonly Uint8Array[], withEnv: Partial<Env> = {}): Promise<Response> {
  return call(
    `/v1/sessions/${s.id}/turns`,
    { method: "POST", headers: { ...s.auth, "content-type": FRAMES_CONTENT_TYPE }, body: concatFrames(frames) },
    withEnv,
  );
}

export async function errorOf(res: Response): Promise<ErrorBody["error"]> {
  return ((await res.json()) as ErrorBody).error;
}

const RESTORE_LIMITS: FrameLimits = { 1: 1 << 24, 2: 1 << 22, 3: 0, 4: 1 << 16, 5: 1 << 22 };

export interface Restored {
  readonly header: RestoreHeader;
  readonly chunks: Uint8Array[];
  /** Chunks per chunk-carrying frame, in order (1 for a chunk frame, n for a run of n). */
  readonly frames: number[];
  readonly end: { done: boolean; chunks: number; bytes: number } | null;
  readonly error: ErrorBody["error"] | null;
}

/** Reads a whole restore stream (control and error frames decoded strictly, as the SDK does). */
export async function readRestore(res: Response): Promise<Restored> {
  if (res.body === null) throw new Error("restore without a body");
  let header: RestoreHeader | null = null;
  const chunks: Uint8Array[] = [];
  const frames: number[] = [];
  let end: Restored["end"] = null;
  let error: Restored["error"] = null;
  for await (const f of readFrames(res.body, RESTORE_LIMITS)) {
    if (f.type === FrameType.control && header === null) header = decodeRestoreHeaderMsgpack(f.payload);
    else if (f.type === FrameType.control) end = decodeRestoreTrailer(f.payload);
    else if (f.type === FrameType.chunk || f.type === FrameType.chunks) {
      const run = f.type === FrameType.chunk ? [f.payload] : splitChunkRun(f.payload);
      chunks.push(...run);
      frames.push(run.length);
    } else if (f.type === FrameType.error) error = decodeErrorBody(f.payload).error;
  }
  if (header === null) throw new Error("restore stream without a header frame");
  return { header, chunks, frames, end, error };
}

/** One WebSocket answer: a control frame with the append result (or a staged part's), or an error frame. */
export type TurnAnswer = AppendResult | AppendStaged | ErrorBody;

/** Decodes one binary WebSocket answer: exactly one frame, control (append result) or error. */
export function decodeTurnAnswer(data: unknown): TurnAnswer {
  if (!(data instanceof ArrayBuffer)) throw new Error(`expected a binary answer, got ${typeof data}: ${String(data).slice(0, 80)}`);
  const b = new Uint8Array(data);
  const length = new DataView(data).getUint32(1, true);
  if (b.length !== FRAME_HEADER_BYTES + length) throw new Error(`answer of ${b.length} bytes is not one frame of ${length}`);
  const payload = b.subarray(FRAME_HEADER_BYTES);
  if (b[0] === FrameType.control) {
    const v = unpackControl(payload);
    return typeof v === "object" && v !== null && "staged" in v ? decodeAppendStaged(payload) : decodeAppendResult(payload);
  }
  if (b[0] === FrameType.error) return decodeErrorBody(payload);
  throw new Error(`answer frame of type ${b[0]}`);
}

/** A WebSocket append connection: the answers received so far (decoded) and the close, once it comes. */
export interface TurnSocket {
  readonly ws: WebSocket;
  readonly messages: TurnAnswer[];
  readonly closed: () => { code: number; reason: string } | null;
  /** Resolves once `n` messages arrived or the socket closed. */
  waitForMessages(n: number): Promise<void>;
  waitForClose(): Promise<void>;
}

/** Opens `/turns/ws` with the session token in the query (as browsers must) and this wire version's subprotocol. */
export async function openTurnSocket(s: Session): Promise<TurnSocket> {
  const res = await call(`/v1/sessions/${s.id}/turns/ws?token=${s.token}`, { headers: { upgrade: "websocket", "sec-websocket-protocol": FRAMES_WS_PROTOCOL } });
  if (res.status !== 101 || res.webSocket === null) throw new Error(`expected a WebSocket upgrade, got ${res.status}`);
  if (res.headers.get("sec-websocket-protocol") !== FRAMES_WS_PROTOCOL) throw new Error(`the store chose subprotocol ${res.headers.get("sec-websocket-protocol")}`);
  const ws = res.webSocket;
  ws.accept();
  const messages: TurnAnswer[] = [];
  let closed: { code: number; reason: string } | null = null;
  // Binary messages arrive as Blobs in workerd: decoded in arrival order, the close after them.
  let order: Promise<void> = Promise.resolve();
  ws.addEventListener("message", (e) => {
    const data: unknown = e.data;
    order = order.then(async () => {
      messages.push(decodeTurnAnswer(data instanceof Blob ? await data.arrayBuffer() : data));
    });
  });
  ws.addEventListener("close", (e) => {
    order = order.then(() => {
      closed = { code: e.code, reason: e.reason };
    });
  });
  const until = (done: () => boolean): Promise<void> =>
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (done()) resolve();
        else setTimeout(check, 5);
      };
      check();
    });
  return {
    ws,
    messages,
    closed: () => closed,
    waitForMessages: (n) => until(() => messages.length >= n || closed !== null),
    waitForClose: () => until(() => closed !== null),
  };
}

/** A tenant's chunk statistics (rows, the chunks they pack, bytes, holds, leased holds) summed over its shards. */
export async function tenantChunkStats(tenant: string): Promise<ChunkStats> {
  const total = { rows: 0, chunks: 0, bytes: 0, holds: 0, leasedHolds: 0 };
  for (let s = 0; s < CHUNK_SHARDS; s++) {
    const st = await runInDurableObject(chunkShardStub(testEnv, tenant, s), (o: ChunkObject) => o.stats());
    for (const k of Object.keys(total) as Array<keyof ChunkStats>) total[k] += st[k];
  }
  return total;
}

/**
 * Flips bits of one stored chunk, wherever it lies: the shard and row come from the chunk's `members` entry (a row may
 * pack several chunks), and the flipped byte is in the middle of the chunk's own bytes.
 */
export async function flipStoredChunkByte(tenant: string, chunkKey: string, mask = 0x01): Promise<void> {
  for (let s = 0; s < CHUNK_SHARDS; s++) {
    const found = await runInDurableObject(chunkShardStub(testEnv, tenant, s), (_o: ChunkObject, state) => {
      const sql = state.storage.sql;
      const m = sql.exec<{ row_key: string; at: number; length: number }>("SELECT row_key, at, length FROM members WHERE chunk = ?", chunkKey).toArray()[0];
      if (m === undefined) return false;
      const row = sql.exec<{ bytes: ArrayBuffer }>("SELECT bytes FROM chunks WHERE key = ?", m.row_key).one();
      const b = new Uint8Array(row.bytes.slice(0));
      b[m.at + (m.length >> 1)] ^= mask;
      sql.exec("UPDATE chunks SET bytes = ? WHERE key = ?", b, m.row_key);
      return true;
    });
    if (found) return;
  }
  throw new Error(`chunk ${chunkKey} is stored on no shard of ${tenant}`);
}
