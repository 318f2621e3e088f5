// Browser script of the dashboard (served as /dashboard/assets/dashboard.js): polls the series and session endpoints
// and draws them with uPlot. Kept as plain ES2020 text because the Worker serves it verbatim. Charts are exposed on
// `window.mlaEdgeDashboard` so tests (and operators in devtools) can read what is drawn.

/** Poll period: half a series slot, so a new slot shows within ~5 s. */
export const DASHBOARD_REFRESH_MS = 5000;

export const DASHBOARD_SCRIPT = `"use strict";
(() => {
  const REFRESH_MS = ${DASHBOARD_REFRESH_MS};
  const OPS = ["append", "restore", "manifest"];
  const OP_COLORS = { append: "#1f77b4", restore: "#d62728", manifest: "#2ca02c" };
  const state = { key: null, sessionId: null, charts: {}, series: null, session: null, timer: null, updates: 0, refresh: null };
  window.mlaEdgeDashboard = state;

  const $ = (id) => document.getElementById(id);
  const setStatus = (text, isError) => { const s = $("status"); s.textContent = text; s.className = isError ? "error" : ""; };

  function readFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const key = params.get("key");
    if (key) { sessionStorage.setItem("mlaEdgeOperatorKey", key); }
    // Drop the key from the address bar so it is not copied or screenshotted along with the URL.
    if (key) { params.delete("key"); history.replaceState(null, "", location.pathname + location.search + (params.toString() ? "#" + params : "")); }
    state.key = sessionStorage.getItem("mlaEdgeOperatorKey");
    const session = params.get("session");
    if (session) { state.sessionId = session; $("session").value = session; }
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: { authorization: "Bearer " + state.key } });
    const body = await res.json();
    if (!res.ok) { throw new Error((body && body.error && body.error.code) + ": " + (body && body.error && body.error.message)); }
    return body;
  }

  const width = (el) => Math.max(320, el.clientWidth - 4);
  const fmtBytes = (v) => v == null ? "" : v >= 1e9 ? (v / 1e9).toFixed(2) + " GB" : v >= 1e6 ? (v / 1e6).toFixed(2) + " MB" : v >= 1e3 ? (v / 1e3).toFixed(1) + " kB" : v + " B";

  function makeChart(name, series, axes) {
    const el = $("chart-" + name);
    const opts = {
      width: width(el), height: 220,
      scales: { x: { time: true } },
      series: [{}].concat(series),
      axes: [{}].concat(axes || [{}]),
      legend: { live: true },
    };
    const data = [[]].concat(series.map(() => []));
    const chart = new uPlot(opts, data, el);
    state.charts[name] = chart;
    return chart;
  }

  function buildCharts() {
    const latency = [];
    for (const op of OPS) {
      latency.push({ label: op + " p50", stroke: OP_COLORS[op], width: 2, spanGaps: false });
      latency.push({ label: op + " p99", stroke: OP_COLORS[op], width: 1, dash: [6, 4] });
    }
    makeChart("latency", latency, [{ label: "ms" }]);
    makeChart("kv", [
      { label: "stored", stroke: "#1f77b4", width: 2, value: (u, v) => fmtBytes(v) },
      { label: "uncompressed", stroke: "#ff7f0e", width: 2, value: (u, v) => fmtBytes(v) },
    ], [{ values: (u, vals) => vals.map(fmtBytes), size: 70 }]);
    makeChart("ratio", [{ label: "ratio", stroke: "#9467bd", width: 2 }], [{ label: "×" }]);
    makeChart("device", [
      { label: "device KV", stroke: "#1f77b4", width: 2, value: (u, v) => fmtBytes(v) },
      { label: "bf16 equivalent", stroke: "#ff7f0e", width: 2, value: (u, v) => fmtBytes(v) },
    ], [{ values: (u, vals) => vals.map(fmtBytes), size: 70 }]);
    makeChart("sessions", [{ label: "sessions", stroke: "#17becf", width: 2 }]);
    makeChart("restore", [
      { label: "hit rate", stroke: "#2ca02c", width: 2 },
      { label: "reuse rate", stroke: "#8c564b", width: 2 },
      { label: "restores recomputed", stroke: "#d62728", width: 1, scale: "n" },
    ], [{ label: "rate" }, { scale: "n", side: 1, grid: { show: false } }]);
    makeChart("errors", [
      { label: "requests", stroke: "#7f7f7f", width: 1 },
      { label: "errors", stroke: "#d62728", width: 2 },
    ]);
    const sessionSeries = OPS.concat(["other"]).map((op) => ({
      label: op, stroke: OP_COLORS[op] || "#7f7f7f", width: 0, points: { show: true, size: 7, fill: OP_COLORS[op] || "#7f7f7f" },
    }));
    makeChart("session", sessionSeries, [{ label: "ms" }]);
  }

  function renderSeries(s) {
    const c = state.charts;
    const lat = [s.t];
    for (const op of OPS) { lat.push(s.latencyP50Ms[op]); lat.push(s.latencyP99Ms[op]); }
    c.latency.setData(lat);
    c.kv.setData([s.t, s.kvBytesStored, s.kvUncompressedBytesStored]);
    c.ratio.setData([s.t, s.compressionRatio]);
    c.device.setData([s.t, s.clientKvBytesMean, s.clientKvUncompressedBytesMean]);
    c.sessions.setData([s.t, s.sessions]);
    c.restore.setData([s.t, s.restoreHitRate, s.restoreReuseRate, s.restoresRecomputed]);
    c.errors.setData([s.t, s.requests, s.errors]);
  }

  function cell(row, text, cls) { const td = document.createElement("td"); td.textContent = text == null ? "" : String(text); if (cls) td.className = cls; row.appendChild(td); }

  function renderSession(v) {
    const ops = OPS.concat(["other"]);
    const timed = v.entries.filter((e) => e.kind === "operation");
    const xs = timed.map((e, i) => e.t / 1000 + i * 1e-3); // uPlot needs strictly increasing x; entries share ms stamps
    const ys = ops.map((op) => timed.map((e) => ((OPS.includes(e.op) ? e.op : "other") === op ? e.durationMs : null)));
    state.charts.session.setData([xs].concat(ys));
    const lat = Object.entries(v.latency).map(([op, l]) => op + " p50 " + l.p50Ms + " ms / p99 " + l.p99Ms + " ms (" + l.count + ")");
    $("session-summary").innerHTML = "";
    for (const text of lat.concat([
      "stored " + fmtBytes(v.bytesStored) + " (uncompressed " + fmtBytes(v.bytesUncompressed) + ")",
      "dedupe hits " + v.dedupeHitChunks + " chunks",
      "restored " + v.restoredTokens + " tok, recomputed " + v.recomputedTokens,
    ].concat(v.deviceKvBytes == null ? [] : ["client device KV " + fmtBytes(v.deviceKvBytes) + " (bf16 " + fmtBytes(v.deviceKvUncompressedBytes) + ")"]))) { const span = document.createElement("span"); span.textContent = text; $("session-summary").appendChild(span); }
    const body = $("session-log").tBodies[0];
    body.innerHTML = "";
    for (const e of v.entries.slice().reverse()) {
      const row = document.createElement("tr");
      cell(row, new Date(e.t).toISOString().slice(11, 23));
      cell(row, e.kind); cell(row, e.op); cell(row, e.status); cell(row, e.durationMs); cell(row, e.bytes); cell(row, e.tokens);
      cell(row, [e.errorCode, e.detail].filter(Boolean).join(" "), "detail");
      body.appendChild(row);
    }
  }

  async function refresh() {
    if (!state.key) { setStatus("enter the operator key", false); return; }
    try {
      const windowSeconds = Number($("window").value);
      state.series = await getJson("/dashboard/api/series?window=" + windowSeconds);
      renderSeries(state.series);
      if (state.sessionId) {
        state.session = await getJson("/dashboard/api/sessions/" + encodeURIComponent(state.sessionId));
        renderSession(state.session);
      }
      state.updates += 1;
      setStatus("updated " + new Date().toLocaleTimeString() + " · " + state.series.t.length + " slots of " + state.series.slotSeconds + " s", false);
    } catch (err) {
      setStatus(String(err && err.message || err), true);
    }
  }

  function start() {
    state.refresh = refresh;
    readFragment();
    buildCharts();
    $("key-form").addEventListener("submit", (ev) => { ev.preventDefault(); state.key = $("key").value; sessionStorage.setItem("mlaEdgeOperatorKey", state.key); refresh(); });
    $("session-form").addEventListener("submit", (ev) => { ev.preventDefault(); state.sessionId = $("session").value.trim() || null; refresh(); });
    $("window").addEventListener("change", refresh);
    window.addEventListener("resize", () => { for (const [name, chart] of Object.entries(state.charts)) chart.setSize({ width: width($("chart-" + name)), height: 220 }); });
    refresh();
    state.timer = setInterval(refresh, REFRESH_MS);
  }

  start();
})();
`;
