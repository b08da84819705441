/* prefsift view: every pair, sortable and filterable, in one self-contained page (no network). */
(function () {
"use strict";
var root = document.getElementById("pv");
var data = JSON.parse(document.getElementById("pv-data").textContent);
var N = data.n, cols = data.columns, by = {}, i, j;
var ANY = "\u2205any";
var fmt = new Intl.NumberFormat("en-US");
function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;"); }
function num(v) { if (v !== v) return ""; if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v); var a = Math.abs(v); return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(2) : v.toFixed(a < 1 ? 4 : 3); }
cols.forEach(function (c) {
  // a rule or a finding may share its name with a score
  c.key = c.role === "rule" ? "kept:" + c.name : c.role === "finding" ? "finding:" + c.name : c.name;
  by[c.key] = c;
  if (c.kind === "num") {
    var a = new Float64Array(N), f = [];
    for (i = 0; i < N; i++) { var v = c.values[i]; a[i] = v === null ? NaN : v; if (v !== null) f.push(v); }
    c.v = a; c.sorted = Float64Array.from(f).sort();
  } else if (c.kind === "bool") {
    c.v = new Uint8Array(N); for (i = 0; i < N; i++) c.v[i] = c.bits.charCodeAt(i) === 49 ? 1 : 0;
  } else if (c.codes) { c.v = Int32Array.from(c.codes); }
});
var scores = cols.filter(function (c) { return c.role === "score"; });
var rules = cols.filter(function (c) { return c.role === "rule"; });
var cats = cols.filter(function (c) { return c.role === "category"; });
var findings = cols.filter(function (c) { return c.role === "finding"; }), audit = data.audit || [];
var texts = ["prompt", "chosen", "rejected"].map(function (n) { return by[n]; });
var ids = by.id.values, idRow = {};
for (i = 0; i < N; i++) idRow[ids[i]] = i;
function value(c, r) { return c.kind === "num" ? c.v[r] : c.kind === "bool" ? c.v[r] : c.codes ? c.levels[c.v[r]] : c.values[r]; }
function plain(t) { return t === null || t === undefined ? "" : typeof t === "string" ? t : t.map(function (m) { return m[0] + ": " + m[1]; }).join("\n"); }
function short(t, n) {
  if (t === null || t === undefined) return "<span class=pv-d>—</span>";
  if (typeof t !== "string") t = t.map(function (m) { return "\u0001" + m[0] + "\u0002 " + m[1]; }).join("\n");
  if (t.length > n) t = t.slice(0, n) + "…";
  return esc(t).replace(/\u0001([^\u0002]*)\u0002/g, "<span class=pv-role>$1</span>");
}
function full(t) {
  if (t === null || t === undefined) return "<span class=pv-d>(none)</span>";
  if (typeof t === "string") return t ? esc(t) : "<span class=pv-d>(empty)</span>";
  if (!t.length) return "<span class=pv-d>(no message)</span>";
  return t.map(function (m) { return "<div class=pv-turn><span class=pv-role>" + esc(m[0]) + "</span>" + esc(m[1]) + "</div>"; }).join("");
}
function pct(c, v) { // the share of scored values below v, in percent
  var s = c.sorted, lo = 0, hi = s.length;
  while (lo < hi) { var m = (lo + hi) >> 1; if (s[m] < v) lo = m + 1; else hi = m; }
  return s.length ? 100 * lo / s.length : NaN;
}
function quant(c, p) { var s = c.sorted; return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.floor(p * s.length)))] : NaN; }

var st = { q: "", rules: {}, findings: {}, cats: {}, ranges: {}, ids: null, sort: null, dir: 1, page: 0, per: data.per || 50, shown: null,
           visible: {} };
["id", "prompt", "chosen", "rejected"].forEach(function (n) { st.visible[n] = true; });
rules.forEach(function (c) { st.visible[c.key] = true; });
cats.filter(function (c) { return c.levels.length > 1; }).forEach(function (c, k) { st.visible[c.name] = c.name === "reason" || k < 3; });
scores.forEach(function (c) { st.visible[c.name] = !!c.main; });

var matchCache = { q: null, levels: null };
function textMatch(q) { // per text column, which distinct texts contain q
  if (matchCache.q === q) return matchCache.levels;
  matchCache.q = q;
  matchCache.levels = texts.map(function (c) { return c.levels.map(function (t) { return plain(t).toLowerCase().indexOf(q) >= 0; }); });
  return matchCache.levels;
}
function apply() {
  var tests = [], q = st.q.trim().toLowerCase();
  Object.keys(st.rules).forEach(function (n) { var want = st.rules[n] === "kept" ? 1 : 0, v = by["kept:" + n].v; tests.push(function (r) { return v[r] === want; }); });
  Object.keys(st.findings).forEach(function (k) { var v = by["finding:" + k].v; tests.push(function (r) { return v[r] === 1; }); });
  Object.keys(st.cats).forEach(function (n) { var c = by[n], code = c.levels.indexOf(st.cats[n]), v = c.v; tests.push(function (r) { return v[r] === code; }); });
  Object.keys(st.ranges).forEach(function (n) {
    var lo = st.ranges[n][0], hi = st.ranges[n][1], v = by[n].v;
    tests.push(function (r) { var x = v[r]; return x >= lo && x <= hi; });
  });
  if (st.ids) { var set = {}; st.ids.forEach(function (d) { set[d] = 1; }); tests.push(function (r) { return set[ids[r]] === 1; }); }
  if (q) {
    var m = textMatch(q), tc = texts.map(function (c) { return c.v; });
    tests.push(function (r) { return m[0][tc[0][r]] || m[1][tc[1][r]] || m[2][tc[2][r]] || ids[r].toLowerCase().indexOf(q) >= 0; });
  }
  var out = new Int32Array(N), k = 0, nt = tests.length;
  rows: for (var r = 0; r < N; r++) { for (var t = 0; t < nt; t++) if (!tests[t](r)) continue rows; out[k++] = r; }
  var shown = Array.prototype.slice.call(out.subarray(0, k));
  if (st.sort) {
    var c = by[st.sort], d = st.dir;
    if (c.kind === "num" || c.kind === "bool") {
      var v = c.v;
      shown.sort(function (a, b) { var x = v[a], y = v[b]; if (x !== x) return y !== y ? a - b : 1; if (y !== y) return -1; return (x - y) * d || a - b; });
    } else {
      var key = shown.map(function (r) { return plain(value(c, r)).toLowerCase(); }), pos = {};
      shown.forEach(function (r, p) { pos[r] = p; });
      shown.sort(function (a, b) { var x = key[pos[a]], y = key[pos[b]]; return (x < y ? -d : x > y ? d : 0) || a - b; });
    }
  }
  st.shown = shown;
  st.page = Math.min(st.page, Math.max(0, Math.ceil(shown.length / st.per) - 1));
  render();
}

function el(tag, attrs, html) { var e = document.createElement(tag); for (var a in attrs || {}) e.setAttribute(a, attrs[a]); if (html !== undefined) e.innerHTML = html; return e; }
root.innerHTML = "";
var bar = el("div", { "class": "pv-bar" });
var search = el("input", { type: "search", id: "pv-search", placeholder: "Search the prompt, chosen, rejected and id…" });
var count = el("span", { "class": "pv-count", id: "pv-count" });
var reset = el("button", { id: "pv-reset", title: "Show every pair again" }, "Reset filters");
var expIds = el("button", { id: "pv-export-ids", title: "The ids shown, one a line: prefsift data subset FILE --ids IDS.txt --out OUT" }, "Export ids (.txt)");
var expJsonl = el("button", { id: "pv-export-jsonl", title: "The rows shown, every column, one JSON object a line" }, "Export JSONL");
[search, count, reset, expIds, expJsonl].forEach(function (e) { bar.appendChild(e); });
var panel = el("div", { "class": "pv-audit", id: "pv-audit" });
var filters = el("div", { "class": "pv-filters", id: "pv-filters" });
var plots = el("div", { "class": "pv-plots", id: "pv-plots" });
var colsBox = el("details", { "class": "pv-cols" }, "<summary>Columns shown</summary>");
var scroll = el("div", { "class": "pv-scroll" });
var table = el("table", { "class": "pv-table", id: "pv-table" }, "<thead></thead><tbody></tbody>");
scroll.appendChild(table);
var pager = el("div", { "class": "pv-pager", id: "pv-pager" });
var overlay = el("div", { "class": "pv-overlay", id: "pv-overlay", hidden: "" });
[bar, panel, filters, plots, colsBox, scroll, pager, overlay].forEach(function (e) { root.appendChild(e); });
function buildPanel() { // the audit's findings (prefsift audit): each button shows the pairs of its finding
  if (!audit.length) { panel.hidden = true; return; }
  var row = function (f) {
    var on = st.findings[f.key] ? " on" : "";
    return "<div class='pv-finding" + (f.reported && !f.cannot_tell ? " rep" : "") + "' data-key='" + esc(f.key) + "'>" +
      (f.count ? "<button class='pv-fbtn" + on + "' data-finding='" + esc(f.key) + "' title='show these pairs (click again: every pair)'>" +
        fmt.format(f.count) + " pairs</button> " : "") + "<span class=pv-fline>" + esc(f.line) + "</span></div>";
  };
  var shown = function (f) { return f.reported && !f.cannot_tell; };
  var top = audit.filter(shown), rest = audit.filter(function (f) { return !shown(f); });
  var open = panel.querySelector("#pv-audit-rest") && panel.querySelector("#pv-audit-rest").open;
  panel.innerHTML = "<div><b>Audit</b> <small>(" + top.length + " finding" + (top.length === 1 ? "" : "s") +
    " above threshold; a button shows the pairs of its finding)</small></div>" +
    (top.length ? top.map(row).join("") : "<div class=pv-d>nothing above its threshold</div>") +
    (rest.length ? "<details id=pv-audit-rest" + (open ? " open" : "") + "><summary>" + rest.length +
      " below threshold or cannot tell</summary>" + rest.map(row).join("") + "</details>" : "");
}
panel.onclick = function (ev) {
  var b = ev.target.closest("[data-finding]"); if (!b) return;
  var k = b.getAttribute("data-finding");
  if (st.findings[k]) delete st.findings[k]; else { st.findings = {}; st.findings[k] = 1; }
  st.page = 0; apply();
};

function select(id, label, options, current, onchange) {
  var s = "<label>" + esc(label) + " <select id='" + id + "'>" + options.map(function (o) {
    return "<option value='" + esc(o[0]) + "'" + (o[0] === current ? " selected" : "") + ">" + esc(o[1]) + "</option>"; }).join("") + "</select></label>";
  var w = el("span", {}, s); w.querySelector("select").onchange = function () { onchange(this.value); }; return w;
}
function buildFilters() {
  filters.innerHTML = "";
  if (rules.length) {
    var g = el("span", { "class": "pv-group" }, "<b>Rules</b>");
    rules.forEach(function (c) {
      g.appendChild(select("pv-rule-" + c.name, c.name, [["", "any"], ["kept", "kept"], ["dropped", "dropped"]], st.rules[c.name] || "",
        function (v) { if (v) st.rules[c.name] = v; else delete st.rules[c.name]; st.page = 0; apply(); }));
    });
    filters.appendChild(g);
  }
  var g2 = el("span", { "class": "pv-group" }, "<b>Columns</b>");
  cats.forEach(function (c) {
    if (c.levels.length < 2 && !st.cats[c.name]) return;
    var opts = [[ANY, "any"]].concat(c.levels.map(function (l) { return [l, l === "" ? "(none)" : l]; }));
    g2.appendChild(select("pv-cat-" + c.name, c.name, opts, st.cats[c.name] === undefined ? ANY : st.cats[c.name],
      function (v) { if (v === ANY) delete st.cats[c.name]; else st.cats[c.name] = v; st.page = 0; apply(); }));
  });
  filters.appendChild(g2);
  if (scores.length) {
    var g3 = el("span", { "class": "pv-group", id: "pv-range" }, "<b>Range</b>");
    var rs = el("span", {}, "<select id=pv-range-col>" + scores.map(function (c) { return "<option>" + esc(c.name) + "</option>"; }).join("") +
      "</select> from <input type=number step=any id=pv-range-lo> to <input type=number step=any id=pv-range-hi> <button id=pv-range-set>Apply</button>");
    g3.appendChild(rs);
    rs.querySelector("button").onclick = function () {
      var n = rs.querySelector("select").value, lo = parseFloat(rs.querySelector("#pv-range-lo").value), hi = parseFloat(rs.querySelector("#pv-range-hi").value);
      st.ranges[n] = [isNaN(lo) ? -Infinity : lo, isNaN(hi) ? Infinity : hi]; st.page = 0; apply();
    };
    filters.appendChild(g3);
  }
  filters.appendChild(el("span", { "class": "pv-group", id: "pv-active" }));
}
function updateChips() {
  var chips = filters.querySelector("#pv-active"); chips.innerHTML = "";
  Object.keys(st.ranges).forEach(function (n) {
    var ch = el("span", { "class": "pv-chip", title: "remove" }, esc(n) + " ∈ [" + num(st.ranges[n][0]) + ", " + num(st.ranges[n][1]) + "] ×");
    ch.onclick = function () { delete st.ranges[n]; apply(); }; chips.appendChild(ch);
  });
  Object.keys(st.findings).forEach(function (k) {
    var ch = el("span", { "class": "pv-chip", title: "remove" }, "audit: " + esc(k) + " ×");
    ch.onclick = function () { delete st.findings[k]; apply(); }; chips.appendChild(ch);
  });
  if (st.ids) { var ch = el("span", { "class": "pv-chip", title: "remove" }, st.ids.length + " chosen pairs ×"); ch.onclick = function () { st.ids = null; apply(); }; chips.appendChild(ch); }
}
function buildCols() {
  var names = ["id", "prompt", "chosen", "rejected"].concat(scores.map(function (c) { return c.key; }), rules.map(function (c) { return c.key; }), cats.map(function (c) { return c.key; }));
  var box = el("div"); names.forEach(function (n) {
    var l = el("label", {}, "<input type=checkbox" + (st.visible[n] ? " checked" : "") + "> " + esc(n));
    l.querySelector("input").onchange = function () { st.visible[n] = this.checked; render(); }; box.appendChild(l);
  });
  colsBox.appendChild(box);
}

var B = 30, W = 210, H = 58, WINDOWED = { "if": 1, lossdiff: 1, irm: 1 };
function hist(c) { // bins over the 0.5–99.5 percentiles; the end bins take the tails
  var lo = quant(c, 0.005), hi = quant(c, 0.995); if (!(hi > lo)) { lo = c.sorted[0]; hi = c.sorted[c.sorted.length - 1] + 1e-12; }
  c.edges = []; for (var b = 0; b <= B; b++) c.edges.push(lo + (hi - lo) * b / B);
  c.bin = function (x) { return x !== x ? -1 : Math.max(0, Math.min(B - 1, Math.floor((x - lo) / (hi - lo) * B))); };
}
function binRange(c, b) { return [b === 0 ? -Infinity : c.edges[b], b === B - 1 ? Infinity : c.edges[b + 1]]; }
function drawPlots() {
  plots.innerHTML = "";
  scores.filter(function (c) { return c.main && c.sorted.length; }).forEach(function (c) {
    if (!c.edges) hist(c);
    var all = new Array(B).fill(0), sh = new Array(B).fill(0), r, k;
    for (r = 0; r < N; r++) { k = c.bin(c.v[r]); if (k >= 0) all[k]++; }
    st.shown.forEach(function (r) { var k = c.bin(c.v[r]); if (k >= 0) sh[k]++; });
    // Few pairs shown: blue on its own scale, or it would be invisible next to the grey.
    var mx = Math.max.apply(null, all) || 1, ms = st.shown.length < N / 5 ? (Math.max.apply(null, sh) || 1) : mx;
    var bw = W / B, on = st.ranges[c.name], s = "";
    for (k = 0; k < B; k++) {
      var ha = H * all[k] / mx, hs = H * sh[k] / ms, rg = binRange(c, k), act = on && on[0] === rg[0] && on[1] === rg[1];
      s += "<rect class='all" + (act ? " on" : "") + "' x=" + (k * bw) + " y=" + (H - ha) + " width=" + (bw - 1) + " height=" + ha + "></rect>" +
        "<rect class=sh x=" + (k * bw) + " y=" + (H - hs) + " width=" + (bw - 1) + " height=" + hs + "></rect>" +
        "<rect class=hit data-bin=" + k + " x=" + (k * bw) + " y=0 width=" + bw + " height=" + H + "><title>" + esc(c.name) + " in [" +
        num(rg[0]) + ", " + num(rg[1]) + "): " + all[k] + " pairs, " + sh[k] + " shown; click to filter</title></rect>";
    }
    var d = el("div", { "class": "pv-hist", id: "pv-hist-" + c.name }, "<div><b>" + esc(c.name) + "</b> <small>(grey: all, blue: shown" + (ms !== mx ? ", own scale" : "") + "; click a bar)</small></div><svg width=" + W + " height=" + (H + 14) + ">" + s +
      "<text x=0 y=" + (H + 12) + " font-size=10>" + num(c.edges[0]) + "</text><text x=" + W + " y=" + (H + 12) + " font-size=10 text-anchor=end>" + num(c.edges[B]) + "</text></svg>");
    d.querySelector("svg").onclick = function (ev) {
      var b = ev.target.getAttribute("data-bin"); if (b === null) return;
      var rg = binRange(c, +b), cur = st.ranges[c.name];
      if (cur && cur[0] === rg[0] && cur[1] === rg[1]) delete st.ranges[c.name]; else st.ranges[c.name] = rg;
      st.page = 0; apply();
    };
    plots.appendChild(d);
  });
  var group = by.pair_type || cats.filter(function (c) { return c.name !== "reason" && c.levels.length > 1 && c.levels.length <= 12; })[0];
  if (group && rules.length) {
    var h = "<table class=pv-cross id=pv-cross><tr><th>kept by \\ " + esc(group.name) + "</th>" + group.levels.map(function (l) { return "<th>" + esc(l) + "</th>"; }).join("") + "</tr>";
    var tot = group.levels.map(function () { return 0; });
    for (var r = 0; r < N; r++) tot[group.v[r]]++;
    h += "<tr><th>all pairs</th>" + tot.map(function (t, l) { return "<td class=c data-l=" + l + ">" + t + "</td>"; }).join("") + "</tr>";
    rules.forEach(function (c) {
      var kept = group.levels.map(function () { return 0; });
      for (var r = 0; r < N; r++) if (c.v[r]) kept[group.v[r]]++;
      h += "<tr><th>" + esc(c.name) + "</th>" + kept.map(function (k, l) {
        var on = st.rules[c.name] === "kept" && Object.keys(st.rules).length === 1 && st.cats[group.name] === group.levels[l];
        return "<td class='c" + (on ? " on" : "") + "' data-rule='" + esc(c.name) + "' data-l=" + l + " title='" + esc(c.name) + " kept " + k + " of " + tot[l] + " " + esc(group.levels[l]) + " pairs; click to show them'>" + k + " <small>(" + (tot[l] ? Math.round(100 * k / tot[l]) : 0) + "%)</small></td>"; }).join("") + "</tr>";
    });
    var tb = el("div", {}, "<div><b>Kept, by " + esc(group.name) + "</b> <small>(click a cell)</small></div>" + h + "</table>");
    tb.onclick = function (ev) {
      var td = ev.target.closest("td.c"); if (!td) return;
      st.rules = {}; st.cats = {}; st.cats[group.name] = group.levels[+td.getAttribute("data-l")];
      if (td.getAttribute("data-rule")) st.rules[td.getAttribute("data-rule")] = "kept";
      st.page = 0; buildFilters(); apply();
    };
    plots.appendChild(tb);
  }
}

function shownCols() {
  var k = function (c) { return c.key; };
  return ["id", "prompt", "chosen", "rejected", "reason"].concat(scores.map(k), rules.map(k), cats.map(k).filter(function (n) { return n !== "reason"; }))
    .filter(function (n) { return by[n] && st.visible[n]; });
}
function render() {
  var names = shownCols(), shown = st.shown, n = shown.length;
  count.setAttribute("data-shown", n);
  count.innerHTML = fmt.format(n) + " of " + fmt.format(N) + " pairs <small>(" + (N ? (100 * n / N).toFixed(1) : "0.0") + "%)</small>";
  table.tHead.innerHTML = "<tr>" + names.map(function (nm) {
    var c = by[nm], s = st.sort === nm ? "<span class=s>" + (st.dir > 0 ? " ▲" : " ▼") + "</span>" : "";
    return "<th data-col='" + esc(nm) + "'" + (c.role === "rule" ? " class=r title='kept by " + esc(c.name) + "'" : "") + ">" + esc(c.name) + s + "</th>";
  }).join("") + "</tr>";
  var start = st.page * st.per, rows = shown.slice(start, start + st.per), h = "";
  rows.forEach(function (r) {
    h += "<tr data-row=" + r + " data-id='" + esc(ids[r]) + "'>" + names.map(function (nm) {
      var c = by[nm], v = value(c, r);
      if (c.role === "text") return "<td class=t><div>" + short(v, 220) + "</div></td>";
      if (c.role === "rule") return "<td class=k>" + (v ? "<span class=pv-k title='kept by " + esc(c.name) + "'>●</span>" : "<span class=pv-d title='dropped by " + esc(c.name) + "'>·</span>") + "</td>";
      if (c.kind === "num") return "<td class=n>" + num(v) + "</td>";
      if (nm === "id") return "<td class=id>" + esc(v) + "</td>";
      if (nm === "reason") return "<td>" + (v ? "<span class=pv-reason>" + esc(v) + "</span>" : "") + "</td>";
      return "<td>" + esc(v) + "</td>";
    }).join("") + "</tr>";
  });
  table.tBodies[0].innerHTML = h || "<tr><td colspan=" + names.length + ">No pair matches the filters.</td></tr>";
  var pages = Math.max(1, Math.ceil(n / st.per));
  pager.innerHTML = "<button id=pv-first>«</button><button id=pv-prev>‹ prev</button><span id=pv-page>page " + (st.page + 1) + " of " + pages +
    " (rows " + fmt.format(n ? start + 1 : 0) + "–" + fmt.format(Math.min(n, start + st.per)) + ")</span><button id=pv-next>next ›</button><button id=pv-last>»</button>" +
    "<label>rows a page <select id=pv-per>" + [25, 50, 100, 250].map(function (p) { return "<option" + (p === st.per ? " selected" : "") + ">" + p + "</option>"; }).join("") + "</select></label>";
  var go = function (p) { return function () { st.page = Math.max(0, Math.min(pages - 1, p)); render(); }; };
  pager.querySelector("#pv-first").onclick = go(0); pager.querySelector("#pv-prev").onclick = go(st.page - 1);
  pager.querySelector("#pv-next").onclick = go(st.page + 1); pager.querySelector("#pv-last").onclick = go(pages - 1);
  pager.querySelector("#pv-per").onchange = function () { st.per = +this.value; st.page = 0; render(); };
  drawPlots();
  updateChips();
  buildPanel();
}

function spark(c, v) { // the distribution of a score, the middle window of the run's kept fraction, and this pair
  if (!c.edges) hist(c);
  var all = new Array(B).fill(0), r, k, w = 200, hh = 30, bw = w / B;
  for (r = 0; r < N; r++) { k = c.bin(c.v[r]); if (k >= 0) all[k]++; }
  var mx = Math.max.apply(null, all) || 1, s = "", x = function (t) { return Math.max(0, Math.min(w, (t - c.edges[0]) / (c.edges[B] - c.edges[0]) * w)); };
  if (data.keep && WINDOWED[c.name]) { var a = x(quant(c, (1 - data.keep) / 2)), b = x(quant(c, (1 + data.keep) / 2)); s += "<rect x=" + a + " y=0 width=" + (b - a) + " height=" + hh + " fill='#e7f3e7'></rect>"; }
  for (k = 0; k < B; k++) s += "<rect x=" + (k * bw) + " y=" + (hh - hh * all[k] / mx) + " width=" + (bw - 1) + " height=" + (hh * all[k] / mx) + " fill='#c5c9d3'></rect>";
  if (v === v) s += "<line x1=" + x(v) + " x2=" + x(v) + " y1=0 y2=" + hh + " stroke='#d22' stroke-width=2></line>";
  return "<svg width=" + w + " height=" + hh + ">" + s + "</svg>";
}
function openDetail(r) {
  st.open = r;
  var kept = rules.filter(function (c) { return c.v[r]; }).map(function (c) { return c.name; });
  var dropped = rules.filter(function (c) { return !c.v[r]; }).map(function (c) { return c.name; });
  var found = findings.filter(function (c) { return c.v[r]; }).map(function (c) { return c.name; });
  var meta = cats.concat(cols.filter(function (c) { return c.role === "info"; })).map(function (c) {
    var v = value(c, r); return v === "" ? "" : "<span><b>" + esc(c.name) + "</b>: " + (c.name === "reason" ? "<span class=pv-reason>" + esc(v) + "</span>" : esc(v)) + "</span>"; }).join("");
  var sc = scores.map(function (c) {
    var v = c.v[r], p = pct(c, v);
    return "<div class=pv-score><b>" + esc(c.name) + "</b> <span class=v>" + (v === v ? num(v) : "not scored") + "</span>" +
      (v === v ? " <small>percentile " + p.toFixed(1) + "</small>" : "") + spark(c, v) + "</div>";
  }).join("");
  var pos = st.shown.indexOf(r);
  overlay.innerHTML = "<div class=pv-detail id=pv-detail data-row=" + r + "><div class=top><h3>" + esc(ids[r]) + "</h3><span>" +
    "<button id=pv-dprev" + (pos > 0 ? "" : " disabled") + ">‹ previous</button> <button id=pv-dnext" + (pos >= 0 && pos < st.shown.length - 1 ? "" : " disabled") + ">next ›</button> <button id=pv-close>close ✕</button></span></div>" +
    "<div class=pv-meta>" + (rules.length ? "<span><b>kept by</b>: " + (kept.map(esc).join(", ") || "none") + "</span><span><b>dropped by</b>: " + (dropped.map(esc).join(", ") || "none") + "</span>" : "") +
    (audit.length ? "<span id=pv-dfindings><b>audit</b>: " + (found.map(esc).join(", ") || "no finding") + "</span>" : "") + meta + "</div>" +
    "<div class=pv-box><h4>prompt</h4>" + full(value(texts[0], r)) + "</div>" +
    "<div class=pv-side><div class='pv-box c'><h4>chosen</h4>" + full(value(texts[1], r)) + "</div><div class='pv-box r'><h4>rejected</h4>" + full(value(texts[2], r)) + "</div></div>" +
    "<div><b>Scores</b> <small>(grey: every pair; green on IF, LossDiff and IRM: their middle window at the kept fraction" + (data.keep ? " " + data.keep : "") + "; red: this pair)</small></div><div class=pv-scores>" + sc + "</div></div>";
  overlay.hidden = false;
  overlay.querySelector("#pv-close").onclick = closeDetail;
  overlay.querySelector("#pv-dprev").onclick = function () { openDetail(st.shown[pos - 1]); };
  overlay.querySelector("#pv-dnext").onclick = function () { openDetail(st.shown[pos + 1]); };
}
function closeDetail() { overlay.hidden = true; overlay.innerHTML = ""; st.open = null; }
overlay.onclick = function (ev) { if (ev.target === overlay) closeDetail(); };
document.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && !overlay.hidden) closeDetail(); });

function record(r) {
  var o = {};
  cols.forEach(function (c) {
    var v = value(c, r);
    if (c.role === "text") v = v === null || typeof v === "string" ? v : v.map(function (m) { return { role: m[0], content: m[1] }; });
    else if (c.role === "rule") { o["kept:" + c.name] = !!v; return; }
    else if (c.role === "finding") { o["finding:" + c.name] = !!v; return; }
    else if (c.kind === "num") v = v === v ? v : null;
    o[c.name] = v;
  });
  return o;
}
var PV = window.prefsiftView = {
  state: st, apply: apply, open: openDetail, record: record,
  shownIds: function () { return st.shown.map(function (r) { return ids[r]; }); },
  save: function (name, text, type) {
    var a = document.createElement("a"); a.href = URL.createObjectURL(new Blob([text], { type: type || "text/plain" }));
    a.download = name; document.body.appendChild(a); a.click(); setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  },
  filter: function (f) { // {rules, findings, cats, ranges, ids, q}: the report's example links
    st.rules = f.rules || {}; st.findings = f.findings || {}; st.cats = f.cats || {}; st.ranges = f.ranges || {}; st.ids = f.ids || null; st.q = f.q || ""; search.value = st.q;
    st.page = 0; buildFilters(); apply(); root.scrollIntoView();
  }
};
expIds.onclick = function () { PV.save("prefsift-ids.txt", PV.shownIds().join("\n") + (st.shown.length ? "\n" : "")); };
expJsonl.onclick = function () { PV.save("prefsift-pairs.jsonl", st.shown.map(function (r) { return JSON.stringify(record(r)); }).join("\n") + "\n", "application/x-ndjson"); };
var timer = null;
search.oninput = function () { clearTimeout(timer); timer = setTimeout(function () { st.q = search.value; st.page = 0; apply(); }, N > 20000 ? 200 : 60); };
search.onkeydown = function (ev) { if (ev.key === "Enter") { clearTimeout(timer); st.q = search.value; st.page = 0; apply(); } };
reset.onclick = function () { PV.filter({}); };
table.tHead.onclick = function (ev) {
  var th = ev.target.closest("th"); if (!th) return; var n = th.getAttribute("data-col");
  if (st.sort === n) { if (st.dir > 0) st.dir = -1; else st.sort = null; } else { st.sort = n; st.dir = 1; }
  apply();
};
table.tBodies[0].onclick = function (ev) { var tr = ev.target.closest("tr[data-row]"); if (tr) openDetail(+tr.getAttribute("data-row")); };
document.addEventListener("click", function (ev) { // links elsewhere on the page (the report's examples)
  var a = ev.target.closest("[data-pv-filter],[data-pv-open]"); if (!a) return; ev.preventDefault();
  if (a.hasAttribute("data-pv-filter")) PV.filter(JSON.parse(a.getAttribute("data-pv-filter")));
  else if (idRow[a.getAttribute("data-pv-open")] !== undefined) openDetail(idRow[a.getAttribute("data-pv-open")]);
});
buildFilters(); buildCols(); apply();
root.setAttribute("data-ready", "1");
})();
