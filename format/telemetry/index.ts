// Telemetry wire types shared by the Worker (receiver) and the client SDK (sender).
export * from "./client-report.ts";
