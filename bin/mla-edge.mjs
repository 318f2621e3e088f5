#!/usr/bin/env node
// CLI entry: registers tsx so the TypeScript sources run directly on Node 20, then hands over to the command table.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../convert/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
