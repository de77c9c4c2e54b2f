// Analytics views over a chosen time range, read from the server's analytics
// API (docs/analytics.md): presence heatmap, dwell distribution, footfall per
// hour, visits vs pass-bys, transitions and routes, funnel, campaigns. Each
// has a "Download CSV" link: the same table the API answers with format=csv.

import { api, download } from "./api.js";
import { blues, duration, el, fmt, heat, inkOn, msToZoned, pct, rangeFields, storeTime, svg } from "./dom.js";
import { floorPlan, legendStrip, setFigure } from "./floor.js";
import { captureView } from "./capture.js";

const RANGE_KEY = "omnizone.staff.range";
const DAY_MS = 86_400_000;

const VIEWS = {
  presence: { title: "Presence heatmap", apiViews: ["presence"], render: presenceView },
  dwell: { title: "Dwell time per zone", apiViews: ["dwell"], render: dwellView },
  footfall: { title: "Footfall per zone per hour", apiViews: ["footfall"], render: footfallView },
  visits: { title: "Visits vs pass-by", apiViews: ["visits"], render: visitsView },
  paths: { title: "Paths: transitions and routes", apiViews: ["transitions", "routes"], render: pathsView },
  funnel: { title: "Funnel", apiViews: ["funnel"], render: funnelView },
  campaigns: { title: "Campaign performance", apiViews: ["campaigns"], render: campaignsPerformance },
  capture: { title: "Capture rate: entrants vs passers-by", apiViews: ["capture"], render: captureView },
};

function savedRange(store) {
  const saved = JSON.parse(sessionStorage.getItem(RANGE_KEY) || "null");
  return saved && saved.store === store ? saved : null;
}

function query(range, extra = {}) {
  const params = new URLSearchParams();
  if (range) {
    params.set("from_ms", String(range.from_ms));
    params.set("to_ms", String(range.to_ms));
  }
  for (const [k, v] of Object.entries(extra)) params.set(k, String(v));
  const text = params.toString();
  return text ? `?${text}` : "";
}

export async function analyticsView(ctx, name) {
  const spec = VIEWS[name];
  if (!spec) throw new Error(`no analytics view ${name}`);
  const index = await api(`/stores/${ctx.store}/analytics`);
  const timezone = index.timezone;
  let range = savedRange(ctx.store);
  const effective = range || { from_ms: index.default_from_ms, to_ms: index.default_to_ms };

  const fromInput = el("input", { type: "datetime-local", "data-testid": "range-from", value: msToZoned(effective.from_ms, timezone) });
  const toInput = el("input", { type: "datetime-local", "data-testid": "range-to", value: msToZoned(effective.to_ms, timezone) });
  const problem = el("span", { class: "error", "data-testid": "range-error" });

  function choose(next) {
    if (next) sessionStorage.setItem(RANGE_KEY, JSON.stringify({ store: ctx.store, ...next }));
    else sessionStorage.removeItem(RANGE_KEY);
    analyticsView(ctx, name).catch((error) => ctx.say(error.message));
  }

  function preset(days) {
    const end = index.last_event_ms === null ? index.default_to_ms : index.last_event_ms + 1;
    const start = days === null ? (index.first_event_ms ?? end - DAY_MS) : end - days * DAY_MS;
    return { from_ms: Math.max(start, end - index.max_range_days * DAY_MS), to_ms: end };
  }

  const csvLinks = spec.apiViews.map((apiView) => el("a", {
    href: `/api/v1/stores/${ctx.store}/analytics/${apiView}${query(range, { format: "csv" })}`,
    class: "button secondary",
    "data-testid": `csv-${apiView}`,
    download: `${ctx.store}-${apiView}.csv`,
    onclick: (event) => {
      event.preventDefault();
      download(`/stores/${ctx.store}/analytics/${apiView}${query(range, { format: "csv" })}`, `${ctx.store}-${apiView}.csv`)
        .catch((error) => ctx.say(`Download failed: ${error.message}`));
    },
  }, spec.apiViews.length > 1 ? `Download CSV (${apiView})` : "Download CSV"));

  const toolbar = el("div", { class: "toolbar card", "data-testid": "range" },
    ...rangeFields(fromInput, toInput, timezone, problem, "range-apply", choose),
    el("button", { class: "secondary", onclick: () => choose(null) }, "Last 24 h of data"),
    el("button", { class: "secondary", onclick: () => choose(preset(7)) }, "Last 7 days"),
    el("button", { class: "secondary", onclick: () => choose(preset(null)) }, "All data"),
    problem,
    el("span", { style: "flex:1" }),
    ...csvLinks,
  );

  const bodies = await Promise.all(
    spec.apiViews.map((apiView) => api(`/stores/${ctx.store}/analytics/${apiView}${query(range, apiView === "routes" ? { limit: 10 } : {})}`)),
  );
  const first = bodies[0];
  const content = el("div", { "data-testid": `view-${name}` });
  // Every view applies its range, the campaigns' too (decisions, receipts,
  // redemptions and purchases counted within it): the label says which.
  ctx.view.replaceChildren(
    el("h1", {}, spec.title),
    el("p", { class: "muted", "data-testid": "range-label" },
      `${storeTime(first.from_ms, timezone)} – ${storeTime(first.to_ms, timezone)} · `,
      index.last_event_ms === null ? "no data stored yet" : `data from ${storeTime(index.first_event_ms, timezone)} to ${storeTime(index.last_event_ms, timezone)}`),
    toolbar,
    content,
  );
  await spec.render(ctx, content, ...bodies);
}

// -- generic charts --------------------------------------------------------------------

function hourLabel(ms, timezone, previous) {
  const hour = storeTime(ms, timezone, false).slice(0, 2);
  const day = new Intl.DateTimeFormat("en-GB", { timeZone: timezone, day: "2-digit", month: "short" }).format(new Date(ms));
  const prevDay = previous === null ? null : new Intl.DateTimeFormat("en-GB", { timeZone: timezone, day: "2-digit", month: "short" }).format(new Date(previous));
  return { hour, day: day !== prevDay ? day : null };
}

/** Rows × columns of coloured cells, values written when there is room. */
function heatGrid({ rows, columns, matrix, scale = heat, format = (v) => fmt(v), title = (v) => fmt(v), testid, rowTotals = null, rotate = false }) {
  const labelW = 130, cellW = Math.max(10, Math.min(46, 900 / Math.max(1, columns.length))), cellH = 24;
  const headH = rotate ? 96 : 34;
  const totalW = (rowTotals ? 60 : 0) + (rotate ? 70 : 0);
  const width = labelW + cellW * columns.length + totalW + 4;
  const height = headH + cellH * rows.length + 4;
  let max = 0;
  for (const row of matrix) for (const v of row) max = Math.max(max, v);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, "data-testid": testid, style: `max-width:${width}px` });
  columns.forEach((c, j) => {
    const x = labelW + j * cellW + cellW / 2;
    if (c.top) root.append(svg("text", { x, y: 12, "text-anchor": "middle", "font-weight": 600, text: c.top }));
    if (rotate) {
      root.append(svg("text", { x: x - 3, y: headH - 6, transform: `rotate(-40 ${x - 3} ${headH - 6})`, text: c.label }));
    } else if (c.label && (cellW >= 18 || j % Math.ceil(18 / cellW) === 0)) {
      root.append(svg("text", { x, y: 28, "text-anchor": "middle", text: c.label }));
    }
  });
  if (rowTotals) root.append(svg("text", { x: labelW + cellW * columns.length + 8, y: headH - 6, text: "total" }));
  rows.forEach((r, i) => {
    const y = headH + i * cellH;
    root.append(svg("text", { x: labelW - 6, y: y + cellH / 2 + 4, "text-anchor": "end", text: r }));
    matrix[i].forEach((v, j) => {
      const t = max ? v / max : 0;
      const cell = svg("rect", {
        x: labelW + j * cellW, y, width: cellW - 1, height: cellH - 1,
        fill: v ? scale(0.08 + 0.92 * t) : "#f4f6f8",
      });
      cell.append(svg("title", { text: `${r} · ${columns[j].title || columns[j].label}: ${title(v)}` }));
      root.append(cell);
      if (v && cellW >= 26) {
        root.append(svg("text", { x: labelW + j * cellW + cellW / 2, y: y + cellH / 2 + 4, "text-anchor": "middle", fill: inkOn(0.08 + 0.92 * t), "font-size": 10, text: format(v) }));
      }
    });
    if (rowTotals) root.append(svg("text", { x: labelW + cellW * columns.length + 8, y: y + cellH / 2 + 4, "font-weight": 600, text: format(rowTotals[i]) }));
  });
  return root;
}

function hourColumns(starts, timezone) {
  return starts.map((ms, j) => {
    const { hour, day } = hourLabel(ms, timezone, j ? starts[j - 1] : null);
    return { label: hour, top: day, title: storeTime(ms, timezone) };
  });
}

function barsTable({ rows, testid }) {
  // rows: [{ label, parts: [{ value, cls, title }], cells: [..] }], scaled to the largest total
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((s, p) => s + p.value, 0)));
  return rows.map((r) => el("tr", { "data-row": r.key || r.label },
    el("td", {}, r.label),
    el("td", { style: "width:45%" }, el("div", { style: "display:flex" },
      ...r.parts.map((p) => el("div", { class: `bar ${p.cls || ""}`, style: `width:${(100 * p.value) / max}%`, title: p.title })))),
    ...r.cells,
  ));
}

function table(headers, rows, testid) {
  return el("table", { "data-testid": testid },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : "" }, h.text ?? h)))),
    el("tbody", {}, rows));
}

// -- the views -------------------------------------------------------------------------

async function presenceView(ctx, content, body) {
  const { info, image } = await ctx.plan();
  const floor = floorPlan(info.plan, { image, gateways: false, testid: "presence-floor" });
  const byZone = new Map(body.zones.map((z) => [z.zone, z]));
  const max = Math.max(0, ...body.zones.map((z) => z.presence_s));
  for (const [id, shape] of floor.zones) {
    const value = byZone.get(id)?.presence_s || 0;
    const t = max ? value / max : 0;
    shape.shape.setAttribute("fill", value ? heat(0.08 + 0.92 * t) : "#eef2f6");
    setFigure(shape, value ? duration(value) : "");
    shape.figure.setAttribute("fill", inkOn(0.08 + 0.92 * t));
    shape.name.setAttribute("fill", inkOn(0.08 + 0.92 * t));
    shape.shape.querySelector("title").textContent = `${shape.zone.name}: ${fmt(value / 3600, 1)} shopper-hours`;
  }
  const total = body.zones.reduce((s, z) => s + z.presence_s, 0);
  content.append(
    el("div", { class: "row" },
      el("div", { class: "grow", style: "flex:3" }, floor.svg,
        el("div", { class: "legend" }, legendStrip(heat, duration(max), "of shopper time"))),
      el("div", { class: "grow card", style: "flex:1" },
        el("h2", {}, "Time spent"),
        el("p", { class: "muted small" }, `${fmt(total / 3600, 1)} shopper-hours in the store. The figure in a zone is the time shoppers spent there, summed over shoppers (two shoppers for ten minutes: 20 min).`),
        table(["Zone", { text: "shopper-hours", num: true }, { text: "share", num: true }],
          body.zones.map((z) => el("tr", {}, el("td", {}, z.name), el("td", { class: "num" }, fmt(z.presence_s / 3600, 2)), el("td", { class: "num" }, pct(total ? z.presence_s / total : null)))),
          "presence-table"))),
    el("h2", {}, "Presence by hour (shopper-minutes)"),
    el("div", { class: "card" }, heatGrid({
      rows: body.zones.map((z) => z.name),
      columns: hourColumns(body.buckets_ms, body.timezone),
      matrix: body.matrix.map((row) => row.map((v) => v / 60)),
      format: (v) => fmt(v), title: (v) => `${fmt(v, 1)} shopper-minutes`, testid: "presence-grid",
    })),
  );
}

async function dwellView(ctx, content, body) {
  const cards = body.zones.map((z) => {
    const w = 240, h = 140, left = 4, bottom = 46;
    const max = Math.max(1, ...z.counts);
    const barW = (w - left) / z.counts.length;
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${w} ${h}` });
    z.counts.forEach((count, k) => {
      const bh = ((h - bottom - 14) * count) / max;
      const bar = svg("rect", { x: left + k * barW + 1, y: h - bottom - bh, width: barW - 2, height: bh, fill: "#457b9d" });
      bar.append(svg("title", { text: `${body.labels[k]}: ${count} visits` }));
      chart.append(bar);
      if (count) chart.append(svg("text", { x: left + k * barW + barW / 2, y: h - bottom - bh - 2, "text-anchor": "middle", "font-size": 9, text: count }));
      const lx = left + k * barW + barW / 2 + 3, ly = h - bottom + 8;
      chart.append(svg("text", { x: lx, y: ly, "text-anchor": "end", "font-size": 9, transform: `rotate(-45 ${lx} ${ly})`, text: body.labels[k] }));
    });
    chart.append(svg("line", { class: "axis", x1: left, x2: w, y1: h - bottom, y2: h - bottom }));
    return el("div", { class: "card", "data-zone": z.zone },
      el("b", {}, z.name),
      el("div", { class: "muted small" }, `${fmt(z.visits)} visits · mean ${duration(z.mean_s)} · median ${duration(z.median_s)} · p90 ${duration(z.p90_s)}`),
      chart);
  });
  content.append(
    el("p", { class: "muted small" }, "Closed visits (pass-bys excluded) by how long they lasted, per zone."),
    el("div", { class: "multiples", "data-testid": "dwell-charts" }, cards),
    el("h2", {}, "Summary"),
    table(["Zone", { text: "visits", num: true }, { text: "mean", num: true }, { text: "median", num: true }, { text: "p90", num: true }],
      body.zones.map((z) => el("tr", {}, el("td", {}, z.name), el("td", { class: "num" }, fmt(z.visits)), el("td", { class: "num" }, duration(z.mean_s)), el("td", { class: "num" }, duration(z.median_s)), el("td", { class: "num" }, duration(z.p90_s)))),
      "dwell-table"),
  );
}

async function footfallView(ctx, content, body) {
  content.append(
    el("p", { class: "muted small" }, "Entries into each zone per hour: every stay that began in the hour (visits, pass-bys and stays still open)."),
    el("div", { class: "card" }, heatGrid({
      rows: body.zones.map((z) => z.name),
      columns: hourColumns(body.hours_ms, body.timezone),
      matrix: body.zones.map((z) => z.counts),
      scale: blues, testid: "footfall-grid", rowTotals: body.zones.map((z) => z.total),
      title: (v) => `${fmt(v)} entries`,
    })),
  );
}

async function visitsView(ctx, content, body) {
  content.append(
    el("p", { class: "muted small" }, `A stay shorter than ${fmt(body.min_presence_s)} s is a pass-by; longer, a visit.`),
    el("div", { class: "legend" }, el("span", {}, el("i", { class: "sq", style: "background:#457b9d" }), "visits"), el("span", {}, el("i", { class: "sq", style: "background:#a8dadc" }), "pass-bys")),
    table(["Zone", "", { text: "visits", num: true }, { text: "pass-bys", num: true }, { text: "visit rate", num: true }, { text: "mean dwell", num: true }, { text: "open now", num: true }],
      barsTable({
        rows: body.zones.map((z) => ({
          key: z.zone, label: z.name,
          parts: [{ value: z.visits, title: `${z.visits} visits` }, { value: z.pass_bys, cls: "alt", title: `${z.pass_bys} pass-bys` }],
          cells: [el("td", { class: "num" }, fmt(z.visits)), el("td", { class: "num" }, fmt(z.pass_bys)), el("td", { class: "num" }, pct(z.visit_rate)), el("td", { class: "num" }, duration(z.mean_dwell_s)), el("td", { class: "num" }, fmt(z.open_visits))],
        })),
      }),
      "visits-table"),
  );
}

async function pathsView(ctx, content, transitions, routes) {
  const names = new Map(transitions.zones.map((z, i) => [z, transitions.names[i]]));
  content.append(
    el("h2", {}, "Zone-to-zone transitions"),
    el("p", { class: "muted small" }, `${fmt(transitions.moves)} moves in ${fmt(transitions.trips)} store trips. Row: from; column: to. "Street" is entering or leaving the store.`),
    el("div", { class: "card" }, heatGrid({
      rows: transitions.names.map((n) => `from ${n}`),
      columns: transitions.names.map((n) => ({ label: `to ${n}`, title: `to ${n}` })),
      matrix: transitions.matrix, scale: blues, testid: "transitions-grid", rotate: true,
      title: (v) => `${fmt(v)} moves`,
    })),
    el("h2", {}, "Most common routes"),
    el("p", { class: "muted small" }, `${fmt(routes.trips)} trips, ${fmt(routes.distinct_routes)} distinct routes. A route is the zones visited in order (pass-bys left out).`),
    table(["#", "Route", { text: "trips", num: true }, { text: "share", num: true }, ""],
      routes.routes.map((r, i) => el("tr", {},
        el("td", {}, i + 1),
        el("td", {}, r.zones.length ? r.zones.map((z) => names.get(z) || z).join(" → ") : el("i", { class: "muted" }, "no visit (walked through)")),
        el("td", { class: "num" }, fmt(r.trips)),
        el("td", { class: "num" }, pct(r.share, 1)),
        el("td", { style: "width:25%" }, el("div", { class: "bar", style: `width:${100 * r.share}%` })))),
      "routes-table"),
  );
}

async function funnelView(ctx, content, body) {
  const first = body.steps[0]?.trips || 0;
  const tryOn = body.try_on_to_purchase;
  content.append(
    el("p", { class: "muted small" }, "Each step counts the store trips that reached it and every step before it."),
    table(["Step", "", { text: "trips", num: true }, { text: "shoppers", num: true }, { text: "of all trips", num: true }],
      body.steps.map((s) => el("tr", { "data-step": s.step },
        el("td", {}, s.label),
        el("td", { style: "width:45%" }, el("div", { class: "bar", style: `width:${first ? (100 * s.trips) / first : 0}%` })),
        el("td", { class: "num" }, fmt(s.trips)), el("td", { class: "num" }, fmt(s.shoppers)), el("td", { class: "num" }, pct(s.rate, 1)))),
      "funnel-table"),
    el("p", { class: "muted small" }, `${fmt(body.purchased_trips)} trips with a purchase, whatever came before.`),
    el("h2", {}, "Fitting room: try-on → purchase"),
    el("div", { class: "card", "data-testid": "try-on" },
      el("dl", { class: "kv" },
        el("dt", {}, "garments brought in"), el("dd", {}, fmt(tryOn.events)),
        el("dt", {}, "no located shopper in the room"), el("dd", {}, fmt(tryOn.unattributed)),
        el("dt", {}, "try-ons (trip × product)"), el("dd", {}, fmt(tryOn.try_ons)),
        el("dt", {}, "bought afterwards"), el("dd", {}, fmt(tryOn.purchased)),
        el("dt", {}, "shoppers who tried on"), el("dd", {}, fmt(tryOn.shoppers)),
        el("dt", {}, "conversion"), el("dd", {}, el("b", {}, pct(tryOn.rate, 1))))),
  );
}

async function campaignsPerformance(ctx, content, body) {
  // The lift in the server's words; the figures behind it in the tooltip.
  const lift = (c) => {
    const l = c.lift;
    const points = (v) => `${v >= 0 ? "+" : ""}${(v * 100).toFixed(1)} pt`;
    const title = l && l.absolute !== null && l.absolute !== undefined
      ? `offer group ${pct(l.treated_rate, 1)} bought (${fmt(c.treated_converted)} of ${fmt(c.treated_shoppers)}) vs holdout ${pct(l.control_rate, 1)} (${fmt(c.control_converted)} of ${fmt(c.control_shoppers)}); ${points(l.absolute)}, ${Math.round(l.confidence * 100)} % interval ${points(l.absolute_low)} to ${points(l.absolute_high)} (${l.method})`
      : `offer group ${fmt(c.treated_shoppers)} shoppers, holdout ${fmt(c.control_shoppers)}`;
    const sure = /^likely/.test(c.lift_words);
    return el("span", { title, class: sure ? "" : "muted", "data-testid": "lift-words" }, c.lift_words);
  };
  const why = (c) => el("div", { class: "small", "data-testid": "not-sent" },
    c.held_back_now ? el("div", { class: "pill warn", "data-testid": "held-back-now" }, c.held_back_now) : "",
    c.not_sent ? el("div", {}, "Not sent: ", c.not_sent) : el("span", { class: "muted" }, c.triggered ? "every decision sent or held out" : "no decision yet"),
    // follow-ups after the visit (docs/offers.md): what waits, and where the later purchases were
    c.follow_up ? el("div", { class: "muted", "data-testid": "follow-up" },
      `after the visit: ${fmt(c.follow_up.scheduled)} scheduled, ${fmt(c.follow_up.pending)} waiting; bought later ${fmt(c.follow_up.converted_online)} online, ${fmt(c.follow_up.converted_in_store)} in store`) : "");
  content.append(
    el("p", { class: "muted small" }, "Lift compares shoppers who got the offer with the holdout who would have got it: how many more of every 100 bought. Hover a lift for the figures."),
    table(["Campaign", "Status", { text: "triggered", num: true }, { text: "sent", num: true }, { text: "held out", num: true }, { text: "delivered", num: true }, { text: "opened", num: true }, { text: "redeemed", num: true }, "Sent → opened → redeemed", "Why not sent", "Lift vs holdout"],
      body.campaigns.map((c) => el("tr", { "data-campaign": c.campaign_id },
        el("td", {}, el("b", {}, c.name), el("div", { class: "muted small" }, c.campaign_id)),
        el("td", {}, el("span", { class: `pill ${c.status === "active" ? "ok" : "warn"}` }, c.status)),
        ...[c.triggered, c.sent, c.held_out, c.delivered, c.opened, c.redeemed].map((v) => el("td", { class: "num" }, fmt(v))),
        el("td", { style: "min-width:8rem" },
          ...[[c.sent, ""], [c.opened, "alt"], [c.redeemed, ""]].map(([v, cls]) => el("div", { class: `bar ${cls}`, style: `width:${c.sent ? (100 * v) / Math.max(c.sent, 1) : 0}%;margin:1px 0` }))),
        el("td", {}, why(c)),
        el("td", {}, lift(c)))),
      "campaign-performance"),
  );
}
