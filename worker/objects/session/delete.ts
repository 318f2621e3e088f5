// Deleting a session: hidden at once, then every hold it has on every chunk shard released, then all its storage
// (alarm included). Rows left without a hold are freed by the shards; the freed bytes are reported as an eviction.
import { CHUNK_SHARDS } from "../../keys.ts";
import { recordEvent } from "../../telemetry/index.ts";
import { pausePoint } from "../../testing/pause-points.ts";
import { chunkShardStub } from "../stubs.ts";
import type { SessionHost } from "./host.ts";

/** Why a session's storage goes: a client delete, TTL expiry, or the cleanup of an interrupted fork or delete. */
export type DestroyReason = "delete" | "ttl" | "cleanup";

/**
 * A deletion in progress re-runs from the alarm this long after it started, so one cut short by a crash or a restart
 * finishes soon (its rows would otherwise stay, counted against the tenant's quota, until the TTL alarm).
 */
export const DELETE_RETRY_MS = 5_000;

/**
 * Deletes the session; true when it was live (active, unexpired) before, or when a client delete finds an earlier
 * delete that did not finish (a retried DELETE finishes it and succeeds).
 */
export async function destroySession(host: SessionHost, reason: DestroyReason): Promise<boolean> {
  const { ctx, env, tables } = host;
  const row = tables.readSession();
  if (row === null) {
    await ctx.storage.deleteAll();
    tables.forget();
    return false;
  }
  const wasLive = (row.state === "active" && row.expires_at > Date.now()) || (reason === "delete" && row.state === "deleting");
  // The mark and the retry alarm land together before any hold is released: from here on the session answers 404, and
  // whatever interrupts the releases, the alarm finishes them.
  tables.setState("deleting");
  await ctx.storage.setAlarm(Date.now() + DELETE_RETRY_MS);
  await pausePoint(env, "delete.afterMark", row.id);
  // Releasing on every shard (not only the referenced keys) also frees holds leaked by an interrupted commit.
  const freed = await Promise.all(Array.from({ length: CHUNK_SHARDS }, (_, shard) => chunkShardStub(env, row.tenant, shard).release(row.id, null)));
  await pausePoint(env, "delete.afterRelease", row.id);
  await ctx.storage.deleteAll();
  tables.forget();
  const chunks = freed.reduce((s, f) => s + f.chunks, 0);
  if (chunks > 0 || reason !== "cleanup") {
    recordEvent(env, ctx, {
      kind: "eviction",
      // Cleanup frees what a half-done fork or delete held; it removes no live session, so it counts as a delete of 0.
      reason: reason === "cleanup" ? "delete" : reason,
      sessionId: row.id,
      sessions: reason === "ttl" || (reason === "delete" && wasLive) ? 1 : 0,
      chunks,
      bytesStored: freed.reduce((s, f) => s + f.bytes, 0),
      bytesUncompressed: freed.reduce((s, f) => s + f.bytesUncompressed, 0),
    });
  }
  return wasLive;
}
