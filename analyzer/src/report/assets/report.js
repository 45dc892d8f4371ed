// nft-tracer's report page: draws the JSON in #report-data (written by
// `nft-analyzer report`, `diff --format html` or `serve`) with DOM nodes
// and inline SVG. Every string from a recording goes in as text
// (textContent, setAttribute), never as HTML. No library, no network:
// the page must open offline from disk.
"use strict";

const errors = [];
function fail(message) {
  errors.push(message);
  const box = document.getElementById("errors");
  box.hidden = false;
  box.textContent = "The page hit an error: " + errors.join("\n");
  document.body.dataset.errors = String(errors.length);
}
window.addEventListener("error", (e) => fail(String(e.message)));
window.addEventListener("unhandledrejection", (e) => fail(String(e.reason)));

const SVG = "http://www.w3.org/2000/svg";

// el("td", {class: "num"}, "12") — attributes, then children (strings become
// text nodes).
function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// The largest of many numbers (a spread `Math.max(...v)` overflows the
// stack for long arrays).
const maxOf = (values, floor) => values.reduce((a, b) => (b > a ? b : a), floor);

const fmt = {
  n: (v) => (v === null || v === undefined ? "-" : Number(v).toLocaleString("en-US")),
  ns: (v) => {
    if (v === null || v === undefined) return "-";
    if (v < 1e3) return v + " ns";
    if (v < 1e6) return (v / 1e3).toFixed(1) + " µs";
    if (v < 1e9) return (v / 1e6).toFixed(2) + " ms";
    return (v / 1e9).toFixed(2) + " s";
  },
  when: (unixNs) => new Date(Number(unixNs) / 1e6).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"),
  counts: (m) => {
    const parts = Object.entries(m || {}).map(([k, v]) => k + " " + fmt.n(v));
    return parts.length ? parts.join(", ") : "-";
  },
};

function section(id, title, ...body) {
  document.getElementById("nav").append(el("a", { href: "#" + id }, title));
  return el("section", { id }, el("h2", {}, title), ...body);
}

// A table from rows of objects; `cols` are [key, title, cellAttrs(row)?].
function table(cls, cols, rows, rowAttrs) {
  return el(
    "table",
    { class: cls },
    el("thead", {}, el("tr", {}, cols.map(([, title, attrs]) => el("th", { class: attrs && attrs.num ? "num" : null }, title)))),
    el(
      "tbody",
      {},
      rows.map((r) =>
        el(
          "tr",
          rowAttrs ? rowAttrs(r) : {},
          cols.map(([key, , attrs]) => {
            const value = typeof key === "function" ? key(r) : r[key];
            const a = attrs || {};
            return el("td", { class: a.num ? "num" : a.code ? "code" : a.cls ? a.cls(r) : null, ...(a.data ? a.data(r) : {}) },
              a.num ? fmt.n(value) : value === null || value === undefined ? "-" : value);
          })
        )
      )
    )
  );
}

// Every column of a library query's rows, as they came.
function queryTable(cls, rows) {
  if (!rows.length) return el("p", { class: "muted" }, "(none)");
  const keys = Object.keys(rows[0]).filter((k) => k !== "recording");
  return table(cls, keys.map((k) => [k, k, { num: typeof rows[0][k] === "number" && !k.endsWith("_ns") }]), rows);
}

// ---- header ---------------------------------------------------------------

function headerFacts(rec) {
  const h = rec.header;
  const failed = h.probes_failed.reduce((n, g) => n + g.probes.length, 0);
  const facts = [
    ["recording", rec.name + " (" + rec.dir + ")"],
    ["host", h.host],
    ["kernel", h.kernel],
    ["started", fmt.when(h.started_unix_ns)],
    ["span", h.span_ns === null ? "unknown (interrupted)" : fmt.ns(h.span_ns)],
    ["backend", h.backend + (h.backend_reason ? " — " + h.backend_reason : "")],
    ["mode", h.mode || "-"],
    ["probes", h.probes_attached + " attached, " + failed + " failed"],
    ["filters", Object.entries(h.filters).map(([k, v]) => k + " " + v).join(", ") || "none"],
    ["events", fmt.n(h.events) + " events, " + fmt.n(h.nftrace_events) + " nftrace messages, " + fmt.n(rec.traces) + " traces"],
    ["lost", fmt.n(h.lost_events) + " events" + (rec.incomplete_due_to_loss ? ", " + fmt.n(rec.incomplete_due_to_loss) + " traces incomplete due to loss" : "")],
    ["end", h.end + (h.ended_cleanly ? " (clean)" : " (NOT clean)")],
    ["recorder", "nft-recorder " + h.tool_version],
  ];
  const dl = el("dl", { class: "facts", "data-recording": rec.name });
  for (const [k, v] of facts) dl.append(el("dt", {}, k), el("dd", { "data-fact": k }, v));
  const parts = [dl];
  for (const g of h.probes_failed) {
    parts.push(el("p", { class: "note" }, "not attached (" + g.probes.length + "): " + g.probes.slice(0, 8).join(", ") +
      (g.probes.length > 8 ? ", …" : "") + " — " + g.reason));
  }
  parts.push(rec.partial || rec.incomplete_due_to_loss
    ? el("div", { class: "banner partial", "data-partial": "true" },
        "Partial: " + (rec.incomplete.length ? rec.incomplete.join("; ")
          : h.lost_events ? fmt.n(h.lost_events) + " events were lost" : "the recording did not end cleanly") +
        ". Traces that a loss touches are flagged incomplete_due_to_loss.")
    : el("div", { class: "banner ok", "data-partial": "false" }, "Complete: nothing was lost, and the recording ended cleanly."));
  for (const w of rec.warnings) parts.push(el("p", { class: "note" }, "warning: " + w));
  return el("div", {}, ...parts);
}

// ---- the packet path graph ------------------------------------------------

const NODE_W = 200, NODE_H = 36, COL_W = 224, ROW_H = 66, PAD = 20;

// Top to bottom in packet order: a node's rank is its row, and the nodes of
// a row sit side by side, busiest first.
// nodes: [{key, kind, name, hook, packets, drops, flows, more_flows, rank,
// state}], edges: [{from: key, to: key, packets, state}].
function drawGraph(nodes, edges, onPick) {
  const rows = new Map();
  for (const n of nodes) {
    const r = Math.round(n.rank);
    if (!rows.has(r)) rows.set(r, []);
    rows.get(r).push(n);
  }
  const rowIndex = [...rows.keys()].sort((a, b) => a - b);
  const pos = new Map();
  let maxCols = 1;
  rowIndex.forEach((r, ri) => {
    const list = rows.get(r).sort((a, b) => b.packets - a.packets || a.name.localeCompare(b.name));
    maxCols = Math.max(maxCols, list.length);
    list.forEach((n, ci) => pos.set(n.key, { x: PAD + ci * COL_W, y: PAD + ri * ROW_H }));
  });
  const width = PAD * 2 + maxCols * COL_W + 60;
  const height = PAD * 2 + Math.max(1, rowIndex.length) * ROW_H;
  const svg = el("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "graph", role: "img" });
  const maxPackets = maxOf(edges.map((e) => e.packets), 1);
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const w = 1 + 6 * Math.log1p(e.packets) / Math.log1p(maxPackets);
    let d;
    if (b.y > a.y) {
      const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y, my = (y1 + y2) / 2;
      d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
    } else {
      // Back or same-row edge: an arc out to the right of both nodes.
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x + NODE_W, y2 = b.y + NODE_H / 2;
      const out = Math.max(x1, x2) + 30 + Math.abs(y1 - y2) / 10;
      d = `M${x1},${y1} C${out},${y1} ${out},${y2} ${x2},${y2}`;
    }
    const toDrop = byKey.get(e.to) && byKey.get(e.to).kind === "drop";
    const cls = "edge" + (toDrop ? " to-drop" : "") + (e.state && e.state !== "both" ? " only-" + e.state : "");
    svg.append(el("svg:path", { d, class: cls, "stroke-width": w.toFixed(1), "data-from": byKey.get(e.from).name,
      "data-to": byKey.get(e.to).name, "data-packets": e.packets, "data-state": e.state || null },
      el("svg:title", {}, byKey.get(e.from).name + " → " + byKey.get(e.to).name + ": " + fmt.n(e.packets) + " packets")));
  }
  for (const n of nodes) {
    const p = pos.get(n.key);
    const dropsHere = Object.keys(n.drops || {}).length > 0;
    const cls = "node " + n.kind + (dropsHere ? " drops-here" : "") + (n.state && n.state !== "both" ? " only-" + n.state : "");
    const label = n.name.length > 29 ? n.name.slice(0, 28) + "…" : n.name;
    const sub = fmt.n(n.packets) + " pkts" + (n.hook ? " · hook " + n.hook : "") + (n.kind === "drop" ? " dropped" : "");
    const g = el("svg:g", { class: cls, transform: `translate(${p.x},${p.y})`, "data-name": n.name, "data-kind": n.kind,
      "data-packets": n.packets, "data-state": n.state || null, tabindex: 0 },
      el("svg:title", {}, n.name + " (" + n.kind + "): " + fmt.n(n.packets) + " packets" +
        (dropsHere ? "; dropped next: " + fmt.counts(n.drops) : "")),
      el("svg:rect", { width: NODE_W, height: NODE_H }),
      el("svg:text", { x: 8, y: 15 }, label),
      el("svg:text", { x: 8, y: 30, style: "font-size:11px;fill:#616e7c" }, sub));
    g.addEventListener("click", () => {
      svg.querySelectorAll(".node.selected").forEach((s) => s.classList.remove("selected"));
      g.classList.add("selected");
      onPick(n);
    });
    svg.append(g);
  }
  return svg;
}

function graphLegend() {
  const item = (color, text) => el("span", {}, el("i", { style: "background:" + color }), text);
  return el("p", { class: "legend note" }, item("#dbeafe", "function"), item("#e0e7ff", "tracepoint"),
    item("#fef3c7", "nftables chain"), item("#fecaca", "drop (reason)"),
    "edges: packets from one step to the next (width: log of the count); red border: packets dropped right after it");
}

function nodePanel(panel, n, sides) {
  panel.replaceChildren(el("h3", {}, n.name + " (" + n.kind + (n.hook ? ", hook " + n.hook : "") + ")"));
  for (const [label, node] of sides) {
    if (!node) { panel.append(el("p", { class: "muted" }, label + ": not on this side")); continue; }
    panel.append(el("p", {}, (label ? label + ": " : "") + fmt.n(node.packets) + " packets" +
      (Object.keys(node.drops).length ? "; dropped right after: " + fmt.counts(node.drops) : "")));
    panel.append(table("node-flows", [["0", "flow", { cls: () => "code" }], ["1", "packets", { num: true }]],
      node.flows.map(([f, c]) => ({ 0: f, 1: c }))));
    if (node.more_flows) panel.append(el("p", { class: "note" }, "and " + fmt.n(node.more_flows) + " more flows"));
  }
}

function graphSection(recs, id, title) {
  // One graph: a recording's, or for a diff the union with each node and
  // edge marked by the side(s) it is on.
  const nodes = new Map(), edges = new Map();
  const keyOf = (n) => n.kind + "\u0000" + n.name;
  recs.forEach((rec, side) => {
    const ids = new Map();
    for (const n of rec.graph.nodes) {
      const key = keyOf(n);
      ids.set(n.id, key);
      const have = nodes.get(key) || { key, kind: n.kind, name: n.name, hook: n.hook, packets: 0, drops: {}, flows: [],
        more_flows: 0, rank: n.rank, sides: [null, null] };
      have.sides[side] = n;
      if (side === recs.length - 1 || !have.packets) { have.packets = n.packets; have.drops = n.drops; have.rank = n.rank; }
      nodes.set(key, have);
    }
    for (const e of rec.graph.edges) {
      const key = ids.get(e.from) + "\u0001" + ids.get(e.to);
      const have = edges.get(key) || { from: ids.get(e.from), to: ids.get(e.to), packets: 0, sides: [0, 0] };
      have.sides[side] = e.packets;
      have.packets = side === recs.length - 1 || !have.packets ? e.packets : have.packets;
      edges.set(key, have);
    }
  });
  const state = (sides) => recs.length < 2 ? null : sides[0] && sides[1] ? "both" : sides[1] ? "new" : "base";
  for (const n of nodes.values()) n.state = state(n.sides);
  for (const e of edges.values()) e.state = state(e.sides);
  const panel = el("div", { class: "panel", id: "node-panel" }, el("p", { class: "muted" }, "Click a node to list the flows through it."));
  const labels = recs.length > 1 ? ["base " + recs[0].name, "new " + recs[1].name] : [""];
  const svg = drawGraph([...nodes.values()], [...edges.values()], (n) => nodePanel(panel, n, labels.map((l, i) => [l, n.sides[i]])));
  const hidden = recs.map((r) => r.graph.hidden_nodes).reduce((a, b) => Math.max(a, b), 0);
  return section(id, title,
    graphLegend(),
    recs.length > 1 ? el("p", { class: "note" }, "green: only in the new recording; dashed: only in the base (vanished)") : null,
    hidden ? el("p", { class: "note", "data-hidden-nodes": hidden }, fmt.n(hidden) + " rarely used nodes are not drawn; every table counts them") : null,
    el("div", { class: "scroll graph-wrap" }, svg), panel);
}

// ---- verdicts ---------------------------------------------------------------

function pivotRules(rows) {
  const rules = new Map(), verdicts = new Set();
  for (const r of rows) {
    const key = [r.source, r.family, r.table, r.chain, r.rule_handle, r.rule_position, r.type, r.rule_text].join("\u0000");
    const have = rules.get(key) || { ...r, counts: {} };
    const v = r.verdict === null ? "-" : r.verdict;
    have.counts[v] = (have.counts[v] || 0) + r.packets;
    verdicts.add(v);
    rules.set(key, have);
  }
  const order = ["accept", "drop", "continue", "jump", "goto", "return", "queue", "stolen", "reject"];
  const vs = [...verdicts].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b));
  return { rules: [...rules.values()], verdicts: vs };
}

function rulesTable(rows) {
  const { rules, verdicts } = pivotRules(rows);
  if (!rules.length) return el("p", { class: "muted" }, "No rule verdicts in this recording.");
  const cols = [
    ["source", "source"], [(r) => r.family + " " + r.table + "/" + r.chain, "chain"],
    ["rule_position", "#", { num: true }], ["rule_handle", "handle", { num: true }], ["type", "type"],
    ["rule_text", "rule", { cls: () => "code" }],
    ...verdicts.map((v) => [(r) => r.counts[v] || 0, v, { num: true, data: () => ({ "data-verdict": v }) }]),
  ];
  return table("rules", cols, rules, (r) => ({ class: "rule-row", "data-source": r.source, "data-family": r.family,
    "data-table": r.table, "data-chain": r.chain, "data-handle": r.rule_handle, "data-position": r.rule_position,
    "data-type": r.type }));
}

function flowsTable(rec, onPick) {
  const flows = rec.flows;
  const verdicts = [...new Set(flows.flatMap((f) => Object.keys(f.verdicts)))].sort();
  return table("flows", [
    ["flow", "flow", { cls: () => "code" }], ["traces", "traces", { num: true }],
    ...verdicts.map((v) => [(f) => f.verdicts[v] || 0, "final " + v, { num: true, data: () => ({ "data-verdict": v }) }]),
    ["drops", "dropped", { num: true }],
    [(f) => fmt.ns(f.latency.p50_ns), "p50"], [(f) => fmt.ns(f.latency.p99_ns), "p99"],
  ], flows, (f) => ({ class: "flow-row clickable", "data-flow": f.flow, onclick: (ev) => onPick(f, ev.currentTarget) }));
}

function verdictSection(recs) {
  const body = recs.map((rec) => el("div", {},
    recs.length > 1 ? el("h3", {}, rec.name) : null,
    el("h3", {}, "Rules"),
    el("p", { class: "note" }, "Packets per rule and verdict (the library's rule_verdicts query: `nft-analyzer sql REC --query rule_verdicts`)."),
    el("div", { class: "scroll" }, rulesTable(rec.queries.rule_verdicts)),
    el("h3", {}, "Base chains"),
    el("div", { class: "scroll" }, queryTable("chains", rec.queries.chain_verdicts)),
    el("h3", {}, "Final verdict of each packet"),
    el("p", { class: "note", "data-final-verdicts": JSON.stringify(rec.final_verdicts) }, "final verdicts (\"-\": no rule decided): " +
      fmt.counts(rec.final_verdicts) + "; how traces ended: " + fmt.counts(rec.ends)),
    el("div", { class: "scroll", style: "max-height:340px" }, flowsTable(rec, (f) => {
      // To the packets of this flow.
      const input = document.getElementById("viewer-flow");
      input.value = f.flow;
      input.dispatchEvent(new Event("input"));
      document.getElementById("viewer").scrollIntoView();
    }))));
  return section("verdicts", "Verdicts", recs.length > 1 ? el("div", { class: "sides" }, body) : body);
}

// ---- drops ----------------------------------------------------------------

function dropsChart(rec) {
  const d = rec.drops_over_time;
  const reasons = Object.keys(d.series);
  if (!reasons.length) return el("p", { class: "muted" }, "No drops over time.");
  const totals = new Array(Number(d.bins)).fill(0);
  for (const r of reasons) for (const [bin, n] of d.series[r]) totals[bin] += n;
  const max = maxOf(totals, 1);
  const W = 720, H = 150, bw = Math.max(1, Math.floor((W - 40) / totals.length));
  const svg = el("svg:svg", { width: W, height: H + 30, class: "drops-chart" });
  totals.forEach((n, i) => {
    if (!n) return;
    const h = Math.max(1, (n / max) * H);
    svg.append(el("svg:rect", { class: "bar drop", x: 40 + i * bw, y: H - h + 5, width: Math.max(1, bw - 1), height: h, "data-bin": i, "data-drops": n },
      el("svg:title", {}, fmt.ns(i * d.bin_ns) + "–" + fmt.ns((i + 1) * d.bin_ns) + ": " + fmt.n(n) + " drops")));
  });
  svg.append(el("svg:line", { class: "axis", x1: 40, y1: H + 5, x2: W, y2: H + 5 }),
    el("svg:text", { x: 0, y: 14 }, fmt.n(max)),
    el("svg:text", { x: 40, y: H + 22 }, "0"),
    el("svg:text", { x: W - 80, y: H + 22 }, fmt.ns(totals.length * d.bin_ns)));
  return el("div", {}, svg, el("p", { class: "note" }, "drops per " + fmt.ns(d.bin_ns) + " since the recording started; reasons: " +
    reasons.map((r) => r + " " + fmt.n(d.series[r].reduce((a, [, n]) => a + n, 0))).join(", ")));
}

function dropsSection(recs) {
  const body = recs.map((rec) => el("div", {},
    recs.length > 1 ? el("h3", {}, rec.name) : null,
    el("p", { class: "note" }, "By reason and kernel location (the library's drops query, as `stats` shows it)."),
    rec.queries.drops.length
      ? table("drops", [["drop_reason", "reason"], ["location_sym", "location", { cls: () => "code" }], ["drops", "drops", { num: true }],
          ["skbs", "skbs", { num: true }], ["flows", "flows", { num: true }], ["dports", "dports", { num: true }]],
          rec.queries.drops, (r) => ({ class: "drop-row", "data-reason": r.drop_reason, "data-location": r.location_sym, "data-drops": r.drops }))
      : el("p", { class: "muted", "data-drops": 0 }, "No packet was dropped."),
    dropsChart(rec)));
  return section("drops", "Drops", recs.length > 1 ? el("div", { class: "sides" }, body) : body);
}

// ---- latency --------------------------------------------------------------

function histogram(summary, title) {
  const W = 620, H = 140;
  const svg = el("svg:svg", { width: W, height: H + 40, class: "histogram", "data-samples": summary.samples });
  if (!summary.samples) return el("p", { class: "muted" }, title + ": no samples");
  const bs = summary.buckets;
  const lo = Math.log10(Math.max(1, bs[0].low_ns)), hi = Math.log10(Math.max(10, bs[bs.length - 1].high_ns + 1));
  const x = (v) => 40 + ((Math.log10(Math.max(1, v)) - lo) / Math.max(1e-9, hi - lo)) * (W - 60);
  const max = maxOf(bs.map((b) => b.count), 1);
  for (const b of bs) {
    const h = Math.max(1, (b.count / max) * H);
    svg.append(el("svg:rect", { class: "bar", x: x(b.low_ns), y: H - h + 5, width: Math.max(1.5, x(b.high_ns + 1) - x(b.low_ns) - 0.5), height: h },
      el("svg:title", {}, fmt.ns(b.low_ns) + "–" + fmt.ns(b.high_ns) + ": " + fmt.n(b.count))));
  }
  for (const [label, v] of [["p50", summary.p50_ns], ["p99", summary.p99_ns]]) {
    if (v === null) continue;
    svg.append(el("svg:line", { class: "marker", x1: x(v), x2: x(v), y1: 0, y2: H + 5, "data-quantile": label }),
      el("svg:text", { x: Math.min(x(v) + 3, W - 90), y: label === "p50" ? 12 : 26, style: "fill:#c81e1e" }, label + " " + fmt.ns(v)));
  }
  svg.append(el("svg:line", { class: "axis", x1: 40, y1: H + 5, x2: W - 20, y2: H + 5 }),
    el("svg:text", { x: 40, y: H + 22 }, fmt.ns(bs[0].low_ns)),
    el("svg:text", { x: W - 90, y: H + 22 }, fmt.ns(bs[bs.length - 1].high_ns)),
    el("svg:text", { x: 40, y: H + 37, class: "muted" }, title + " — " + fmt.n(summary.samples) + " samples, log scale"));
  return svg;
}

function latencySection(recs) {
  const body = recs.map((rec) => {
    const chosen = el("div", { class: "panel" }, el("p", { class: "muted" }, "Click a flow or a hop to see its histogram."));
    const pick = (title, summary, row) => {
      row.closest("table").querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
      row.classList.add("selected");
      chosen.replaceChildren(histogram(summary, title));
    };
    return el("div", {},
      recs.length > 1 ? el("h3", {}, rec.name) : null,
      el("h3", {}, "End to end"),
      histogram(rec.end_to_end, "first event to last, every complete trace"),
      el("h3", {}, "Per flow"),
      el("div", { class: "scroll", style: "max-height:340px" }, flowsTable(rec, (f, row) => pick(f.flow, f.latency, row))),
      el("h3", {}, "Per hop"),
      el("div", { class: "scroll", style: "max-height:340px" }, table("hops", [
        [(h) => h.from + " → " + h.to, "hop", { cls: () => "code" }], [(h) => h.latency.samples, "samples", { num: true }],
        [(h) => fmt.ns(h.latency.p50_ns), "p50"], [(h) => fmt.ns(h.latency.p99_ns), "p99"],
      ], rec.hops, (h) => ({ class: "hop-row clickable", onclick: (ev) => pick(h.from + " → " + h.to, h.latency, ev.currentTarget) }))),
      chosen,
      el("p", { class: "note" }, "p50/p99 are read from log buckets 1/16 of a power of two wide (within about 3%)."));
  });
  return section("latency", "Latency", recs.length > 1 ? el("div", { class: "sides" }, body) : body);
}

// ---- the per-packet viewer ------------------------------------------------

function timeline(t) {
  // Traces from /api/traces have no per-hop times: their functions are
  // listed in order, without offsets.
  const offsets = t.path_offsets_ns || null;
  const items = t.functions_path.map((name, i) => ({ at: offsets ? offsets[i] || 0 : null, kind: "fn", name }));
  for (const e of t.nft_events) items.push({ at: Math.max(0, e.timestamp_ns - t.first_seen_ns), kind: "nft", e });
  if (offsets) items.sort((a, b) => a.at - b.at);
  if (t.drop_reason) items.push({ at: t.duration_ns, kind: "drop" });
  const li = (cls, at, what, detail) => el("li", { class: cls }, el("span", { class: "t" }, at === null ? "" : "+" + fmt.ns(at)), el("span", {}, what), el("span", { class: "code" }, detail));
  return el("ol", { class: "timeline", "data-trace": t.trace_id }, items.map((it) => {
    if (it.kind === "fn") return li("fn", it.at, it.name.includes(":") ? "tracepoint" : "function", it.name);
    if (it.kind === "drop") return li("drop", it.at, "DROP", t.drop_reason + (t.drop_location ? " at " + t.drop_location : ""));
    const e = it.e;
    const where = (e.family || "") + " " + (e.table || "") + "/" + (e.chain || "") + (e.hook ? " (" + e.hook + ")" : "");
    const rule = e.rule_seq !== null || e.rule_handle !== null ? " rule #" + (e.rule_seq ?? "?") + " handle " + (e.rule_handle ?? "?") : "";
    return li("nft", it.at, e.type + " [" + e.source + "]", where + rule + (e.verdict ? " → " + e.verdict + (e.target ? " " + e.target : "") : "") +
      (e.rule_text ? "\n  " + e.rule_text : ""));
  }));
}

// `tcp 10.0.0.1:40000 > 10.0.0.2:80`, as the analyzer prints a flow.
function flowOf(t) {
  const p = t.packet_info;
  if (p.ip_version === null) return "non-ip";
  const end = (ip, port) => {
    ip = ip === null ? "?" : ip;
    if (port === null) return ip;
    return ip.includes(":") ? "[" + ip + "]:" + port : ip + ":" + port;
  };
  return (p.protocol || "-") + " " + end(p.src_ip, p.src_port) + " > " + end(p.dst_ip, p.dst_port);
}

function traceFacts(t) {
  return el("p", {}, el("b", {}, "trace " + t.trace_id + " "), t.flow, " · skb " + t.skb_addr + " · " + fmt.ns(t.duration_ns) +
    " · ended " + t.end + " · final verdict ", el("span", { class: "verdict-" + (t.stats.final_verdict || "none") }, t.stats.final_verdict || "none"),
    t.flags.length ? " · " + t.flags.join(", ") : "", " · cpus " + t.cpus.join(","));
}

function viewerSection(recs, live) {
  const all = recs.flatMap((r) => r.sample.traces.map((t) => ({ ...t, recordingName: r.name })));
  const options = (values) => [el("option", { value: "" }, "any"), ...[...new Set(values)].sort().map((v) => el("option", { value: v }, v))];
  const flowIn = el("input", { type: "search", placeholder: "flow contains… (e.g. :22 or udp)", size: 34, id: "viewer-flow" });
  const verdictIn = el("select", { id: "viewer-verdict" }, options(all.map((t) => t.stats.final_verdict || "none")));
  const reasonIn = el("select", { id: "viewer-reason" }, options(all.map((t) => t.drop_reason).filter(Boolean)));
  const list = el("div", { class: "scroll", style: "max-height:300px" });
  const shown = el("div", { class: "panel", id: "viewer-trace" }, el("p", { class: "muted" }, "Pick a packet."));
  const show = (t, row) => {
    list.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
    if (row) row.classList.add("selected");
    shown.replaceChildren(traceFacts(t), timeline(t));
  };
  const render = (traces, note) => {
    list.replaceChildren(note ? el("p", { class: "note" }, note) : "", table("viewer-list", [
      ["recordingName", "recording"], ["trace_id", "trace", { num: true }], ["flow", "flow", { cls: () => "code" }],
      [(t) => fmt.ns(t.duration_ns), "duration"], ["end", "end"], [(t) => t.stats.final_verdict || "none", "verdict"],
      [(t) => t.drop_reason || "-", "drop reason"], ["why", "in sample as"],
    ], traces.slice(0, 500), (t) => ({ class: "trace-row clickable", "data-trace": t.trace_id, onclick: (ev) => show(t, ev.currentTarget) })));
    if (traces.length) show(traces[0], list.querySelector("tr.trace-row"));
  };
  const wanted = (t) => {
    const f = flowIn.value.trim(), v = verdictIn.value, r = reasonIn.value;
    return (!f || t.flow.includes(f)) && (!v || (t.stats.final_verdict || "none") === v) && (!r || t.drop_reason === r);
  };
  const filter = () => {
    const hits = all.filter(wanted);
    render(hits, fmt.n(hits.length) + " matching traces in the sample" + (hits.length > 500 ? " (first 500 listed)" : ""));
  };
  for (const input of [flowIn, verdictIn, reasonIn]) input.addEventListener("input", filter);
  const controls = el("div", { class: "controls" }, flowIn, el("label", {}, "verdict ", verdictIn), el("label", {}, "drop reason ", reasonIn));
  if (live) {
    const button = el("button", { type: "button", id: "viewer-search-all" }, "search the whole recording");
    button.addEventListener("click", async () => {
      const q = new URLSearchParams({ limit: "200" });
      if (flowIn.value.trim()) q.set("flow", flowIn.value.trim());
      if (verdictIn.value && verdictIn.value !== "none") q.set("verdict", verdictIn.value);
      const res = await fetch("api/traces?" + q);
      if (!res.ok) { fail("GET /api/traces: " + res.status + " " + (await res.text())); return; }
      const body = await res.json();
      // The server filters by flow and verdict; "none" and the drop reason
      // are applied here.
      const got = body.traces.map((t) => ({ ...t, flow: flowOf(t), recordingName: t.recording, why: "search" })).filter(wanted);
      render(got, fmt.n(got.length) + " traces from the server" + (body.summary ? " (of " + fmt.n(body.summary.traces) + " in all)" : ""));
      document.body.dataset.searched = String(got.length);
    });
    controls.append(button);
    // `serve`'s page with #search-all searches at once (a link to share).
    if (location.hash === "#search-all") setTimeout(() => button.click(), 0);
  }
  const notes = recs.map((r) => el("p", { class: "note", "data-sample": r.name }, r.name + ": " + r.sample.note));
  const section_ = section("viewer", "Packets", ...notes, controls, list, shown);
  filter();
  return section_;
}

// ---- losses ---------------------------------------------------------------

function lossSection(recs) {
  const body = recs.map((rec) => el("div", {},
    recs.length > 1 ? el("h3", {}, rec.name) : null,
    rec.queries.losses.length
      ? el("div", {}, el("p", { class: "banner partial" }, fmt.n(rec.header.lost_events) + " events lost; " +
          fmt.n(rec.incomplete_due_to_loss) + " traces touched by a loss are flagged incomplete_due_to_loss"),
          queryTable("losses", rec.queries.losses), el("h3", {}, "When"), queryTable("loss-windows", rec.queries.loss_windows))
      : el("p", { class: "banner ok", "data-lost": 0 }, "Nothing was lost.")));
  return section("losses", "Losses", recs.length > 1 ? el("div", { class: "sides" }, body) : body);
}

// ---- diff -----------------------------------------------------------------

function diffSection(diff) {
  const changed = (p) => JSON.stringify(p.base) !== JSON.stringify(p.new) || p.base_text !== p.new_text;
  return section("differences", "What changed",
    diff.differences.length
      ? table("differences", [["kind", "kind"], ["subject", "subject", { cls: () => "code" }], ["change", "change"],
          [(d) => d.trust || "", "trust"]], diff.differences, (d) => ({ class: "difference changed", "data-kind": d.kind }))
      : el("p", { class: "banner ok" }, "No difference beyond the tolerances."),
    el("h3", {}, "Rules, matched across the two rulesets"),
    el("div", { class: "scroll" }, table("rule-pairs", [
      [(p) => p.family + " " + p.table + "/" + p.chain, "chain"], ["kind", "type"],
      [(p) => p.base_text === p.new_text || p.base_text === null || p.new_text === null ? p.base_text ?? p.new_text : p.base_text + "  →  " + p.new_text, "rule", { cls: () => "code" }],
      [(p) => fmt.counts(p.base), "base", { cls: (p) => (changed(p) ? "delta" : null) }],
      [(p) => fmt.counts(p.new), "new", { cls: (p) => (changed(p) ? "delta" : null) }],
    ], diff.rules, (p) => ({ class: "rule-pair" + (changed(p) ? " changed" : ""), "data-changed": changed(p), "data-rule": p.new_text ?? p.base_text }))),
    el("h3", {}, "Drops"),
    table("drop-pairs", [["reason", "reason"], ["function", "function", { cls: () => "code" }], ["base", "base", { num: true }], ["new", "new", { num: true }]],
      diff.drops, (d) => ({ class: "drop-pair" + (d.base === 0 && d.new > 0 ? " new" : d.new === 0 ? " vanished" : d.base !== d.new ? " changed" : "") })),
    el("h3", {}, "Paths"),
    el("div", { class: "scroll", style: "max-height:360px" }, table("path-pairs", [["flow", "flow", { cls: () => "code" }], ["path", "path", { cls: () => "code" }],
      ["base", "base", { num: true }], ["new", "new", { num: true }]], diff.paths,
      (p) => ({ class: "path-pair" + (p.base === 0 ? " new" : p.new === 0 ? " vanished" : "") }))));
}

// ---- the page ---------------------------------------------------------------

function main() {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const recs = data.recordings;
  const main = document.getElementById("main");
  main.replaceChildren();
  document.body.dataset.kind = data.kind;
  const headers = recs.map((r, i) => el("div", {}, recs.length > 1 ? el("h3", {}, (i ? "new: " : "base: ") + r.name) : null, headerFacts(r)));
  main.append(section("recording", data.kind === "diff" ? "Recordings" : "Recording",
    recs.length > 1 ? el("div", { class: "sides" }, headers) : headers));
  if (data.diff) main.append(diffSection(data.diff));
  if (data.kind === "diff") main.append(graphSection(recs, "graph", "Packet path graph"));
  else recs.forEach((r, i) => main.append(graphSection([r], i ? "graph-" + (i + 1) : "graph",
    recs.length > 1 ? "Path graph: " + r.name : "Packet path graph")));
  main.append(verdictSection(recs), dropsSection(recs), latencySection(recs), viewerSection(recs, data.live), lossSection(recs));
  main.append(el("p", { class: "note" }, "nft-analyzer " + data.tool_version + " · every string above comes from the recording, shown as text"));
  document.body.dataset.ready = "1";
}

try {
  main();
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
}
