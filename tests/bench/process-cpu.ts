// CPU time (user + system) of a process group from /proc, for benchmarks whose server shares a noisy machine with
// its client: a server's CPU per request varies far less than wall time there. Linux only; null elsewhere.
// It reads /proc directly instead of running `ps`: a `ps` per reading forked the benchmark's large Node process right
// before and after every timed restore (≈ 19 ms a call on the 2-core dev machine, against ≈ 1.7 ms for the scan).
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** clock ticks → ms (USER_HZ is 100 on every Linux ABI Node supports). */
const MS_PER_TICK = 10;

/** Total CPU ms used so far by the live processes of process group `pgid`, or null without /proc. */
export function processGroupCpuMs(pgid: number): number | null {
  if (!existsSync("/proc/self/stat")) return null;
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited between the listing and the read
    }
    // Fields after the parenthesised command name (which may hold spaces): state is field 3, pgrp 5, utime 14 and
    // stime 15 (1-based, proc(5)).
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    if (Number(fields[2]) !== pgid) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks * MS_PER_TICK;
}
