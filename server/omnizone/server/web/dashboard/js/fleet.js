// Gateway fleet: GET /api/v1/stores/{store}/gateways, refreshed every 10 s.
// What each gateway's last health report carries: outbox depth and drops,
// reader states, counters (errors among them), software version, uptime.
// Beside it, GET /api/v1/stores/{store}/gateways/calibration: the radio fitted
// from the gateways hearing one another (self-calibration) and drift alerts.
// Below, the store's fixed beacons: GET /api/v1/stores/{store}/beacons (last
// heard, signal, Eddystone-TLM battery, temperature, adverts, alerts) with
// their radio fitted from the gateways (the calibration route's `beacons`).

import { api } from "./api.js";
import { ago, duration, el, fmt, storeTime } from "./dom.js";

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

const ALERT_NAMES = { silent: "silent", "low-battery": "low battery", "weak-signal": "weak signal" };

function beaconRow(b, fit) {
  const state = b.alerts.length
    ? b.alerts.map((kind) => el("span", { class: "pill bad", "data-testid": "beacon-alert" }, ALERT_NAMES[kind] || kind), " ")
    : el("span", { class: "pill ok", "data-testid": "beacon-alert" }, "ok");
  const battery = b.battery_mv === null ? "–" : `${fmt(b.battery_mv)} mV${b.drain_mv_per_day ? ` (−${fmt(b.drain_mv_per_day, 0)}/day)` : ""}`;
  return el("tr", { "data-beacon": b.beacon },
    el("td", {}, el("b", {}, b.beacon)),
    el("td", { class: "small", title: b.device }, el("code", {}, b.device.length > 28 ? `${b.device.slice(0, 26)}…` : b.device)),
    el("td", { "data-testid": "beacon-last-heard", title: b.last_heard_ms ? new Date(b.last_heard_ms).toISOString() : "" },
      b.last_heard_ms === null ? "never" : `${duration(b.silent_s)} ago`),
    el("td", { class: "num" }, fmt(b.gateways_hearing)),
    el("td", { class: "num", title: b.strongest_gateway || "" }, b.rssi_dbm === null ? "–" : `${fmt(b.rssi_dbm, 1)} dBm`),
    el("td", { class: "num", "data-testid": "beacon-battery" }, battery),
    el("td", { class: "num" }, b.temperature_c === null ? "–" : `${fmt(b.temperature_c, 1)} °C`),
    el("td", { class: "num", "data-testid": "beacon-adverts" }, fmt(b.adv_count)),
    el("td", { class: "num" }, b.uptime_s === null ? "–" : duration(b.uptime_s)),
    el("td", { class: "num", title: fit ? fit.flags.join("\n") : "" }, fit && fit.fitted ? `${fmt(fit.power_1m_dbm, 1)} dBm (${fit.offset_db >= 0 ? "+" : ""}${fmt(fit.offset_db, 1)})` : "–"),
    el("td", { class: "num" }, fit && fit.fitted ? fmt(fit.exponent, 2) : "–"),
    el("td", {}, state),
  );
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
  const beaconBody = el("tbody");
  const beaconSummary = el("p", { class: "muted", "data-testid": "beacon-summary" });
  const beaconAlerts = el("ul", { "data-testid": "beacon-alerts" });
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
    el("h2", {}, "Beacons"),
    beaconSummary,
    beaconAlerts,
    el("table", { "data-testid": "beacons" },
      el("thead", {}, el("tr", {},
        ...["Beacon", "Advertises", "Last heard", "Gateways", "Signal", "Battery", "Temperature", "Adverts", "Uptime", "Power at 1 m", "Exponent", "State"]
          .map((h, i) => el("th", { class: i >= 3 && i <= 10 ? "num" : "" }, h)))),
      beaconBody),
    el("p", { class: "muted small", "data-testid": "beacon-rules" }),
  );
  const beaconRules = ctx.view.querySelector('[data-testid="beacon-rules"]');

  async function refresh() {
    const [fleet, radio, beacons] = await Promise.all([
      api(`/stores/${ctx.store}/gateways`),
      api(`/stores/${ctx.store}/gateways/calibration`),
      api(`/stores/${ctx.store}/beacons`),
    ]);
    const beaconFits = Object.fromEntries((radio.beacons || []).map((b) => [b.beacon, b]));
    const standing = beacons.beacons.filter((b) => b.alerts.length).length;
    beaconSummary.textContent = beacons.beacons.length
      ? `${beacons.beacons.length - standing} of ${beacons.beacons.length} beacons ok`
      : "The store file names no fixed beacons.";
    beaconAlerts.replaceChildren(...beacons.alerts.map((a) => el("li", { class: "bad", "data-kind": a.kind }, a.message)));
    beaconBody.replaceChildren(...beacons.beacons.map((b) => beaconRow(b, beaconFits[b.beacon])));
    beaconRules.textContent = `Last heard, on the store's clock (the newest window its gateways reported). Silent: no gateway heard it for ${duration(beacons.rules.silent_after_s)}. ` +
      `Low battery: its Eddystone-TLM reports below ${fmt(beacons.rules.low_battery_mv)} mV. Weak signal: the gateways hear it ${fmt(beacons.rules.weak_drop_db, 0)} dB or more quieter than before. ` +
      "Battery, temperature, adverts and uptime come from the beacon's TLM frames; power at 1 m and exponent are fitted from the gateways hearing it at known distances (self-calibration).";
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
