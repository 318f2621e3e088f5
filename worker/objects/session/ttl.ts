// Idle TTL: a session is live while active and unexpired; reads extend it (in coarse steps) and re-arm the alarm, and
// the alarm deletes what expired or what an interrupted fork/delete left behind.
import type { SessionMeta } from "../session-types.ts";
import { destroySession } from "./delete.ts";
import type { SessionHost } from "./host.ts";
import { armForLeases, dropStaleStages } from "./staged.ts";

/** An interrupted fork (holds added, session never activated) is cleaned up by the alarm after this long. */
export const FORK_LEASE_MS = 5 * 60 * 1000;

/** The live session's meta (state active, not expired), extending its TTL when `extend`. */
export async function liveSession(host: SessionHost, extend: boolean): Promise<SessionMeta | null> {
  const row = host.tables.readSession();
  const now = Date.now();
  if (row === null || row.state !== "active" || row.expires_at <= now) return null;
  const meta = JSON.parse(row.meta) as SessionMeta;
  const expiresAt = now + meta.ttlMs;
  // Extend only by a noticeable step: a write per read would double the cost of restores.
  if (extend && expiresAt - row.expires_at > Math.min(60_000, meta.ttlMs / 10)) {
    host.tables.setExpiry(expiresAt);
    await host.ctx.storage.setAlarm(expiresAt);
    // A staged turn's lease may end first: its cleanup keeps the earlier alarm.
    await armForLeases(host);
    return { ...meta, expiresAt };
  }
  return { ...meta, expiresAt: row.expires_at };
}

/**
 * TTL, interrupted forks and staged turns whose lease ended. Idempotent: a retried alarm finds nothing or finishes the
 * deletion.
 */
export async function sessionAlarm(host: SessionHost): Promise<void> {
  const row = host.tables.readSession();
  if (row === null) return;
  if (row.state === "active" && row.expires_at > Date.now()) {
    await host.ctx.storage.setAlarm(row.expires_at);
    // After the TTL alarm: dropStaleStages re-arms earlier when a staged lease ends first.
    await dropStaleStages(host);
    return;
  }
  // An expired active session is a TTL eviction; a pending fork or an interrupted delete only finishes its cleanup.
  await destroySession(host, row.state === "active" ? "ttl" : "cleanup");
}
