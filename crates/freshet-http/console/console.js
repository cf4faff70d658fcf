// The Freshet web console: a small single-page app over the JSON API under
// /api/. Every piece of data reaches the page through textContent or an
// attribute set with setAttribute, never through HTML parsing, so names with
// quotes, "<" or any other character show as written.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const RELOAD_MS = 5000;
let reloadTimer = null;

// --- DOM helpers -----------------------------------------------------------

// el("td", {class: "num"}, "text", childNode, …)
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function text(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// --- Formatting ------------------------------------------------------------

function parseTime(value) {
  if (!value) return NaN;
  let t = Date.parse(value);
  if (Number.isNaN(t)) t = Date.parse(String(value).replace(" ", "T"));
  return t;
}

function seconds(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const s = Number(value);
  if (s < 1) return s.toFixed(3) + " s";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function shortTime(value) {
  const t = parseTime(value);
  if (Number.isNaN(t)) return text(value);
  return new Date(t).toISOString().replace("T", " ").replace("Z", " UTC");
}

const STATUS_LABEL = {
  ok: "within target", near: "near target", behind: "behind target",
  suspended: "suspended", unknown: "no lag yet",
};

function badge(status) {
  return el("span", { class: "badge " + status, "data-status": status },
    STATUS_LABEL[status] || status);
}

function tableHref(database, schema, name) {
  return "#/table/" + [database, schema, name].map(encodeURIComponent).join("/");
}

// --- Data ------------------------------------------------------------------

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : response.status + " " + response.statusText;
    throw new Error(message);
  }
  return body;
}

// --- Pages -----------------------------------------------------------------

function legend() {
  return el("p", { class: "legend" },
    ...["ok", "near", "behind", "suspended", "unknown"].map((s) =>
      el("span", { class: "item" }, el("span", { class: "swatch " + s }), STATUS_LABEL[s])),
    el("span", { class: "item muted" }, "near = over 80 % of the target lag"));
}

// Columns by depth: base tables and models first, then each dynamic table
// one column right of the deepest table or model it reads.
function layout(nodes, edges) {
  const inputs = new Map();
  for (const e of edges) {
    if (!inputs.has(e.to)) inputs.set(e.to, []);
    inputs.get(e.to).push(e.from);
  }
  const depth = new Map();
  const visiting = new Set();
  function depthOf(id) {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    let d = 0;
    for (const from of inputs.get(id) || []) d = Math.max(d, depthOf(from) + 1);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  }
  const columns = [];
  for (const n of nodes) {
    const d = depthOf(n.id);
    (columns[d] = columns[d] || []).push(n);
  }
  const at = new Map();
  const W = 230, H = 50, GX = 90, GY = 22, PAD = 16;
  columns.forEach((column, c) => {
    (column || []).forEach((n, r) => {
      at.set(n.id, { x: PAD + c * (W + GX), y: PAD + r * (H + GY), w: W, h: H });
    });
  });
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  return {
    at,
    width: PAD * 2 + columns.length * (W + GX) - GX,
    height: PAD * 2 + rows * (H + GY) - GY,
  };
}

function clip(s, n) {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function graphSvg(graph) {
  const { at, width, height } = layout(graph.nodes, graph.edges);
  const root = svg("svg", {
    id: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "dependency graph",
  });
  const defs = svg("defs", {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" })));
  root.append(defs);
  for (const e of graph.edges) {
    const a = at.get(e.from), b = at.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
    const mx = (x1 + x2) / 2;
    const path = svg("path", {
      class: "edge " + (e.kind || ""), d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
      "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to,
    });
    path.append(svg("title", {}, e.from + " → " + e.to + (e.version ? " (version " + e.version + ")" : "")));
    root.append(path);
  }
  for (const n of graph.nodes) {
    const p = at.get(n.id);
    if (!p) continue;
    const status = n.kind === "dynamic_table" ? n.lag_status : "";
    const g = svg("g", { class: `node ${n.kind} ${status}`, "data-id": n.id, "data-kind": n.kind,
      "data-status": status || null, transform: `translate(${p.x},${p.y})` });
    const kindLabel = { table: "table", dynamic_table: "dynamic table", model: "model" }[n.kind] || n.kind;
    let detail = kindLabel;
    if (n.kind === "dynamic_table") {
      detail += " · lag " + seconds(n.lag_seconds) + " / " + text(n.target_lag);
    } else if (n.kind === "model" && n.default_version) {
      detail += " · default " + n.default_version;
    }
    g.append(
      svg("title", {}, n.id.replace(/^model:/, "") + "\n" + detail),
      svg("rect", { width: p.w, height: p.h, rx: 6 }),
      svg("text", { x: 10, y: 20, class: "name" }, clip(n.name || n.id, 30)),
      svg("text", { x: 10, y: 38, class: "kind" }, clip(detail, 40)));
    if (n.kind === "dynamic_table") {
      const link = svg("a", { href: tableHref(n.database, n.schema, n.name) });
      link.append(g);
      root.append(link);
    } else {
      root.append(g);
    }
  }
  return root;
}

async function graphPage() {
  const graph = await api("/api/graph");
  const page = el("div", { id: "graph-page" }, el("h1", {}, "Pipeline graph"));
  if (graph.nodes.length === 0) {
    page.append(el("p", { class: "muted", id: "empty" },
      "No tables, dynamic tables or models yet. Create some over the PostgreSQL protocol."));
    return page;
  }
  page.append(legend(), el("div", { class: "panel" }, graphSvg(graph)));
  const dynamic = graph.nodes.filter((n) => n.kind === "dynamic_table");
  page.append(el("h2", {}, "Dynamic tables"));
  if (dynamic.length === 0) {
    page.append(el("p", { class: "muted" }, "No dynamic tables yet."));
  } else {
    const body = el("tbody", {});
    for (const n of dynamic) {
      body.append(el("tr", { "data-id": n.id },
        el("td", { class: "wrap" }, el("a", { href: tableHref(n.database, n.schema, n.name) },
          n.database + "." + n.schema + "." + n.name)),
        el("td", {}, badge(n.lag_status)),
        el("td", { class: "num" }, seconds(n.lag_seconds)),
        el("td", {}, text(n.target_lag)),
        el("td", { class: "num" }, seconds(n.max_lag_seconds_last_hour)),
        el("td", {}, text(n.scheduling_state)),
        el("td", {}, text(n.refresh_mode)),
        el("td", { class: "num" }, text(n.rows))));
    }
    page.append(el("div", { class: "panel" }, el("table", { id: "dynamic-tables" },
      el("thead", {}, el("tr", {}, ...["name", "status", "lag", "target lag", "max lag (1 h)",
        "scheduling", "mode", "rows"].map((h) => el("th", {}, h)))),
      body)));
  }
  return page;
}

function lagChart(detail) {
  const points = detail.lag_points
    .map((p) => ({ t: parseTime(p.time), lag: Number(p.lag_seconds), current: !!p.current }))
    .filter((p) => !Number.isNaN(p.t) && Number.isFinite(p.lag));
  const W = 760, H = 240, L = 64, R = 16, T = 14, B = 34;
  const root = svg("svg", { id: "lag-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
    role: "img", "aria-label": "lag over time" });
  if (points.length === 0) {
    root.append(svg("text", { x: L, y: H / 2 }, "No refresh has committed yet."));
    return root;
  }
  const target = detail.effective_target_lag_seconds;
  const t0 = Math.min(...points.map((p) => p.t)), t1 = Math.max(...points.map((p) => p.t));
  // The scale fits the points; the target joins it unless it is far above
  // them (a table refreshed well within its target would be a flat line).
  let top = Math.max(...points.map((p) => p.lag));
  const targetShown = target !== null && target !== undefined && target <= Math.max(top, 1e-9) * 3;
  if (targetShown) top = Math.max(top, target);
  if (!(top > 0)) top = 1;
  top *= 1.1;
  const x = (t) => (t1 === t0 ? L + (W - L - R) / 2 : L + ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - v / top) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, seconds(v)));
  }
  root.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
    svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
    svg("text", { x: L, y: H - 10 }, shortTime(new Date(t0).toISOString())),
    svg("text", { x: W - R, y: H - 10, "text-anchor": "end" }, shortTime(new Date(t1).toISOString())));
  if (targetShown) {
    root.append(svg("line", { class: "target", x1: L, x2: W - R, y1: y(target), y2: y(target) },
      svg("title", {}, "target lag " + seconds(target))));
  } else if (target !== null && target !== undefined) {
    root.append(svg("text", { class: "target-note", x: W - R, y: T + 4, "text-anchor": "end" },
      "target lag " + seconds(target) + " (above the scale)"));
  }
  root.append(svg("polyline", { class: "lag",
    points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.lag).toFixed(1)}`).join(" ") }));
  for (const p of points) {
    root.append(svg("circle", { class: "point" + (p.current ? " current" : ""),
      cx: x(p.t).toFixed(1), cy: y(p.lag).toFixed(1), r: 3.5 },
      svg("title", {}, new Date(p.t).toISOString() + ": " + seconds(p.lag) +
        (p.current ? " (now)" : ""))));
  }
  return root;
}

function durationMs(row) {
  const a = parseTime(row.refresh_start_time), b = parseTime(row.refresh_end_time);
  return Number.isNaN(a) || Number.isNaN(b) ? null : b - a;
}

function historyTable(history) {
  const columns = [
    ["state", (r) => text(r.state)],
    ["action", (r) => text(r.refresh_action)],
    ["trigger", (r) => text(r.refresh_trigger)],
    ["data timestamp", (r) => shortTime(r.data_timestamp)],
    ["started", (r) => shortTime(r.refresh_start_time)],
    ["took", (r) => { const ms = durationMs(r); return ms === null ? "" : ms + " ms"; }, "num"],
    ["inserted", (r) => text(r.inserted_rows), "num"],
    ["deleted", (r) => text(r.deleted_rows), "num"],
    ["source rows read", (r) => text(r.source_rows_read), "num"],
    ["model rows scored", (r) => text(r.model_rows_scored), "num"],
    ["state rows read", (r) => text(r.state_rows_read), "num"],
    ["completion target", (r) => shortTime(r.completion_target)],
    ["message", (r) => text(r.state_message), "wrap"],
  ];
  const body = el("tbody", {});
  for (const r of history) {
    body.append(el("tr", { class: r.state === "FAILED" ? "failed" : "", "data-state": r.state },
      ...columns.map(([, f, cls]) => el("td", { class: cls || null }, f(r)))));
  }
  return el("table", { id: "history" },
    el("thead", {}, el("tr", {}, ...columns.map(([h, , cls]) => el("th", { class: cls || null }, h)))),
    body);
}

async function tablePage(database, schema, name) {
  const query = new URLSearchParams({ database, schema, name });
  const detail = await api("/api/dynamic-table?" + query.toString());
  const t = detail.table;
  const page = el("div", { id: "table-page" },
    el("h1", {}, database + "." + schema + "." + name + " ", badge(detail.lag_status)));
  const facts = [
    ["current lag", seconds(t.lag_seconds)],
    ["target lag", text(t.target_lag) + (detail.effective_target_lag_seconds !== null &&
      String(t.target_lag).toUpperCase() === "DOWNSTREAM"
      ? " (effective " + seconds(detail.effective_target_lag_seconds) + ")" : "")],
    ["max lag, last hour", seconds(t.max_lag_seconds_last_hour)],
    ["scheduling", text(t.scheduling_state) +
      (t.last_suspended_on ? " since " + shortTime(t.last_suspended_on) : "")],
    ["data timestamp", shortTime(t.data_timestamp)],
    ["refresh mode", text(t.refresh_mode) + (t.refresh_mode_reason ? " — " + t.refresh_mode_reason : "")],
    ["rows", text(t.rows)],
    ["definition", text(t.text)],
  ];
  page.append(el("div", { class: "panel" }, el("dl", { class: "facts" },
    ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))));
  page.append(el("h2", {}, "Lag over time"),
    el("p", { class: "muted" }, "Each committed refresh gives two points: the lag just before " +
      "it committed and just after; the last point is the lag now. The dashed line is the target lag."),
    el("div", { class: "panel" }, lagChart(detail)));
  page.append(el("h2", {}, "Refresh history"));
  if (detail.history.length === 0) {
    page.append(el("p", { class: "muted" }, "No refreshes recorded."));
  } else {
    page.append(el("div", { class: "panel" }, historyTable(detail.history)));
  }
  return page;
}

async function modelsPage() {
  const { models } = await api("/api/models");
  const page = el("div", { id: "models-page" }, el("h1", {}, "Models"));
  if (models.length === 0) {
    page.append(el("p", { class: "muted", id: "empty" }, "No models yet."));
    return page;
  }
  for (const m of models) {
    const id = m.database_name + "." + m.schema_name + "." + m.name;
    const aliases = m.aliases && typeof m.aliases === "object" ? Object.entries(m.aliases) : [];
    const section = el("section", { class: "model", "data-id": id },
      el("h2", {}, id),
      el("dl", { class: "facts" },
        el("dt", {}, "default version"), el("dd", { class: "default-version" }, text(m.default_version_name)),
        el("dt", {}, "aliases"), el("dd", {}, aliases.length === 0 ? "none"
          : aliases.map(([a, v]) => a + " → " + text(v)).join(", ")),
        el("dt", {}, "comment"), el("dd", {}, text(m.comment))));
    const body = el("tbody", {});
    for (const v of m.version_details || []) {
      body.append(el("tr", { "data-version": v.name },
        el("td", {}, text(v.name)),
        el("td", {}, v.is_default_version ? "default" : ""),
        el("td", {}, Array.isArray(v.aliases) ? v.aliases.join(", ") : text(v.aliases)),
        el("td", {}, Array.isArray(v.functions) ? v.functions.join(", ") : text(v.functions)),
        el("td", {}, shortTime(v.created_on)),
        el("td", { class: "num" }, text(v.size))));
    }
    section.append(el("div", { class: "panel" }, el("table", { class: "versions" },
      el("thead", {}, el("tr", {}, ...["version", "", "aliases", "functions", "created", "bytes"]
        .map((h) => el("th", {}, h)))),
      body)));
    page.append(section);
  }
  return page;
}

async function cancelStatement(pid, button, status) {
  button.disabled = true;
  status.textContent = "cancelling…";
  try {
    const response = await fetch("/api/cancel?pid=" + encodeURIComponent(pid), {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Freshet-Console": "1" },
    });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) throw new Error(body && body.error ? body.error : String(response.status));
    status.textContent = body.cancelled ? "cancel sent" : "session gone";
  } catch (e) {
    status.textContent = "could not cancel: " + e.message;
    button.disabled = false;
  }
}

async function sessionsPage() {
  const { user, superuser, sessions } = await api("/api/sessions");
  const page = el("div", { id: "sessions-page" }, el("h1", {}, "Sessions"));
  page.append(el("p", { class: "muted" }, superuser
    ? "Every client session. As a superuser you may cancel any running statement."
    : "Every client session; statements of other users' sessions are hidden. " +
      "You may cancel your own sessions' statements."));
  if (sessions.length === 0) {
    page.append(el("p", { class: "muted", id: "empty" }, "No client sessions."));
    return page;
  }
  const body = el("tbody", {});
  for (const s of sessions) {
    const status = el("span", { class: "cancel-status" });
    let action = "";
    if (s.state === "active" && (superuser || s.usename === user)) {
      const button = el("button", { type: "button", class: "cancel" }, "Cancel");
      button.addEventListener("click", () => cancelStatement(s.pid, button, status));
      action = el("span", {}, button, " ", status);
    }
    body.append(el("tr", { "data-pid": s.pid, "data-state": text(s.state) },
      el("td", { class: "num" }, text(s.pid)),
      el("td", {}, text(s.usename)),
      el("td", {}, text(s.datname)),
      el("td", {}, text(s.application_name)),
      el("td", {}, text(s.client_addr)),
      el("td", {}, text(s.state)),
      el("td", {}, shortTime(s.query_start)),
      el("td", { class: "query" }, el("code", {}, text(s.query))),
      el("td", {}, action)));
  }
  page.append(el("div", { class: "panel" }, el("table", { id: "sessions" },
    el("thead", {}, el("tr", {}, ...["pid", "user", "database", "application", "client",
      "state", "since", "statement", ""].map((h) => el("th", {}, h)))),
    body)));
  return page;
}

// --- Routing ---------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  try {
    if (parts[0] === "models") return { nav: "nav-models", render: modelsPage };
    if (parts[0] === "sessions") return { nav: "nav-sessions", render: sessionsPage };
    if (parts[0] === "table" && parts.length === 4) {
      const [database, schema, name] = parts.slice(1).map(decodeURIComponent);
      return { nav: "nav-graph", render: () => tablePage(database, schema, name) };
    }
  } catch (_) {
    // A malformed address falls back to the graph.
  }
  return { nav: "nav-graph", render: graphPage };
}

let generation = 0;

async function render() {
  clearTimeout(reloadTimer);
  const mine = ++generation;
  const { nav, render: page } = route();
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.id === nav);
  }
  const main = document.getElementById("main");
  let content;
  try {
    content = await page();
  } catch (e) {
    content = el("p", { class: "error", id: "error" }, "Could not load: " + e.message);
  }
  if (mine !== generation) return;
  main.replaceChildren(content);
  main.setAttribute("data-loaded", String(mine));
  reloadTimer = setTimeout(() => { if (!document.hidden) render(); else reloadLater(); }, RELOAD_MS);
}

function reloadLater() {
  reloadTimer = setTimeout(() => { if (!document.hidden) render(); else reloadLater(); }, RELOAD_MS);
}

async function whoami() {
  try {
    const me = await api("/api/whoami");
    document.getElementById("whoami").textContent = "signed in as " + me.user;
  } catch (_) {
    // The pages show the error.
  }
}

window.addEventListener("hashchange", render);
whoami();
render();
