// Capture rate (issue 18, point 4; docs/analytics.md, "Capture rate"): per
// store-local hour, shoppers who came in against the phones that walked past
// the street front, counted anonymously by the street-front gateways.

import { el, fmt, pct, storeTime } from "./dom.js";

export async function captureView(ctx, content, body) {
  const tz = body.timezone;
  if (!body.street_gateways.length) {
    content.append(el("p", { class: "card", "data-testid": "capture-none" },
      "No gateway of this store is marked street_front in the store file, so nobody walking past is counted (docs/store-config.md)."));
    return;
  }
  const max = Math.max(1, ...body.hours.map((h) => h.entrants + (h.passers_by || 0)));
  content.append(
    el("div", { class: "card", "data-testid": "capture-summary" },
      el("dl", { class: "kv" },
        el("dt", {}, "capture rate"), el("dd", {}, el("b", { "data-testid": "capture-rate" }, pct(body.capture_rate, 1))),
        el("dt", {}, "entrants"), el("dd", { "data-testid": "capture-entrants" }, fmt(body.entrants)),
        el("dt", {}, "passers-by"), el("dd", { "data-testid": "capture-passers-by" }, fmt(body.passers_by)),
        el("dt", {}, "hours counted"), el("dd", {}, `${fmt(body.hours_counted)} of ${fmt(body.hours.length)}`),
        el("dt", {}, "street-front gateways"), el("dd", {}, body.street_gateways.join(", ")))),
    el("p", { class: "muted small" },
      `Capture rate = entrants / (entrants + passers-by). Entrants: ${body.entrants_are}. Passers-by: ${body.passers_by_are}. An hour with no count is one the street-front gateways did not report.`),
    el("div", { class: "legend" },
      el("span", {}, el("i", { class: "sq", style: "background:#457b9d" }), "entrants"),
      el("span", {}, el("i", { class: "sq", style: "background:#a8dadc" }), "passers-by")),
    el("table", { "data-testid": "capture-table" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Hour"), el("th", {}, ""), el("th", { class: "num" }, "entrants"),
        el("th", { class: "num" }, "passers-by"), el("th", { class: "num" }, "capture rate"))),
      el("tbody", {}, body.hours.map((h) => el("tr", { "data-hour": h.hour_ms },
        el("td", {}, storeTime(h.hour_ms, tz)),
        el("td", { style: "width:40%" }, el("div", { style: "display:flex" },
          el("div", { class: "bar", style: `width:${(100 * h.entrants) / max}%`, title: `${h.entrants} entrants` }),
          el("div", { class: "bar alt", style: `width:${(100 * (h.passers_by || 0)) / max}%`, title: `${h.passers_by ?? "no"} passers-by` }))),
        el("td", { class: "num" }, fmt(h.entrants)),
        el("td", { class: "num" }, h.passers_by === null ? el("span", { class: "muted" }, "not counted") : fmt(h.passers_by)),
        el("td", { class: "num" }, pct(h.capture_rate, 1)))))),
  );
}
