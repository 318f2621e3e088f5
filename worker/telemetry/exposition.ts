// Renders the aggregate in the Prometheus text exposition format 0.0.4: `# HELP`/`# TYPE` per family, counters,
// gauges, and histograms as cumulative `_bucket{le}` plus `_sum`/`_count`, durations converted from ms to seconds
// (byte histograms as recorded).
import type { AggregateState } from "./aggregate.ts";
import { seriesLabels } from "./aggregate.ts";
import { COUNTERS, GAUGES, HISTOGRAMS, type GaugeFamily } from "./catalogue.ts";

/** Content type Prometheus scrapers negotiate for the text format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Values the MetricsObject computes at scrape time rather than accumulating. */
export interface ScrapeGauges {
  readonly sessionsActive: number;
}

// Per the exposition format: label values escape backslash, double quote and newline; HELP escapes backslash, newline.
const escapeLabelValue = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const escapeHelp = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

/** Go-compatible float text: integers plain, +Inf/-Inf/NaN spelled as Prometheus expects. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const pairs = names.map((n, i) => `${n}="${escapeLabelValue(values[i] ?? "")}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

const header = (name: string, help: string, type: string): string => `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;

/** Sorted so scrapes are stable and diffable. */
const sortedEntries = <T>(o: Record<string, T> | undefined): [string, T][] =>
  Object.entries(o ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

function gaugeText(g: GaugeFamily, value: number): string {
  return `${header(g.name, g.help, "gauge")}${g.name} ${formatValue(value)}\n`;
}

export function renderExposition(s: AggregateState, scrape: ScrapeGauges): string {
  let out = "";
  for (const def of Object.values(COUNTERS)) {
    out += header(def.name, def.help, "counter");
    const series = sortedEntries(s.counters[def.name]);
    // A family without labels is always exposed (0 until it moves) so dashboards and rate() see it from the start.
    if (series.length === 0 && def.labelNames.length === 0) out += `${def.name} 0\n`;
    for (const [key, value] of series) out += `${def.name}${labelText(def.labelNames, seriesLabels(key))} ${formatValue(value)}\n`;
  }
  for (const def of Object.values(HISTOGRAMS)) {
    out += header(def.name, def.help, "histogram");
    for (const [key, h] of sortedEntries(s.histograms[def.name])) {
      const labels = seriesLabels(key);
      let cumulative = 0;
      const divisor = def.unit === "seconds" ? 1000 : 1;
      for (let i = 0; i < def.bounds.length; i++) {
        cumulative += h.counts[i];
        const le = formatValue(def.bounds[i] / divisor);
        out += `${def.name}_bucket${labelText(def.labelNames, labels, ["le", le])} ${cumulative}\n`;
      }
      out += `${def.name}_bucket${labelText(def.labelNames, labels, ["le", "+Inf"])} ${h.count}\n`;
      out += `${def.name}_sum${labelText(def.labelNames, labels)} ${formatValue(h.sum / divisor)}\n`;
      out += `${def.name}_count${labelText(def.labelNames, labels)} ${h.count}\n`;
    }
  }
  out += gaugeText(GAUGES.kvBytesStored, s.kvBytesStored);
  out += gaugeText(GAUGES.kvUncompressedBytesStored, s.kvUncompressedBytesStored);
  out += gaugeText(GAUGES.kvCompressionRatio, s.kvBytesStored > 0 ? s.kvUncompressedBytesStored / s.kvBytesStored : 0);
  out += gaugeText(GAUGES.sessionsActive, scrape.sessionsActive);
  return out;
}
