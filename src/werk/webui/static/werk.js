// Werk web UI: confirmations, row selection, expandable args, live pages and the charts.
// Plain JavaScript; charts use the vendored uPlot. Every page works without script,
// except that the charts are not drawn (their numbers stay in the pages' tables).
"use strict";

(function () {
  const store = window.localStorage;
  function pollSeconds() {
    return Math.min(20, Math.max(2, Math.round((Number(store.timeInterval) || 5000) / 1000)));
  }

  // Destructive buttons ask first.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
    // Args cut to three lines open in place on a click (or Enter).
    const clamp = event.target.closest("code.clamp");
    if (clamp) { clamp.classList.toggle("open"); }
  });
  document.addEventListener("keydown", function (event) {
    const clamp = event.target.closest && event.target.closest("code.clamp");
    if (clamp && event.key === "Enter") { clamp.classList.toggle("open"); }
  });

  // Row selection: "select all" boxes and buttons that need a selection.
  function initBulk(root) {
    root.querySelectorAll("form.bulk").forEach(function (form) {
      const boxes = Array.from(form.querySelectorAll("input[name=jid]"));
      const all = form.querySelector("input.select-all");
      const count = form.querySelector(".selected-count");
      const needy = form.querySelectorAll("button.needs-selection");
      function refresh() {
        const n = boxes.filter(function (b) { return b.checked; }).length;
        needy.forEach(function (b) { b.disabled = n === 0; });
        if (count) {
          count.textContent = n ? (count.dataset.template || "{n} selected").replace("{n}", n) : "";
        }
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
  }
  initBulk(document);

  function updateSummary(values) {
    for (const [key, value] of Object.entries(values)) {
      const el = document.querySelector('[data-stat="' + key + '"]');
      if (el && value !== null && value !== undefined) { el.textContent = value; }
    }
  }

  // Live pages: the regions marked data-live are fetched again and swapped in place.
  const bar = document.getElementById("live-bar");
  if (bar) { startLive(bar); }

  function startLive(bar) {
    const toggle = document.getElementById("live-toggle");
    const state = bar.querySelector(".live-state");
    const beacon = bar.querySelector(".beacon");
    let paused = store.livePaused === "1";
    let refreshes = 0;

    function busy() {
      // Never pull the page from under the reader: not while jobs are ticked or a
      // field or expanded value in a live region has the focus.
      const regions = document.querySelectorAll("[data-live]");
      for (const region of regions) {
        if (region.querySelector("input[type=checkbox]:checked, code.clamp.open")) { return true; }
        if (region.contains(document.activeElement) && document.activeElement !== document.body) {
          return true;
        }
      }
      return false;
    }

    function show() {
      const held = !paused && busy();
      toggle.textContent = paused ? toggle.dataset.resume : toggle.dataset.pause;
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      state.textContent = paused ? bar.dataset.pausedLabel : held ? bar.dataset.holdLabel : bar.dataset.liveLabel;
      bar.classList.toggle("paused", paused || held);
    }

    async function refresh() {
      if (paused || document.hidden || busy()) { show(); return; }
      try {
        const response = await fetch(window.location.href, {
          credentials: "same-origin", cache: "no-store", headers: { "X-Werk-Live": "1" },
        });
        if (!response.ok) { throw new Error(response.statusText); }
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        if (paused || busy()) { show(); return; }
        document.querySelectorAll("[data-live]").forEach(function (region) {
          const fresh = region.id ? doc.getElementById(region.id) : null;
          if (fresh && fresh.innerHTML !== region.innerHTML) {
            region.innerHTML = fresh.innerHTML;
            initBulk(region);
          }
        });
        const values = {};
        doc.querySelectorAll("[data-stat]").forEach(function (el) { values[el.dataset.stat] = el.textContent; });
        updateSummary(values);
        refreshes += 1;
        bar.dataset.refreshes = String(refreshes);
        beacon.classList.remove("down", "pulse");
        void beacon.offsetWidth; // restart the animation
        beacon.classList.add("pulse");
      } catch (err) {
        beacon.classList.add("down");
      }
      show();
    }

    toggle.addEventListener("click", function () {
      paused = !paused;
      store.livePaused = paused ? "1" : "0";
      show();
      if (!paused) { refresh(); }
    });
    document.addEventListener("change", show);
    show();
    setInterval(refresh, pollSeconds() * 1000);
  }

  // Charts (uPlot, loaded on the pages that draw one).
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chartWidth(el) {
    return Math.max(200, Math.floor(el.getBoundingClientRect().width));
  }

  // With one point (the live chart's first, a single day) uPlot's time axis runs from it
  // to 1,000 days later (2026-2029); `pad` seconds either side keep the axis on it.
  function makeChart(el, series, data, timeFormat, pad) {
    const span = pad || 60;
    if (typeof uPlot === "undefined") { return null; }
    const plot = new uPlot({
      width: chartWidth(el),
      height: 200,
      series: [{ value: timeFormat }].concat(series),
      axes: [
        { stroke: css("--muted"), grid: { stroke: css("--line") } },
        { stroke: css("--muted"), grid: { stroke: css("--line") }, label: el.dataset.y, size: 60 },
      ],
      scales: { x: { time: true } },
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
    }, data, el);
    window.addEventListener("resize", function () {
      plot.setSize({ width: chartWidth(el), height: 200 });
    });
    el.uplot = plot; // for the browser tests
    plot.fitOne = function () {
      const x = plot.data[0];
      if (x.length === 1) { plot.setScale("x", { min: x[0] - span, max: x[0] + span }); }
    };
    plot.fitOne();
    return plot;
  }

  const PALETTE = ["#2f6fde", "#c0362c", "#1a7f4b", "#b26a00", "#7a4fd0", "#0f8b8d",
    "#d14f8f", "#5b6b7f", "#8a6d00", "#3f8f3f"];

  function lines(el) {
    return [
      { label: el.dataset.processed, stroke: css("--processed"), width: 2, fill: "rgba(47,111,222,.10)" },
      { label: el.dataset.failed, stroke: css("--failed"), width: 2, dash: [6, 4],
        points: { show: true, size: 5 } },
    ];
  }

  window.addEventListener("load", function () {
    const history = document.getElementById("history-chart");
    if (history) {
      const d = JSON.parse(history.dataset.series);
      makeChart(history, lines(history), [d.x, d.processed, d.failed], "{YYYY}-{MM}-{DD}", 86400);
    }
    const metrics = document.getElementById("metrics-chart");
    if (metrics) {
      const d = JSON.parse(metrics.dataset.series);
      const names = Object.keys(d.types);
      const series = names.map(function (name, i) {
        return { label: name, stroke: PALETTE[i % PALETTE.length], width: 2 };
      });
      makeChart(metrics, series, [d.x].concat(names.map(function (n) { return d.types[n]; })),
        "{HH}:{mm}");
    }
    const type = document.getElementById("type-chart");
    if (type) {
      const d = JSON.parse(type.dataset.series);
      makeChart(type, lines(type), [d.x, d.processed, d.failed], "{HH}:{mm}");
    }
    const live = document.getElementById("live-chart");
    if (live) { startLiveChart(live); }
  });

  function startLiveChart(el) {
    const MAX_POINTS = 100;
    const slider = document.getElementById("interval");
    const shown = document.getElementById("interval-value");
    const beacon = document.querySelector("#live .beacon");
    // Until the first poll answers, one zero point at the page's load time: with no data
    // the time axis had no range at all (uPlot drew ticks years away).
    const data = [[Date.now() / 1000], [0], [0]];
    const plot = makeChart(el, lines(el), data, "{HH}:{mm}:{ss}");
    let last = null;
    let timer = null;
    let seconds = pollSeconds();
    slider.value = String(seconds);
    shown.textContent = String(seconds);

    async function poll() {
      try {
        const response = await fetch(el.dataset.stats, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) { throw new Error(response.statusText); }
        const stats = await response.json();
        const f = stats.faktory;
        const now = { processed: f.total_processed, failed: f.total_failures };
        if (last === null) { data.forEach(function (s) { s.length = 0; }); } // the load-time point
        // The first poll draws a zero point, so the axes show from the start.
        data[0].push(Date.now() / 1000);
        data[1].push(last === null ? 0 : Math.max(0, now.processed - last.processed));
        data[2].push(last === null ? 0 : Math.max(0, now.failed - last.failed));
        if (data[0].length > MAX_POINTS) { data.forEach(function (s) { s.shift(); }); }
        if (plot) { plot.setData(data); plot.fitOne(); }
        last = now;
        const counts = {
          processed: f.total_processed, failed: f.total_failures, busy: f.sets.working,
          enqueued: f.total_enqueued, retries: f.sets.retries, scheduled: f.sets.scheduled,
          dead: f.sets.dead,
        };
        for (const key of Object.keys(counts)) { counts[key] = Number(counts[key]).toLocaleString("en-US"); }
        updateSummary(counts);
        beacon.classList.remove("down", "pulse");
        void beacon.offsetWidth; // restart the animation
        beacon.classList.add("pulse");
        el.dataset.polls = String(Number(el.dataset.polls || 0) + 1);
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
      store.timeInterval = String(seconds * 1000);
      schedule();
    });

    poll();
    schedule();
  }
})();
