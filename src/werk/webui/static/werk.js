// Werk web UI: confirmations, row selection, and the live chart polled from /stats.
// Plain JavaScript, no library; every page works without it, except the live chart.
"use strict";

(function () {
  // Destructive buttons ask first.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // Row selection: "select all" boxes and buttons that need a selection.
  document.querySelectorAll("form.bulk").forEach(function (form) {
    const boxes = Array.from(form.querySelectorAll("input[name=jid]"));
    const all = form.querySelector("input.select-all");
    const count = form.querySelector(".selected-count");
    const needy = form.querySelectorAll("button.needs-selection");
    function refresh() {
      const n = boxes.filter(function (b) { return b.checked; }).length;
      needy.forEach(function (b) { b.disabled = n === 0; });
      if (count) { count.textContent = n ? n + " selected" : ""; }
      if (all) {
        all.checked = n > 0 && n === boxes.length;
        all.indeterminate = n > 0 && n < boxes.length;
      }
    }
    if (all) {
      all.addEventListener("change", function () {
        boxes.forEach(function (b) { b.checked = all.checked; });
        refresh();
      });
    }
    boxes.forEach(function (b) { b.addEventListener("change", refresh); });
    refresh();
  });

  const chart = document.getElementById("live-chart");
  if (!chart) { return; }

  const MAX_POINTS = 100;
  const W = 800, H = 180, PAD = 4;
  const slider = document.getElementById("interval");
  const shown = document.getElementById("interval-value");
  const beacon = document.querySelector(".beacon");
  const top = document.getElementById("live-top");
  const lines = {
    processed: chart.querySelector(".line.processed"),
    failed: chart.querySelector(".line.failed"),
  };
  const series = { processed: [], failed: [] };
  let last = null;
  let timer = null;
  let seconds = Math.min(20, Math.max(2, Math.round((Number(localStorage.timeInterval) || 5000) / 1000)));
  slider.value = String(seconds);
  shown.textContent = String(seconds);

  function draw() {
    const peak = Math.max(1, ...series.processed, ...series.failed);
    const step = (W - 2 * PAD) / (MAX_POINTS - 1);
    for (const key of ["processed", "failed"]) {
      const values = series[key];
      const offset = MAX_POINTS - values.length;
      lines[key].setAttribute("points", values.map(function (v, i) {
        const x = PAD + (offset + i) * step;
        const y = H - PAD - (v / peak) * (H - 2 * PAD);
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" "));
    }
    top.textContent = peak.toLocaleString();
  }

  function updateSummary(stats) {
    const f = stats.faktory;
    const values = {
      processed: f.total_processed, failed: f.total_failures, busy: f.sets.working,
      enqueued: f.total_enqueued, retries: f.sets.retries, scheduled: f.sets.scheduled,
      dead: f.sets.dead,
    };
    for (const [key, value] of Object.entries(values)) {
      const el = document.querySelector('[data-stat="' + key + '"]');
      if (el && typeof value === "number") { el.textContent = value.toLocaleString(); }
    }
  }

  async function poll() {
    try {
      const response = await fetch(chart.dataset.stats, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) { throw new Error(response.statusText); }
      const stats = await response.json();
      const now = { processed: stats.faktory.total_processed, failed: stats.faktory.total_failures };
      if (last !== null) {
        for (const key of ["processed", "failed"]) {
          series[key].push(Math.max(0, now[key] - last[key]));
          if (series[key].length > MAX_POINTS) { series[key].shift(); }
        }
        draw();
      }
      last = now;
      updateSummary(stats);
      beacon.classList.remove("down", "pulse");
      void beacon.offsetWidth; // restart the animation
      beacon.classList.add("pulse");
      chart.dataset.polls = String(Number(chart.dataset.polls || 0) + 1);
    } catch (err) {
      beacon.classList.add("down");
    }
  }

  function schedule() {
    if (timer !== null) { clearInterval(timer); }
    timer = setInterval(poll, seconds * 1000);
  }

  slider.addEventListener("input", function () {
    seconds = Number(slider.value);
    shown.textContent = String(seconds);
    localStorage.timeInterval = String(seconds * 1000);
    schedule();
  });

  poll();
  schedule();
})();
