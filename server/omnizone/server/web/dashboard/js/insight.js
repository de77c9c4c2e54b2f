// Retail insight (issue 18, docs/dashboard.md): the headline strip on the
// first screen, period comparison, new and repeat visitors, staff devices.
// Every figure comes from the server's insight API (docs/analytics.md).

import { api, download } from "./api.js";
import { duration, el, fmt, msToZoned, pct, storeTime, zonedToMs } from "./dom.js";

const ANALYTICS_VIEWS = ["visits", "dwell", "footfall", "presence", "transitions", "routes", "funnel", "campaigns", "loyalty"];
const DAY_MS = 86_400_000;

function show(figure, value) {
  if (figure === "median_visit_s") return duration(value);
  if (figure === "conversion") return pct(value, 1);
  return fmt(value, 1);
}

function noteClass(row) {
  return row.within_noise === false ? "pill bad" : "pill";
}

// -- headline strip ---------------------------------------------------------------------

const HEADLINE = {
  shoppers_now: ["Shoppers now", "usual for this weekday and hour"],
  visitors: ["Visitors today", "same day last week, same hours"],
  median_visit_s: ["Median visit", "same day last week"],
  conversion: ["Conversion", "visits with a purchase; same day last week"],
};

/** Prepend the headline figures to the current view, refreshed every minute. */
export async function headlineStrip(ctx) {
  const strip = el("section", { class: "card headline", "data-testid": "headline" }, el("p", { class: "muted" }, "Loading headline figures…"));
  ctx.view.prepend(strip);
  async function draw() {
    const body = await api(`/stores/${ctx.store}/insight/headline`);
    const cards = body.comparisons.map((c) => {
      const [title, against] = HEADLINE[c.figure];
      return el("div", { class: "headline-figure", "data-testid": `headline-${c.figure}` },
        el("div", { class: "muted" }, title),
        el("div", { class: "headline-value", "data-testid": `headline-${c.figure}-value` }, show(c.figure, c.b)),
        el("div", { class: "muted small" }, `${against}: ${show(c.figure, c.a)}`),
        el("span", { class: noteClass(c), "data-testid": `headline-${c.figure}-note` }, c.note));
    });
    strip.replaceChildren(
      el("div", { class: "muted small" }, `At ${storeTime(body.at_ms, body.timezone)}; ${body.staff_excluded} staff device(s) left out. `,
        el("a", { href: "#/insight/compare" }, "Compare periods")),
      el("div", { class: "headline-row" }, ...cards));
  }
  await draw().catch((error) => strip.replaceChildren(el("p", { class: "error" }, `Headline figures: ${error.message}`)));
  const timer = setInterval(() => draw().catch(() => {}), 60_000);
  ctx.onLeave(() => clearInterval(timer));
}

// -- pages --------------------------------------------------------------------------------

export async function insightView(ctx, name) {
  if (name === "compare") return compareView(ctx);
  if (name === "loyalty") return loyaltyView(ctx);
  if (name === "staff") return staffView(ctx);
  throw new Error(`no insight view ${name}`);
}

function csvButton(ctx, path, filename) {
  return el("button", { class: "secondary small", "data-testid": "download-csv", onclick: () => download(path, filename).catch((e) => ctx.say(e.message)) }, "Download CSV");
}

async function compareView(ctx) {
  const index = await api(`/stores/${ctx.store}/analytics`);
  const tz = index.timezone;
  const end = index.default_to_ms;
  const viewPick = el("select", { "data-testid": "compare-view" }, ...ANALYTICS_VIEWS.map((v) => el("option", { value: v }, v)));
  const presetPick = el("select", { "data-testid": "compare-preset" },
    el("option", { value: "week" }, "This week vs last week"),
    el("option", { value: "day" }, "Today vs same day last week"),
    el("option", { value: "custom" }, "Two ranges"));
  const input = (ms, id) => el("input", { type: "datetime-local", "data-testid": id, value: msToZoned(ms, tz) });
  const aFrom = input(end - 14 * DAY_MS, "compare-a-from");
  const aTo = input(end - 7 * DAY_MS, "compare-a-to");
  const bFrom = input(end - 7 * DAY_MS, "compare-b-from");
  const bTo = input(end, "compare-b-to");
  const custom = el("div", { class: "row", hidden: true },
    el("label", {}, "A from ", aFrom), el("label", {}, " to ", aTo),
    el("label", {}, " B from ", bFrom), el("label", {}, " to ", bTo));
  presetPick.addEventListener("change", () => { custom.hidden = presetPick.value !== "custom"; });
  const out = el("div", { "data-testid": "compare-result" });

  function params() {
    const p = new URLSearchParams({ view: viewPick.value });
    if (presetPick.value === "custom") {
      p.set("a_from_ms", zonedToMs(aFrom.value, tz)); p.set("a_to_ms", zonedToMs(aTo.value, tz));
      p.set("b_from_ms", zonedToMs(bFrom.value, tz)); p.set("b_to_ms", zonedToMs(bTo.value, tz));
    } else p.set("preset", presetPick.value);
    return p;
  }

  async function run() {
    const p = params();
    const body = await api(`/stores/${ctx.store}/insight/compare?${p}`);
    const rows = body.rows.map((r) => el("tr", { "data-zone": r.zone, "data-metric": r.metric, class: r.within_noise === false ? "changed" : "" },
      el("td", {}, r.zone || "store"), el("td", {}, r.metric),
      el("td", { class: "num" }, fmt(r.a, 3)), el("td", { class: "num" }, fmt(r.b, 3)),
      el("td", { class: "num" }, fmt(r.difference, 3)),
      el("td", { class: "num" }, r.relative === null ? "–" : pct(r.relative, 1)),
      el("td", {}, el("span", { class: noteClass(r) }, r.note))));
    p.set("format", "csv");
    out.replaceChildren(
      el("p", { "data-testid": "compare-summary" }, body.summary),
      el("p", { class: "muted" }, `A: ${storeTime(body.a.from_ms, tz)} – ${storeTime(body.a.to_ms, tz)} · B: ${storeTime(body.b.from_ms, tz)} – ${storeTime(body.b.to_ms, tz)}`),
      csvButton(ctx, `/stores/${ctx.store}/insight/compare?${p}`, `${ctx.store}-compare.csv`),
      el("table", { "data-testid": "compare-table" },
        el("thead", {}, el("tr", {}, ...["zone", "figure", "A", "B", "B − A", "change", "note"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows)));
  }

  ctx.view.replaceChildren(el("div", { class: "card" },
    el("h1", {}, "Compare periods"),
    el("p", { class: "muted" }, "Range A is the reference, B the one compared. A difference within noise is one chance alone makes about one time in twenty."),
    el("div", { class: "row" }, el("label", {}, "View ", viewPick), el("label", {}, " Periods ", presetPick),
      el("button", { "data-testid": "compare-run", onclick: () => run().catch((e) => { out.replaceChildren(el("p", { class: "error", "data-testid": "compare-error" }, e.message)); }) }, "Compare")),
    custom, out));
  await run().catch((e) => out.replaceChildren(el("p", { class: "error", "data-testid": "compare-error" }, e.message)));
}

function bars(rows, key, label, testid) {
  const max = Math.max(1, ...rows.map((r) => r.shoppers));
  return el("table", { "data-testid": testid },
    el("thead", {}, el("tr", {}, el("th", {}, label), el("th", {}, "shoppers"), el("th", {}, ""))),
    el("tbody", {}, ...rows.map((r) => el("tr", {},
      el("td", {}, r[key]), el("td", { class: "num" }, fmt(r.shoppers)),
      el("td", {}, el("div", { class: "bar", style: `width:${(100 * r.shoppers) / max}%` }))))));
}

async function loyaltyView(ctx) {
  const index = await api(`/stores/${ctx.store}/analytics`);
  const to = index.default_to_ms;
  const from = Math.max(index.first_event_ms ?? to - 7 * DAY_MS, to - 7 * DAY_MS);
  const q = `from_ms=${from}&to_ms=${to}`;
  const body = await api(`/stores/${ctx.store}/insight/loyalty?${q}`);
  ctx.view.replaceChildren(el("div", { class: "card" },
    el("h1", {}, "New and repeat visitors"),
    el("p", { class: "muted" }, `Last 7 days to ${storeTime(to, body.timezone)}, per consented shopper (never by radio address). New: not seen in the ${body.lookback_days} days before.`),
    el("div", { class: "headline-row" },
      el("div", { class: "headline-figure" }, el("div", { class: "muted" }, "Shoppers"), el("div", { class: "headline-value", "data-testid": "loyalty-shoppers" }, fmt(body.shoppers))),
      el("div", { class: "headline-figure" }, el("div", { class: "muted" }, "New"), el("div", { class: "headline-value", "data-testid": "loyalty-new" }, fmt(body.new))),
      el("div", { class: "headline-figure" }, el("div", { class: "muted" }, "Repeat"), el("div", { class: "headline-value", "data-testid": "loyalty-repeat" }, fmt(body.repeat))),
      el("div", { class: "headline-figure" }, el("div", { class: "muted" }, "Median days since previous visit"), el("div", { class: "headline-value" }, fmt(body.median_days_since_previous, 1)))),
    csvButton(ctx, `/stores/${ctx.store}/insight/loyalty?${q}&format=csv`, `${ctx.store}-loyalty.csv`),
    el("h2", {}, "Visit frequency"), bars(body.frequency, "trips", "visits in the range", "loyalty-frequency"),
    el("h2", {}, "Recency of returning shoppers"), bars(body.recency, "days_since_previous", "days since previous visit", "loyalty-recency")));
}

async function staffView(ctx) {
  const body = await api(`/stores/${ctx.store}/insight/staff`);
  const device = el("input", { "data-testid": "staff-device", placeholder: "device (shopper id of the staff phone)" });
  const label = el("input", { "data-testid": "staff-label", placeholder: "who carries it" });
  const admin = ctx.whoami.admin;
  const rows = body.devices.map((d) => el("tr", { "data-device": d.device },
    el("td", {}, el("code", {}, d.device)), el("td", {}, d.label || ""), el("td", {}, d.reason),
    el("td", { class: "num" }, fmt(d.days_present)), el("td", { class: "num" }, fmt(d.mean_daily_hours, 1)),
    el("td", {}, admin && d.reason === "registered"
      ? el("button", { class: "secondary small", onclick: async () => { await api(`/stores/${ctx.store}/staff/${encodeURIComponent(d.device)}`, { method: "DELETE" }); staffView(ctx); } }, "Remove") : "")));
  ctx.view.replaceChildren(el("div", { class: "card" },
    el("h1", {}, "Staff devices"),
    el("p", { class: "muted" }, `Left out of every shopper figure. Rule: ${body.rule} (over the last ${body.lookback_days} days).`),
    csvButton(ctx, `/stores/${ctx.store}/insight/staff?format=csv`, `${ctx.store}-staff.csv`),
    el("table", { "data-testid": "staff-table" },
      el("thead", {}, el("tr", {}, ...["device", "label", "why", "days present", "hours a day", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows)),
    admin ? el("form", { class: "row", onsubmit: async (event) => {
      event.preventDefault();
      await api(`/stores/${ctx.store}/staff/${encodeURIComponent(device.value.trim())}`, { method: "PUT", body: { label: label.value } });
      ctx.say(`Registered ${device.value.trim()} as staff.`);
      staffView(ctx);
    } }, device, label, el("button", { type: "submit", "data-testid": "staff-register" }, "Register as staff")) : ""));
}
