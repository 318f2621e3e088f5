// Creating a session: the schema, the active session row and its TTL alarm.
import type { SessionMeta } from "../session-types.ts";
import type { SessionHost } from "./host.ts";

/** Creates the session; false when this object already holds one. */
export async function createSession(host: SessionHost, meta: SessionMeta): Promise<boolean> {
  const { ctx, tables } = host;
  tables.ensureSchema();
  if (tables.hasSession()) return false;
  tables.writeSession(meta, "active");
  await ctx.storage.setAlarm(meta.expiresAt);
  return true;
}
