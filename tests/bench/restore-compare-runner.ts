// The timed half of bench:store's comparison, in a fresh Node process: restores of the compressed and the uncompressed
// session, interleaved, through node:http (http-restore.ts), with the server's CPU per restore. store.bench.ts spawns
// it once the load phases are over, so the timed client is what a real restoring client is (a small, new process),
// not the bench process that generated and uploaded 32 sessions: in that process the same restores ran at 7.2× where a
// separate client reached 8.6–9.0× against the same server (docs/api.md). Input: one JSON argument
// (RestoreCompareInput); output: one JSON object (RestoreCompareResult) on stdout.
import { pathToFileURL } from "node:url";
import { httpRestore } from "./http-restore.ts";
import { processGroupCpuMs } from "./process-cpu.ts";

export interface RestoreTarget {
  readonly url: string;
  readonly headers: Record<string, string>;
}

export interface RestoreCompareInput {
  readonly compressed: RestoreTarget;
  readonly uncompressed: RestoreTarget;
  readonly reps: number;
  /** Process group of the server (wrangler dev and its workerd), for CPU per restore; null skips it. */
  readonly serverPgid: number | null;
}

export interface RestoreSeries {
  readonly bytes: number;
  readonly frames: number;
  readonly ms: number[];
  /** Empty where /proc is absent. */
  readonly serverCpuMs: number[];
}

export interface RestoreCompareResult {
  readonly compressed: RestoreSeries;
  readonly uncompressed: RestoreSeries;
}

async function timed(t: RestoreTarget, pgid: number | null, into: { ms: number[]; serverCpuMs: number[] }): Promise<{ bytes: number; frames: number }> {
  const c0 = pgid === null ? null : processGroupCpuMs(pgid);
  const a = performance.now();
  const r = await httpRestore(t.url, t.headers);
  into.ms.push(performance.now() - a);
  const c1 = pgid === null ? null : processGroupCpuMs(pgid);
  if (c0 !== null && c1 !== null) into.serverCpuMs.push(c1 - c0);
  return r;
}

export async function compareRestores(input: RestoreCompareInput): Promise<RestoreCompareResult> {
  // One untimed restore of each first: the first read of a session pays for cold caches and JIT, not for its bytes.
  await httpRestore(input.compressed.url, input.compressed.headers);
  await httpRestore(input.uncompressed.url, input.uncompressed.headers);
  const c = { bytes: 0, frames: 0, ms: [] as number[], serverCpuMs: [] as number[] };
  const u = { bytes: 0, frames: 0, ms: [] as number[], serverCpuMs: [] as number[] };
  for (let r = 0; r < input.reps; r++) {
    // Interleaved so both see the same machine state; every rep must return the same bytes as the first.
    for (const [t, s] of [[input.compressed, c], [input.uncompressed, u]] as const) {
      const got = await timed(t, input.serverPgid, s);
      if (r > 0 && (got.bytes !== s.bytes || got.frames !== s.frames)) throw new Error(`restore ${t.url} returned ${got.bytes} B, earlier ${s.bytes} B`);
      s.bytes = got.bytes;
      s.frames = got.frames;
    }
  }
  return { compressed: c, uncompressed: u };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const input = JSON.parse(process.argv[2] ?? "") as RestoreCompareInput;
  const result = await compareRestores(input);
  // Exits once stdout is flushed (pipes are asynchronous on some platforms): the keep-alive agent would hold it open.
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}
