// Store alerts (issue 18 point 7) and the store's event stream (point 8).
// The server evaluates the rules by itself every few seconds (zone over
// capacity, checkout queue, dwell, gateway silent or a reader offline), logs
// each change and sends it once to the signed alert webhook; this page shows
// what it found, refreshed every 5 s: the active alerts, the recent changes,
// the history from the stored log (CSV), the stored thresholds (editable with
// an admin key) and the latest store events as other systems receive them.

import { api, download, ApiError } from "./api.js";
import { el, fmt, storeTime, duration } from "./dom.js";

const REFRESH_MS = 5_000;
const HISTORY_DAYS = 7;
const EVENTS_SHOWN = 20;

export async function alertsView(ctx) {
  const { info } = await ctx.plan();
  const timezone = info.plan.store.timezone;
  const base = `/stores/${ctx.store}/alerts`;
  const summary = el("p", { class: "muted", "data-testid": "alerts-summary" });
  const active = el("tbody");
  const recent = el("ul", { "data-testid": "alert-changes" });
  const history = el("tbody");
  const rulesText = el("textarea", { rows: 8, cols: 60, "data-testid": "alert-rules", spellcheck: "false" });
  const rulesSay = el("p", { class: "muted small", "data-testid": "alert-rules-said" });
  const events = el("tbody");
  let cursor = null;
  const shown = [];

  const saveRules = async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(rulesText.value);
    } catch (error) {
      rulesSay.textContent = `Not JSON: ${error.message}`;
      return;
    }
    try {
      const saved = await api(`${base}/rules`, { method: "PUT", body });
      rulesText.value = JSON.stringify(saved.rules, null, 2);
      rulesSay.textContent = "Saved: the server checks with these from now on.";
    } catch (error) {
      rulesSay.textContent = error instanceof ApiError && error.status === 403
        ? "Changing thresholds needs an admin key."
        : `Refused: ${error instanceof ApiError ? error.problems.join("; ") : error.message}`;
    }
  };

  ctx.view.replaceChildren(
    el("h1", {}, "Alerts"),
    summary,
    el("table", { "data-testid": "alerts" },
      el("thead", {}, el("tr", {}, ...["Alert", "Severity", "Value", "Threshold"].map((h, i) => el("th", { class: i >= 2 ? "num" : "" }, h)))),
      active),
    el("h2", {}, "Recent changes"),
    recent,
    el("h2", {}, `History (last ${HISTORY_DAYS} days)`),
    el("table", { "data-testid": "alert-history" },
      el("thead", {}, el("tr", {}, ...["Alert", "Raised", "Cleared", "Lasted", "Peak"].map((h, i) => el("th", { class: i >= 3 ? "num" : "" }, h)))),
      history),
    el("p", { class: "small" },
      el("button", { type: "button", "data-testid": "alert-history-csv", onclick: () => download(`${base}/history?format=csv`, `${ctx.store}-alert-history.csv`) }, "History CSV"),
      " ",
      el("button", { type: "button", "data-testid": "alerts-csv", onclick: () => download(`${base}?format=csv`, `${ctx.store}-alerts.csv`) }, "Active CSV")),
    el("h2", {}, "Thresholds"),
    el("form", { onsubmit: saveRules },
      rulesText,
      el("div", {}, el("button", { type: "submit", "data-testid": "alert-rules-save" }, "Save thresholds"))),
    rulesSay,
    el("h2", {}, "Store events (as other systems receive them)"),
    el("table", { "data-testid": "store-events" },
      el("thead", {}, el("tr", {}, ...["Time", "Event", "Properties", "Who"].map((h) => el("th", {}, h)))),
      events),
    el("p", { class: "muted small" },
      `Streamed at /api/v1/stores/${ctx.store}/events/stream (Server-Sent Events, resumable) and to webhook subscriptions; docs/event-stream.md.`),
  );

  const rules = await api(`${base}/rules`);
  rulesText.value = JSON.stringify(rules.rules, null, 2);

  async function refresh() {
    const found = await api(base);
    summary.textContent = `${found.active.length} active · checked ${storeTime(Date.now(), timezone, false)} store time`
      + (found.webhook_failures ? ` · ${found.webhook_failures} webhook failures` : "");
    active.replaceChildren(...found.active.map((a) => el("tr", { "data-alert": a.key },
      el("td", {}, a.message),
      el("td", {}, el("span", { class: `pill ${a.severity === "critical" ? "bad" : "warn"}` }, a.severity)),
      el("td", { class: "num" }, fmt(a.value)),
      el("td", { class: "num" }, fmt(a.threshold)))));
    recent.replaceChildren(...found.recent.map((c) => el("li", { class: c.type === "alert.raised" ? "bad" : "muted" },
      `${storeTime(c.at_ms, timezone)} ${c.type === "alert.raised" ? "raised" : "cleared"}: ${c.alert.message}`)));
    const since = Date.now() - HISTORY_DAYS * 86_400_000;
    const past = await api(`${base}/history?from_ms=${Math.max(0, since)}`);
    history.replaceChildren(...past.episodes.slice(-50).reverse().map((e) => el("tr", { "data-episode": e.key },
      el("td", {}, e.message),
      el("td", {}, storeTime(e.raised_ms, timezone)),
      el("td", {}, e.cleared_ms === null ? "active" : storeTime(e.cleared_ms, timezone)),
      el("td", { class: "num" }, duration(e.duration_s)),
      el("td", { class: "num" }, fmt(e.peak)))));
    const page = await api(`/stores/${ctx.store}/events?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    cursor = page.next_cursor;
    shown.push(...page.events);
    shown.splice(0, Math.max(0, shown.length - EVENTS_SHOWN));
    events.replaceChildren(...shown.slice().reverse().map((m) => el("tr", { "data-event": m.event },
      el("td", {}, storeTime(m.context.omnizone.at_ms, timezone)),
      el("td", {}, m.event),
      el("td", { class: "small" }, Object.entries(m.properties).filter(([k]) => k !== "store").map(([k, v]) => `${k}=${v}`).join(" ")),
      el("td", { class: "small muted" }, m.userId ? "shopper (consented)" : "anonymous"))));
  }

  await refresh();
  const timer = setInterval(() => refresh().catch((error) => ctx.say(`Alerts refresh failed: ${error.message}`)), REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}
