// The diffsweep explorer (src/diffsweep/explore/page.py inlines this file, the data and plotly.js).
// One figure: a metric against a cost, a point per preset point (seeds pooled) with its interval, the
// Pareto front per score source, the metric's floor; filters, a click for samples and row, and a paired
// comparison of two points. window.explore exposes the state (tests, and a console user).
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("explore-data").textContent);
  const GL_ABOVE = 2000;   // beyond this many points, WebGL traces (SVG ones stay exact to click)
  const state = {view: 0, filters: {}, metric: null, cost: null, logx: true, logy: false,
                 shown: [], front: [], a: null, b: null, clicked: null};
  const api = window.explore = {ready: false, state, compare, select, pixelOf, draw, runsOf};
  const plot = document.getElementById("plot");

  const view = () => DATA.views[state.view];
  const value = (v, column, i) => v.filters[column] ? v.filters[column].values[v.filters[column].codes[i]] : null;
  const fmt = x => (x === null || x === undefined) ? "–" : Number(x).toPrecision(4);
  const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);

  function reset() {
    const v = view();
    state.filters = {}; state.metric = v.metrics[0] || null; state.cost = v.costs[0] || null;
    state.a = state.b = state.clicked = null;
  }

  function addSelect(box, id, label, options, selected, onChange) {
    const wrap = document.createElement("label");
    wrap.textContent = label + " ";
    const select = document.createElement("select");
    select.id = id;
    options.forEach(([key, text]) => select.add(new Option(text, key, false, String(key) === String(selected))));
    select.addEventListener("change", () => onChange(select.value));
    wrap.appendChild(select);
    box.appendChild(wrap);
  }

  function addCheckbox(box, id, label, checked, onChange) {
    const wrap = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox"; input.id = id; input.checked = checked;
    input.addEventListener("change", () => onChange(input.checked));
    wrap.append(input, " " + label);
    box.appendChild(wrap);
  }

  function controls() {
    const box = document.getElementById("controls");
    box.innerHTML = "";
    const v = view();
    if (DATA.views.length > 1) {
      addSelect(box, "table", "table", DATA.views.map((w, i) => [i, w.kind]), state.view,
                i => { state.view = Number(i); reset(); controls(); draw(); });
    }
    addSelect(box, "metric", "metric", v.metrics.map(m => [m, `${m} (${v.directions[m]} is better)`]), state.metric,
              m => { state.metric = m; draw(); });
    addSelect(box, "cost", "against", v.costs.map(c => [c, c]), state.cost, c => { state.cost = c; draw(); });
    addCheckbox(box, "logx", "log x", state.logx, on => { state.logx = on; draw(); });
    addCheckbox(box, "logy", "log y", state.logy, on => { state.logy = on; draw(); });
    box.appendChild(document.createElement("br"));
    const more = document.createElement("details");
    more.innerHTML = "<summary>more filters</summary>";
    for (const [column, f] of Object.entries(v.filters)) {
      addSelect(v.main_filters.includes(column) ? box : more, "filter-" + column, column, [["", "(all)"], ...f.values.map((text, code) => [code, text])],
                state.filters[column] ?? "", code => {
                  if (code === "") delete state.filters[column]; else state.filters[column] = Number(code);
                  draw();
                });
    }
    if (more.children.length > 1) box.appendChild(more);
  }

  // Points the filters keep that have the metric and the cost (a positive cost on a log axis).
  function shownPoints(v) {
    const p = v.points, m = p.metric[state.metric], cost = p.cost[state.cost];
    const kept = [];
    const active = Object.entries(state.filters);
    for (let i = 0; i < v.n_points; i++) {
      if (!active.every(([column, code]) => v.filters[column].codes[i] === code)) continue;
      if (m.mean[i] === null || cost[i] === null || (state.logx && cost[i] <= 0) || (state.logy && m.mean[i] <= 0)) continue;
      kept.push(i);
    }
    return kept;
  }

  // Per score source: the points no other point beats in both cost and metric (at most the same cost
  // and at least as good a metric, better in one); points equal in both are all on the front.
  function paretoFront(v, shown) {
    const p = v.points, mean = p.metric[state.metric].mean, cost = p.cost[state.cost];
    const sign = v.directions[state.metric] === "lower" ? 1 : -1;
    const bySource = new Map();
    shown.forEach(i => { const s = p.source.codes[i]; if (!bySource.has(s)) bySource.set(s, []); bySource.get(s).push(i); });
    const front = [];
    for (const members of bySource.values()) {
      members.sort((i, j) => cost[i] - cost[j] || sign * (mean[i] - mean[j]));
      let best = Infinity;       // best signed metric of the points of lower cost
      for (let k = 0; k < members.length;) {
        let end = k;
        while (end < members.length && cost[members[end]] === cost[members[k]]) end++;
        const top = sign * mean[members[k]];
        if (top < best) for (let q = k; q < end && sign * mean[members[q]] === top; q++) front.push(members[q]);
        best = Math.min(best, top);
        k = end;
      }
    }
    return front.sort((i, j) => i - j);
  }

  // A point's interval: mean +- its half-width (t over replicates, or the run's sampling interval).
  function intervalText(v, m, i) {
    return m.half[i] === null ? "(no interval)" :
      `[${fmt(m.mean[i] - m.half[i])}, ${fmt(m.mean[i] + m.half[i])}] (${v.interval_methods[m.method[i]]})`;
  }

  function hover(v, i) {
    const p = v.points, m = p.metric[state.metric];
    const rows = v.main_filters.map(column => `${column}: ${value(v, column, i)}`);
    const interval = intervalText(v, m, i);
    rows.push(`${state.metric}: ${fmt(m.mean[i])} ${interval}, n ${p.n[i]}`, `${state.cost}: ${fmt(p.cost[state.cost][i])}`);
    return rows.join("<br>");
  }

  function draw() {
    const started = performance.now(), v = view(), p = v.points;
    if (!state.metric || !state.cost) {
      document.getElementById("shown").textContent = "This table has no metric with a direction or no cost column.";
      return finish(Plotly.react(plot, [], {}), started);
    }
    const m = p.metric[state.metric], cost = p.cost[state.cost];
    const shown = shownPoints(v), front = paretoFront(v, shown);
    state.shown = shown; state.front = front;
    const type = shown.length > GL_ABOVE ? "scattergl" : "scatter";
    const modelOf = i => v.filters.model ? value(v, "model", i) : (v.constant.model || "");
    const traces = [], colour = new Map(), palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    const byModel = new Map();
    shown.forEach(i => { const k = modelOf(i); if (!byModel.has(k)) byModel.set(k, []); byModel.get(k).push(i); });
    for (const [model, members] of byModel) {
      colour.set(model, palette[colour.size % palette.length]);
      traces.push({type, mode: "markers", name: model, x: members.map(i => cost[i]), y: members.map(i => m.mean[i]),
        customdata: members, text: members.map(i => hover(v, i)), hoverinfo: "text",
        marker: {color: colour.get(model), size: 6, opacity: 0.8},
        error_y: {type: "data", symmetric: true, thickness: 1, width: 0, color: colour.get(model),
                  array: members.map(i => m.half[i] ?? 0)}});
    }
    const frontBySource = new Map();
    front.forEach(i => { const s = p.source.codes[i]; if (!frontBySource.has(s)) frontBySource.set(s, []); frontBySource.get(s).push(i); });
    let first = true;
    for (const members of frontBySource.values()) {
      members.sort((i, j) => cost[i] - cost[j]);
      traces.push({type: "scatter", mode: "lines+markers", name: "Pareto front (per score source)", legendgroup: "front",
        showlegend: first, hoverinfo: "skip", x: members.map(i => cost[i]), y: members.map(i => m.mean[i]),
        line: {color: colour.get(modelOf(members[0])), width: 1.5},
        marker: {symbol: "diamond-open", size: 12, color: colour.get(modelOf(members[0]))}});
      first = false;
    }
    traces.push(...floorTraces(v, shown, cost));
    const layout = {margin: {t: 30}, hovermode: "closest", legend: {orientation: "h"},
      xaxis: {title: {text: state.cost}, type: state.logx ? "log" : "linear"},
      yaxis: {title: {text: `${state.metric} (${v.directions[state.metric]} is better)`}, type: state.logy ? "log" : "linear"}};
    const missing = p.n.filter(n => n === 0).length;
    document.getElementById("shown").textContent = `${shown.length} of ${v.n_points} points shown; ` +
      `Pareto front: ${front.length} points` + (missing ? `; ${missing} points have no finished run` : "") +
      (Object.keys(v.constant).length ? `. Every point shares: ${Object.entries(v.constant).map(([k, x]) => k + "=" + x).join(", ")}` : "");
    return finish(Plotly.react(plot, traces, layout), started);
  }

  // The metric's floor (exact samples against the reference), per dataset of the shown points.
  function floorTraces(v, shown, cost) {
    const m = v.points.metric[state.metric];
    if (!m.floor || !shown.length) return [];
    const byDataset = new Map();
    shown.forEach(i => { if (m.floor[i] === null) return; const d = value(v, "dataset", i) ?? v.constant.dataset;
      if (!byDataset.has(d)) byDataset.set(d, []); byDataset.get(d).push(i); });
    const xs = shown.map(i => cost[i]), x = [Math.min(...xs), Math.max(...xs)];
    const mean = list => list.reduce((s, q) => s + q, 0) / list.length;
    return [...byDataset].map(([dataset, members]) => {
      const floor = mean(members.map(i => m.floor[i]));
      const band = m.floor_low ? ` [${fmt(mean(members.map(i => m.floor_low[i])))}, ${fmt(mean(members.map(i => m.floor_high[i])))}]` : "";
      return {type: "scatter", mode: "lines", name: `floor: exact samples (${dataset})`, x, y: [floor, floor],
        line: {dash: "dash", color: "#444", width: 1}, hoverinfo: "text",
        text: `floor of ${state.metric} on ${dataset}: ${fmt(floor)}${band}`};
    });
  }

  // Marks the page ready after its first figure (readyMs: since the navigation started) and times each draw.
  function finish(promise, started) {
    return promise.then(() => {
      api.drawMs = performance.now() - started;
      api.draws = (api.draws || 0) + 1;
      if (!api.ready) { api.ready = true; api.readyMs = performance.now(); document.body.dataset.ready = "1"; }
    });
  }

  // A point's samples (its embedded thumbnail) and its row: parameters, statuses, costs, metrics, runs.
  function select(i) {
    const v = view(), p = v.points;
    state.clicked = i;
    const thumb = (v.thumbnails || {})[i];
    const parts = [thumb
      ? `<p><img id="thumbnail" data-point="${i}" data-run="${esc(thumb.run)}" src="${thumb.uri}" alt="samples of ${esc(thumb.run)}"><br>` +
        `<span class="note">samples of run ${esc(thumb.run)}</span></p>`
      : `<p class="note" id="no-thumbnail">No samples embedded for this point (the page embeds, per score source and preset, ` +
        `its largest-NFE and its best point); <code>diffsweep extract RUN_ID</code> gets any run's.</p>`];
    // metrics and costs first, then the parameters that apply (a knob of another family is left out)
    const rows = v.metrics.map(name => { const m = p.metric[name];
      return [name, `${fmt(m.mean[i])} ${intervalText(v, m, i)}` +
        (m.floor && m.floor[i] !== null ? `, floor ${fmt(m.floor[i])}` : "")]; });
    rows.push(...v.costs.map(c => [c + " (mean)", fmt(p.cost[c][i])]), [`replicates finished (n: ${v.replicates.join(", ")})`, p.n[i]],
      ["runs", p.runs[i]],
      ...Object.entries(p.statuses).filter(([, counts]) => counts[i]).map(([status, counts]) => ["status " + status, counts[i]]),
      ...Object.keys(v.filters).map(column => [column, value(v, column, i)]).filter(([, x]) => x !== "–"));
    const ids = runsOf(i);
    rows.push(["run ids", [...new Set(ids)].slice(0, 20).join(" ") + (new Set(ids).size > 20 ? " ..." : "")]);
    parts.push(`<table class="kv" id="row">${rows.map(([k, x]) => `<tr><td>${esc(k)}</td><td>${esc(x)}</td></tr>`).join("")}</table>`,
      `<p><button id="set-a">set as A</button> <button id="set-b">set as B</button></p>`);
    const detail = document.getElementById("detail");
    detail.innerHTML = parts.join("");
    detail.querySelector("#set-a").onclick = () => { state.a = i; showComparison(); };
    detail.querySelector("#set-b").onclick = () => { state.b = i; showComparison(); };
  }

  // Paired differences a - b of every metric over the replicates (seeds; seeds and measurements) both
  // finished: mean and t interval; one shared replicate: the two runs' sampling intervals as independent.
  function compare(a, b) {
    const v = view(), r = v.runs, p = v.points;
    const keysOf = i => new Map(r.key.slice(p.first[i], p.first[i] + p.n[i]).map((k, q) => [k, p.first[i] + q]));
    const ka = keysOf(a), kb = keysOf(b), out = {};
    for (const name of v.metrics) {
      const pairs = [...ka].filter(([k]) => kb.has(k)).map(([k, q]) => [q, kb.get(k)])
        .filter(([q, s]) => r.values[name][q] !== null && r.values[name][s] !== null);
      const d = pairs.map(([q, s]) => r.values[name][q] - r.values[name][s]);
      const n = d.length, mean = n ? d.reduce((s, x) => s + x, 0) / n : null;
      let half = null, method = "";
      if (n >= 2) {
        const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
        half = DATA.t_quantile[n - 1] * sd / Math.sqrt(n); method = "paired t";
      } else if (n === 1 && r.se[name]) {
        const [q, s] = pairs[0];
        if (r.se[name][q] !== null && r.se[name][s] !== null) {
          half = DATA.z * Math.hypot(r.se[name][q], r.se[name][s]); method = "sampling, independent";
        }
      }
      out[name] = {n, mean, low: half === null ? null : mean - half, high: half === null ? null : mean + half, method,
                   differs: half !== null && (mean - half > 0 || mean + half < 0)};
    }
    return out;
  }

  function label(i) {
    const v = view();
    return v.main_filters.map(c => `${c}=${value(v, c, i)}`).join(", ");
  }

  function showComparison() {
    const box = document.getElementById("compare");
    if (state.a === null || state.b === null) {
      box.innerHTML = `<p class="note">A: ${state.a === null ? "–" : esc(label(state.a))}; B: ${state.b === null ? "–" : esc(label(state.b))}</p>`;
      return;
    }
    const result = compare(state.a, state.b);
    const rows = Object.entries(result).map(([name, c]) => `<tr><td>${esc(name)}</td><td>${c.n}</td><td>${fmt(c.mean)}</td>` +
      `<td>${c.low === null ? "no interval" : `[${fmt(c.low)}, ${fmt(c.high)}]`}</td><td>${c.method}</td><td>${c.differs ? "yes" : "no"}</td></tr>`);
    box.innerHTML = `<p>A: ${esc(label(state.a))}<br>B: ${esc(label(state.b))}</p><table class="compare" id="comparison">` +
      `<tr><th>metric</th><th>n pairs</th><th>A - B</th><th>${Math.round(DATA.level * 100)}% interval</th><th>interval</th>` +
      `<th>differs</th></tr>${rows.join("")}</table>`;
  }

  // The run ids of point i's finished replicates, in replicate order.
  function runsOf(i) {
    const v = view();
    return v.runs.run_id.slice(v.points.first[i], v.points.first[i] + v.points.n[i]);
  }

  // Where point i is drawn, in viewport pixels (for a test's click): from the axes' own mapping.
  function pixelOf(i) {
    const v = view(), full = plot._fullLayout, xa = full.xaxis, ya = full.yaxis, box = plot.getBoundingClientRect();
    return {x: box.left + xa._offset + xa.l2p(xa.c2l(v.points.cost[state.cost][i])),
            y: box.top + ya._offset + ya.l2p(ya.c2l(v.points.metric[state.metric].mean[i]))};
  }

  if (!DATA.views.length) {
    document.getElementById("shown").textContent = "No finished runs.";
    api.ready = true; document.body.dataset.ready = "1";
    return;
  }
  reset();
  controls();
  draw().then(() => plot.on("plotly_click", event => {
    const point = event.points.find(q => q.customdata !== undefined);
    if (point) select(point.customdata);
  }));
})();
