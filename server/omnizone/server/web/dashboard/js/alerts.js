// Store alerts (issue 18 point 7): GET /api/v1/stores/{store}/alerts, refreshed
// every 10 s. Each refresh is also a check: the server evaluates the rules
// (zone over capacity, checkout queue, dwell, gateway silent or a reader
// offline) and sends each change once to the signed alert webhook.

import { api } from "./api.js";
import { el, fmt, storeTime } from "./dom.js";

const REFRESH_MS = 10_000;

export async function alertsView(ctx) {
  const { info } = await ctx.plan();
  const timezone = info.plan.store.timezone;
  const summary = el("p", { class: "muted", "data-testid": "alerts-summary" });
  const active = el("tbody");
  const recent = el("ul", { "data-testid": "alert-changes" });
  ctx.view.replaceChildren(
    el("h1", {}, "Alerts"),
    summary,
    el("table", { "data-testid": "alerts" },
      el("thead", {}, el("tr", {}, ...["Alert", "Severity", "Value", "Threshold"].map((h, i) => el("th", { class: i >= 2 ? "num" : "" }, h)))),
      active),
    el("h2", {}, "Recent changes"),
    recent,
    el("p", { class: "muted small" },
      "Thresholds are set with PUT /api/v1/stores/{store}/alerts/rules (admin). ",
      el("a", { href: `/api/v1/stores/${ctx.store}/alerts?format=csv`, "data-testid": "alerts-csv" }, "CSV")),
  );

  async function refresh() {
    const found = await api(`/stores/${ctx.store}/alerts`);
    summary.textContent = `${found.active.length} active · checked ${storeTime(Date.now(), timezone, false)} store time`
      + (found.webhook_failures ? ` · ${found.webhook_failures} webhook failures` : "");
    active.replaceChildren(...found.active.map((a) => el("tr", { "data-alert": a.key },
      el("td", {}, a.message),
      el("td", {}, el("span", { class: `pill ${a.severity === "critical" ? "bad" : "warn"}` }, a.severity)),
      el("td", { class: "num" }, fmt(a.value)),
      el("td", { class: "num" }, fmt(a.threshold)))));
    recent.replaceChildren(...found.recent.map((c) => el("li", { class: c.type === "alert.raised" ? "bad" : "muted" },
      `${storeTime(c.at_ms, timezone)} ${c.type === "alert.raised" ? "raised" : "cleared"}: ${c.alert.message}`)));
  }

  await refresh();
  const timer = setInterval(() => refresh().catch((error) => ctx.say(`Alerts refresh failed: ${error.message}`)), REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}
