"use strict";
// The xmppgw status page: polls /api/status once a second and redraws the
// figures and the charts. No libraries; the formats match status.go.
(function () {
  var W = 600, H = 100, SPAN = 600e3; // viewBox size; the charts show 10 minutes
  var KEYS = ["t", "out", "dead", "in", "refused", "bounces", "depth", "in_flight", "lag_p95", "lag_mean", "barrier_p95", "xmpp", "amqp", "blocked"];
  var doc = JSON.parse(document.getElementById("initial").textContent);
  var failures = 0, updates = 0;

  function $(id) { return document.getElementById(id); }
  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function fmtRate(v) {
    if (!isNum(v)) return "\u2013";
    if (v === 0) return "0";
    if (v < 10) return v.toFixed(1);
    if (v < 1000) return Math.round(v).toFixed(0);
    if (v < 1e6) return (v / 1e3).toFixed(1) + "k";
    return (v / 1e6).toFixed(1) + "M";
  }
  function fmtCount(v) {
    if (!isNum(v)) return "\u2013";
    var s = Math.abs(Math.round(v)).toFixed(0), out = "";
    for (var i = 0; i < s.length; i++) {
      if (i > 0 && (s.length - i) % 3 === 0) out += "\u2009";
      out += s[i];
    }
    return (v < 0 ? "-" : "") + out;
  }
  function fmtSeconds(v) {
    if (!isNum(v)) return "\u2013";
    if (v < 0.01) return (v * 1e3).toFixed(1) + " ms";
    if (v < 1) return Math.round(v * 1e3).toFixed(0) + " ms";
    if (v < 60) return v.toFixed(1) + " s";
    return (v / 60).toFixed(1) + " min";
  }
  function fmtUptime(s) {
    var n = Math.floor(s);
    if (n < 60) return n + "s";
    if (n < 3600) return Math.floor(n / 60) + "m " + (n % 60) + "s";
    if (n < 86400) return Math.floor(n / 3600) + "h " + Math.floor(n % 3600 / 60) + "m";
    return Math.floor(n / 86400) + "d " + Math.floor(n % 86400 / 3600) + "h";
  }

  function text(id, s) { var e = $(id); if (e && e.textContent !== s) e.textContent = s; }
  function value(id, v, f) { var e = $(id); text(id, f(v)); if (e) e.setAttribute("data-value", isNum(v) ? String(v) : "NaN"); }
  function badge(id, up, yes, no, isUp) {
    var e = $(id);
    e.className = "badge " + (up ? (isUp ? "up" : "warn") : (isUp ? "down" : "warn"));
    e.setAttribute("data-state", up ? yes : no);
    e.lastChild.textContent = up ? yes : no;
  }

  // niceMax rounds up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log(v) / Math.LN10)), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  // chart draws the series named in keys (the first also as an area) into
  // the figure with id, scaled to their common maximum.
  function chart(id, keys, fmt, span) {
    var fig = $(id), h = doc.history, t = h.t, now = doc.now, top = 0, i, k;
    for (k = 0; k < keys.length; k++)
      for (i = 0; i < t.length; i++) if (isNum(h[keys[k]][i]) && h[keys[k]][i] > top) top = h[keys[k]][i];
    var max = niceMax(top * 1.1); // headroom: a flat line stays off the top edge
    var lines = fig.querySelectorAll("path.line"), area = fig.querySelector("path.area");
    for (k = 0; k < keys.length; k++) {
      var vs = h[keys[k]], d = "", a = "", open = false, x0 = 0, px = 0;
      for (i = 0; i < t.length; i++) {
        var x = W - (now - t[i]) * W / span;
        var gap = i > 0 && t[i] - t[i - 1] > 2500;
        if (!isNum(vs[i]) || gap) {
          if (open && k === 0) a += "L" + px.toFixed(1) + " " + H + "L" + x0.toFixed(1) + " " + H + "Z";
          open = false;
          if (!isNum(vs[i])) continue;
        }
        var y = H - Math.min(vs[i], max) * H / max;
        var p = x.toFixed(1) + " " + y.toFixed(1);
        d += (open ? "L" : "M") + p;
        if (k === 0) a += (open ? "L" : "M" + x.toFixed(1) + " " + H + "L") + p;
        if (!open) x0 = x;
        open = true; px = x;
      }
      if (open && k === 0) a += "L" + px.toFixed(1) + " " + H + "Z";
      lines[k].setAttribute("d", d);
      if (k === 0 && area) area.setAttribute("d", a);
    }
    fig.setAttribute("data-points", String(t.length));
    fig.setAttribute("data-max", String(max));
    var last = t.length ? h[keys[0]][t.length - 1] : null;
    fig.setAttribute("data-last", isNum(last) ? String(last) : "");
    fig.querySelector(".max").textContent = "max " + fmt(max);
    fig.querySelector(".from").textContent = span / 60e3 + " min ago";
  }

  // span is the time the charts show: the history so far in whole minutes,
  // at least one, at most ten.
  function span() {
    var t = doc.history.t, have = t.length ? doc.now - t[0] : 0;
    return Math.min(SPAN, Math.max(60e3, Math.ceil(have / 60e3) * 60e3));
  }

  function render() {
    var c = doc.current;
    value("v-out", c.out_rate, fmtRate);
    value("v-in", c.in_rate, fmtRate);
    value("v-depth", c.depth, fmtCount);
    value("v-lag", c.lag_p95, fmtSeconds);
    text("v-dead", fmtRate(c.dead_rate));
    text("v-sent", fmtCount(c.totals.sent));
    text("v-refused", fmtRate(c.refused_rate));
    text("v-bounces", fmtRate(c.bounce_rate));
    text("v-inflight", fmtCount(c.in_flight));
    text("v-lagmean", fmtSeconds(c.lag_mean));
    text("v-rtt", fmtSeconds(c.barrier_p95));
    text("uptime", fmtUptime(doc.uptime_seconds));
    text("updated", new Date(doc.now).toISOString().slice(11, 19) + " UTC");
    badge("b-xmpp", c.connected.xmpp, "connected", "disconnected", true);
    badge("b-amqp", c.connected.amqp, "connected", "disconnected", true);
    $("b-blocked").hidden = !c.blocked;
    $("b-stale").hidden = failures < 3;
    var sp = span();
    chart("c-out", ["out", "dead"], fmtRate, sp);
    chart("c-in", ["in", "refused", "bounces"], fmtRate, sp);
    chart("c-depth", ["depth", "in_flight"], fmtCount, sp);
    chart("c-lag", ["lag_p95", "lag_mean", "barrier_p95"], fmtSeconds, sp);
  }

  // merge takes a newer document: its history continues ours unless the
  // gateway restarted.
  function merge(next) {
    var h = doc.history, n = next.history;
    if (next.started === doc.started && h.t.length) {
      for (var k = 0; k < KEYS.length; k++) h[KEYS[k]] = h[KEYS[k]].concat(n[KEYS[k]]);
      var drop = 0;
      while (drop < h.t.length && h.t[drop] <= next.now - SPAN) drop++;
      drop = Math.max(drop, h.t.length - next.history_length);
      if (drop > 0) for (k = 0; k < KEYS.length; k++) h[KEYS[k]] = h[KEYS[k]].slice(drop);
      next.history = h;
    }
    doc = next;
  }

  function poll() {
    var t = doc.history.t, since = t.length ? t[t.length - 1] : 0;
    var url = "/api/status" + (since ? "?since=" + since : "");
    fetch(url, { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    }).then(function (next) {
      failures = 0;
      merge(next);
      render();
      document.body.setAttribute("data-updates", String(++updates));
    }).catch(function () {
      failures++;
      $("b-stale").hidden = failures < 3;
      if (failures >= 3) {
        badge("b-xmpp", false, "unknown", "unknown", false);
        badge("b-amqp", false, "unknown", "unknown", false);
      }
    }).then(function () { setTimeout(poll, 1000); });
  }

  render();
  setTimeout(poll, 1000);
})();
