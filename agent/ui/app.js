// graylane lane map: reads /map (the node's flows and routes, or Prometheus through
// `graylane ui --prometheus`) and draws workloads grouped by Service, coloured by lane,
// with traffic per lane as edges. Read-only: it only ever GETs.
"use strict";

const PALETTE = ["#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab", "#c0ca33", "#d81b60", "#546e7a"];
const BASE_COLOUR = "#90a4ae";
const ESCAPE = "#c62828";
const LAYERED_MAX = 400; // nodes: above this, a linear-time layered placement instead of dagre
// Versions: above this, an overview — no Service boxes (their workloads are placed side by
// side instead), straight edges, labels on hover — so 5,000 draw in well under 2 s.
const OVERVIEW_MIN = 2000;

const state = { map: null, previous: null, previousAt: 0, rates: {}, cy: null, shape: "", selected: null };
const $ = (id) => document.getElementById(id);

function colourOf(tag) {
  if (!tag) return BASE_COLOUR;
  const lanes = state.map ? state.map.lanes : [];
  const i = lanes.indexOf(tag);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function text(s) {
  const span = document.createElement("span");
  span.textContent = s == null ? "" : String(s);
  return span.innerHTML;
}

async function fetchMap() {
  const r = await fetch("/map", { cache: "no-store" });
  if (!r.ok) throw new Error("GET /map: " + r.status);
  return r.json();
}

function filters() {
  return { lane: $("lane").value, tenant: $("tenant").value };
}

function visibleEdge(e, f) {
  if (f.lane && (e.tag || "") !== (f.lane === "(base)" ? "" : f.lane)) return false;
  if (f.tenant && (e.tenant || "") !== (f.tenant === "(none)" ? "" : f.tenant)) return false;
  return true;
}

function visibleNode(n, f) {
  if (f.tenant && n.tenant && n.tenant !== (f.tenant === "(none)" ? "" : f.tenant)) return false;
  return true;
}

// Elements for cytoscape: services as compound parents, workloads inside, edges per lane.
function elements(map) {
  const f = filters();
  const out = [];
  const nodes = new Set();
  const overview = map.nodes.filter((n) => visibleNode(n, f)).length > OVERVIEW_MIN;
  state.overview = overview;
  if (!overview) {
    for (const s of map.services) {
      out.push({ group: "nodes", data: { id: "svc:" + s.id, label: s.id, kind: "service", service: s.id } });
    }
  }
  const services = new Set(map.services.map((s) => s.id));
  for (const n of map.nodes) {
    if (!visibleNode(n, f)) continue;
    nodes.add(n.id);
    const tenant = n.tenant ? " ⟨" + n.tenant + "⟩" : "";
    const tag = n.tag ? " [" + n.tag + "]" : "";
    const data = {
      id: n.id, label: overview ? "" : n.label + tag + tenant, full: n.label + tag + tenant, kind: n.kind,
      tag: n.tag || "", tenant: n.tenant || "", colour: colourOf(n.tag), service: n.service || "",
    };
    if (!overview && n.service && services.has(n.service)) data.parent = "svc:" + n.service;
    out.push({ group: "nodes", data });
  }
  for (const e of map.edges) {
    const ends = (id) => nodes.has(id) || (!overview && id.startsWith("svc:") && services.has(id.slice(4)));
    if (!visibleEdge(e, f) || !ends(e.from) || !ends(e.to)) continue;
    const rate = state.rates[e.id];
    const parts = [];
    if (e.requests) parts.push(e.requests + " req");
    if (e.connections) parts.push(e.connections + " conn");
    if (rate) parts.push(rate.toFixed(1) + "/s");
    if (e.escapes) parts.push(e.escapes + " escaped: " + Object.keys(e.reasons || {}).join(","));
    if (e.refused) parts.push(e.refused + " refused");
    for (const d of e.data || []) parts.push(d.mapping + (d.rejected ? " (" + d.rejected + " refused)" : ""));
    out.push({
      group: "edges",
      data: {
        id: e.id, source: e.from, target: e.to, label: overview ? "" : parts.join(" · "), full: parts.join(" · "),
        colour: e.escapes ? ESCAPE : colourOf(e.tag), escape: e.escapes ? 1 : 0, refused: e.refused && !e.requests && !e.connections ? 1 : 0,
        width: Math.min(8, 1.5 + Math.log2(1 + (e.requests || 0) + (e.connections || 0))),
        kernel: e.path === "kernel" ? 1 : 0,
      },
    });
  }
  // Empty service groups (every workload filtered away) would float: drop them, unless an
  // edge ends there (a connection refused before any endpoint was chosen).
  const keep = new Set(out.filter((x) => x.data.parent).map((x) => x.data.parent));
  for (const x of out) if (x.group === "edges") keep.add(x.data.target);
  return out.filter((x) => x.data.kind !== "service" || keep.has(x.data.id));
}

// The overview's style: few rules, nothing measured (labels only on hover).
function overviewStyle() {
  return [
    { selector: "node", style: { "background-color": "data(colour)", width: 26, height: 26, label: "", "font-size": 11 } },
    { selector: "edge", style: { width: 1.5, "line-color": "data(colour)", "curve-style": "haystack", "haystack-radius": 0 } },
    { selector: ".hover", style: { label: "data(full)", "z-index": 10 } },
    { selector: ":selected", style: { "overlay-color": "#ffd54f", "overlay-opacity": 0.35 } },
  ];
}

function style() {
  return [
    { selector: "node", style: {
      "background-color": "data(colour)", label: "data(label)", "font-size": 11, color: "#1d2330",
      "text-valign": "bottom", "text-margin-y": 4, width: 26, height: 26, "border-width": 0, "min-zoomed-font-size": 7 } },
    { selector: "node[kind = 'store']", style: { shape: "barrel", width: 34, height: 30 } },
    { selector: "node[kind = 'outside']", style: { shape: "diamond", "background-color": "#bbb" } },
    { selector: "node[tenant != '']", style: { "border-width": 3, "border-color": "#263238", "border-style": "double" } },
    { selector: "node[kind = 'service']", style: {
      "background-color": "#eef2f7", "background-opacity": 1, "border-width": 1, "border-color": "#b0bec5",
      shape: "round-rectangle", label: "data(label)", "text-valign": "top", "font-weight": 600, padding: 14 } },
    { selector: "edge", style: {
      width: "data(width)", "line-color": "data(colour)", "target-arrow-color": "data(colour)",
      "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(label)", "font-size": 10,
      "text-background-color": "#fff", "text-background-opacity": 0.85, "text-background-padding": 2,
      "text-rotation": "autorotate", color: "#37474f", "min-zoomed-font-size": 7 } },
    { selector: "edge[escape = 1]", style: { color: ESCAPE, "font-weight": 700 } },
    { selector: "edge[refused = 1]", style: { "line-style": "dashed", "line-color": "#8e24aa", "target-arrow-color": "#8e24aa" } },
    { selector: "edge[kernel = 1]", style: { "line-style": "dotted" } },
    { selector: ":selected", style: { "overlay-color": "#ffd54f", "overlay-opacity": 0.35 } },
    { selector: ".overview", style: { "curve-style": "haystack", "target-arrow-shape": "none" } },
    { selector: ".hover", style: { label: "data(full)" } },
  ];
}

// Linear-time layered placement for big maps: callers left, callees right, by BFS depth;
// node id → position.
function layered(els) {
  const depth = {};
  const out = {};
  const edges = els.filter((x) => x.group === "edges");
  for (const e of edges) { (out[e.data.source] = out[e.data.source] || []).push(e.data.target); }
  const incoming = new Set(edges.map((e) => e.data.target));
  const queue = [];
  for (const x of els) if (x.group === "nodes" && x.data.kind !== "service" && !incoming.has(x.data.id)) { depth[x.data.id] = 0; queue.push(x.data.id); }
  for (let i = 0; i < queue.length; i++) {
    for (const t of out[queue[i]] || []) if (depth[t] === undefined) { depth[t] = Math.min(depth[queue[i]] + 1, 12); queue.push(t); }
  }
  const rows = {};
  const positions = {};
  // A Service's workloads side by side within their layer.
  const ordered = els.filter((x) => x.group === "nodes" && x.data.kind !== "service")
    .sort((a, b) => (a.data.service < b.data.service ? -1 : a.data.service > b.data.service ? 1 : 0));
  const sizes = {};
  for (const x of ordered) { const d = depth[x.data.id] || 0; sizes[d] = (sizes[d] || 0) + 1; }
  // Each layer a block of columns, blocks left to right: callers first.
  const layers = Object.keys(sizes).map(Number).sort((a, b) => a - b);
  const left = {};
  let x0 = 0;
  for (const d of layers) { left[d] = x0; x0 += Math.ceil(Math.sqrt(sizes[d])) * 60 + 240; }
  for (const x of ordered) {
    const d = depth[x.data.id] || 0;
    const k = rows[d] || 0;
    rows[d] = k + 1;
    const columns = Math.ceil(Math.sqrt(sizes[d]));
    positions[x.data.id] = { x: left[d] + (k % columns) * 60, y: Math.floor(k / columns) * 60 };
  }
  return positions;
}

function draw() {
  if (!state.map) return;
  const els = elements(state.map);
  const shape = els.map((x) => x.data.id).sort().join("|") + "|" + filters().lane + "|" + filters().tenant;
  const t0 = performance.now();
  if (!state.cy) {
    const big = els.length > 2000;
    state.cy = cytoscape({
      container: $("graph"), elements: [], style: state.overview ? overviewStyle() : style(),
      wheelSensitivity: 0.3, minZoom: 0.02,
      textureOnViewport: big, hideEdgesOnViewport: big, pixelRatio: big ? 1 : "auto",
    });
    state.cy.on("tap", "edge", (ev) => showEdge(ev.target.id()));
    state.cy.on("mouseover", "node, edge", (ev) => { if (state.overview) ev.target.addClass("hover"); });
    state.cy.on("mouseout", "node, edge", (ev) => ev.target.removeClass("hover"));
    state.cy.on("tap", "node", (ev) => showService(ev.target.data("service") || ev.target.data("id").replace(/^svc:/, "")));
  }
  const cy = state.cy;
  if (state.styled === undefined) state.styled = state.overview;
  if (shape !== state.shape) {
    const nodes = els.filter((x) => x.group === "nodes").length;
    const dagre = nodes <= LAYERED_MAX;
    if (!dagre) {
      // Big maps: positions given with the elements, no layout pass at all.
      const at = layered(els);
      for (const x of els) if (x.group === "nodes" && at[x.data.id]) x.position = at[x.data.id];
    }
    if (state.styled !== state.overview) {
      cy.style(state.overview ? overviewStyle() : style());
      state.styled = state.overview;
    }
    cy.batch(() => {
      cy.elements().remove();
      const added = cy.add(els);
      if (state.overview) added.edges().addClass("overview");
    });
    const added = performance.now();
    if (dagre) {
      // dagre places leaves and their edges; an edge into a Service group (a refusal before
      // any endpoint) is drawn but not laid out.
      const intoGroups = cy.edges().filter((e) => e.source().isParent() || e.target().isParent());
      cy.elements().not(intoGroups)
        .layout({ name: "dagre", rankDir: "LR", nodeSep: 40, rankSep: 140, edgeSep: 16, fit: true, padding: 20, animate: false })
        .run();
    } else {
      // The box is known from the positions: no bounds pass over every element.
      let [x1, y1, x2, y2] = [Infinity, Infinity, -Infinity, -Infinity];
      for (const x of els) if (x.position) {
        x1 = Math.min(x1, x.position.x); y1 = Math.min(y1, x.position.y);
        x2 = Math.max(x2, x.position.x); y2 = Math.max(y2, x.position.y);
      }
      const w = cy.width(), h = cy.height(), pad = 40;
      const zoom = Math.min((w - 2 * pad) / Math.max(1, x2 - x1), (h - 2 * pad) / Math.max(1, y2 - y1), 1);
      cy.viewport({ zoom, pan: { x: pad - x1 * zoom, y: pad - y1 * zoom } });
    }
    document.body.dataset.addMs = (added - t0).toFixed(0);
    document.body.dataset.layoutMs = (performance.now() - added).toFixed(0);
    state.shape = shape;
  } else {
    cy.batch(() => { for (const x of els) { const el = cy.getElementById(x.data.id); if (el.nonempty()) el.data(x.data); } });
  }
  // Drawn once the frame after the layout is painted.
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const ms = performance.now() - t0;
    document.body.dataset.renderMs = ms.toFixed(0);
    document.body.dataset.nodes = String(cy.nodes().length);
    document.body.dataset.edges = String(cy.edges().length);
    $("stats").textContent = cy.nodes().length + " nodes · " + cy.edges().length + " edges · drawn in " + ms.toFixed(0) + " ms";
  }));
}

function fillSelect(id, values, none) {
  const sel = $(id);
  const current = sel.value;
  const want = ["", ...values, none];
  if ([...sel.options].map((o) => o.value).join("|") === want.join("|")) return;
  sel.innerHTML = "";
  for (const v of want) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = v === "" ? (id === "lane" ? "all lanes" : "all tenants") : v;
    sel.appendChild(o);
  }
  sel.value = want.includes(current) ? current : "";
}

// Built with the DOM (no inline style attributes: the page's policy refuses them).
function legend() {
  const ul = $("legend");
  ul.replaceChildren();
  const item = (colour, label, cls) => {
    const li = document.createElement("li");
    if (colour) {
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colour;
      li.appendChild(sw);
    }
    const t = document.createElement("span");
    if (cls) t.className = cls;
    t.textContent = label;
    li.appendChild(t);
    ul.appendChild(li);
  };
  item(BASE_COLOUR, "base (no lane)");
  for (const l of state.map.lanes) item(colourOf(l), "lane " + l);
  item(ESCAPE, "left its lane (fallback, escape)", "escape");
  item("#8e24aa", "refused (dashed)", "refused");
  item(null, "dotted: routed by the kernel at connect()");
  item(null, "double border: a tenant's workload");
  item(null, "barrel: a data store");
}

function showEdge(id) {
  state.selected = { edge: id };
  const e = state.map.edges.find((x) => x.id === id);
  if (!e) return;
  $("panel-title").textContent = e.from + " → " + e.to;
  const rows = [
    ["service", e.service], ["lane", e.tag || "base"], ["tenant", e.tenant || "none"], ["path", e.path],
    ["requests", e.requests], ["connections", e.connections], ["rate", (state.rates[id] || 0).toFixed(2) + "/s"],
    ["left the lane", e.escapes ? e.escapes + " (" + Object.entries(e.reasons || {}).map(([k, v]) => k + " " + v).join(", ") + ")" : "no"],
    ["refused", e.refused],
  ];
  for (const d of e.data || []) rows.push(["data lane", d.mapping + (d.rejected ? ", " + d.rejected + " commands refused" : "")]);
  let html = "<table>" + rows.map(([k, v]) => `<tr><th>${text(k)}</th><td>${text(v)}</td></tr>`).join("") + "</table>";
  html += `<h2>Recent flows (${(e.flows || []).length})</h2>`;
  if (!(e.flows || []).length) html += `<p class="hint">${text(state.map.flows_note || "no flows kept for this edge")}</p>`;
  else html += "<table id=\"edge-flows\"><tr><th>id</th><th>endpoint</th><th>subset</th><th>why</th><th>rule</th></tr>" +
    e.flows.map((f) => `<tr><td>${text(f.id)}</td><td>${text(f.endpoint)}</td><td>${text(f.subset)}</td><td class="why">${text(f.why)}</td><td>${text(f.rule)}</td></tr>`).join("") + "</table>";
  $("panel-body").innerHTML = html;
}

async function showService(id) {
  if (!id) return;
  state.selected = { service: id };
  $("panel-title").textContent = id;
  const s = (state.map.services || []).find((x) => x.id === id);
  let html = "";
  if (s) {
    html += `<p>rules from: <code>${text(s.rules_from || "none")}</code></p>`;
    html += "<h2>Subsets</h2><table><tr><th>subset</th><th>tenant</th><th>endpoints</th></tr>" +
      (s.subsets || []).map((x) => `<tr><td>${text(x.subset)}</td><td>${text(x.tenant || "shared")}</td><td>${text(x.endpoints.join(", "))}</td></tr>`).join("") + "</table>";
    html += "<h2>Routes</h2>" + ((s.routes || []).length ? "<table><tr><th>route</th><th>to</th></tr>" +
      s.routes.map((r) => `<tr><td>${text(r.name)}</td><td>${text(r.to)}</td></tr>`).join("") + "</table>" : "<p class=\"hint\">no routes: lanes and fallback only</p>");
    html += `<p>fallback: <code>${text(s.fallback || "base")}</code></p>`;
    if ((s.data_lanes || []).length) html += "<h2>Data lanes</h2><table>" +
      s.data_lanes.map((d) => `<tr><td>${text(d.lane)}</td><td>${text(d.protocol)}</td><td>${text(d.mapping)}</td><td>${text(d.enforcement)}</td></tr>`).join("") + "</table>";
  } else html = "<p class=\"hint\">not a Service graylane routes</p>";
  $("panel-body").innerHTML = html;
}

function rates(map, at) {
  if (!state.previous) { state.rates = {}; return; }
  const dt = (at - state.previousAt) / 1000;
  const before = Object.fromEntries(state.previous.edges.map((e) => [e.id, (e.requests || 0) + (e.connections || 0)]));
  state.rates = {};
  for (const e of map.edges) {
    if (e.rate != null) { state.rates[e.id] = e.rate; continue; }
    const now = (e.requests || 0) + (e.connections || 0);
    if (dt > 0 && before[e.id] != null) state.rates[e.id] = Math.max(0, now - before[e.id]) / dt;
  }
}

async function refresh() {
  try {
    const map = await fetchMap();
    const at = performance.now();
    rates(map, at);
    state.previous = map; state.previousAt = at; state.map = map;
    fillSelect("lane", map.lanes, "(base)");
    fillSelect("tenant", map.tenants, "(none)");
    $("source").textContent = map.source;
    legend();
    draw();
    if (state.selected && state.selected.edge) showEdge(state.selected.edge);
    document.body.dataset.ready = "1";
  } catch (err) {
    $("stats").textContent = String(err);
  }
}

$("lane").addEventListener("change", draw);
$("tenant").addEventListener("change", draw);
refresh();
setInterval(() => { if ($("live").checked) refresh(); }, 2000);
