// Predictions (issue 18, point 9; docs/analytics.md "Predictions"): expected
// footfall per zone and hour for the next 7 days, beside the same hour last
// week, and the consented shoppers' likely next products. Every figure comes
// from the server's predictions API; nothing is computed here.

import { api, download } from "./api.js";
import { el, fmt, pct, storeTime } from "./dom.js";

export async function predictionsView(ctx, name) {
  if (name === "footfall") return footfallView(ctx);
  if (name === "products") return productsView(ctx);
  throw new Error(`no prediction view ${name}`);
}

function csvButton(ctx, path, filename) {
  return el("button", { class: "secondary small", "data-testid": "download-csv", onclick: () => download(path, filename).catch((e) => ctx.say(e.message)) }, "Download CSV");
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

async function footfallView(ctx) {
  const body = await api(`/stores/${ctx.store}/predictions/footfall`);
  const zonePick = el("select", { "data-testid": "forecast-zone" }, ...body.zones.map((z) => el("option", { value: z.zone }, z.name)));
  const hours = el("div", { "data-testid": "forecast-hours" });
  const days = body.days.map((d) => new Date(`${d}T12:00:00Z`).toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" }));

  function drawHours() {
    const zone = body.zones.find((z) => z.zone === zonePick.value);
    const open = [...Array(24).keys()].filter((h) => zone.expected.some((day) => day[h] > 0) || zone.baseline.some((day) => day[h] > 0));
    hours.replaceChildren(el("table", { "data-testid": "forecast-hour-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "hour"), ...days.map((d) => el("th", {}, d)))),
      el("tbody", {}, ...open.map((h) => el("tr", { "data-hour": h },
        el("td", {}, `${String(h).padStart(2, "0")}:00`),
        ...zone.expected.map((day, k) => el("td", { class: "num", title: `same hour last week: ${zone.baseline[k][h]}` }, fmt(day[h], 0))))))));
  }
  zonePick.addEventListener("change", drawHours);

  const model = body.model;
  const rows = body.zones.map((z) => el("tr", { "data-zone": z.zone },
    el("td", {}, z.name),
    ...z.expected.map((day, k) => el("td", { class: "num", title: `same days last week: ${sum(z.baseline[k])}` }, fmt(sum(day), 0))),
    el("td", { class: "num", "data-testid": `forecast-total-${z.zone}` }, fmt(z.total, 0)),
    el("td", { class: "num muted" }, fmt(sum(z.baseline.map(sum)), 0))));
  ctx.view.replaceChildren(el("div", { class: "card" },
    el("h1", {}, "Footfall forecast"),
    el("p", { class: "muted", "data-testid": "forecast-model" },
      `Expected zone entries for the 7 days from ${storeTime(body.from_ms, body.timezone)}, learnt from the ${body.history_days} days before: `
      + `weekday × hour profile × trend (${pct(model.trend_per_week, 1)} a week)`
      + (model.dropped_days.length ? `; unusual days left out: ${model.dropped_days.join(", ")}` : "")
      + ". Grey: the same days last week."),
    csvButton(ctx, `/stores/${ctx.store}/predictions/footfall?format=csv`, `${ctx.store}-footfall-forecast.csv`),
    el("table", { "data-testid": "forecast-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "zone"), ...days.map((d) => el("th", {}, d)), el("th", {}, "7 days"), el("th", {}, "last week"))),
      el("tbody", {}, ...rows)),
    el("h2", {}, "Per hour"), el("label", {}, "Zone ", zonePick), hours));
  drawHours();
}

async function productsView(ctx) {
  const body = await api(`/stores/${ctx.store}/predictions/products?limit=50`);
  const rows = body.shoppers.map((s) => el("tr", { "data-shopper": s.shopper_id },
    el("td", {}, el("code", {}, s.shopper_id.slice(0, 12))),
    el("td", { class: "num" }, fmt(s.known_events)),
    ...s.products.map((p) => el("td", {}, `${p.name} `, el("span", { class: "muted small" }, pct(p.probability, 0)))),
    el("td", {}, s.categories.length ? s.categories[0].category : "–")));
  const trained = body.model ? `the model learnt from ${fmt(body.model.trained_on)} earlier first purchases` : "no catalog products here";
  ctx.view.replaceChildren(el("div", { class: "card" },
    el("h1", {}, "Likely next products"),
    el("p", { class: "muted", "data-testid": "products-model" },
      `As of ${storeTime(body.as_of_ms, body.timezone)}: ${fmt(body.shoppers_total)} consented shoppers (personalized offers), most confident first; ${trained}. `
      + "Campaigns can target them with the likely_to_buy segment rule."),
    csvButton(ctx, `/stores/${ctx.store}/predictions/products?format=csv&limit=1000`, `${ctx.store}-next-products.csv`),
    el("table", { "data-testid": "products-table" },
      el("thead", {}, el("tr", {}, ...["shopper", "events", "1st", "2nd", "3rd", "category"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows))));
}
