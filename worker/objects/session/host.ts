// What the session operations run against: the object's state (storage, alarm, waitUntil), its env and its tables.
import type { ObjectBindings } from "../bindings.ts";
import type { SessionTables } from "./tables.ts";

export interface SessionHost {
  readonly ctx: DurableObjectState;
  readonly env: ObjectBindings;
  readonly tables: SessionTables;
}
