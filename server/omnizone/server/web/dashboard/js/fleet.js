// Gateway fleet: GET /api/v1/stores/{store}/gateways, refreshed every 10 s.
// What each gateway's last health report carries: outbox depth and drops,
// reader states, counters (errors among them), software version, uptime.
// Beside it, GET /api/v1/stores/{store}/gateways/calibration: the radio fitted
// from the gateways hearing one another (self-calibration) and drift alerts.

import { api } from "./api.js";
import { ago, el, fmt, storeTime } from "./dom.js";

const REFRESH_MS = 10_000;

/** Counters that count something going wrong (reader and frame errors). */
function errorCounters(counters) {
  return Object.entries(counters || {}).filter(([name, value]) => value > 0 && /error|bad_|rejected|restart|reopen/.test(name));
}

/** Reader states the gateways report (gateway/…/ble, nfc, rfid): waiting for
 * a card or a garment (idle, polling), a tag on the reader (tag-present) and
 * reading tags (inventory) are as healthy as scanning; a reader that failed
 * (error, unavailable) is red; on its way (opening, reconnecting,
 * restarting) or stopped is amber. */
export const HEALTHY_READER = /^(ok|running|scanning|open|connected|ready|idle|polling|inventory|tag-present)\b/;
const FAILED_READER = /^(error|unavailable)\b/;

function readerClass(value) {
  if (HEALTHY_READER.test(value)) return "ok";
  return FAILED_READER.test(value) ? "bad" : "warn";
}

function readerStates(readers) {
  const entries = Object.entries(readers || {});
  if (!entries.length) return el("span", { class: "muted" }, "–");
  return entries.map(([name, value]) => el("span", { class: `pill ${readerClass(value)}`, title: name, "data-reader": name }, `${name}: ${value}`), " ");
}

function radioCells(fit) {
  if (!fit || !fit.fitted) {
    return [el("td", { class: "muted", colspan: "5", "data-testid": "radio-fit" }, fit ? `not fitted (${fit.pairs_heard} pairs heard)` : "–")];
  }
  const badge = fit.drift
    ? el("span", { class: "pill bad", "data-testid": "drift" }, fit.drift)
    : el("span", { class: "pill ok", "data-testid": "drift" }, "steady");
  return [
    el("td", { class: "num", "data-testid": "radio-fit", title: fit.flags.join("\n") }, `${fmt(fit.power_1m_dbm, 1)} dBm (${fit.offset_db >= 0 ? "+" : ""}${fmt(fit.offset_db, 1)})`),
    el("td", { class: "num" }, fmt(fit.exponent, 2)),
    el("td", { class: "num" }, `${fmt(fit.spread_db, 1)} dB`),
    el("td", { class: "num" }, fmt(fit.pairs_heard)),
    el("td", {}, badge),
  ];
}

export async function fleetView(ctx) {
  // One clock: the store's, as on every other view (not the browser's).
  const { info } = await ctx.plan();
  const timezone = info.plan.store.timezone;
  const clock = (ms) => storeTime(ms, timezone, false);
  const body = el("tbody");
  const summary = el("p", { class: "muted", "data-testid": "fleet-summary" });
  const radioSummary = el("p", { class: "muted", "data-testid": "radio-summary" });
  const alerts = el("ul", { "data-testid": "drift-alerts" });
  ctx.view.replaceChildren(
    el("h1", {}, "Gateways"),
    summary,
    radioSummary,
    alerts,
    el("table", { "data-testid": "fleet" },
      el("thead", {}, el("tr", {},
        ...["Gateway", "Zone", "State", "Last seen", "Version", "Outbox", "Dropped", "Readers", "Reader errors", "Uptime", "CPU", "Power at 1 m", "Exponent", "Spread", "Pairs", "Radio"]
          .map((h, i) => el("th", { class: i >= 5 && i !== 7 && i !== 8 && i !== 15 ? "num" : "" }, h)))),
      body),
    el("p", { class: "muted small" },
      "Online: the gateway's last status is online and something arrived within 90 s. Outbox: messages waiting on the gateway (broker unreachable). ",
      "Dropped: messages the outbox had to discard when full. Reader errors: counters of the last health report that count faults. ",
      "Power at 1 m (offset from the store's typical gateway), exponent and spread: the radio fitted from what the gateways hear of one another's beacons (self-calibration); ",
      "Pairs: other gateways it hears or is heard by. Radio: blocked, louder or moved when its recent readings no longer fit the long-run fit."),
  );

  async function refresh() {
    const [fleet, radio] = await Promise.all([
      api(`/stores/${ctx.store}/gateways`),
      api(`/stores/${ctx.store}/gateways/calibration`),
    ]);
    const fits = Object.fromEntries(radio.gateways.map((g) => [g.gateway, g]));
    radioSummary.textContent = radio.fitted_at
      ? `Self-calibration: fitted ${clock(radio.fitted_at)}, typical power at 1 m ${fmt(radio.power_1m_dbm, 1)} dBm · ${radio.applied ? "the localizer uses it" : "shown only (the store's calibration file is used)"}`
      : "Self-calibration: no gateway has heard another yet";
    alerts.replaceChildren(...radio.alerts.map((a) => el("li", { class: "bad" }, a.message)));
    const online = fleet.filter((g) => g.online).length;
    summary.textContent = `${online} of ${fleet.length} online · refreshed ${clock(Date.now())} store time (${timezone})`;
    body.replaceChildren(...fleet.map((g) => {
      const errors = errorCounters(g.counters);
      const errorTotal = errors.reduce((s, [, v]) => s + v, 0);
      return el("tr", { "data-gateway": g.gateway },
        el("td", {}, el("b", {}, g.gateway)),
        el("td", {}, g.zone),
        el("td", {}, el("span", { class: `pill ${g.online ? "ok" : "bad"}`, "data-testid": "gateway-state" }, g.online ? "online" : g.state === "offline" ? "offline" : g.last_seen_ms ? "silent" : "never seen")),
        el("td", { title: g.last_seen_ms ? storeTime(g.last_seen_ms, timezone) : "" }, ago(g.last_seen_ms)),
        el("td", {}, g.version || "–"),
        el("td", { class: "num" }, fmt(g.outbox_depth)),
        el("td", { class: "num" }, fmt(g.outbox_dropped)),
        el("td", {}, readerStates(g.readers)),
        el("td", { title: errors.map(([n, v]) => `${n}: ${v}`).join("\n") },
          errorTotal ? el("span", { class: "pill bad" }, `${fmt(errorTotal)} (${errors.map(([n]) => n).join(", ")})`) : el("span", { class: "muted" }, "0")),
        el("td", { class: "num" }, g.uptime_s === null || g.uptime_s === undefined ? "–" : `${fmt(g.uptime_s / 3600, 1)} h`),
        el("td", { class: "num" }, g.cpu_temp_c === null || g.cpu_temp_c === undefined ? "–" : `${fmt(g.cpu_temp_c, 1)} °C`),
        ...radioCells(fits[g.gateway]),
      );
    }));
  }

  await refresh();
  const timer = setInterval(() => refresh().catch((error) => ctx.say(`Fleet refresh failed: ${error.message}`)), REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}
