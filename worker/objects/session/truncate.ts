// Truncate (edit / regenerate): drops the turns after a sequence number, then releases the holds only they had; rows
// left without a hold are freed by their shards and reported as a `truncate` eviction.
import { sqlRows, sqlRun } from "../../sql.ts";
import { recordEvent } from "../../telemetry/index.ts";
import { chunkShardStub } from "../stubs.ts";
import type { SessionHost } from "./host.ts";
import { liveSession } from "./ttl.ts";

export type TruncateOutcome = { status: "ok"; head: number; tokens: number } | { status: "not_found" } | { status: "bad_seq"; head: number };

/** Drops turns after `toSeq` and releases the holds only they had. */
export async function truncate(host: SessionHost, toSeq: number): Promise<TruncateOutcome> {
  const { ctx, env, tables } = host;
  const meta = await liveSession(host, true);
  if (meta === null) return { status: "not_found" };
  const dropped = ctx.storage.transactionSync(() => {
    const { head } = tables.headState();
    if (toSeq > head) return null;
    const rows = sqlRows<{ tag: string; shard: number }>(
      tables.sql,
      "SELECT DISTINCT t.tag AS tag, r.shard AS shard FROM turns t JOIN refs r ON r.seq = t.seq WHERE t.seq > ?",
      toSeq,
    );
    sqlRun(tables.sql, "DELETE FROM refs WHERE seq > ?", toSeq);
    sqlRun(tables.sql, "DELETE FROM turns WHERE seq > ?", toSeq);
    return rows;
  });
  if (dropped === null) return { status: "bad_seq", head: tables.headState().head };
  // After the turns are gone: a crash here leaks holds (freed when the session is deleted), never loses a chunk.
  const freed = await Promise.all(dropped.map((d) => chunkShardStub(env, meta.tenant, d.shard).release(meta.id, d.tag)));
  const chunks = freed.reduce((s, f) => s + f.chunks, 0);
  if (chunks > 0) {
    recordEvent(env, ctx, {
      kind: "eviction",
      reason: "truncate",
      sessionId: meta.id,
      sessions: 0,
      chunks,
      bytesStored: freed.reduce((s, f) => s + f.bytes, 0),
      bytesUncompressed: freed.reduce((s, f) => s + f.bytesUncompressed, 0),
    });
  }
  const { head, tokens } = tables.headState();
  return { status: "ok", head, tokens };
}
