// The read paths: the manifest (turns, chunk counts, bytes held) and the resolution of a token × layer range into the
// chunk refs a restore streams, newest upload of each slot first-to-last.
import { sqlRows } from "../../sql.ts";
import type { ChunkRef, SessionMeta, TurnRecord } from "../session-types.ts";
import type { SessionHost } from "./host.ts";
import { refFromRow, type TurnRow } from "./schema.ts";
import { liveSession } from "./ttl.ts";

export interface ManifestData {
  readonly meta: SessionMeta;
  readonly turns: ReadonlyArray<Omit<TurnRecord, "tokenIds" | "modality" | "positions" | "media" | "tag"> & { chunks: number }>;
  readonly bytesStored: number;
}

export interface Resolved {
  readonly meta: SessionMeta;
  readonly head: number;
  readonly tokens: number;
  readonly refs: readonly ChunkRef[];
}

export async function manifest(host: SessionHost): Promise<ManifestData | null> {
  const meta = await liveSession(host, true);
  if (meta === null) return null;
  const { sql } = host.tables;
  const counts = new Map(sqlRows<{ seq: number; n: number }>(sql, "SELECT seq, COUNT(*) AS n FROM refs GROUP BY seq").map((r) => [r.seq, r.n]));
  const turns = sqlRows<Omit<TurnRow, "token_ids" | "modality" | "positions" | "media" | "tag">>(
    sql,
    "SELECT seq, token_start, token_count, next_position, bytes_stored, bytes_uncompressed, created_at FROM turns ORDER BY seq",
  ).map((r) => ({
    seq: r.seq,
    tokenStart: r.token_start,
    tokenCount: r.token_count,
    nextPosition: r.next_position,
    bytesStored: r.bytes_stored,
    bytesUncompressed: r.bytes_uncompressed,
    createdAt: r.created_at,
    chunks: counts.get(r.seq) ?? 0,
  }));
  const stored = host.tables.resolveRows(0, Number.MAX_SAFE_INTEGER, 0, Number.MAX_SAFE_INTEGER).reduce((s, r) => s + r.bytes, 0);
  return { meta, turns, bytesStored: stored };
}

/** The newest chunk of every slot overlapping tokens [from, to) and layers [layerStart, layerEnd), in restore order. */
export async function resolve(host: SessionHost, from: number, to: number, layerStart: number, layerEnd: number): Promise<Resolved | null> {
  const meta = await liveSession(host, true);
  if (meta === null) return null;
  const { head, tokens } = host.tables.headState();
  const c = meta.chunkTokens;
  const end = Math.min(to, tokens);
  const refs = from >= end ? [] : host.tables.resolveRows(Math.floor(from / c), Math.floor((end - 1) / c), layerStart, layerEnd).map(refFromRow);
  return { meta, head, tokens, refs };
}
