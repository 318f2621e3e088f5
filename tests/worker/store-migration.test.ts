// Schema upgrades of stored data: a ChunkObject written before row packing (v2: one chunk per row, no `members`) and a
// SessionObject written before refs named their row (v1) are upgraded in place, and the old rows stay readable and
// deduplicable under their own keys and shards.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { chunkObjectName, sessionObjectName, shardOf } from "../../worker/keys.ts";
import type { ChunkObject } from "../../worker/objects/chunk-object.ts";
import { CHUNK_SCHEMA_VERSION, migrateChunkSchema } from "../../worker/objects/chunk-schema.ts";
import { migrateSessionSchema, SCHEMA_VERSION } from "../../worker/objects/session/schema.ts";
import type { SessionObject } from "../../worker/objects/session-object.ts";
import { Conversation } from "./helpers/conversation.ts";
import { append, createSession, testEnv, TINY_C, TINY_CODEC, TINY_SPEC } from "./helpers/store.ts";

describe("schema migration", () => {
  it("should upgrade a v2 ChunkObject: each old row becomes a one-chunk row, readable and reused by key", async () => {
    const stub = testEnv.CHUNKS.get(testEnv.CHUNKS.idFromName(chunkObjectName("alpha", 15) + ":migration"));
    const key = "f".repeat(63) + "0";
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
    await runInDurableObject(stub, (_o: ChunkObject, state) => {
      const sql = state.storage.sql;
      // The v2 layout, as written by the previous release.
      for (const t of ["chunks", "holds", "members", "meta"]) sql.exec(`DROP TABLE IF EXISTS ${t}`);
      sql.exec("CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
      sql.exec("INSERT INTO meta (k, v) VALUES ('schema_version', 2)");
      sql.exec("CREATE TABLE chunks (key TEXT PRIMARY KEY, bytes BLOB NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, uncompressed INTEGER NOT NULL DEFAULT 0)");
      sql.exec("CREATE TABLE holds (key TEXT NOT NULL, holder TEXT NOT NULL, tag TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (key, holder, tag))");
      sql.exec("INSERT INTO chunks (key, bytes, size, created_at, uncompressed) VALUES (?, ?, ?, ?, ?)", key, bytes, bytes.length, 1, 4000);
      sql.exec("INSERT INTO holds (key, holder, tag, expires_at) VALUES (?, 'old-session', 'upload:old', NULL)", key);
      migrateChunkSchema(state.storage);
      expect(sql.exec("SELECT v FROM meta WHERE k = 'schema_version'").one().v).toBe(CHUNK_SCHEMA_VERSION);
      expect(sql.exec("SELECT chunk, row_key, at, length FROM members").toArray()).toEqual([{ chunk: key, row_key: key, at: 0, length: 1000 }]);
      // Idempotent: a second run changes nothing.
      migrateChunkSchema(state.storage);
      expect(sql.exec("SELECT COUNT(*) AS n FROM members").one().n).toBe(1);
    });
    const [span] = await runInDurableObject(stub, (o: ChunkObject) => o.readSpans([{ row: key, offset: 100, length: 50 }]));
    expect([...(span as Uint8Array)]).toEqual([...bytes.subarray(100, 150)]);
    const places = await runInDurableObject(stub, (o: ChunkObject) => o.putChunks([{ key, bytes, uncompressed: 4000 }], "new-session", "upload:new", Date.now() + 60_000));
    expect(places).toEqual([{ row: key, offset: 0, created: false }]);
    expect(await runInDurableObject(stub, (o: ChunkObject) => o.stats())).toMatchObject({ rows: 1, chunks: 1, holds: 2 });
  });

  it("should upgrade v1 session refs to name their old row: the chunk's own key, on the shard of its first hex digit", async () => {
    const s = await createSession("alpha");
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const turn = conv.build(10);
    expect((await append(s, turn.frames)).status).toBe(201);
    const stub = testEnv.SESSIONS.get(testEnv.SESSIONS.idFromName(sessionObjectName("alpha", s.id)));
    await runInDurableObject(stub, (_o: SessionObject, state) => {
      const sql = state.storage.sql;
      const keys = sql.exec<{ chunk_key: string }>("SELECT chunk_key FROM refs ORDER BY slot, layer_start").toArray().map((r) => r.chunk_key);
      expect(keys).toHaveLength(3);
      // Rewrite refs as v1 had them (no shard, row_key, row_offset).
      sql.exec(`CREATE TABLE refs_v1 (seq INTEGER NOT NULL, slot INTEGER NOT NULL, layer_start INTEGER NOT NULL, layer_count INTEGER NOT NULL,
        sealed INTEGER NOT NULL, token_start INTEGER NOT NULL, token_count INTEGER NOT NULL, chunk_key TEXT NOT NULL, bytes INTEGER NOT NULL,
        prefix TEXT NOT NULL, PRIMARY KEY (seq, slot, layer_start))`);
      sql.exec("INSERT INTO refs_v1 SELECT seq, slot, layer_start, layer_count, sealed, token_start, token_count, chunk_key, bytes, prefix FROM refs");
      sql.exec("DROP TABLE refs");
      sql.exec("ALTER TABLE refs_v1 RENAME TO refs");
      sql.exec("UPDATE meta SET v = 1 WHERE k = 'schema_version'");
      migrateSessionSchema(state.storage);
      expect(sql.exec("SELECT v FROM meta WHERE k = 'schema_version'").one().v).toBe(SCHEMA_VERSION);
      const rows = sql.exec<{ chunk_key: string; shard: number; row_key: string; row_offset: number }>(
        "SELECT chunk_key, shard, row_key, row_offset FROM refs ORDER BY slot, layer_start",
      ).toArray();
      expect(rows).toEqual(keys.map((k) => ({ chunk_key: k, shard: shardOf(k), row_key: k, row_offset: 0 })));
    });
  });
});
