// The dashboard's HTML shell. It holds no data: the script reads the operator key from the URL fragment (never sent to
// the server) or a form, then polls the JSON endpoints with `Authorization: Bearer`.

export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mla-edge telemetry</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/assets/uPlot.min.css">
<style>
  body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
  h1 { font-size: 18px; margin: 0 0 8px; }
  h2 { font-size: 15px; margin: 16px 0 4px; }
  form { display: inline-flex; gap: 6px; align-items: center; margin-right: 16px; }
  #status { color: #666; margin-left: 8px; }
  #status.error { color: #b00020; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
  .card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
  .card h3 { font-size: 13px; margin: 0 0 4px; font-weight: 600; }
  table { border-collapse: collapse; font-size: 12px; width: 100%; }
  td, th { border-bottom: 1px solid #eee; padding: 2px 6px; text-align: left; white-space: nowrap; }
  td.detail { white-space: normal; }
  #session-summary span { margin-right: 16px; }
</style>
</head>
<body>
<h1>mla-edge telemetry</h1>
<div>
  <form id="key-form"><label>Operator key <input id="key" type="password" autocomplete="off" size="24"></label><button>Use</button></form>
  <label>Window <select id="window"><option value="900">15 min</option><option value="3600" selected>1 h</option></select></label>
  <span id="status">waiting for key</span>
</div>
<h2>Edge store</h2>
<div class="grid">
  <div class="card"><h3>Latency p50 / p99 (ms, from histogram buckets)</h3><div class="chart" id="chart-latency"></div></div>
  <div class="card"><h3>KV bytes stored vs uncompressed equivalent</h3><div class="chart" id="chart-kv"></div></div>
  <div class="card"><h3>Compression ratio (uncompressed / stored)</h3><div class="chart" id="chart-ratio"></div></div>
  <div class="card"><h3>Client device KV cache per session (mean of turn reports) vs bf16 equivalent</h3><div class="chart" id="chart-device"></div></div>
  <div class="card"><h3>Sessions active per slot</h3><div class="chart" id="chart-sessions"></div></div>
  <div class="card"><h3>Restore hit rate (server: tokens found) / reuse rate (client: tokens not recomputed)</h3><div class="chart" id="chart-restore"></div></div>
  <div class="card"><h3>Requests and errors per slot</h3><div class="chart" id="chart-errors"></div></div>
</div>
<h2>Session</h2>
<form id="session-form"><label>Session id <input id="session" size="40"></label><button>Show</button></form>
<div id="session-summary"></div>
<div class="grid"><div class="card"><h3>Session latency (ms) per operation</h3><div class="chart" id="chart-session"></div></div></div>
<table id="session-log"><thead><tr><th>time</th><th>kind</th><th>op</th><th>status</th><th>ms</th><th>bytes</th><th>tokens</th><th>detail</th></tr></thead><tbody></tbody></table>
<script src="/dashboard/assets/uPlot.iife.min.js"></script>
<script src="/dashboard/assets/dashboard.js"></script>
</body>
</html>
`;
