// sweepd dashboard: hand-written, no build step, no CDN (boxes may have no internet).
// Hash routes: #/ (sweeps), #/sweep/ID, #/sweep/ID/trial/N, #/boxes. Every number shown comes
// from the JSON API (/api/...), the same endpoints the tests read.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const SWEEP_POLL_MS = 5000;   // a running sweep: re-read its version, refetch trials when it changed
const LIST_POLL_MS = 10000;
const TABLE_PAGE = 200;       // rows rendered at once: 10,000 <tr> would stall the page
const MAX_CURVES = 8;
const PALETTE = ["#e67e22", "#2471a3", "#1e8449", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d"];

const state = { timer: null, sweep: null, trials: [], front: [], selected: [], current: null,
                curves: new Map(), sort: { key: "number", dir: 1 }, shown: TABLE_PAGE, version: null };

// --- small DOM helpers ------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function fill(node, ...children) {  // replaceChildren would print null and false as text
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

async function api(path) {
  const response = await fetch(path, { cache: "no-store" });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function fmtCost(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return s.toFixed(1) + "s";
  return s < 7200 ? (s / 60).toFixed(1) + "m" : (s / 3600).toFixed(1) + "h";
}
function fmtNum(v, digits = 4) {
  if (v === null || v === undefined) return "–";
  return Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(+v.toPrecision(digits));
}
function fmtAxis(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  return fmtNum(v, 3);
}
function fmtScore(v, se) { return v === null || v === undefined ? "–" : fmtNum(v) + (se ? " ± " + fmtNum(se, 2) : ""); }
function fmtValue(v) { return typeof v === "number" && !Number.isInteger(v) ? fmtNum(v, 3) : String(v); }
function fmtAgo(s) { return s === null || s === undefined || !isFinite(s) ? "never" : fmtCost(Math.max(0, s)) + " ago"; }
function badge(status) { return el("span", { class: "badge st-" + status }, status); }
function fmtSteps(v) { return v === null || v === undefined ? "–" : fmtAxis(v); }

// How a run ended, as `sweepd pareto` and `sweepd status` mark it: stopped early by the searcher,
// cut at the cost cap before its planned steps, or "" (it trained what it planned).
const MARKS = { cut: "ended at the cost cap before its planned steps", stopped: "ended early on the searcher's word" };
function markOf(t) { return t.stopped ? "stopped" : t.truncated ? "cut" : ""; }
function markBadge(mark) { return mark ? el("span", { class: "mark mark-" + mark, title: MARKS[mark] }, mark) : null; }

// A point shaped by how its run ended: full runs are circles, cut ones triangles, stopped ones squares.
function marker(parent, mark, cx, cy, r, attrs) {
  if (mark === "cut")
    return svg("path", { ...attrs, d: `M${cx - r * 1.2},${cy - r}h${r * 2.4}l${-r * 1.2},${r * 2.1}z` }, parent);
  if (mark === "stopped")
    return svg("rect", { ...attrs, x: cx - r * 0.9, y: cy - r * 0.9, width: r * 1.8, height: r * 1.8 }, parent);
  return svg("circle", { ...attrs, cx, cy, r }, parent);
}
function shortName(name) { return name.split(".").pop(); }

function changedParams(params) {
  const centre = Object.fromEntries((state.sweep?.params || []).map((p) => [p.name, p.center]));
  const parts = Object.entries(params).filter(([k, v]) => centre[k] !== v).map(([k, v]) => `${shortName(k)}=${fmtValue(v)}`);
  return parts.join(", ") || "(centre)";
}

function setPoll(fn, ms) {
  clearInterval(state.timer);
  state.timer = fn ? setInterval(fn, ms) : null;
  document.getElementById("refresh-note").textContent = fn ? `refreshing every ${ms / 1000} s` : "";
}

function showError(err) {
  fill(document.getElementById("app"), el("p", { class: "error" }, String(err.message || err)));
}

// --- routing ----------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean);
  document.querySelectorAll("nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.nav === (parts[0] === "boxes" ? "boxes" : "sweeps")));
  setPoll(null);
  if (parts[0] === "sweep" && parts[1]) {
    const trial = parts[2] === "trial" ? Number(parts[3]) : null;
    if (state.sweep && String(state.sweep.id) === parts[1] && document.getElementById("pareto-chart")) {
      if (trial) selectTrial(trial, false);
      setPoll(pollSweep, SWEEP_POLL_MS);
      return;
    }
    showSweep(parts[1], trial).catch(showError);
  } else if (parts[0] === "boxes") {
    showBoxes().catch(showError);
  } else {
    showSweeps().catch(showError);
  }
}

// --- sweeps list ------------------------------------------------------------------------------

async function showSweeps() {
  const sweeps = await api("/api/sweeps");
  const rows = sweeps.map((s) => el("tr", { class: "clickable", "data-sweep": s.id, onclick: () => (location.hash = `#/sweep/${s.id}`) },
    el("td", {}, el("a", { href: `#/sweep/${s.id}` }, s.name)), el("td", {}, s.env), el("td", {}, s.owner),
    el("td", {}, badge(s.status), s.reason ? el("span", { class: "muted" }, " " + s.reason) : null),
    el("td", { class: "num" }, `${s.succeeded}/${s.max_trials || "–"}`), el("td", { class: "num" }, s.running),
    el("td", { class: "num" }, s.failed), el("td", { class: "num" }, s.stopped), el("td", { class: "num" }, fmtScore(s.best_score)),
    el("td", { class: "num" }, fmtCost(s.cost_spent)), el("td", {}, new Date(s.created_at * 1000).toLocaleString())));
  const table = el("table", { id: "sweeps-table" },
    el("thead", {}, el("tr", {}, ["sweep", "env", "owner", "status", "done", "running", "failed", "stopped", "best", "spent", "created"]
      .map((h, i) => el("th", { class: i >= 4 && i <= 9 ? "num" : "" }, h)))),
    el("tbody", {}, rows));
  fill(document.getElementById("app"), el("h1", {}, "Sweeps"),
    el("div", { class: "card" }, sweeps.length ? table : el("p", { class: "muted" }, "No sweeps yet: sweepd launch snake")));
  setPoll(() => { if (location.hash.replace(/^#\/?/, "") === "") showSweeps().catch(showError); }, LIST_POLL_MS);
}

// --- one sweep --------------------------------------------------------------------------------

async function showSweep(id, trial) {
  const [sweep, trials, front] = await Promise.all([api(`/api/sweeps/${id}`), api(`/api/sweeps/${id}/trials`),
                                                   api(`/api/sweeps/${id}/front`)]);
  Object.assign(state, { sweep, trials, front: front.front, selected: [], current: null, curves: new Map(),
                         shown: TABLE_PAGE, version: JSON.stringify(sweep.version) });
  fill(document.getElementById("app"), 
    el("h1", { id: "sweep-title" }), el("div", { class: "stats", id: "sweep-stats" }),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Pareto front: cost vs score"),
        svg("svg", { id: "pareto-chart", class: "chart" }), el("div", { class: "legend", id: "pareto-legend" })),
      el("div", { class: "card", id: "trial-detail" }, el("h2", {}, "Trial"),
        el("p", { class: "muted" }, "Click a point or a row to see a trial and its learning curve."))),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Learning curves (selected trials)"),
        svg("svg", { id: "curve-chart", class: "chart" }), el("div", { class: "legend", id: "curve-legend" })),
      el("div", { class: "card" }, el("h2", {}, "Predicted vs actual cost"), svg("svg", { id: "cost-chart", class: "chart" }))),
    el("div", { class: "card" }, el("h2", {}, "Pareto front (seeds averaged)"), el("table", { id: "front-table" })),
    el("div", { class: "card" }, el("h2", { id: "trials-heading" }, "Trials"), el("table", { id: "trial-table" }),
      el("div", { id: "table-more" })));
  renderSweep();
  if (trial) selectTrial(trial, false);
  setPoll(pollSweep, SWEEP_POLL_MS);
}

function renderSweep() {
  const s = state.sweep;
  document.title = `${s.name} · sweepd`;
  fill(document.getElementById("sweep-title"), s.name + " ", badge(s.status),
    s.reason ? el("span", { class: "muted" }, " " + s.reason) : null);
  const stat = (value, label) => el("div", {}, el("b", {}, value), el("span", {}, label));
  fill(document.getElementById("sweep-stats"), 
    stat(s.env, "env"), stat(s.searcher, "searcher"), stat(s.owner, "owner"),
    stat(`${s.succeeded}/${s.max_trials || "–"}`, "succeeded"), stat(s.running, "running"), stat(s.failed, "failed"),
    stat(s.stopped, "stopped early"), stat(s.cut, "cut at the cap"),
    stat(fmtScore(s.best_score), `best (${s.direction})`), stat(fmtCost(s.cost_spent), "cost spent"),
    stat(state.front.length, "front points"), stat(fmtCost(s.max_suggestion_cost), "cost cap / trial"));
  drawPareto();
  drawCostChart();
  drawCurves();
  renderFrontTable();
  renderTrialTable();
}

async function pollSweep() {
  const s = state.sweep;
  if (!s) return;
  const fresh = await api(`/api/sweeps/${s.id}`).catch(() => null);
  if (!fresh) return;
  const version = JSON.stringify(fresh.version);
  if (version !== state.version) {
    const [trials, front] = await Promise.all([api(`/api/sweeps/${s.id}/trials`), api(`/api/sweeps/${s.id}/front`)]);
    Object.assign(state, { sweep: fresh, trials, front: front.front, version });
    for (const n of state.selected) if (isOpen(n)) state.curves.delete(n);  // growing curves: refetch
    await Promise.all(state.selected.filter((n) => !state.curves.has(n)).map(loadCurve));
    renderSweep();
    if (state.current !== null) showDetail(state.current);
  }
  if (!["running", "paused"].includes(fresh.status) && fresh.running === 0) setPoll(null);
}

function isOpen(number) {
  const t = state.trials.find((x) => x.number === number);
  return t && ["queued", "leased", "running"].includes(t.status);
}

// --- charts -----------------------------------------------------------------------------------

function scale(d0, d1, r0, r1, log) {
  const t = log ? Math.log10 : (v) => v;
  const a = t(d0), b = t(d1), span = b - a || 1;
  const f = (v) => r0 + ((t(v) - a) / span) * (r1 - r0);
  f.ticks = () => (log ? logTicks(d0, d1) : linearTicks(d0, d1));
  return f;
}

function linearTicks(lo, hi) {
  const span = hi - lo || 1, raw = span / 5, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= 6);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  const decades = Math.log10(hi / lo);
  const mults = decades < 1.5 ? [1, 2, 5] : decades < 3 ? [1, 3] : [1];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of mults) { const v = m * 10 ** e; if (v >= lo && v <= hi) ticks.push(v); }
  return ticks;
}

function extent(values, { log = false, pad = 0.06 } = {}) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!values.length || !isFinite(lo)) return log ? [1, 10] : [0, 1];
  if (log) {
    if (lo === hi) { lo /= 2; hi *= 2; }
    const f = (hi / lo) ** pad;
    return [lo / f, hi * f];
  }
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

function minMax(values) {  // Math.min(...10k values) is fine; 100k would overflow the stack: loop
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

function frame(node, height, xDomain, yDomain, { xLog = false, yLog = false, xLabel = "", yLabel = "" } = {}) {
  node.replaceChildren();
  const width = Math.max(320, Math.round(node.getBoundingClientRect().width) || node.parentNode.clientWidth || 600);
  const m = { l: 58, r: 14, t: 10, b: 38 };
  node.setAttribute("viewBox", `0 0 ${width} ${height}`);
  node.setAttribute("height", height);
  const x = scale(xDomain[0], xDomain[1], m.l, width - m.r, xLog);
  const y = scale(yDomain[0], yDomain[1], height - m.b, m.t, yLog);
  const axes = svg("g", { class: "axis" }, node);
  for (const v of x.ticks()) {
    svg("line", { class: "gridline", x1: x(v), x2: x(v), y1: m.t, y2: height - m.b }, axes);
    svg("text", { x: x(v), y: height - m.b + 14, "text-anchor": "middle" }, axes).textContent = xLog ? fmtCost(v) : fmtAxis(v);
  }
  for (const v of y.ticks()) {
    svg("line", { class: "gridline", x1: m.l, x2: width - m.r, y1: y(v), y2: y(v) }, axes);
    svg("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, axes).textContent = yLog ? fmtCost(v) : fmtAxis(v);
  }
  svg("path", { d: `M${m.l},${m.t}V${height - m.b}H${width - m.r}`, fill: "none" }, axes);
  svg("text", { class: "axis-label", x: (m.l + width - m.r) / 2, y: height - 4, "text-anchor": "middle" }, node).textContent = xLabel;
  svg("text", { class: "axis-label", transform: `translate(12,${(m.t + height - m.b) / 2}) rotate(-90)`, "text-anchor": "middle" },
      node).textContent = yLabel;
  return { x, y, width, height, m, plot: svg("g", {}, node) };
}

function drawPareto() {
  const node = document.getElementById("pareto-chart");
  const ok = state.trials.filter((t) => t.status === "succeeded" && t.score !== null && t.cost > 0);
  const failed = state.trials.filter((t) => ["failed", "abandoned"].includes(t.status) && t.cost > 0);
  const front = state.front.filter((p) => p.cost > 0);
  const costs = [...ok, ...failed, ...front].map((t) => t.cost);
  const scores = ok.map((t) => t.score).concat(front.flatMap((p) => [p.score - p.score_stderr, p.score + p.score_stderr]));
  const [cLo, cHi] = minMax(costs), [sLo, sHi] = minMax(scores);
  const f = frame(node, 340, extent(costs.length ? [cLo, cHi] : [], { log: true }),
                  extent(scores.length ? [sLo, sHi] : [], { pad: 0.1 }),
                  { xLog: true, xLabel: "cost (seconds, log scale)", yLabel: `score (${state.sweep.direction})` });
  const { x, y, plot, m, height, width } = f;
  const selected = new Set(state.selected);
  const points = svg("g", {}, plot);
  for (const t of ok) {
    const mark = markOf(t);
    marker(points, mark, +x(t.cost).toFixed(1), +y(t.score).toFixed(1), selected.has(t.number) ? 5 : 3.2,
           { class: "trial-point" + (mark ? " " + mark : "") + (selected.has(t.number) ? " selected" : ""),
             "data-number": t.number, "data-mark": mark || null });
  }
  const floor = height - m.b - 7;  // failures have no score: crosses on the chart's floor, at their cost
  for (const t of failed) {
    const cx = x(t.cost);
    svg("path", { class: "failed-point", d: `M${cx - 3.5},${floor - 3.5}l7,7m0,-7l-7,7`, "data-number": t.number }, points);
  }
  if (front.length) {
    const xs = front.map((p) => x(p.cost)), ys = front.map((p) => y(p.score));
    let d = `M${xs[0]},${ys[0]}`;
    for (let i = 1; i < front.length; i++) d += `H${xs[i]}V${ys[i]}`;
    d += `H${width - m.r}`;  // the front holds its best score at any higher cost
    svg("path", { class: "front-line", d }, plot);
    front.forEach((p, i) => {
      if (p.score_stderr > 0)
        svg("path", { class: "error-bar", d: `M${xs[i]},${y(p.score - p.score_stderr)}V${y(p.score + p.score_stderr)}` +
                      `M${xs[i] - 3},${y(p.score - p.score_stderr)}h6M${xs[i] - 3},${y(p.score + p.score_stderr)}h6` }, plot);
      const mark = markOf(p);
      marker(plot, mark, xs[i], ys[i], 5, { class: "front-point" + (mark ? " " + mark : ""), "data-number": p.trials[0],
                                            "data-front": i, "data-mark": mark || null });
    });
  }
  hookPoints(node, (n) => describeTrial(n));
  const ended = (mark) => ok.filter((t) => markOf(t) === mark).length;
  fill(document.getElementById("pareto-legend"), 
    el("span", {}, el("i", { style: "background: var(--point)" }), `trials (${ok.length})`),
    ...Object.keys(MARKS).filter((mark) => ended(mark)).map((mark) =>
      el("span", { class: "legend-" + mark, title: MARKS[mark] }, el("b", { class: "shape-" + mark }, mark === "cut" ? "▼" : "■"),
         `${mark}: ${MARKS[mark]} (${ended(mark)})`)),
    el("span", {}, el("b", { class: "x" }, "×"), `failed (${failed.length})`),
    el("span", {}, el("i", { style: "background: var(--accent)" }), `front (${front.length}, ± standard error over seeds)`));
}

function drawCostChart() {
  const node = document.getElementById("cost-chart");
  const rows = state.trials.filter((t) => t.cost > 0 && t.predicted_cost > 0);
  const all = rows.flatMap((t) => [t.cost, t.predicted_cost]).concat([state.sweep.max_suggestion_cost]);
  const [lo, hi] = minMax(all);
  const dom = extent([lo, hi], { log: true });
  const f = frame(node, 260, dom, dom, { xLog: true, yLog: true, xLabel: "predicted cost", yLabel: "actual cost" });
  svg("line", { class: "diagonal", x1: f.x(dom[0]), y1: f.y(dom[0]), x2: f.x(dom[1]), y2: f.y(dom[1]) }, f.plot);
  const cap = state.sweep.max_suggestion_cost;
  svg("line", { class: "cap-line", x1: f.m.l, x2: f.width - f.m.r, y1: f.y(cap), y2: f.y(cap) }, f.plot);
  const selected = new Set(state.selected);
  for (const t of rows)
    svg("circle", { class: "cost-point" + (selected.has(t.number) ? " selected" : ""), cx: f.x(t.predicted_cost).toFixed(1),
                    cy: f.y(t.cost).toFixed(1), r: 3, "data-number": t.number }, f.plot);
  if (!rows.length) svg("text", { x: f.width / 2, y: 120, "text-anchor": "middle", class: "axis-label" }, f.plot)
    .textContent = "no predictions yet (random warm-up trials have none)";
  hookPoints(node, (n) => describeTrial(n));
}

function drawCurves() {
  const node = document.getElementById("curve-chart");
  const curves = state.selected.filter((n) => state.curves.has(n)).map((n) => [n, state.curves.get(n)]);
  const pts = curves.flatMap(([, c]) => c.filter((p) => p[1] !== null));
  const [xLo, xHi] = minMax(pts.map((p) => p[0])), [yLo, yHi] = minMax(pts.map((p) => p[1]));
  const f = frame(node, 260, extent(pts.length ? [xLo, xHi] : [], { pad: 0.02 }),
                  extent(pts.length ? [yLo, yHi] : [], { pad: 0.08 }), { xLabel: "step", yLabel: "score" });
  const legend = [];
  curves.forEach(([n, curve]) => {
    const color = PALETTE[state.selected.indexOf(n) % PALETTE.length];
    const d = curve.filter((p) => p[1] !== null).map((p, i) => `${i ? "L" : "M"}${f.x(p[0]).toFixed(1)},${f.y(p[1]).toFixed(1)}`).join("");
    if (d) svg("path", { class: "curve-line", d, stroke: color, "data-number": n }, f.plot);
    legend.push(el("span", { class: "chip", title: "remove", onclick: () => unselect(n) },
      el("i", { style: `background: ${color}` }), `#${n}${curve.length ? "" : " (no curve)"} ×`));
  });
  if (!curves.length) svg("text", { x: f.width / 2, y: 120, "text-anchor": "middle", class: "axis-label" }, f.plot)
    .textContent = "select trials to compare their learning curves";
  fill(document.getElementById("curve-legend"), ...legend);
}

function hookPoints(node, describe) {
  const tip = document.getElementById("tooltip");
  node.onmousemove = (e) => {
    const n = e.target.dataset?.number;
    if (n === undefined) { tip.hidden = true; return; }
    tip.textContent = describe(Number(n), e.target);
    tip.style.left = e.clientX + 12 + "px";
    tip.style.top = e.clientY + 12 + "px";
    tip.hidden = false;
  };
  node.onmouseleave = () => (tip.hidden = true);
  node.onclick = (e) => {
    const n = e.target.dataset?.number;
    if (n !== undefined) selectTrial(Number(n));
  };
}

function describeTrial(number) {
  const t = state.trials.find((x) => x.number === number);
  if (!t) return `#${number}`;
  const mark = markOf(t);
  const lines = [`#${t.number} ${t.kind} ${t.status}` + (mark ? ` (${mark})` : ""), `score ${fmtScore(t.score, t.score_stderr)}`,
                 `steps ${fmtSteps(t.steps)}`,
                 `cost ${fmtCost(t.cost)} (predicted ${fmtCost(t.predicted_cost)})`, changedParams(t.params)];
  if (t.failure_reason) lines.push(t.failure_reason);
  return lines.join("\n");
}

// --- selection and the trial panel ------------------------------------------------------------

async function loadCurve(number) {
  const t = await api(`/api/sweeps/${state.sweep.id}/trials/${number}`);
  state.curves.set(number, t.curve || []);
  return t;
}

async function selectTrial(number, updateHash = true) {
  if (!state.selected.includes(number)) {
    state.selected.push(number);
    if (state.selected.length > MAX_CURVES) state.curves.delete(state.selected.shift());
  }
  state.current = number;
  if (updateHash) history.replaceState(null, "", `#/sweep/${state.sweep.id}/trial/${number}`);
  try {
    const detail = await loadCurve(number);
    showDetail(number, detail);
  } catch (err) {
    fill(document.getElementById("trial-detail"), el("h2", {}, "Trial"), el("p", { class: "error" }, err.message));
  }
  drawPareto();
  drawCostChart();
  drawCurves();
  markRows();
}

function unselect(number) {
  state.selected = state.selected.filter((n) => n !== number);
  state.curves.delete(number);
  drawPareto(); drawCostChart(); drawCurves(); markRows();
}

async function showDetail(number, detail) {
  if (!detail) detail = await api(`/api/sweeps/${state.sweep.id}/trials/${number}`).catch(() => null);
  if (!detail) return;
  const t = detail;
  const centre = Object.fromEntries((state.sweep.params || []).map((p) => [p.name, p.center]));
  const params = Object.entries(t.params).map(([k, v]) =>
    el("div", {}, el("code", {}, k), " = ", fmtValue(v), centre[k] === v ? el("span", { class: "muted" }, " (centre)") : null));
  const row = (label, value) => [el("dt", {}, label), el("dd", {}, value)];
  const box = document.getElementById("trial-detail");
  fill(box, el("h2", {}, "Trial"),
    el("h1", { id: "trial-title" }, `#${t.number} `, badge(t.status), " ", markBadge(markOf(t))),
    el("dl", {}, row("kind", t.kind), row("score", fmtScore(t.score, t.score_stderr)),
      row("steps", fmtSteps(t.steps) + (markOf(t) ? ` (${MARKS[markOf(t)]})` : "")),
      row("cost", `${fmtCost(t.cost)} (predicted ${fmtCost(t.predicted_cost)})`),
      row("predicted score", fmtScore(t.predicted_score)), row("seed", t.seed),
      row("box", t.box ? `${t.box} slot ${t.slot}` : "–"), row("attempts", t.attempts),
      row("curve", `${(t.curve || []).length} points`), row("params", params),
      t.failure_reason ? row("failure", el("span", { class: "error" }, `${t.failure_category || ""}: ${t.failure_reason}`)) : []),
    t.log_tail && t.log_tail.length ? el("pre", {}, t.log_tail.join("\n")) : null);
}

// --- tables -----------------------------------------------------------------------------------

function renderFrontTable() {
  const table = document.getElementById("front-table");
  fill(table, el("thead", {}, el("tr", {}, el("th", { class: "num" }, "cost"), el("th", { class: "num" }, "score"),
    el("th", { class: "num" }, "seeds"), el("th", { class: "num" }, "steps"), el("th", {}, "end"), el("th", {}, "trials"),
    el("th", {}, "params (vs centre)"))),
  el("tbody", {}, state.front.map((p) => el("tr", { class: "clickable", "data-mark": markOf(p) || null, onclick: () => selectTrial(p.trials[0]) },
    el("td", { class: "num" }, fmtCost(p.cost)), el("td", { class: "num" }, fmtScore(p.score, p.score_stderr)),
    el("td", { class: "num" }, p.seeds), el("td", { class: "num" }, fmtSteps(p.steps)), el("td", {}, markBadge(markOf(p))),
    el("td", {}, p.trials.map((n) => "#" + n).join(" ")),
    el("td", { class: "params" }, changedParams(p.params))))));
}

const COLUMNS = [
  ["number", "#", true], ["kind", "kind"], ["status", "status"], ["score", "score", true], ["cost", "cost", true],
  ["steps", "steps", true],
  ["predicted_cost", "predicted", true], ["seed", "seed", true], ["params", "params (vs centre)"], ["failure_reason", "reason"],
];

function sortedTrials() {
  const { key, dir } = state.sort;
  const value = (t) => (key === "params" ? changedParams(t.params) : t[key]);
  return [...state.trials].sort((a, b) => {
    const va = value(a), vb = value(b);
    if (va === vb) return a.number - b.number;
    if (va === null || va === undefined) return 1;   // missing values last, whatever the direction
    if (vb === null || vb === undefined) return -1;
    return (va < vb ? -1 : 1) * dir;
  });
}

function renderTrialTable() {
  const table = document.getElementById("trial-table");
  const rows = sortedTrials();
  const head = el("tr", {}, COLUMNS.map(([key, label, num]) => el("th", {
    class: `sortable ${num ? "num" : ""} ${state.sort.key === key ? (state.sort.dir > 0 ? "sorted-asc" : "sorted-desc") : ""}`,
    "data-key": key,
    onclick: () => { state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : (num ? -1 : 1) }; renderTrialTable(); },
  }, label)));
  const selected = new Set(state.selected);
  const body = el("tbody", {}, rows.slice(0, state.shown).map((t) => el("tr", {
    class: "clickable" + (selected.has(t.number) ? " selected" : ""), "data-number": t.number, "data-mark": markOf(t) || null,
    onclick: () => selectTrial(t.number) },
    el("td", { class: "num" }, t.number), el("td", {}, t.kind), el("td", {}, badge(t.status), " ", markBadge(markOf(t))),
    el("td", { class: "num" }, fmtScore(t.score, t.score_stderr)), el("td", { class: "num" }, fmtCost(t.cost)),
    el("td", { class: "num" }, fmtSteps(t.steps)),
    el("td", { class: "num" }, fmtCost(t.predicted_cost)), el("td", { class: "num" }, t.seed),
    el("td", { class: "params" }, changedParams(t.params)), el("td", { class: "reason", title: t.failure_reason || "" }, t.failure_reason || ""))));
  fill(table, el("thead", {}, head), body);
  document.getElementById("trials-heading").textContent = `Trials (${rows.length})`;
  const more = document.getElementById("table-more");
  fill(more, rows.length > state.shown
    ? el("button", { onclick: () => { state.shown += 1000; renderTrialTable(); } }, `show more (${rows.length - state.shown} hidden)`)
    : "");
}

function markRows() {
  const selected = new Set(state.selected);
  document.querySelectorAll("#trial-table tbody tr").forEach((tr) =>
    tr.classList.toggle("selected", selected.has(Number(tr.dataset.number))));
}

// --- boxes ------------------------------------------------------------------------------------

async function showBoxes() {
  const boxes = await api("/api/boxes");
  const rows = boxes.map((b) => { const held = b.slot_views.filter((v) => v.trial !== null); return el("tr", { "data-box": b.name },
    el("td", {}, b.name), el("td", {}, badge(b.state)), el("td", {}, b.device),
    el("td", { class: "num" }, `${held.length}/${b.slots}`), el("td", {}, b.owner), el("td", {}, fmtAgo(b.seen_ago)),
    el("td", { class: "holders" }, held.map((h) => el("span", {},
      `slot ${h.slot}: `, el("a", { href: `#/sweep/${h.sweep_id}/trial/${h.trial}` }, `${h.sweep}#${h.trial}`),
      ` ${h.user}, ${h.status}, beat ${fmtAgo(h.heartbeat_age)}`))),
    el("td", { class: "holders" }, b.reservations.map((r) => el("span", {},
      `${r.user}${r.note ? ": " + r.note : ""}` + (r.until ? ` until ${new Date(r.until * 1000).toLocaleString()}` : ""))))); });
  const table = el("table", { id: "boxes-table" }, el("thead", {}, el("tr", {},
    ["box", "state", "device", "slots used", "owner", "last seen", "holders", "reservations"]
      .map((h) => el("th", { class: h === "slots used" ? "num" : "" }, h)))),
    el("tbody", {}, rows));
  fill(document.getElementById("app"), el("h1", {}, "Boxes"),
    el("div", { class: "card" }, boxes.length ? table : el("p", { class: "muted" }, "No agent has registered a box yet: sweepd agent")));
  setPoll(() => { if (location.hash.startsWith("#/boxes")) showBoxes().catch(showError); }, SWEEP_POLL_MS);
}

window.addEventListener("hashchange", route);
window.addEventListener("resize", () => { if (document.getElementById("pareto-chart")) renderSweep(); });
route();
