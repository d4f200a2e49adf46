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

function scatter() {
  const canvas = document.getElementById("plot");
  const source = document.getElementById("plot-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const colour = colours(data.points);
  // The winner, drawn again on top: a large ring, named in its tooltip.
  const best = data.points.filter((p) => p.i === data.best);
  const chart = new Chart(canvas, {
    type: "scatter",
    data: {
      datasets: [{
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
      }],
    },
    options: {
      animation: false,
      parsing: false,
      scales: {
        x: { type: data.x_log ? "logarithmic" : "linear", title: { display: true, text: data.x } },
        y: { type: data.y_log ? "logarithmic" : "linear", title: { display: true, text: data.y } },
      },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (ctx) => `${ctx.datasetIndex === 1 ? "best " : ""}#${ctx.raw.i}: ${ctx.raw.label}` } },
      },
      onClick: (e, items) => {
        if (items.length) location.href = `/runs/${canvas.dataset.run}/tasks/${items[0].element.$context.raw.i}`;
      },
    },
  });
  // What was drawn, for people who script against the page and for the tests.
  canvas.dataset.points = String(chart.data.datasets[0].data.length);
  canvas.dataset.xScale = chart.scales.x.type;
  canvas.dataset.yScale = chart.scales.y.type;
  canvas.dataset.best = best.length ? String(best[0].i) : "";
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
        scales: { x: { type: data.log[k] ? "logarithmic" : "linear", title: { display: true, text: key } }, y: { title: { display: true, text: data.y } } },
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx) => `#${ctx.raw.i}: ${key}=${ctx.raw.x}, ${data.y}=${ctx.raw.y}` } } },
        onClick: (e, items) => {
          if (items.length) location.href = `/runs/${box.dataset.run}/tasks/${points[items[0].index].i}`;
        },
      },
    });
    canvas.dataset.key = key;
    canvas.dataset.xScale = chart.scales.x.type;
    canvas.dataset.points = String(chart.data.datasets[0].data.length);
  });
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
trend();
