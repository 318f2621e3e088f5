// processGroupCpuMs against a child group whose CPU use is known: it spins until its own process.cpuUsage() says
// 300 ms, then idles, so the reading must hold that (and not this test process's CPU, which is another group).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { processGroupCpuMs } from "./process-cpu.ts";

const SPIN_MS = 300;
const SPIN = `const t=process.cpuUsage();while((process.cpuUsage(t).user+process.cpuUsage(t).system)/1e3<${SPIN_MS});console.log("spun");setInterval(()=>{},1e3);`;

describe.runIf(process.platform === "linux")("processGroupCpuMs", () => {
  let kill: (() => void) | null = null;
  afterEach(() => {
    kill?.();
    kill = null;
  });

  it("counts the CPU of the group's process and nothing outside the group", async () => {
    const child = spawn(process.execPath, ["-e", SPIN], { detached: true, stdio: ["ignore", "pipe", "inherit"] });
    kill = () => process.kill(-(child.pid as number), "SIGKILL");
    await once(child.stdout, "data");
    const ms = processGroupCpuMs(child.pid as number);
    // Node's own start-up adds some tens of ms; ticks are 10 ms.
    expect(ms).toBeGreaterThanOrEqual(SPIN_MS - 10);
    expect(ms).toBeLessThan(SPIN_MS + 1_000);
  });

  it("reads 0 once the group has exited", async () => {
    const child = spawn(process.execPath, ["-e", ""], { detached: true, stdio: "ignore" });
    await once(child, "exit");
    expect(processGroupCpuMs(child.pid as number)).toBe(0);
  });
});
