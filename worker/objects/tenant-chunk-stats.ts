// A tenant's chunk-row statistics summed over its shards: the operator route, the tenant's usage route and the
// storage quota all read the same totals.
import type { ObjectBindings } from "./bindings.ts";
import { CHUNK_SHARDS } from "../keys.ts";
import type { ChunkStats } from "./chunk-object.ts";
import { chunkShardStub } from "./stubs.ts";

/** Rows, the chunks they pack, bytes, holds and leased holds of `tenant`, one `stats()` RPC per shard in parallel. */
export async function tenantChunkStats(env: Pick<ObjectBindings, "CHUNKS">, tenant: string): Promise<ChunkStats> {
  const shards = await Promise.all(Array.from({ length: CHUNK_SHARDS }, (_, s) => chunkShardStub(env, tenant, s).stats()));
  const sum = (k: keyof ChunkStats): number => shards.reduce((a, s) => a + s[k], 0);
  return { rows: sum("rows"), chunks: sum("chunks"), bytes: sum("bytes"), holds: sum("holds"), leasedHolds: sum("leasedHolds") };
}
