// Stubs of the chunk shards: one ChunkObject per (tenant, shard), addressed by name (worker/keys.ts).
import type { Env } from "../env.ts";
import { chunkObjectName, shardOf } from "../keys.ts";

/** The ChunkObject of `tenant`'s shard number `shard`. */
export const chunkShardStub = (env: Pick<Env, "CHUNKS">, tenant: string, shard: number) =>
  env.CHUNKS.get(env.CHUNKS.idFromName(chunkObjectName(tenant, shard)));

/** The ChunkObject that holds `key` for `tenant`. */
export const chunkStubFor = (env: Pick<Env, "CHUNKS">, tenant: string, key: string) => chunkShardStub(env, tenant, shardOf(key));
