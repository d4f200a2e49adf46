// jobrun ui: what needs a script on its pages. Everything else works without one.
// A run page redraws itself from /api/runs/RUN/live until the run ends; a task page follows
// its log; the results and trend pages draw their plots with the vendored Chart.js.
"use strict";

const POLL_MS = 2000;

function every(ms, step) {
  let stop = false;
  const tick = async () => {
    if (stop) return;
    try { stop = (await step()) === false; } catch (e) { /* the next tick tries again */ }
    if (!stop) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}

function liveRun() {
  const grid = document.getElementById("grid");
  if (!grid) return;
  const run = grid.dataset.run;
  grid.addEventListener("click", (e) => {
    const cell = e.target.closest("i.t");
    if (cell && cell.title !== "") location.href = `/runs/${run}/tasks/${cell.title}`;
  });
  if (document.getElementById("run").dataset.finished === "true") return;
  every(POLL_MS, async () => {
    const r = await fetch(`/api/runs/${run}/live`, { credentials: "same-origin" });
    if (!r.ok) return true;
    const live = await r.json();
    const cells = grid.children;
    for (let i = 0; i < live.cells.length && i < cells.length; i++) {
      const want = "t " + live.cells[i];
      if (cells[i].className !== want) cells[i].className = want;
    }
    const badge = document.querySelector("#run-state .state");
    badge.textContent = live.state;
    badge.dataset.state = live.state;
    badge.className = "state st-" + live.state;
    document.getElementById("counts").textContent = live.counts;
    document.getElementById("cost").textContent = live.cost;
    document.getElementById("eta").textContent = live.eta;
    const going = live.state === "running" || live.state === "cancelling";
    if (!going) {
      document.getElementById("run").dataset.finished = "true";
      const cancel = document.getElementById("cancel");
      if (cancel) cancel.closest("form").remove();
    }
    return going;
  });
}

function followLog() {
  const log = document.getElementById("log");
  if (!log || log.dataset.follow !== "true") return;
  every(POLL_MS, async () => {
    const r = await fetch(`/api/runs/${log.dataset.run}/tasks/${log.dataset.index}/log`, { credentials: "same-origin" });
    if (!r.ok) return true;
    const atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
    log.textContent = await r.text();
    if (atEnd) window.scrollTo(0, document.body.scrollHeight);
    const state = r.headers.get("x-task-state");
    return state === "queued" || state === "running";
  });
}

const PALETTE = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000"];

function colours(points) {
  const values = points.map((p) => p.c);
  const numbers = values.every((v) => typeof v === "number");
  if (values.every((v) => v === null)) return { of: () => PALETTE[0], legend: [] };
  // A key with few distinct values (seed = 1, 2, 3) is a category: each value its colour and
  // its line in the legend, not a gradient whose ends alone are named.
  const distinct = new Set(values.map(String));
  if (numbers && distinct.size > PALETTE.length) {
    const lo = Math.min(...values), hi = Math.max(...values);
    const of = (v) => {
      const t = hi === lo ? 0.5 : (v - lo) / (hi - lo);
      return `hsl(${240 - 240 * t}, 70%, 45%)`;
    };
    return { of, legend: [[of(lo), String(lo)], [of(hi), String(hi)]] };
  }
  const names = [...distinct].sort((a, b) => (numbers ? Number(a) - Number(b) : a.localeCompare(b)));
  const of = (v) => PALETTE[names.indexOf(String(v)) % PALETTE.length];
  return { of, legend: names.map((n) => [of(n), n]) };
}

// A Chart.js scale for an axis as the server chose it: linear, logarithmic, or categories
// (drawn at 0, 1, 2 … and named by their values).
function scaleOf(axis, title) {
  const named = { display: true, text: title };
  if (axis.kind === "category") {
    return {
      type: "linear", min: -0.5, max: axis.names.length - 0.5, title: named,
      ticks: { stepSize: 1, autoSkip: false, callback: (v) => (Number.isInteger(v) ? axis.names[v] ?? "" : "") },
    };
  }
  return { type: axis.kind === "logarithmic" ? "logarithmic" : "linear", title: named };
}

function shownValue(axis, v) {
  return axis.kind === "category" ? axis.names[v] : v;
}

// With a group: each configuration's mean drawn with a bar of ± one standard deviation.
const errorBars = {
  id: "errorBars",
  afterDatasetsDraw(chart) {
    const at = chart.data.datasets.findIndex((d) => d.errorBars);
    if (at < 0) return;
    const y = chart.scales.y, ctx = chart.ctx;
    let drawn = 0;
    ctx.save();
    ctx.strokeStyle = "#222";
    ctx.lineWidth = 1.5;
    chart.getDatasetMeta(at).data.forEach((el, k) => {
      const p = chart.data.datasets[at].data[k];
      if (!(p.sd > 0)) return;
      const low = y.type === "logarithmic" && p.y - p.sd <= 0 ? y.min : p.y - p.sd;
      const top = y.getPixelForValue(p.y + p.sd), bottom = y.getPixelForValue(low);
      ctx.beginPath();
      ctx.moveTo(el.x, top); ctx.lineTo(el.x, bottom);
      ctx.moveTo(el.x - 4, top); ctx.lineTo(el.x + 4, top);
      ctx.moveTo(el.x - 4, bottom); ctx.lineTo(el.x + 4, bottom);
      ctx.stroke();
      drawn++;
    });
    ctx.restore();
    chart.canvas.dataset.errorBars = String(drawn);
  },
};

function scatter() {
  const canvas = document.getElementById("plot");
  const source = document.getElementById("plot-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const colour = colours(data.points);
  // The winner, drawn again on top: a large ring, named in its tooltip.
  const best = data.points.filter((p) => p.i === data.best);
  const datasets = [{
    label: `${data.y} against ${data.x}`,
    data: data.points,
    pointBackgroundColor: data.points.map((p) => colour.of(p.c)),
    pointRadius: data.points.length > 2000 ? 2 : 4,
  }, {
    label: "best",
    data: best,
    pointStyle: "circle",
    pointRadius: 10,
    borderWidth: 3,
    borderColor: "#d62728",
    backgroundColor: "rgba(0,0,0,0)",
  }];
  if (data.means) {
    datasets.push({ label: "mean ± sd", data: data.means, errorBars: true, pointStyle: "rectRot", pointRadius: 6, backgroundColor: "#222" });
  }
  const chart = new Chart(canvas, {
    type: "scatter",
    data: { datasets },
    plugins: [errorBars],
    options: {
      animation: false,
      parsing: false,
      scales: { x: scaleOf(data.x_axis, data.x), y: scaleOf(data.y_axis, data.y) },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (ctx) => {
              const p = ctx.raw;
              if (ctx.datasetIndex === 2) return `mean of ${p.n} from #${p.i}: ${p.y} ± ${p.sd} at ${data.x}=${shownValue(data.x_axis, p.x)}`;
              return `${ctx.datasetIndex === 1 ? "best " : ""}#${p.i}: ${p.label}`;
            },
          },
        },
      },
      onClick: (e, items) => {
        if (items.length) location.href = `/runs/${canvas.dataset.run}/tasks/${items[0].element.$context.raw.i}`;
      },
    },
  });
  // What was drawn, for people who script against the page and for the tests.
  canvas.dataset.points = String(chart.data.datasets[0].data.length);
  canvas.dataset.xScale = data.x_axis.kind === "category" ? "category" : chart.scales.x.type;
  canvas.dataset.yScale = chart.scales.y.type;
  canvas.dataset.best = best.length ? String(best[0].i) : "";
  canvas.dataset.means = String(data.means ? data.means.length : 0);
  if (colour.legend.length) {
    const p = document.createElement("p");
    p.className = "legend";
    p.textContent = data.color + ": ";
    for (const [c, name] of colour.legend) {
      const s = document.createElement("span");
      s.style.color = c;
      s.textContent = "● " + name + " ";
      p.appendChild(s);
    }
    canvas.parentElement.after(p);
  }
}

// One small scatter per swept configuration key, the same result key up the side: how the
// result moves with each key of a sweep over several.
function multiples() {
  const box = document.getElementById("multiples");
  const source = document.getElementById("multiples-data");
  if (!box || !source || typeof Chart === "undefined") return;
  // Drawn when scrolled to: below the plot and the table's top, they need not hold up the page.
  const seen = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    seen.disconnect();
    drawMultiples(box, JSON.parse(source.textContent));
  });
  seen.observe(box);
}

function drawMultiples(box, data) {
  data.keys.forEach((key, k) => {
    const axis = data.axes[k];
    // In x order: Chart.js takes unparsed data as sorted along x when it sets the scale.
    const points = data.points.filter((p) => p[2][k] !== null).map((p) => ({ x: p[2][k], y: p[1], i: p[0] }))
      .sort((a, b) => a.x - b.x);
    const cell = document.createElement("div");
    cell.className = "multiple";
    const canvas = document.createElement("canvas");
    cell.appendChild(canvas);
    box.appendChild(cell);
    const chart = new Chart(canvas, {
      type: "scatter",
      data: { datasets: [{ data: points, pointRadius: points.length > 2000 ? 1 : 3, pointBackgroundColor: PALETTE[0] }] },
      options: {
        animation: false,
        parsing: false,
        scales: { x: scaleOf(axis, key), y: { title: { display: true, text: data.y } } },
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx) => `#${ctx.raw.i}: ${key}=${shownValue(axis, ctx.raw.x)}, ${data.y}=${ctx.raw.y}` } } },
        onClick: (e, items) => {
          if (items.length) location.href = `/runs/${box.dataset.run}/tasks/${points[items[0].index].i}`;
        },
      },
    });
    canvas.dataset.key = key;
    canvas.dataset.xScale = axis.kind === "category" ? "category" : chart.scales.x.type;
    canvas.dataset.points = String(chart.data.datasets[0].data.length);
  });
}

// Parallel coordinates: an axis per swept key and the metric last (flipped when smaller is
// better, so the best is on top), one line per task. Dragging along an axis keeps the tasks
// in that range, here and in the table below; a click on an axis lets it go.
function parallel() {
  const box = document.getElementById("parallel");
  const source = document.getElementById("parallel-data");
  if (!box || !source) return;
  const data = JSON.parse(source.textContent);
  const canvas = box.querySelector("canvas");
  const out = document.getElementById("brushed");
  const n = data.keys.length, last = n - 1;
  const brushes = data.keys.map(() => null);
  const W = Math.max(canvas.clientWidth, 400), H = 320, pad = { l: 70, r: 70, t: 34, b: 22 };
  const ratio = window.devicePixelRatio || 1;
  canvas.width = W * ratio; canvas.height = H * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const ax = (k) => pad.l + (k * (W - pad.l - pad.r)) / Math.max(last, 1);
  const shown = (k, f) => (k === last && data.minimize ? 1 - f : f);
  const ay = (k, f) => H - pad.b - shown(k, f) * (H - pad.t - pad.b);
  const fractionAt = (k, y) => shown(k, Math.min(1, Math.max(0, (H - pad.b - y) / (H - pad.t - pad.b))));
  const kept = (line) => brushes.every((b, k) => !b || (line[1][k] >= b[0] && line[1][k] <= b[1]));
  const label = (v) => (typeof v === "number" ? Number(v.toPrecision(3)).toString() : v);
  // A logarithmic axis is named at each power of ten between its ends.
  const decades = (axis) => {
    if (axis.kind !== "logarithmic") return [];
    const span = Math.log(axis.hi) - Math.log(axis.lo);
    const out = [];
    for (let e = Math.ceil(Math.log10(axis.lo)); 10 ** e < axis.hi; e++) {
      const f = (Math.log(10 ** e) - Math.log(axis.lo)) / span;
      if (f > 0.06 && f < 0.94) out.push([f, label(10 ** e)]);
    }
    return out;
  };

  function draw() {
    ctx.clearRect(0, 0, W, H);
    const path = (line) => {
      ctx.beginPath();
      line[1].forEach((f, k) => (k ? ctx.lineTo(ax(k), ay(k, f)) : ctx.moveTo(ax(k), ay(k, f))));
      ctx.stroke();
    };
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(180,180,180,0.35)";
    data.lines.filter((l) => !kept(l)).forEach(path);
    ctx.strokeStyle = data.lines.length > 2000 ? "rgba(68,119,170,0.25)" : "rgba(68,119,170,0.6)";
    data.lines.filter(kept).forEach(path);
    const best = data.lines.find((l) => l[0] === data.best);
    if (best) { ctx.lineWidth = 3; ctx.strokeStyle = "#d62728"; path(best); }
    ctx.fillStyle = "#222"; ctx.strokeStyle = "#222"; ctx.lineWidth = 1;
    ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "center";
    data.keys.forEach((key, k) => {
      ctx.beginPath(); ctx.moveTo(ax(k), pad.t); ctx.lineTo(ax(k), H - pad.b); ctx.stroke();
      ctx.fillText(key.replace(/^config\./, ""), ax(k), pad.t - 18);
      const axis = data.axes[k];
      const ticks = axis.kind === "category"
        ? axis.names.map((name, i) => [axis.names.length > 1 ? i / (axis.names.length - 1) : 0.5, name]).filter((t, i, all) => all.length <= 12 || i % Math.ceil(all.length / 12) === 0)
        : [[0, label(axis.lo)], [1, label(axis.hi)], ...decades(axis)];
      ctx.textAlign = "right";
      for (const [f, name] of ticks) ctx.fillText(String(name), ax(k) - 4, ay(k, f) + 4);
      ctx.textAlign = "center";
      if (brushes[k]) {
        const [a, b] = brushes[k].map((f) => ay(k, f));
        ctx.fillStyle = "rgba(214,39,40,0.15)";
        ctx.fillRect(ax(k) - 8, Math.min(a, b), 16, Math.abs(a - b));
        ctx.fillStyle = "#222";
      }
    });
  }

  function apply() {
    const active = brushes.some((b) => b);
    const keep = new Set(data.lines.filter(kept).map((l) => String(l[0])));
    let rows = 0;
    document.querySelectorAll("#results tbody tr").forEach((tr) => {
      const hide = active && !keep.has(tr.dataset.i);
      tr.classList.toggle("out", hide);
      if (!hide) rows++;
    });
    canvas.dataset.lines = String(data.lines.length);
    canvas.dataset.kept = String(keep.size);
    out.textContent = active ? `${keep.size} of ${data.lines.length} tasks in range; ${rows} rows of this page shown` : "";
    draw();
  }

  // Keeps the tasks whose value on axis k lies from lo to hi (fractions of the axis, 0 at its
  // start); null lets the axis go. Also what the tests call.
  window.jobrunBrush = (k, lo, hi) => {
    brushes[k] = lo === null ? null : [Math.min(lo, hi), Math.max(lo, hi)];
    apply();
  };
  let drag = null;
  const axisNear = (x) => data.keys.findIndex((_, k) => Math.abs(x - ax(k)) < 16);
  const point = (e) => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  canvas.addEventListener("mousedown", (e) => {
    const [x, y] = point(e);
    const k = axisNear(x);
    if (k >= 0) drag = { k, from: fractionAt(k, y), moved: false };
  });
  canvas.addEventListener("mousemove", (e) => {
    if (!drag) return;
    drag.moved = true;
    window.jobrunBrush(drag.k, drag.from, fractionAt(drag.k, point(e)[1]));
  });
  window.addEventListener("mouseup", () => {
    if (drag && !drag.moved) window.jobrunBrush(drag.k, null);
    drag = null;
  });
  apply();
}

function trend() {
  const canvas = document.getElementById("trend");
  const source = document.getElementById("trend-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const points = data.points.filter((p) => p.value !== null);
  const chart = new Chart(canvas, {
    type: "line",
    data: {
      labels: points.map((p) => p.at),
      datasets: [{ label: data.key, data: points.map((p) => p.value), borderColor: PALETTE[0], tension: 0 }],
    },
    options: {
      animation: false,
      // From zero for values of one sign: a 1.4 % change does not look like a cliff (the page
      // says the change in % above the chart).
      scales: { y: { beginAtZero: points.every((p) => p.value >= 0) || points.every((p) => p.value <= 0) } },
      plugins: { tooltip: { callbacks: { afterLabel: (ctx) => `${points[ctx.dataIndex].run_id} (${points[ctx.dataIndex].from})` } } },
    },
  });
  canvas.dataset.points = String(chart.data.datasets[0].data.length);
  canvas.dataset.key = data.key;
  canvas.dataset.yMin = String(chart.scales.y.min);
}

liveRun();
followLog();
scatter();
multiples();
parallel();
trend();
