// The live dashboard served at GET /recall/dashboard: one self-contained HTML page (inline CSS, JS and SVG; no CDN,
// so it works offline) that polls /recall/stats and draws hit rate, latency percentiles, requests by outcome and
// savings over the last 15 minutes. `?refresh=MS` sets the polling interval (default 2000, at least 250).

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recall dashboard</title>
<style>
  :root { --bg: #0f1419; --panel: #182028; --text: #e6e6e6; --muted: #8a96a3; --hit: #3fb950; --miss: #f0883e;
          --coalesced: #a371f7; --bypass: #6e7681; --semantic: #58a6ff; --stale: #d29922; --p50: #58a6ff; --p95: #d29922; --p99: #f85149; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--text); }
  header { display: flex; align-items: baseline; gap: 16px; padding: 16px 24px 0; }
  h1 { margin: 0; font-size: 20px; }
  header .meta { color: var(--muted); font-size: 12px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; padding: 16px 24px; }
  .card { background: var(--panel); border-radius: 8px; padding: 12px 14px; }
  .card .label { color: var(--muted); font-size: 12px; }
  .card .value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .card .sub { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; padding: 0 24px 24px; }
  .chart { background: var(--panel); border-radius: 8px; padding: 12px 14px; }
  .chart h2 { margin: 0 0 6px; font-size: 13px; font-weight: 600; }
  .legend { display: flex; gap: 12px; font-size: 11px; color: var(--muted); flex-wrap: wrap; }
  .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
  svg { width: 100%; height: 180px; display: block; }
  svg text { fill: var(--muted); font-size: 10px; }
  .grid line { stroke: #2b3540; }
  .error { color: var(--p99); }
</style>
</head>
<body>
<header>
  <h1>Recall</h1>
  <span class="meta">since <span id="since">–</span> · store <span id="store">–</span> · updated <span id="updated">never</span> <span id="status"></span></span>
</header>
<section class="cards">
  <div class="card"><div class="label">Hit rate, last minute</div><div class="value" id="hit-rate-1m">–</div><div class="sub">15 min <span id="hit-rate-15m">–</span></div></div>
  <div class="card"><div class="label">Hit rate since start</div><div class="value" id="hit-rate-all">–</div><div class="sub">exact tier <span id="tier-exact">–</span></div></div>
  <div class="card"><div class="label">Requests since start</div><div class="value" id="requests-all">–</div><div class="sub">last minute <span id="requests-1m">–</span></div></div>
  <div class="card"><div class="label">Latency, last minute (ms)</div><div class="value" id="p50-1m">–</div><div class="sub">p95 <span id="p95-1m">–</span> · p99 <span id="p99-1m">–</span></div></div>
  <div class="card"><div class="label">Saved since start</div><div class="value" id="saved-usd">–</div><div class="sub"><span id="saved-tokens">–</span> tokens</div></div>
  <div class="card"><div class="label">Upstream errors, 15 min</div><div class="value" id="errors-15m">–</div><div class="sub">since start <span id="errors-all">–</span></div></div>
</section>
<section class="charts">
  <div class="chart"><h2>Hit rate (per 10 s)</h2><svg id="chart-hit-rate" viewBox="0 0 600 180" preserveAspectRatio="none"></svg></div>
  <div class="chart"><h2>Latency percentiles (ms, per 10 s)</h2><div class="legend"><span><i style="background:var(--p50)"></i>p50</span><span><i style="background:var(--p95)"></i>p95</span><span><i style="background:var(--p99)"></i>p99</span></div><svg id="chart-latency" viewBox="0 0 600 180" preserveAspectRatio="none"></svg></div>
  <div class="chart"><h2>Requests by outcome (per 10 s)</h2><div class="legend" id="outcome-legend"></div><svg id="chart-outcomes" viewBox="0 0 600 180" preserveAspectRatio="none"></svg></div>
  <div class="chart"><h2>Saved, cumulative over 15 min (USD)</h2><svg id="chart-savings" viewBox="0 0 600 180" preserveAspectRatio="none"></svg></div>
</section>
<script>
(function () {
  'use strict';
  var OUTCOMES = ['HIT', 'SEMANTIC', 'STALE', 'COALESCED', 'MISS', 'BYPASS'];
  var COLORS = { HIT: 'var(--hit)', SEMANTIC: 'var(--semantic)', STALE: 'var(--stale)', COALESCED: 'var(--coalesced)', MISS: 'var(--miss)', BYPASS: 'var(--bypass)' };
  var W = 600, H = 180, PAD = 28, LEFT = 52;
  var params = new URLSearchParams(location.search);
  var refresh = Math.max(250, Number(params.get('refresh')) || 2000);
  var statsUrl = new URL('stats', location.href.replace(/[?#].*$/, '').replace(/dashboard\\/?$/, '')).toString();

  function $(id) { return document.getElementById(id); }
  function pct(v) { return v === null || v === undefined ? '–' : (v * 100).toFixed(1) + '%'; }
  function ms(v) { return v === null || v === undefined ? '–' : (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v).toString()); }
  function usd(v) { return '$' + (v < 1 ? v.toFixed(4) : v.toFixed(2)); }
  function sum(o) { var n = 0; for (var k in o) n += o[k]; return n; }
  function el(name, attrs) { var e = document.createElementNS('http://www.w3.org/2000/svg', name); for (var k in attrs) e.setAttribute(k, attrs[k]); return e; }

  function frame(svg, max, format) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var g = el('g', { class: 'grid' });
    for (var i = 0; i <= 4; i++) {
      var y = PAD / 2 + (H - PAD) * i / 4;
      g.appendChild(el('line', { x1: LEFT, x2: W, y1: y, y2: y }));
      var t = el('text', { x: 2, y: y + 3 }); t.textContent = format(max * (4 - i) / 4); g.appendChild(t);
    }
    svg.appendChild(g);
  }
  function x(i, n) { return LEFT + (W - LEFT) * (n <= 1 ? 0 : i / (n - 1)); }
  function y(v, max) { return PAD / 2 + (H - PAD) * (1 - (max > 0 ? v / max : 0)); }
  function line(svg, values, max, color) {
    var d = '', pen = false;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null || v === undefined) { pen = false; continue; }
      d += (pen ? 'L' : 'M') + x(i, values.length).toFixed(1) + ' ' + y(v, max).toFixed(1) + ' ';
      pen = true;
    }
    if (d) svg.appendChild(el('path', { d: d, fill: 'none', stroke: color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }));
  }

  function draw(stats) {
    var points = stats.timeline.points;
    var svg = $('chart-hit-rate');
    frame(svg, 1, function (v) { return Math.round(v * 100) + '%'; });
    line(svg, points.map(function (p) { return p.hit_rate; }), 1, 'var(--hit)');

    svg = $('chart-latency');
    var maxLatency = Math.max.apply(null, [1].concat(points.map(function (p) { return p.p99_ms || 0; })));
    frame(svg, maxLatency, ms);
    line(svg, points.map(function (p) { return p.p50_ms; }), maxLatency, 'var(--p50)');
    line(svg, points.map(function (p) { return p.p95_ms; }), maxLatency, 'var(--p95)');
    line(svg, points.map(function (p) { return p.p99_ms; }), maxLatency, 'var(--p99)');

    svg = $('chart-outcomes');
    var maxRequests = Math.max.apply(null, [1].concat(points.map(function (p) { return p.requests; })));
    frame(svg, maxRequests, function (v) { return Math.round(v).toString(); });
    var barW = (W - LEFT) / points.length;
    points.forEach(function (p, i) {
      var base = 0;
      OUTCOMES.forEach(function (outcome) {
        var n = p.outcomes[outcome] || 0;
        if (n === 0) return;
        var top = y(base + n, maxRequests), bottom = y(base, maxRequests);
        svg.appendChild(el('rect', { x: (LEFT + i * barW).toFixed(1), y: top.toFixed(1), width: Math.max(1, barW - 1).toFixed(1), height: (bottom - top).toFixed(1), fill: COLORS[outcome] }));
        base += n;
      });
    });

    svg = $('chart-savings');
    var running = 0;
    var cumulative = points.map(function (p) { running += p.cost_usd; return running; });
    var maxSaved = Math.max(running, 0.0001);
    frame(svg, maxSaved, usd);
    line(svg, cumulative, maxSaved, 'var(--hit)');
  }

  function show(stats) {
    var w1 = stats.windows['1m'], w15 = stats.windows['15m'], all = stats.windows.since_start;
    $('since').textContent = new Date(stats.since).toLocaleString();
    $('store').textContent = stats.store;
    $('hit-rate-1m').textContent = pct(w1.hit_rate);
    $('hit-rate-15m').textContent = pct(w15.hit_rate);
    $('hit-rate-all').textContent = pct(all.hit_rate);
    $('tier-exact').textContent = all.tiers.exact ? pct(all.tiers.exact.hit_rate) : '–';
    $('requests-all').textContent = sum(all.requests).toString();
    $('requests-1m').textContent = sum(w1.requests).toString();
    $('p50-1m').textContent = ms(w1.latency.all.p50_ms);
    $('p95-1m').textContent = ms(w1.latency.all.p95_ms);
    $('p99-1m').textContent = ms(w1.latency.all.p99_ms);
    $('saved-usd').textContent = usd(all.saved.cost_usd);
    $('saved-tokens').textContent = (all.saved.prompt_tokens + all.saved.completion_tokens).toString();
    $('errors-15m').textContent = w15.upstream_errors.total.toString();
    $('errors-all').textContent = all.upstream_errors.total.toString();
    var legend = $('outcome-legend');
    legend.textContent = '';
    OUTCOMES.forEach(function (o) {
      var s = document.createElement('span'), i = document.createElement('i');
      i.style.background = COLORS[o]; s.appendChild(i); s.appendChild(document.createTextNode(o)); legend.appendChild(s);
    });
    draw(stats);
    $('updated').textContent = new Date().toLocaleTimeString();
    $('status').textContent = '';
    document.body.setAttribute('data-polls', String(Number(document.body.getAttribute('data-polls') || 0) + 1));
  }

  function poll() {
    fetch(statsUrl, { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(show)
      .catch(function (e) { var s = $('status'); s.textContent = '· ' + e.message; s.className = 'error'; })
      .then(function () { setTimeout(poll, refresh); });
  }
  poll();
})();
</script>
</body>
</html>
`;
