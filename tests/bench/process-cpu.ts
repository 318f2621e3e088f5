// CPU time (user + system) of a process group from /proc, for benchmarks whose server shares a noisy machine with
// its client: a server's CPU per request varies far less than wall time there. Linux only; null elsewhere.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

/** clock ticks → ms (USER_HZ is 100 on every Linux ABI Node supports). */
const MS_PER_TICK = 10;

/** Total CPU ms used so far by the live processes of process group `pgid`, or null without /proc. */
export function processGroupCpuMs(pgid: number): number | null {
  if (!existsSync("/proc/self/stat")) return null;
  let pids: string[];
  try {
    pids = execFileSync("ps", ["-o", "pid=", "-g", String(pgid)]).toString().trim().split(/\s+/).filter((p) => p !== "");
  } catch {
    return null;
  }
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited between ps and the read
    }
  }
  return ticks * MS_PER_TICK;
}
