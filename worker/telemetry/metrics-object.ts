// The one Durable Object that aggregates telemetry from every isolate: cumulative counters/histograms, a ring of
// 10-s slots for the dashboard and a capped per-session log, all in its SQLite so they survive restarts and evictions.
import { DurableObject } from "cloudflare:workers";
import { applyToAggregate, emptyAggregate, type AggregateState } from "./aggregate.ts";
import type { TelemetryEvent } from "./events.ts";
import { renderExposition } from "./exposition.ts";
import { applyToSlot, emptySlot, fillSlots, RETAINED_SLOTS, reviveSlot, SLOT_MS, slotStart, toSeriesResponse, type SeriesResponse, type SeriesSlot } from "./series.ts";
import { sessionEntriesOf, summarizeSession, type SessionLogEntry, type SessionView } from "./session-log.ts";

/** Bump with an additive migration in #migrate when the schema changes. */
const SCHEMA_VERSION = 1;
/** Session log rows kept in all (oldest dropped first): ~200 B each, so ≤ 10 MB of SQLite. */
export const MAX_SESSION_LOG_ROWS = 50_000;
/** Window of the `mla_edge_sessions_active` gauge. */
export const ACTIVE_SESSION_WINDOW_MS = 5 * 60_000;
/** Largest per-session page. */
export const MAX_SESSION_VIEW_ENTRIES = 1000;

export class MetricsObject extends DurableObject<unknown> {
  #state: AggregateState = emptyAggregate();
  #slot: SeriesSlot = emptySlot(0, 0, 0);
  /** Sessions seen in the current slot (in memory: a restart mid-slot undercounts that one slot). */
  #slotSessions = new Set<string>();

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => this.#load());
  }

  #load(): void {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS telemetry_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.#migrate();
    const state = sql.exec<{ value: string }>("SELECT value FROM telemetry_meta WHERE key = 'aggregate'").toArray()[0];
    if (state) this.#state = JSON.parse(state.value) as AggregateState;
    const now = slotStart(Date.now());
    const slot = sql.exec<{ data: string }>("SELECT data FROM telemetry_slots WHERE t = ?", now).toArray()[0];
    this.#slot = slot ? reviveSlot(slot.data) : emptySlot(now, this.#state.kvBytesStored, this.#state.kvUncompressedBytesStored);
  }

  #migrate(): void {
    const sql = this.ctx.storage.sql;
    const row = sql.exec<{ value: string }>("SELECT value FROM telemetry_meta WHERE key = 'schema_version'").toArray()[0];
    if (row && Number(row.value) >= SCHEMA_VERSION) return;
    sql.exec("CREATE TABLE IF NOT EXISTS telemetry_slots (t INTEGER PRIMARY KEY, data TEXT NOT NULL)");
    sql.exec(
      "CREATE TABLE IF NOT EXISTS telemetry_session_log (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, entry TEXT NOT NULL)",
    );
    sql.exec("CREATE INDEX IF NOT EXISTS telemetry_session_log_by_session ON telemetry_session_log (session_id, id)");
    sql.exec("CREATE TABLE IF NOT EXISTS telemetry_sessions_seen (session_id TEXT PRIMARY KEY, last_seen INTEGER NOT NULL)");
    sql.exec("INSERT OR REPLACE INTO telemetry_meta (key, value) VALUES ('schema_version', ?)", String(SCHEMA_VERSION));
  }

  /** Moves to the slot of `now`, starting it from the current gauges, and trims the rings once per new slot. */
  #rollSlot(now: number): void {
    const t = slotStart(now);
    if (t === this.#slot.t) return;
    this.#slot = emptySlot(t, this.#state.kvBytesStored, this.#state.kvUncompressedBytesStored);
    this.#slotSessions.clear();
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM telemetry_slots WHERE t < ?", t - RETAINED_SLOTS * SLOT_MS);
    sql.exec("DELETE FROM telemetry_sessions_seen WHERE last_seen < ?", now - RETAINED_SLOTS * SLOT_MS);
    sql.exec("DELETE FROM telemetry_session_log WHERE id <= (SELECT MAX(id) FROM telemetry_session_log) - ?", MAX_SESSION_LOG_ROWS);
  }

  /** RPC: applies a batch of events and persists the result in one transaction. */
  record(events: readonly TelemetryEvent[]): number {
    const now = Date.now();
    this.#rollSlot(now);
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      for (const e of events) {
        applyToAggregate(this.#state, e);
        applyToSlot(this.#slot, e);
        for (const [sessionId, entry] of sessionEntriesOf(e, now)) {
          sql.exec("INSERT INTO telemetry_session_log (session_id, entry) VALUES (?, ?)", sessionId, JSON.stringify(entry));
          sql.exec(
            "INSERT INTO telemetry_sessions_seen (session_id, last_seen) VALUES (?, ?) ON CONFLICT (session_id) DO UPDATE SET last_seen = excluded.last_seen",
            sessionId,
            now,
          );
          this.#slotSessions.add(sessionId);
        }
      }
      this.#slot.sessions = this.#slotSessions.size;
      this.#slot.kvBytesStored = this.#state.kvBytesStored;
      this.#slot.kvUncompressedBytesStored = this.#state.kvUncompressedBytesStored;
      sql.exec("INSERT OR REPLACE INTO telemetry_meta (key, value) VALUES ('aggregate', ?)", JSON.stringify(this.#state));
      sql.exec("INSERT OR REPLACE INTO telemetry_slots (t, data) VALUES (?, ?)", this.#slot.t, JSON.stringify(this.#slot));
    });
    return events.length;
  }

  /** RPC: the Prometheus text exposition of everything recorded so far. */
  exposition(): string {
    const since = Date.now() - ACTIVE_SESSION_WINDOW_MS;
    const active = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM telemetry_sessions_seen WHERE last_seen >= ?", since).one().n;
    return renderExposition(this.#state, { sessionsActive: active });
  }

  /**
   * RPC: dashboard series over the last `windowMs` (capped at the retained hour), one point per slot from the first
   * recorded slot in the window up to now; slots without events carry the KV gauges forward.
   */
  series(windowMs: number): SeriesResponse {
    const now = slotStart(Date.now());
    const from = now - Math.min(Math.max(windowMs, SLOT_MS), RETAINED_SLOTS * SLOT_MS) + SLOT_MS;
    const rows = this.ctx.storage.sql.exec<{ data: string }>("SELECT data FROM telemetry_slots WHERE t >= ? ORDER BY t", from).toArray();
    return toSeriesResponse(fillSlots(rows.map((r) => reviveSlot(r.data)), now));
  }

  /** RPC: the newest `limit` log entries of one session (oldest first) and their summary. */
  session(sessionId: string, limit: number): SessionView {
    const n = Math.min(Math.max(1, Math.floor(limit)), MAX_SESSION_VIEW_ENTRIES);
    const rows = this.ctx.storage.sql
      .exec<{ entry: string }>("SELECT entry FROM telemetry_session_log WHERE session_id = ? ORDER BY id DESC LIMIT ?", sessionId, n)
      .toArray();
    const entries = rows.reverse().map((r) => JSON.parse(r.entry) as SessionLogEntry);
    return summarizeSession(sessionId, entries);
  }
}
