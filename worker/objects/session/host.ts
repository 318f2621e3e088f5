// What the session operations run against: the object's state (storage, alarm, waitUntil), its env and its tables.
import type { Env } from "../../env.ts";
import type { SessionTables } from "./tables.ts";

export interface SessionHost {
  readonly ctx: DurableObjectState;
  readonly env: Env;
  readonly tables: SessionTables;
}
