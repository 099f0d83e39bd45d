/**
 * The live dashboard served at `/`: one self-contained page (no build step, no external assets)
 * that follows `/events` and shows the VIP table, per-VIP throughput sparklines and recent dial
 * errors. Embedded as a string so the compiled binary serves it without reading files.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>k8stun</title>
<style>
  :root { color-scheme: light dark; --muted: #888; --accent: #2f7de1; --bad: #d64545; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 1.5rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  .status { color: var(--muted); margin-bottom: 1rem; }
  .status .live { color: #2a9d4b; } .status .down { color: var(--bad); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #8883; }
  th { font-weight: 600; color: var(--muted); font-size: .8rem; text-transform: uppercase; }
  td.num { font-variant-numeric: tabular-nums; text-align: right; }
  code { font-size: .95em; }
  svg.spark { width: 120px; height: 24px; }
  svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
  #errors li { color: var(--bad); margin: .2rem 0; }
  .empty, #errors li.empty { color: var(--muted); font-style: italic; }
</style>
</head>
<body>
<h1>k8stun</h1>
<div class="status" id="status">connecting…</div>
<table>
  <thead><tr>
    <th>VIP</th><th>Target</th><th>Ports</th><th>Active</th><th>Total</th>
    <th>Sent</th><th>Received</th><th>Throughput</th>
  </tr></thead>
  <tbody id="vips"><tr><td colspan="8" class="empty">no VIPs yet</td></tr></tbody>
</table>
<h2 style="font-size:1rem;margin-top:1.5rem">Recent errors</h2>
<ul id="errors"><li class="empty">none</li></ul>
<script>
"use strict";
const vips = new Map();
const errors = [];
const HISTORY = 60;
const token = new URLSearchParams(location.search).get("token");
const statusEl = document.getElementById("status");

function human(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}
function upsert(info) {
  const old = vips.get(info.vip);
  vips.set(info.vip, {
    ...info,
    ports: info.ports || (old && old.ports) || [],
    history: old ? old.history : [],
    lastBytes: old ? old.lastBytes : info.stats.bytes_sent + info.stats.bytes_received,
  });
}
function spark(history) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 " + HISTORY + " 24");
  const max = Math.max(1, ...history);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", history.map((v, i) =>
    (HISTORY - history.length + i) + "," + (23 - (v / max) * 22).toFixed(1)).join(" "));
  svg.appendChild(line);
  return svg;
}
function render() {
  const body = document.getElementById("vips");
  body.replaceChildren();
  const rows = [...vips.values()].sort((a, b) =>
    a.vip.split(".").map(Number).reduce((x, y) => x * 256 + y, 0) -
    b.vip.split(".").map(Number).reduce((x, y) => x * 256 + y, 0));
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = text("td", "no VIPs yet", "empty");
    td.colSpan = 8;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  for (const v of rows) {
    const tr = document.createElement("tr");
    tr.dataset.vip = v.vip;
    const target = v.target.type + " " + v.target.namespace + "/" + v.target.name;
    tr.append(text("td", v.vip), text("td", target), text("td", (v.ports || []).join(", ")),
      text("td", String(v.stats.active_connections), "num active"),
      text("td", String(v.stats.total_connections), "num total"),
      text("td", human(v.stats.bytes_sent), "num"), text("td", human(v.stats.bytes_received), "num"));
    const td = document.createElement("td");
    td.appendChild(spark(v.history));
    tr.appendChild(td);
    body.appendChild(tr);
  }
  const list = document.getElementById("errors");
  list.replaceChildren();
  if (errors.length === 0) list.appendChild(text("li", "none", "empty"));
  for (const e of errors.slice(-10).reverse()) {
    list.appendChild(text("li", e.at.slice(11, 19) + " " + e.target + ": " + e.message));
  }
}
function onEvent(msg) {
  switch (msg.type) {
    case "snapshot":
      vips.clear();
      for (const v of msg.vips) upsert(v);
      break;
    case "vip_allocated":
      upsert({ vip: msg.vip, target: msg.target, ports: [], connections: [],
        stats: { active_connections: 0, total_connections: 0, bytes_sent: 0, bytes_received: 0 } });
      break;
    case "vip_removed":
      vips.delete(msg.vip);
      break;
    case "connection_changed": {
      const v = vips.get(msg.vip);
      if (!v) break;
      v.stats.active_connections = msg.active_connections;
      v.stats.total_connections = msg.total_connections;
      if (!v.ports.includes(msg.connection.dst_port)) v.ports = [...v.ports, msg.connection.dst_port].sort((a, b) => a - b);
      break;
    }
    case "vip_stats": {
      const v = vips.get(msg.vip);
      if (!v) break;
      v.stats = msg.stats;
      break;
    }
    case "dial_error":
      errors.push(msg);
      break;
  }
  render();
}
// One throughput sample per second per VIP, from the byte counters.
setInterval(() => {
  for (const v of vips.values()) {
    const bytes = v.stats.bytes_sent + v.stats.bytes_received;
    v.history.push(Math.max(0, bytes - v.lastBytes));
    v.lastBytes = bytes;
    if (v.history.length > HISTORY) v.history.shift();
  }
  render();
}, 1000);
function connect() {
  const source = new EventSource("/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
  source.onopen = () => { statusEl.innerHTML = '<span class="live">● live</span> — following /events'; };
  source.onmessage = (e) => onEvent(JSON.parse(e.data));
  source.onerror = () => { statusEl.innerHTML = '<span class="down">● disconnected</span> — retrying'; };
}
connect();
</script>
</body>
</html>
`;
