// Copy-on-write fork: the parent hands out its turns and refs up to a turn; the child writes them as a pending session,
// adds its own holds on the parent's chunks (no bytes copied) and only then becomes active.
import { sqlRows } from "../../sql.ts";
import type { ForkSnapshot, SessionMeta } from "../session-types.ts";
import { chunkShardStub } from "../stubs.ts";
import { destroySession } from "./delete.ts";
import type { SessionHost } from "./host.ts";
import { refFromRow, turnFromRow, type RefRow, type TurnRow } from "./schema.ts";
import { FORK_LEASE_MS, liveSession } from "./ttl.ts";

export type InitForkOutcome = { status: "ok" } | { status: "exists" } | { status: "missing"; keys: string[] };

/** Turns 1..atSeq and their refs, for a fork. */
export async function snapshot(host: SessionHost, atSeq: number): Promise<ForkSnapshot | { status: "bad_seq"; head: number } | null> {
  const meta = await liveSession(host, true);
  if (meta === null) return null;
  const { sql } = host.tables;
  const { head } = host.tables.headState();
  if (atSeq > head) return { status: "bad_seq", head };
  const turns = sqlRows<TurnRow>(sql, "SELECT * FROM turns WHERE seq <= ? ORDER BY seq", atSeq).map(turnFromRow);
  const refs = sqlRows<RefRow>(sql, "SELECT * FROM refs WHERE seq <= ? ORDER BY seq, slot, layer_start", atSeq).map((r) => ({
    ...refFromRow(r),
    seq: r.seq,
  }));
  return { meta, turns, refs };
}

/**
 * Becomes a fork: writes the copied turns as a pending session (alarm armed), adds this session's holds on the
 * parent's chunks (no bytes copied), then activates. A crash before activation leaves a pending session whose alarm
 * releases the holds. Returns the rows that no longer exist or no longer hold the parent's chunks at the refs' offsets (the parent was
 * deleted, or truncated and appended again, meanwhile): the fork is undone.
 */
export async function initFork(host: SessionHost, meta: SessionMeta, snap: ForkSnapshot): Promise<InitForkOutcome> {
  const { ctx, env, tables } = host;
  tables.ensureSchema();
  if (tables.hasSession()) return { status: "exists" };
  ctx.storage.transactionSync(() => {
    tables.writeSession(meta, "pending");
    for (const t of snap.turns) {
      tables.insertTurn(
        t,
        snap.refs.filter((r) => r.seq === t.seq),
      );
    }
  });
  await ctx.storage.setAlarm(Date.now() + FORK_LEASE_MS);
  const tagOf = new Map(snap.turns.map((t) => [t.seq, t.tag]));
  // One hold per (row, turn tag): chunks that share a row share its hold, and the hold checks each of them is still
  // where the parent's refs say (a row re-created under the same key may hold other chunks at those offsets).
  const perShard = new Map<number, Map<string, { key: string; tag: string; members: Array<{ chunk: string; at: number; length: number }> }>>();
  for (const r of snap.refs) {
    const tag = tagOf.get(r.seq) ?? "";
    const rows = perShard.get(r.shard) ?? new Map<string, { key: string; tag: string; members: Array<{ chunk: string; at: number; length: number }> }>();
    const id = `${r.row}\u0000${tag}`;
    const entry = rows.get(id) ?? { key: r.row, tag, members: [] };
    entry.members.push({ chunk: r.key, at: r.offset, length: r.bytes });
    rows.set(id, entry);
    perShard.set(r.shard, rows);
  }
  const missing = (await Promise.all([...perShard].map(([shard, entries]) => chunkShardStub(env, meta.tenant, shard).hold([...entries.values()], meta.id)))).flat();
  if (missing.length > 0) {
    await destroySession(host, "cleanup");
    return { status: "missing", keys: missing };
  }
  tables.setState("active");
  await ctx.storage.setAlarm(meta.expiresAt);
  return { status: "ok" };
}
