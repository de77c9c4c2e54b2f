// Guided survey (docs/dashboard.md, docs/localization.md): start a survey,
// give the pairing code to the phone walking it, pick the zone being walked
// (on the map or in the table), watch each zone fill up (windows collected,
// anchors heard, enough or not; polled every second), finish: the server
// writes the survey and the calibration and this page shows the report.
// Needs a key with the `survey` (or `admin`) scope.

import { api } from "./api.js";
import { el, fmt, pct, storeTime } from "./dom.js";
import { floorPlan } from "./floor.js";

const POLL_MS = 1000;
const REMEMBER = "omnizone.staff.survey."; // + store: the open survey of this tab

export async function surveyView(ctx) {
  const { info, image } = await ctx.plan();
  const plan = info.plan;
  const store = ctx.store;
  const remembered = sessionStorage.getItem(REMEMBER + store);
  let current = null;
  if (remembered) {
    current = await api(`/stores/${store}/surveys/${remembered}`).catch(() => null);
    if (!current) sessionStorage.removeItem(REMEMBER + store);
  }
  const may = ctx.whoami.admin || ctx.whoami.scopes.includes("survey");
  const body = el("div", { "data-testid": "survey-view" });
  ctx.view.replaceChildren(
    el("h1", {}, "Guided survey"),
    el("p", { class: "muted" },
      "Walk each zone with the surveying phone: every second the gateways report what they heard of it, ",
      "and each such window becomes a sample of the zone you picked. When every zone you walked says enough, ",
      "finish: the server writes the survey and fits the calibration (each anchor's power, path-loss exponent and spread)."),
    body,
  );
  if (!may) {
    body.replaceChildren(el("p", { class: "card" }, "This key lacks the survey scope."));
    return;
  }
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  function startCard() {
    const button = el("button", { "data-testid": "start-survey", onclick: start }, "Start a survey");
    body.replaceChildren(el("div", { class: "card" },
      el("p", {}, "Starting shows a pairing code: enter it in the shopper app's survey mode on the phone you walk with ",
        "(a registered phone; it needs no shopper consent, it is staff equipment)."),
      button));
  }

  async function start() {
    try {
      current = await api(`/stores/${store}/surveys`, { method: "POST" });
    } catch (error) { ctx.say(`Cannot start: ${error.message}`); return; }
    sessionStorage.setItem(REMEMBER + store, current.id);
    render();
    poll();
  }

  async function poll() {
    clearTimeout(timer);
    if (!current || !["waiting_for_phone", "paired"].includes(current.state)) return;
    try {
      current = await api(`/stores/${store}/surveys/${current.id}`);
      render();
    } catch (error) { ctx.say(`Survey: ${error.message}`); }
    timer = setTimeout(poll, POLL_MS);
  }

  /** POST to the open survey; its answer, or null (the reason is shown). */
  async function act(path, payload) {
    try {
      return await api(`/stores/${store}/surveys/${current.id}/${path}`,
        payload === undefined ? { method: "POST" } : { method: "POST", body: payload });
    } catch (error) { ctx.say(error.message); return null; }
  }

  async function pick(zone) {
    const answer = await act("zone", { zone });
    if (answer) { current = answer; render(); }
  }

  async function finish() {
    ctx.say("Fitting the calibration…");
    const report = await act("finish");
    if (!report) return;
    ctx.say("Survey written and calibration fitted.");
    current = await api(`/stores/${store}/surveys/${current.id}`);
    sessionStorage.removeItem(REMEMBER + store);
    render();
  }

  async function cancel() {
    try {
      await api(`/stores/${store}/surveys/${current.id}/cancel`, { method: "POST" });
    } catch (error) { ctx.say(error.message); return; }
    sessionStorage.removeItem(REMEMBER + store);
    current = await api(`/stores/${store}/surveys/${current.id}`).catch(() => null);
    render();
  }

  const floor = floorPlan(plan, { image, testid: "survey-floor" });
  for (const [zone, entry] of floor.zones) {
    entry.shape.style.cursor = "pointer";
    entry.shape.addEventListener("click", () => {
      if (current && current.state === "paired") pick(zone);
    });
  }

  function render() {
    if (!current) { startCard(); return; }
    const open = ["waiting_for_phone", "paired"].includes(current.state);
    const head = el("div", { class: "card" });
    if (current.state === "waiting_for_phone") {
      head.append(
        el("p", {}, "Pairing code for the phone (shopper app → Survey mode):"),
        el("p", { class: "pairing-code", "data-testid": "pairing-code" }, current.code),
        el("p", { class: "muted small" }, "The app opens it from ",
          el("code", { "data-testid": "pairing-link" }, `${location.origin}${current.pair_path}`),
          ` (a QR code of this link works too). It expires ${storeTime(current.code_expires_ms, info.plan.store.timezone, false)} store time.`));
    } else {
      head.append(el("p", {},
        el("span", { class: `pill ${current.state === "finished" ? "ok" : current.state === "cancelled" ? "bad" : ""}`, "data-testid": "survey-state" }, current.state),
        " ", current.zone ? ["walking ", el("b", { "data-testid": "active-zone" }, zoneName(current.zone))] : open ? "pick the zone being walked" : ""));
    }
    head.append(el("p", { class: "muted small", "data-testid": "survey-totals" },
      `${current.windows} of at most ${current.max_windows} windows`,
      current.settling_windows ? ` · ${current.settling_windows} walk-in windows left out` : "",
      current.late_readings ? ` · ${current.late_readings} late readings not merged` : "",
      current.over_limit_windows ? ` · ${current.over_limit_windows} windows over the limit` : "",
      ` · enough: ≥ ${current.rule.min_windows} windows and ≥ ${current.rule.min_anchors} anchors heard`));
    if (open) {
      head.append(el("p", {},
        el("button", { class: "secondary", "data-testid": "pause-survey", disabled: !current.zone, onclick: () => pick(null) }, "Pause"), " ",
        el("button", { "data-testid": "finish-survey", disabled: !current.windows, onclick: finish }, "Finish and calibrate"), " ",
        el("button", { class: "secondary", "data-testid": "cancel-survey", onclick: cancel }, "Cancel")));
    } else {
      head.append(el("button", { "data-testid": "new-survey", onclick: () => { current = null; render(); } }, "New survey"));
    }
    const rows = current.zones.map((z) => el("tr", {
      "data-testid": `survey-zone-${z.zone}`, "data-enough": String(z.enough), class: z.zone === current.zone ? "current" : "",
    },
      el("td", {}, z.name),
      el("td", { class: "num", "data-testid": `windows-${z.zone}` }, fmt(z.windows)),
      el("td", { class: "num", title: z.anchors_heard.join(", ") }, fmt(z.anchors)),
      el("td", {}, el("span", { class: `pill ${z.enough ? "ok" : z.windows ? "warn" : ""}` }, z.enough ? "enough" : z.windows ? "more" : "–")),
      el("td", {}, current.state === "paired"
        ? el("button", { class: "small", "data-testid": `walk-${z.zone}`, disabled: z.zone === current.zone, onclick: () => pick(z.zone) }, "Walk this zone")
        : ""),
    ));
    for (const z of current.zones) {
      const entry = floor.zones.get(z.zone);
      if (!entry) continue;
      entry.shape.setAttribute("fill", z.enough ? "#b7e4c7" : z.windows ? "#fbf0cf" : "#eef2f6");
      entry.shape.setAttribute("stroke-width", z.zone === current.zone ? 0.25 : 0.05);
      entry.figure.textContent = z.windows ? String(z.windows) : "";
    }
    const table = el("table", { "data-testid": "survey-progress" },
      el("thead", {}, el("tr", {}, ...["Zone", "Windows", "Anchors heard", "", ""].map((h, i) => el("th", { class: i === 1 || i === 2 ? "num" : "" }, h)))),
      el("tbody", {}, ...rows));
    const parts = [head, el("div", { class: "survey-grid" }, el("div", { class: "card" }, floor.svg), table)];
    if (current.report) parts.push(reportCard(current.report));
    body.replaceChildren(...parts);
  }

  function zoneName(id) {
    return plan.zones.find((z) => z.id === id)?.name || id;
  }

  render();
  poll();
}

/** The calibration report, as `omnizone calibrate --json` prints it. */
function reportCard(report) {
  const accuracy = report.expected_zone_accuracy;
  const anchors = Object.entries(report.anchors).map(([anchor, fit]) => el("tr", { "data-testid": `anchor-${anchor}`, "data-flagged": String(fit.flags.length > 0) },
    el("td", {}, anchor),
    el("td", { class: "num" }, `${fit.power_1m_dbm.toFixed(1)} dBm`),
    el("td", { class: "num" }, fit.exponent.toFixed(2)),
    el("td", { class: "num" }, `${fit.spread_db.toFixed(1)} dB`),
    el("td", { class: "num" }, fmt(fit.samples)),
    el("td", {}, fit.flags.length ? fit.flags.map((f) => el("span", { class: "pill warn" }, f)) : el("span", { class: "pill ok" }, "ok")),
  ));
    return el("div", { class: "card", "data-testid": "survey-report" },
    el("h2", {}, "Calibration report"),
    el("p", {}, `${report.samples} samples (${report.positions}) · flagged anchors: `,
      el("b", { "data-testid": "flagged" }, report.flagged.length ? report.flagged.join(", ") : "none")),
    accuracy
      ? el("p", { "data-testid": "expected-accuracy" }, "Expected zone accuracy (single windows, cross-validated): default model ",
        el("b", {}, pct(accuracy.default_model)), ", calibrated ", el("b", {}, pct(accuracy.calibrated_model)),
        ", calibrated with the survey ", el("b", {}, pct(accuracy.calibrated_with_survey)), ".")
      : el("p", { "data-testid": "expected-accuracy" }, "No gateway column: no expected accuracy of the gateways' map."),
    el("table", {},
      el("thead", {}, el("tr", {}, ...["Anchor", "Power at 1 m", "Exponent", "Spread", "Samples", "Flags"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...anchors)),
    el("p", { class: "muted small", "data-testid": "written" }, "Written: ", el("code", {}, report.survey), " and ", el("code", {}, report.written),
      report.installed?.length ? ["; rewritten where the store file points: ", report.installed.join(", ")] : ""),
    ...report.notes.map((note) => el("p", { class: "muted small" }, `Note: ${note}`)),
  );
}
