// Types of scripts/dev.mjs for TypeScript callers (integration tests, store benchmark).
import type { ChildProcess } from "node:child_process";
export declare const ROOT: string;
export declare const OFFLINE_ENV: Readonly<Record<string, string>>;
export declare function freePort(): Promise<number>;
export declare function portIsFree(port: number): Promise<boolean>;
export declare function devArgs(options: { port: number; persistTo: string; inspectorPort?: number; vars?: Record<string, string>; envFile?: string }): string[];
export interface DevServer {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  log(): string;
  stop(signal?: "SIGINT" | "SIGKILL"): Promise<void>;
}
export declare function startDev(options: {
  port?: number;
  persistTo: string;
  vars?: Record<string, string>;
  envFile?: string;
  stdio?: "inherit" | "pipe";
  readyTimeoutMs?: number;
  /** Use wrangler's shared dev registry (npm start) instead of one of the server's own (tests, benchmarks). */
  sharedRegistry?: boolean;
}): Promise<DevServer>;
