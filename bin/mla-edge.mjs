#!/usr/bin/env node
// CLI entry: registers tsx so the TypeScript sources run directly on Node 20, then hands over to the command table.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../convert/cli/main.ts");
// process.exit, not exitCode: a dawn.node instance (generate on the GPU) would keep the process alive.
process.exit(await main(process.argv.slice(2)));
