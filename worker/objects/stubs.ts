// Stubs of the chunk shards: one ChunkObject per (tenant, shard), addressed by name (worker/keys.ts).
import type { ObjectBindings } from "./bindings.ts";
import { chunkObjectName } from "../keys.ts";

/** The ChunkObject of `tenant`'s shard number `shard`. */
export const chunkShardStub = (env: Pick<ObjectBindings, "CHUNKS">, tenant: string, shard: number) =>
  env.CHUNKS.get(env.CHUNKS.idFromName(chunkObjectName(tenant, shard)));

