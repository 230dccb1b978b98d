/* tidemark report: linked uPlot panes and sortable, filterable tables,
 * from the JSON embedded in the page (#tm-data). No network, no globals but
 * window.tidemarkReport (used by the browser tests and handy in a console). */
(function () {
  "use strict";

  var T0 = performance.now();
  var D = JSON.parse(document.getElementById("tm-data").textContent);
  var CUR = D.currency;
  var DPR = window.devicePixelRatio || 1;
  var UP = "#1a7f37", DOWN = "#cf222e", BLUE = "#0969da", GREY = "#57606a";
  var AXIS_W = 84, RIGHT_W = 72;

  // -- data ------------------------------------------------------------------------
  function f8(blob) { return new Float64Array(bytes(blob.f8).buffer); }
  function bytes(b64) {
    var bin = atob(b64), n = bin.length, out = new Uint8Array(n);
    for (var i = 0; i < n; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function strings(v) { // a list, or {cats, codes, dtype}
    if (Array.isArray(v)) return v;
    var b = bytes(v.codes).buffer, codes = v.dtype === "u1" ? new Uint8Array(b) : v.dtype === "u2" ? new Uint16Array(b) : new Uint32Array(b);
    var out = new Array(codes.length);
    for (var i = 0; i < codes.length; i++) out[i] = v.cats[codes[i]];
    return out;
  }
  // every table's columns, decoded once: COLS.fills.price[i] ...
  var COLS = {};
  Object.keys(D.tables).forEach(function (name) {
    var cols = COLS[name] = {};
    D.tables[name].columns.forEach(function (c) { cols[c.name] = c.values.f8 != null ? f8(c.values) : strings(c.values); });
  });
  var T1 = performance.now();
  function pick(values, rows) {
    var out = new Array(rows.length);
    for (var i = 0; i < rows.length; i++) out[i] = values[rows[i]];
    return out;
  }
  function pickF(values, rows) {
    var out = new Float64Array(rows.length);
    for (var i = 0; i < rows.length; i++) out[i] = values[rows[i]];
    return out;
  }
  function lowerBound(a, v) { // first index with a[i] >= v
    var lo = 0, hi = a.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (a[mid] < v) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function upperBound(a, v) { // first index with a[i] > v
    var lo = 0, hi = a.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (a[mid] <= v) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // -- formatting ------------------------------------------------------------------
  function pad2(n) { return (n < 10 ? "0" : "") + n; }
  function fmtTime(s) {
    if (s == null || !isFinite(s)) return "";
    return new Date(s * 1000).toISOString().slice(0, 19).replace("T", " ");
  }
  function fmtDur(s) {
    if (s == null || !isFinite(s)) return "";
    var neg = s < 0; s = Math.abs(Math.round(s));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    return (neg ? "-" : "") + (d ? d + "d " : "") + pad2(h) + ":" + pad2(m) + ":" + pad2(sec);
  }
  function decimals(v) {
    var a = Math.abs(v);
    if (!isFinite(a) || a === 0) return 2;
    return Math.max(2, Math.min(10, 5 - Math.floor(Math.log10(a))));
  }
  function fmtNum(v, dec) {
    if (v == null || !isFinite(v)) return v == null || isNaN(v) ? "" : String(v);
    if (dec == null) dec = decimals(v);
    return v.toLocaleString("en-US", { minimumFractionDigits: Math.min(dec, 2), maximumFractionDigits: dec });
  }
  function fmtMoney(v) { return v == null || !isFinite(v) ? "" : fmtNum(v, 2) + " " + CUR; }
  function fmtPct(v) { return v == null || !isFinite(v) ? "" : (v * 100).toFixed(2) + " %"; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }

  // -- the x range shared by all panes ---------------------------------------------
  var panesEl = document.getElementById("tm-panes");
  var charts = []; // {name, u, wrap}
  var full = [Infinity, -Infinity];
  function extend(t) {
    if (t.length) { full[0] = Math.min(full[0], t[0]); full[1] = Math.max(full[1], t[t.length - 1]); }
  }
  var syncing = false;
  function setRange(min, max, from) {
    var span = full[1] - full[0];
    if (!(span > 0)) return;
    var w = max - min, minW = span / 1e6;
    if (w < minW) { var mid = (min + max) / 2; min = mid - minW / 2; max = mid + minW / 2; w = minW; }
    if (w >= span) { min = full[0]; max = full[1]; }
    if (min < full[0]) { max += full[0] - min; min = full[0]; }
    if (max > full[1]) { min -= max - full[1]; max = full[1]; }
    syncing = true;
    try {
      charts.forEach(function (c) {
        if (c.u !== from || c.u.scales.x.min !== min || c.u.scales.x.max !== max) c.u.setScale("x", { min: min, max: max });
      });
    } finally { syncing = false; }
    var r = document.getElementById("tm-range");
    if (r) r.textContent = fmtTime(min) + " → " + fmtTime(max) + " UTC";
  }
  function visible() { return charts.length ? [charts[0].u.scales.x.min, charts[0].u.scales.x.max] : full.slice(); }

  function xAxis() {
    return { stroke: GREY, grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" }, size: 48 };
  }
  function yAxis(fmt) {
    return {
      stroke: GREY, size: AXIS_W, space: 24, grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" },
      values: function (u, ticks, ai, space, incr) { return ticks.map(function (v) { return fmt(v, incr); }); },
    };
  }
  function compact(v, incr) {
    var a = Math.abs(v);
    if (incr != null && incr > 0 && incr < a / 1e3) { // a narrow range far from zero: enough digits to tell ticks apart
      return v.toLocaleString("en-US", { maximumFractionDigits: Math.max(0, Math.min(10, -Math.floor(Math.log10(incr)) + 1)) });
    }
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return fmtNum(v);
  }

  function width() { return Math.max(320, panesEl.clientWidth - 2); }

  function addPane(name, title, opts, data, extra) {
    var wrap = el("div", { "class": "pane", "data-pane": name });
    wrap.appendChild(el("div", { "class": "pane-title" }, title));
    panesEl.appendChild(wrap);
    opts.width = width();
    opts.tzDate = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };
    opts.scales = opts.scales || {};
    opts.scales.x = { time: true, auto: false };
    opts.cursor = Object.assign({
      sync: { key: "tm", setSeries: false },
      drag: { x: true, y: false, setScale: true },
      bind: { dblclick: function () { return function () { return null; }; } },
      points: { show: false },
    }, opts.cursor || {});
    opts.legend = opts.legend || { live: true };
    if (opts.axes.length < 3) { // every pane keeps the same right gutter, so the plot areas line up
      opts.axes.push({ side: 1, scale: "y", size: RIGHT_W, values: function () { return []; }, grid: { show: false }, ticks: { show: false } });
    }
    opts.hooks = opts.hooks || {};
    (opts.hooks.setScale = opts.hooks.setScale || []).push(function (u, key) {
      if (key === "x" && !syncing) setRange(u.scales.x.min, u.scales.x.max, u);
    });
    var u = new uPlot(opts, data, wrap);
    var chart = { name: name, u: u, wrap: wrap, extra: extra || {} };
    charts.push(chart);
    bindMouse(u);
    return chart;
  }

  function bindMouse(u) {
    u.over.addEventListener("wheel", function (e) {
      e.preventDefault();
      var rect = u.over.getBoundingClientRect();
      var at = u.posToVal(e.clientX - rect.left, "x");
      var f = e.deltaY < 0 ? 0.8 : 1.25, r = visible();
      setRange(at - (at - r[0]) * f, at + (r[1] - at) * f);
    }, { passive: false });
    u.over.addEventListener("dblclick", function () { setRange(full[0], full[1]); });
    var panning = null;
    u.root.addEventListener("mousedown", function (e) {
      if (!e.shiftKey || e.button !== 0) return;
      e.stopPropagation(); e.preventDefault();
      panning = { x: e.clientX, r: visible(), w: u.over.getBoundingClientRect().width };
    }, true);
    window.addEventListener("mousemove", function (e) {
      if (!panning) return;
      var dv = (e.clientX - panning.x) / panning.w * (panning.r[1] - panning.r[0]);
      setRange(panning.r[0] - dv, panning.r[1] - dv);
    });
    window.addEventListener("mouseup", function () { panning = null; });
  }

  // -- price panes: candles merged per pixel column, a marker per fill ----------------------------
  var markersDrawn = {};
  function drawPrice(P) {
    return function (u) {
      var ctx = u.ctx, b = u.bbox, t = P.t, n = t.length;
      ctx.save();
      ctx.beginPath(); ctx.rect(b.left, b.top, b.width, b.height); ctx.clip();
      var xmin = u.scales.x.min, xmax = u.scales.x.max;
      var i0 = Math.max(0, lowerBound(t, xmin - P.step) - 1), i1 = Math.min(n, upperBound(t, xmax) + 1);
      var count = i1 - i0, px = b.width / Math.max(1, (xmax - xmin) / P.step);
      if (px >= 3) { // candles
        var bw = Math.max(1, Math.min(px * 0.7, 14 * DPR));
        for (var i = i0; i < i1; i++) {
          var x = u.valToPos(t[i] + P.step / 2, "x", true);
          var up = P.c[i] >= P.o[i];
          ctx.strokeStyle = ctx.fillStyle = up ? UP : DOWN;
          var yh = u.valToPos(P.h[i], "y", true), yl = u.valToPos(P.l[i], "y", true);
          var yo = u.valToPos(P.o[i], "y", true), yc = u.valToPos(P.c[i], "y", true);
          ctx.beginPath(); ctx.lineWidth = DPR; ctx.moveTo(Math.round(x) + 0.5, yh); ctx.lineTo(Math.round(x) + 0.5, yl); ctx.stroke();
          ctx.fillRect(x - bw / 2, Math.min(yo, yc), bw, Math.max(DPR, Math.abs(yc - yo)));
        }
      } else if (count > 0) { // one high-low line per pixel column: every extreme stays
        var col = null, hi = 0, lo = 0, op = 0, cl = 0;
        var flush = function () {
          if (col === null) return;
          ctx.strokeStyle = cl >= op ? UP : DOWN;
          ctx.beginPath(); ctx.moveTo(col + 0.5, u.valToPos(hi, "y", true)); ctx.lineTo(col + 0.5, u.valToPos(lo, "y", true) + DPR); ctx.stroke();
        };
        ctx.lineWidth = DPR;
        for (var j = i0; j < i1; j++) {
          var c = Math.floor(u.valToPos(t[j], "x", true));
          if (c !== col) { flush(); col = c; hi = P.h[j]; lo = P.l[j]; op = P.o[j]; }
          else { if (P.h[j] > hi) hi = P.h[j]; if (P.l[j] < lo) lo = P.l[j]; }
          cl = P.c[j];
        }
        flush();
      }
      // fills
      var F = P.fills, ft = F.time, k0 = lowerBound(ft, xmin), k1 = upperBound(ft, xmax), s = 5 * DPR, drawn = 0;
      for (var k = k0; k < k1; k++) {
        var fx = u.valToPos(ft[k], "x", true), fy = u.valToPos(F.price[k], "y", true);
        ctx.beginPath();
        if (F.buy[k]) { ctx.fillStyle = "#1f6feb"; ctx.moveTo(fx, fy); ctx.lineTo(fx - s, fy + 1.7 * s); ctx.lineTo(fx + s, fy + 1.7 * s); }
        else { ctx.fillStyle = "#bf3989"; ctx.moveTo(fx, fy); ctx.lineTo(fx - s, fy - 1.7 * s); ctx.lineTo(fx + s, fy - 1.7 * s); }
        ctx.closePath(); ctx.fill();
        drawn++;
      }
      markersDrawn[P.symbol] = drawn;
      ctx.restore();
    };
  }

  function priceRange(P) {
    return function (u) {
      var xmin = u.scales.x.min, xmax = u.scales.x.max, t = P.t;
      if (xmin == null) { xmin = full[0]; xmax = full[1]; }
      var i0 = Math.max(0, lowerBound(t, xmin - P.step)), i1 = upperBound(t, xmax);
      var lo = Infinity, hi = -Infinity;
      for (var i = i0; i < i1; i++) { if (P.l[i] < lo) lo = P.l[i]; if (P.h[i] > hi) hi = P.h[i]; }
      var F = P.fills, k1 = upperBound(F.time, xmax);
      for (var k = lowerBound(F.time, xmin); k < k1; k++) { if (F.price[k] < lo) lo = F.price[k]; if (F.price[k] > hi) hi = F.price[k]; }
      if (!isFinite(lo)) return [0, 1];
      var padding = (hi - lo) * 0.06 || Math.abs(hi) * 0.01 || 1;
      return [lo - padding, hi + padding];
    };
  }

  function pricePane(p) {
    var c = p.candles;
    var P = {
      symbol: p.symbol, t: f8(c.time), o: f8(c.open), h: f8(c.high), l: f8(c.low), c: f8(c.close), v: f8(c.volume),
      step: (p.interval || 1) * p.merged,
      fills: null,
    };
    var rows = f8(p.fills), F = COLS.fills, side = pick(F.side || [], rows);
    P.fills = {
      time: pickF(F.exec_time, rows), price: pickF(F.price, rows), quantity: pickF(F.quantity, rows),
      buy: side.map(function (s) { return s === "buy" ? 1 : 0; }), fee: pickF(F.fee, rows),
      order_id: pick(F.order_id, rows), strategy: pick(F.strategy, rows),
    };
    extend(P.t);
    if (P.t.length) full[1] = Math.max(full[1], P.t[P.t.length - 1] + P.step);
    var title = p.symbol + " · candles at their open time" + (p.merged > 1 ? " · " + p.merged + " bars per candle (highs and lows kept)" : "") +
      " · ▲ buy ▼ sell fills: " + P.fills.time.length.toLocaleString("en-US");
    var ohlc = function (u, v, si, idx) {
      if (idx == null) return "";
      return "O " + fmtNum(P.o[idx]) + "  H " + fmtNum(P.h[idx]) + "  L " + fmtNum(P.l[idx]) + "  C " + fmtNum(P.c[idx]) +
        "  V " + fmtNum(P.v[idx], 2);
    };
    var chart = addPane("price:" + p.symbol, title, {
      height: 320,
      series: [
        { value: function (u, v) { return v == null ? "" : fmtTime(v) + " UTC"; } },
        { label: p.symbol, stroke: GREY, width: 0, paths: function () { return null; }, points: { show: false }, value: ohlc },
      ],
      scales: { y: { range: priceRange(P) } },
      axes: [xAxis(), yAxis(compact)],
      hooks: { draw: [drawPrice(P)], setCursor: [function (u) { fillTip(u, P); }] },
    }, [P.t, P.c], { P: P });
    chart.wrap.addEventListener("mouseleave", function () { tip.hidden = true; });
    return chart;
  }

  // -- hover on a fill marker --------------------------------------------------------------------
  var tip = document.getElementById("tm-tip");
  function fillTip(u, P) {
    var left = u.cursor.left, top = u.cursor.top;
    if (left == null || left < 0) { tip.hidden = true; return; }
    var F = P.fills, at = u.posToVal(left, "x"), tol = u.posToVal(left + 8, "x") - at;
    var k0 = lowerBound(F.time, at - tol), k1 = upperBound(F.time, at + tol), best = -1, bestD = 100;
    for (var k = k0; k < k1; k++) {
      var dx = u.valToPos(F.time[k], "x") - left, dy = u.valToPos(F.price[k], "y") - top, d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = k; }
    }
    if (best < 0) { tip.hidden = true; return; }
    tip.textContent = (F.buy[best] ? "BUY " : "SELL ") + fmtNum(F.quantity[best]) + " " + P.symbol + " @ " + fmtNum(F.price[best]) +
      "\n" + fmtTime(F.time[best]) + " UTC\nfee " + fmtMoney(F.fee[best]) + "\norder " + F.order_id[best] + " (" + F.strategy[best] + ")";
    var r = u.over.getBoundingClientRect();
    tip.style.left = (window.scrollX + r.left + left + 12) + "px";
    tip.style.top = (window.scrollY + r.top + top + 12) + "px";
    tip.hidden = false;
  }

  // -- the other panes ------------------------------------------------------------------------------
  function timeSeries() { return { value: function (u, v) { return v == null ? "" : fmtTime(v) + " UTC"; } }; }

  function equityPanes() {
    var E = D.equity;
    if (!E.total) return;
    var t = f8(E.time);
    extend(t);
    var eq = f8(E.equity), dd = f8(E.drawdown);
    var note = E.points < E.total ? " · " + E.points.toLocaleString("en-US") + " of " + E.total.toLocaleString("en-US") +
      " points (each bucket's first, last, min and max kept)" : "";
    addPane("equity", "Equity [" + CUR + "]" + note, {
      height: 200,
      series: [timeSeries(), { label: "equity", stroke: BLUE, width: 1.5, value: function (u, v) { return fmtMoney(v); } }],
      axes: [xAxis(), yAxis(compact)],
    }, [t, eq]);
    addPane("drawdown", "Drawdown [%] · max " + fmtPct(D.max_drawdown), {
      height: 150,
      series: [timeSeries(), { label: "drawdown", stroke: DOWN, fill: "rgba(207,34,46,0.15)", width: 1, value: function (u, v) { return fmtPct(v); } }],
      axes: [xAxis(), yAxis(function (v, incr) {
        var dec = Math.max(0, Math.min(8, -Math.floor(Math.log10(Math.abs(incr * 100) || 1))));
        return (v * 100).toFixed(dec) + "%";
      })],
    }, [t, dd]);
    if (E.leverage) {
      var series = [timeSeries(), { label: "leverage", stroke: "#8250df", width: 1, value: function (u, v) { return v == null ? "" : fmtNum(v, 3) + "×"; } }];
      var data = [t, f8(E.leverage)];
      if (E.margin) {
        series.push({ label: "margin", stroke: "#bc4c00", width: 1, scale: "m", value: function (u, v) { return fmtMoney(v); } });
        data.push(f8(E.margin));
      }
      addPane("margin", "Margin · leverage = gross exposure / equity" + (E.margin ? " · margin posted [" + CUR + "]" : ""), {
        height: 130, series: series,
        axes: [xAxis(), yAxis(function (v) { return fmtNum(v, 2) + "×"; })].concat(E.margin ? [Object.assign(yAxis(compact), { scale: "m", side: 1, size: RIGHT_W, grid: { show: false } })] : []),
      }, data);
    }
  }

  var PALETTE = [BLUE, "#bc4c00", "#8250df", "#1a7f37", "#bf3989", "#0a3069"];
  function positionPane() {
    var S = D.position;
    if (!S.symbols.length) return;
    var t = f8(S.time);
    extend(t);
    var series = [timeSeries()], data = [t];
    S.symbols.forEach(function (s, i) {
      series.push({ label: s, stroke: PALETTE[i % PALETTE.length], width: 1.5, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: function (u, v) { return v == null ? "" : fmtNum(v); } });
      data.push(f8(S.values[i]));
    });
    addPane("position", "Position (net quantity)", {
      height: 130, series: series, axes: [xAxis(), yAxis(compact)],
      scales: { y: { range: function (u, lo, hi) { var pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1; return [lo - pad, hi + pad]; } } },
    }, data);
  }

  function pnlPane() {
    var rows = f8(D.pnl.rows), T = COLS.trades;
    if (!rows.length) return;
    var t = pickF(T.exit_time, rows), pnl = pickF(T.pnl, rows);
    extend(t);
    var wins = new Array(t.length), losses = new Array(t.length);
    for (var i = 0; i < t.length; i++) { wins[i] = pnl[i] >= 0 ? pnl[i] : null; losses[i] = pnl[i] < 0 ? pnl[i] : null; }
    var pts = function (color) { return { show: function () { return true; }, size: 6, fill: color, stroke: color }; };
    var money = function (u, v) { return v == null ? "" : fmtMoney(v); };
    addPane("pnl", "PnL per trade [" + CUR + "] at exit · " + t.length.toLocaleString("en-US") + " closed trades", {
      height: 150,
      series: [timeSeries(),
        { label: "win", stroke: UP, paths: function () { return null; }, points: pts(UP), value: money },
        { label: "loss", stroke: DOWN, paths: function () { return null; }, points: pts(DOWN), value: money }],
      axes: [xAxis(), yAxis(compact)],
    }, [t, wins, losses]);
  }

  function fundingPane() {
    var F = D.funding;
    if (!F) return;
    var t = f8(F.time);
    extend(t);
    var money = function (u, v) { return v == null ? "" : fmtMoney(v); };
    addPane("funding", "Funding [" + CUR + "] · cumulative (line) and each payment (dots)", {
      height: 140,
      series: [timeSeries(),
        { label: "cumulative", stroke: "#bc4c00", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: money },
        { label: "payment", stroke: GREY, paths: function () { return null; }, points: { show: function () { return true; }, size: 4, fill: GREY }, value: money, scale: "p" }],
      axes: [xAxis(), yAxis(compact), Object.assign(yAxis(compact), { scale: "p", side: 1, size: RIGHT_W, grid: { show: false } })],
    }, [t, f8(F.cumulative), f8(F.amount)]);
  }

  // -- symbol selector --------------------------------------------------------------------------------
  function symbolSelector(symbols) {
    if (symbols.length < 2) return;
    var span = document.getElementById("tm-symbols"), sel = el("select", { id: "tm-symbol", title: "Price pane" });
    sel.appendChild(el("option", { value: "" }, "all symbols"));
    symbols.forEach(function (s) { sel.appendChild(el("option", { value: s }, s)); });
    sel.addEventListener("change", function () {
      charts.forEach(function (c) {
        if (c.name.indexOf("price:") === 0) c.wrap.style.display = !sel.value || c.name === "price:" + sel.value ? "" : "none";
      });
    });
    span.appendChild(document.createTextNode("Price: "));
    span.appendChild(sel);
  }

  // -- tables -------------------------------------------------------------------------------------------
  var PAGE = 50;
  function Table(spec) {
    this.n = spec.rows;
    this.cols = spec.columns.map(function (c) {
      return { name: c.name, kind: c.kind, values: COLS[spec.name][c.name], filter: "" };
    });
    this.order = null; this.sortCol = -1; this.desc = false; this.page = 0;
    this.rows = null;
  }
  Table.prototype.text = function (col, i) {
    var v = col.values[i];
    switch (col.kind) {
      case "time": return fmtTime(v);
      case "dur": return fmtDur(v);
      case "int": return isFinite(v) ? String(v) : "";
      case "bool": return v ? "yes" : "no";
      case "pct": return fmtPct(v);
      case "num": return fmtNum(v);
      default: return v;
    }
  };
  function matcher(kind, q) {
    q = q.trim();
    if (!q) return null;
    var m = /^(>=|<=|>|<|=)\s*(-?[\d.]+(?:e[+-]?\d+)?)\s*(%?)$/i.exec(q);
    if (m && kind !== "str") {
      var x = parseFloat(m[2]);
      if (kind === "pct" || m[3]) x = x / 100;
      var op = m[1];
      return function (v) {
        if (!isFinite(v)) return false;
        return op === ">" ? v > x : op === "<" ? v < x : op === ">=" ? v >= x : op === "<=" ? v <= x : v === x;
      };
    }
    return "text";
  }
  Table.prototype.refresh = function () {
    var self = this, idx = [];
    var tests = this.cols.map(function (c) { return { c: c, m: matcher(c.kind, c.filter), q: c.filter.trim().toLowerCase() }; })
      .filter(function (t) { return t.m; });
    for (var i = 0; i < this.n; i++) {
      var ok = true;
      for (var j = 0; j < tests.length && ok; j++) {
        var tt = tests[j];
        ok = tt.m === "text" ? String(self.text(tt.c, i)).toLowerCase().indexOf(tt.q) >= 0 : tt.m(tt.c.values[i]);
      }
      if (ok) idx.push(i);
    }
    if (this.sortCol >= 0) {
      var col = this.cols[this.sortCol], vals = col.values, sign = this.desc ? -1 : 1, str = col.kind === "str";
      idx.sort(function (a, b) {
        var x = vals[a], y = vals[b];
        if (str) return sign * String(x).localeCompare(String(y)) || a - b;
        var nx = !isFinite(x), ny = !isFinite(y);
        if (nx || ny) return nx === ny ? a - b : nx ? 1 : -1; // NaN last
        return sign * (x - y) || a - b;
      });
    }
    this.rows = idx;
    this.page = Math.min(this.page, Math.max(0, Math.ceil(idx.length / PAGE) - 1));
  };
  Table.prototype.render = function (host, onRow) {
    var self = this;
    if (!this.rows) this.refresh();
    host.textContent = "";
    var bar = el("div", { "class": "tbar" });
    var info = el("span", { "class": "tinfo" });
    var prev = el("button", { type: "button", "class": "tprev" }, "‹ prev"), next = el("button", { type: "button", "class": "tnext" }, "next ›");
    bar.appendChild(prev); bar.appendChild(next); bar.appendChild(info);
    bar.appendChild(el("span", { "class": "hint" }, "Click a header to sort; filter a column with text or >, <, >=, <=, = a number" + (onRow ? "; click a trade to zoom to it" : "")));
    host.appendChild(bar);
    var table = el("table", { "class": "data" }), thead = el("thead"), head = el("tr"), filt = el("tr", { "class": "filters" });
    this.cols.forEach(function (c, j) {
      var th = el("th", { "data-col": c.name }, c.name + (self.sortCol === j ? (self.desc ? " ▼" : " ▲") : ""));
      th.addEventListener("click", function () {
        if (self.sortCol === j) self.desc = !self.desc; else { self.sortCol = j; self.desc = false; }
        self.refresh(); self.render(host, onRow);
      });
      head.appendChild(th);
      var fth = el("th"), input = el("input", { type: "search", placeholder: "filter", "data-col": c.name });
      input.value = c.filter;
      input.addEventListener("change", function () { c.filter = input.value; self.page = 0; self.refresh(); self.render(host, onRow); });
      fth.appendChild(input); filt.appendChild(fth);
    });
    thead.appendChild(head); thead.appendChild(filt); table.appendChild(thead);
    var tbody = el("tbody"), start = this.page * PAGE, stop = Math.min(this.rows.length, start + PAGE);
    for (var r = start; r < stop; r++) {
      var i = this.rows[r], tr = el("tr");
      this.cols.forEach(function (c) {
        var td = el("td", { "class": c.kind === "str" ? "s" : "n" }, self.text(c, i));
        if (c.name === "pnl" || c.name === "return_pct" || c.name === "realized") {
          var v = c.values[i];
          if (v > 0) td.className += " pos"; else if (v < 0) td.className += " neg";
        }
        tr.appendChild(td);
      });
      if (onRow) { tr.className = "clickable"; tr.addEventListener("click", onRow.bind(null, i)); }
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
    host.appendChild(table);
    info.textContent = this.rows.length ? "rows " + (start + 1).toLocaleString("en-US") + "–" + stop.toLocaleString("en-US") + " of " +
      this.rows.length.toLocaleString("en-US") + (this.rows.length < this.n ? " (filtered from " + this.n.toLocaleString("en-US") + ")" : "") : "no rows";
    prev.disabled = this.page === 0;
    next.disabled = stop >= this.rows.length;
    prev.addEventListener("click", function () { self.page--; self.render(host, onRow); });
    next.addEventListener("click", function () { self.page++; self.render(host, onRow); });
  };

  var tables = {};
  function buildTables() {
    var tabs = document.getElementById("tm-tabs"), host = document.getElementById("tm-table");
    var names = [["trades", "Trades"], ["orders", "Orders"], ["fills", "Fills"], ["rejections", "Rejections"], ["funding", "Funding"]];
    var buttons = {};
    function show(name) {
      Object.keys(buttons).forEach(function (k) { buttons[k].className = k === name ? "tab active" : "tab"; });
      tables[name].render(host, name === "trades" ? zoomToTrade : null);
      host.setAttribute("data-table", name);
    }
    names.forEach(function (pair) {
      var spec = D.tables[pair[0]];
      if (!spec || (!spec.rows && pair[0] !== "trades")) return;
      spec.name = pair[0];
      tables[pair[0]] = new Table(spec);
      var b = el("button", { type: "button", "class": "tab", "data-table": pair[0] }, pair[1] + " (" + spec.rows.toLocaleString("en-US") + ")");
      b.addEventListener("click", function () { show(pair[0]); });
      buttons[pair[0]] = b;
      tabs.appendChild(b);
    });
    show("trades");
  }
  function zoomToTrade(i) {
    var T = tables.trades, col = function (name) { return T.cols.filter(function (c) { return c.name === name; })[0]; };
    var a = col("entry_time").values[i], b = col("exit_time").values[i];
    if (!isFinite(b)) b = full[1];
    if (!isFinite(a)) return;
    var span = Math.max(b - a, (full[1] - full[0]) / 2000), pad = span * 0.5;
    setRange(a - pad, b + pad);
    document.getElementById("charts").scrollIntoView();
  }

  // -- start --------------------------------------------------------------------------------------------
  function start() {
    var T2 = performance.now();
    D.prices.forEach(pricePane);
    equityPanes();
    positionPane();
    pnlPane();
    fundingPane();
    symbolSelector(D.prices.map(function (p) { return p.symbol; }));
    var notes = D.prices.filter(function (p) { return p.merged > 1; }).map(function (p) {
      return p.symbol + ": " + p.bars.toLocaleString("en-US") + " bars drawn as candles of " + p.merged + " bars";
    });
    document.getElementById("tm-sampling").textContent = notes.length ? "This file keeps at most " + D.max_points.toLocaleString("en-US") +
      " candles per symbol: " + notes.join("; ") + ". Highs, lows and every drawdown extreme are kept; every fill and trade is shown." : "";
    if (isFinite(full[0])) setRange(full[0], full[1]);
    var step = function (dir) { var r = visible(), w = r[1] - r[0]; setRange(r[0] + dir * w * 0.25, r[1] + dir * w * 0.25); };
    var zoom = function (f) { var r = visible(), mid = (r[0] + r[1]) / 2, w = (r[1] - r[0]) * f / 2; setRange(mid - w, mid + w); };
    document.getElementById("tm-reset").addEventListener("click", function () { setRange(full[0], full[1]); });
    document.getElementById("tm-zoom-in").addEventListener("click", function () { zoom(0.5); });
    document.getElementById("tm-zoom-out").addEventListener("click", function () { zoom(2); });
    document.getElementById("tm-left").addEventListener("click", function () { step(-1); });
    document.getElementById("tm-right").addEventListener("click", function () { step(1); });
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        charts.forEach(function (c) { c.u.setSize({ width: width(), height: c.u.height }); });
      }, 100);
    });
    var T3 = performance.now();
    buildTables();
    report.timings = { parse_and_decode_ms: T1 - T0, charts_ms: T3 - T2, tables_ms: performance.now() - T3, since_navigation_ms: performance.now() };
    report.ready = true;
  }

  var report = window.tidemarkReport = {
    ready: false,
    charts: charts,
    full: full,
    visible: visible,
    setRange: setRange,
    tables: tables,
    /** Markers drawn by the last draw of each price pane, summed. */
    markerCount: function () { var n = 0; for (var k in markersDrawn) n += markersDrawn[k]; return n; },
    /** The lowest drawdown among the points the drawdown pane holds in view. */
    lowestDrawdownShown: function () {
      var c = charts.filter(function (c) { return c.name === "drawdown"; })[0];
      if (!c) return null;
      var u = c.u, t = u.data[0], y = u.data[1], lo = Infinity;
      var i1 = upperBound(t, u.scales.x.max);
      for (var i = lowerBound(t, u.scales.x.min); i < i1; i++) if (y[i] < lo) lo = y[i];
      return { value: lo, axisMin: u.scales.y.min };
    },
  };
  start();
})();
