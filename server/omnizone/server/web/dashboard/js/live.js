// Live floor: zones coloured by how many shoppers are in them and one
// anonymous dot per shopper, fed by the server's snapshot WebSocket
// (/api/v1/stores/{store}/live). The page never queues: a snapshot that
// arrives before the previous one was painted replaces it (counted as
// "coalesced"), so a slow page shows the newest state, never an old one.
// A snapshot with other zones than the page draws means a layout saved in the
// editor runs now: the view loads the new plan and draws itself again.
//
// window.__liveStats exposes what the page measured (tests, the live-map
// benchmark): snapshots received and painted, render time, lag from the
// server building the snapshot to the frame after it was drawn.

import { liveUrl, session } from "./api.js";
import { blues, duration, el, fmt, inkOn, storeTime, svg } from "./dom.js";
import { floorPlan, setFigure } from "./floor.js";

const KEEP = 600; // samples kept per series
const DOT_RADIUS = 0.28;

function newStats() {
  const stats = {
    connected: false, hello: false, dots: 0, present: 0, atMs: null, lastSeq: 0, closes: [], stale: null, dataAgeMs: null,
    /** Start a fresh measurement: counters and series back to zero. */
    reset() {
      Object.assign(stats, {
        received: 0, painted: 0, coalesced: 0, seqGaps: 0, longTasks: 0, longTaskMs: 0,
        receivedAt: [], renderMs: [], lagMs: [], receiveLagMs: [], buildMs: [],
      });
    },
  };
  stats.reset();
  return stats;
}

function push(series, value) {
  series.push(value);
  if (series.length > KEEP) series.splice(0, series.length - KEEP);
}

export async function liveView(ctx) {
  const { info, image } = await ctx.plan();
  const plan = info.plan;
  const timezone = plan.store.timezone;
  const floor = floorPlan(plan, { image, testid: "live-floor" });
  const zoneIds = plan.zones.map((z) => z.id);
  const stats = newStats();
  window.__liveStats = stats;
  // Main-thread tasks over 50 ms: the page's own measure of falling behind.
  const longTasks = typeof PerformanceObserver === "function" && PerformanceObserver.supportedEntryTypes?.includes("longtask")
    ? new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) { stats.longTasks += 1; stats.longTaskMs += entry.duration; }
    })
    : null;
  longTasks?.observe({ entryTypes: ["longtask"] });

  const present = el("b", { "data-testid": "present" }, "–");
  const updated = el("b", { "data-testid": "updated" }, "–");
  const lag = el("b", { "data-testid": "lag" }, "–");
  const rate = el("b", { "data-testid": "rate" }, "–");
  const connection = el("span", { class: "pill", "data-testid": "connection" }, "connecting…");
  const age = el("b", { "data-testid": "data-age" }, "–");
  const freshness = el("p", { class: "muted small", "data-testid": "freshness" });
  const reconcile = el("p", { class: "muted small", "data-testid": "reconcile" });
  let intervalMs = 500;
  const zoneRows = new Map(plan.zones.map((z) => {
    const count = el("td", { class: "num", "data-zone-count": z.id }, "0");
    const bar = el("div", { class: "bar", style: "width:0" });
    return [z.id, { row: el("tr", {}, el("td", {}, z.name), count, el("td", { style: "width:40%" }, bar)), count, bar }];
  }));

  ctx.view.replaceChildren(
    el("h1", {}, "Live floor ", connection),
    el("div", { class: "stats" },
      el("div", { class: "stat" }, present, el("span", {}, "shoppers present")),
      el("div", { class: "stat" }, updated, el("span", {}, "store time of the data")),
      el("div", { class: "stat" }, age, el("span", {}, "since the last gateway data")),
      el("div", { class: "stat" }, rate, el("span", {}, "updates per second")),
      el("div", { class: "stat" }, lag, el("span", {}, "server → screen lag")),
    ),
    el("div", { class: "row" },
      el("div", { class: "grow", style: "flex:3" }, floor.svg,
        el("div", { class: "legend" },
          el("span", {}, el("i", { style: "background:#e63946" }), "shopper (localizer position)"),
          el("span", {}, el("i", { style: "background:#f4a261" }), "shopper (somewhere in the zone)"),
          el("span", {}, el("i", { class: "sq", style: "background:#1d3557" }), "gateway"),
          el("span", {}, el("i", { class: "diamond", style: "background:#9b5de5" }), "RFID reader"),
          el("span", {}, "Dots are anonymous: a per-server-process keyed hash, never a shopper id."),
        ),
        reconcile, freshness),
      el("div", { class: "grow card", style: "flex:1" },
        el("h2", {}, "Shoppers per zone"),
        el("table", { "data-testid": "zone-counts" },
          el("thead", {}, el("tr", {}, el("th", {}, "Zone"), el("th", { class: "num" }, "Now"), el("th", {}, ""))),
          el("tbody", {}, [...zoneRows.values()].map((r) => r.row))),
      ),
    ),
  );

  const dots = new Map(); // label -> circle
  let pending = null;
  let scheduled = false;

  function paint() {
    scheduled = false;
    const snap = pending;
    pending = null;
    if (!snap) return;
    const started = performance.now();
    let max = 5;
    for (const id of zoneIds) max = Math.max(max, snap.zones[id] || 0);
    for (const id of zoneIds) {
      const count = snap.zones[id] || 0;
      const t = count / max;
      const zone = floor.zones.get(id);
      zone.shape.setAttribute("fill", count ? blues(0.15 + 0.85 * t) : "#eef2f6");
      setFigure(zone, count ? String(count) : "");
      zone.figure.setAttribute("fill", inkOn(0.15 + 0.85 * t));
      zone.name.setAttribute("fill", count ? inkOn(0.15 + 0.85 * t) : "#1d3557");
      const row = zoneRows.get(id);
      row.count.textContent = String(count);
      row.bar.style.width = `${(100 * count) / max}%`;
    }
    const seen = new Set();
    for (const [label, x, y, , estimated] of snap.dots) {
      seen.add(label);
      let dot = dots.get(label);
      if (!dot) {
        dot = svg("circle", { r: DOT_RADIUS, cx: x, cy: y, "data-dot": label });
        floor.layers.dots.append(dot);
        dots.set(label, dot);
      } else {
        dot.setAttribute("cx", x);
        dot.setAttribute("cy", y);
      }
      dot.setAttribute("class", estimated ? "dot estimated" : "dot stand-in");
    }
    for (const [label, dot] of dots) {
      if (!seen.has(label)) { dot.remove(); dots.delete(label); }
    }
    const total = snap.dots.length;
    present.textContent = fmt(total);
    updated.textContent = snap.at_ms ? storeTime(snap.at_ms, timezone) : "no data yet";
    showFreshness(snap);
    reconcile.textContent = `${fmt(total)} dots, one per shopper, and the zone counts add up to the same ${fmt(total)}: `
      + "a shopper is counted in the zone of their open visit. "
      + (snap.outside
        ? `${fmt(snap.outside)} dot${snap.outside === 1 ? " is" : "s are"} drawn outside the zone counted: the position moves at once, the count follows after the ${plan.store.visits.exit_grace_s} s exit grace.`
        : "Every dot is inside the zone it is counted in.");
    const rendered = performance.now() - started;
    push(stats.renderMs, rendered);
    stats.painted += 1;
    stats.dots = dots.size;
    stats.present = total;
    stats.atMs = snap.at_ms;
    // The frame after this one starts once this one is on screen.
    requestAnimationFrame(() => {
      const ms = Date.now() - snap.built_ms;
      push(stats.lagMs, ms);
      lag.textContent = `${fmt(ms)} ms`;
    });
    const now = performance.now();
    const recent = stats.receivedAt.filter((t) => now - t <= 5000);
    if (recent.length > 1) rate.textContent = fmt((recent.length - 1) / ((recent[recent.length - 1] - recent[0]) / 1000), 1);
  }

  function showFreshness(snap) {
    stats.stale = snap.stale;
    stats.dataAgeMs = snap.data_age_ms;
    age.textContent = snap.data_age_ms === null ? "none since start" : duration(snap.data_age_ms / 1000);
    if (snap.stale) {
      connection.textContent = "stale";
      connection.className = "pill bad";
      freshness.textContent = snap.received_ms === null
        ? `Stale: no gateway data since the server started. The ${fmt(snap.dots.length)} shoppers shown are what was stored last${snap.at_ms ? ` (store time ${storeTime(snap.at_ms, timezone)})` : ""}, not who is in the store now.`
        : `Stale: no gateway data for ${duration(snap.data_age_ms / 1000)} (more than the store's ${snap.stale_after_ms / 1000} s device timeout). The figures are the last known state.`;
      freshness.className = "error small";
    } else {
      connection.textContent = `live · every ${intervalMs} ms`;
      connection.className = "pill ok";
      freshness.textContent = "";
      freshness.className = "muted small";
    }
  }

  function onSnapshot(snap) {
    // Other zones than the page draws: a layout was saved and runs now. Draw the new plan.
    const zones = Object.keys(snap.zones);
    if (zones.length !== zoneIds.length || zones.some((id) => !floor.zones.has(id))) {
      closedByUs = true;
      ctx.replan();
      return;
    }
    stats.received += 1;
    push(stats.receivedAt, performance.now());
    push(stats.receiveLagMs, Date.now() - snap.built_ms);
    push(stats.buildMs, snap.build_ms);
    if (stats.lastSeq && snap.seq > stats.lastSeq + 1) stats.seqGaps += snap.seq - stats.lastSeq - 1;
    stats.lastSeq = snap.seq;
    if (pending) stats.coalesced += 1;
    pending = snap;
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(paint);
    }
  }

  let socket = null;
  let closedByUs = false;
  let retryMs = 500;
  let retryTimer = null;

  function connect() {
    socket = new WebSocket(liveUrl(ctx.store));
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "auth", key: session.key }));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") onSnapshot(message);
      else if (message.type === "hello") {
        stats.hello = true;
        stats.connected = true;
        retryMs = 500;
        intervalMs = message.interval_ms;
        connection.textContent = "connected · waiting for data";
        connection.className = "pill warn";
      }
    });
    socket.addEventListener("close", (event) => {
      stats.connected = false;
      stats.closes.push({ code: event.code, reason: event.reason });
      if (closedByUs) return;
      if (event.code === 4401 || event.code === 4403) {
        connection.textContent = `refused: ${event.reason}`;
        connection.className = "pill bad";
        return;
      }
      connection.textContent = "reconnecting…";
      connection.className = "pill warn";
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10_000);
    });
  }

  connect();
  ctx.onLeave(() => {
    closedByUs = true;
    longTasks?.disconnect();
    clearTimeout(retryTimer);
    if (socket) socket.close(1000, "view closed");
  });
}
