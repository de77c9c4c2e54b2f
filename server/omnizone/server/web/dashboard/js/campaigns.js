// Campaigns: list, create (a form mapped onto the campaign API's model,
// docs/offers.md), pause and resume. Creating and pausing need an admin key;
// a read-only key sees the list only.

import { api, ApiError } from "./api.js";
import { el, fmt } from "./dom.js";

const TRIGGERS = {
  store_entered: { label: "Store entered", zones: false },
  zone_entered: { label: "Zone entered", zones: true, required: true },
  dwell: { label: "Dwell in a zone", zones: true, required: true, dwell: true },
  zone_left: { label: "Zone left", zones: true, required: true },
  try_on: { label: "Fitting-room try-on", zones: true },
  nfc_tap: { label: "NFC shelf tag tap", zones: false },
  returning_shopper: { label: "Returning shopper", zones: false, returning: true },
  wishlist_item_in_zone: { label: "Wishlist item in the zone entered", zones: true },
  cart_item_in_zone: { label: "Online-cart item in the zone entered", zones: true },
};

function describeTrigger(trigger) {
  const label = TRIGGERS[trigger.kind]?.label || trigger.kind;
  const zones = trigger.zones && trigger.zones.length ? ` (${trigger.zones.join(", ")})` : "";
  const dwell = trigger.min_dwell_s ? ` ≥ ${trigger.min_dwell_s} s` : "";
  return `${label}${zones}${dwell}`;
}

export async function campaignsView(ctx) {
  const admin = ctx.whoami.admin;
  const { info } = await ctx.plan();
  const zones = info.plan.zones;
  const list = el("tbody");
  const problems = el("ul", { class: "problems", "data-testid": "campaign-problems" });

  async function refresh() {
    const campaigns = await api(`/stores/${ctx.store}/campaigns`);
    list.replaceChildren(...campaigns.map((c) => el("tr", { "data-campaign": c.id },
      el("td", {}, el("b", {}, c.name), el("div", { class: "muted small" }, c.id)),
      el("td", {}, describeTrigger(c.trigger)),
      el("td", {}, c.content.title),
      el("td", { class: "num" }, fmt(c.priority)),
      el("td", { class: "num" }, `${Math.round(c.holdout_fraction * 100)} %`),
      el("td", {}, el("span", { class: `pill ${c.status === "active" ? "ok" : "warn"}`, "data-testid": "campaign-status" }, c.status)),
      el("td", {}, admin ? el("button", {
        class: "secondary small",
        "data-testid": c.status === "active" ? "pause" : "resume",
        onclick: async () => {
          try {
            await api(`/stores/${ctx.store}/campaigns/${c.id}/${c.status === "active" ? "pause" : "resume"}`, { method: "POST" });
            ctx.say(`${c.name}: ${c.status === "active" ? "paused" : "resumed"}`);
            await refresh();
          } catch (error) { ctx.say(error.message); }
        },
      }, c.status === "active" ? "Pause" : "Resume") : ""),
    )));
  }

  ctx.view.replaceChildren(
    el("h1", {}, "Campaigns"),
    el("table", { "data-testid": "campaigns" },
      el("thead", {}, el("tr", {}, ...["Campaign", "Trigger", "Offer", "Priority", "Holdout", "Status", ""].map((h) => el("th", {}, h)))),
      list),
    admin ? newCampaignForm(ctx, zones, problems, refresh) : el("p", { class: "muted", "data-testid": "read-only" }, "This key is read-only: creating, pausing and resuming campaigns need an admin key."),
  );
  await refresh();
}

function newCampaignForm(ctx, zones, problems, refresh) {
  const field = (label, input, hint) => el("label", {}, el("span", {}, label), input, hint ? el("small", { class: "muted" }, hint) : "");
  const id = el("input", { name: "id", "data-testid": "campaign-id", required: true, pattern: "[a-z0-9][a-z0-9-]*", placeholder: "e.g. shoes-weekend" });
  const name = el("input", { name: "name", "data-testid": "campaign-name", required: true });
  const kind = el("select", { name: "kind", "data-testid": "campaign-trigger" },
    Object.entries(TRIGGERS).map(([value, t]) => el("option", { value }, t.label)));
  const zoneBoxes = zones.map((z) => el("label", { class: "inline" }, el("input", { type: "checkbox", value: z.id, "data-zone": z.id }), ` ${z.name} `));
  const zonePicker = el("fieldset", { "data-testid": "campaign-zones" }, el("legend", {}, "Zones"), zoneBoxes);
  const minDwell = el("input", { type: "number", min: 1, value: 60, "data-testid": "campaign-dwell" });
  const dwellField = field("Minimum dwell (s)", minDwell);
  const previous = el("input", { type: "number", min: 1, value: 2 });
  const previousField = field("Earlier visits at least", previous);
  const title = el("input", { name: "title", "data-testid": "campaign-title", required: true, maxlength: 80 });
  const body = el("textarea", { name: "body", "data-testid": "campaign-body", rows: 2, maxlength: 500 });
  const coupon = el("input", { name: "coupon", "data-testid": "campaign-coupon", placeholder: "e.g. SHOES10-{code}" });
  const expires = el("input", { type: "number", min: 60, value: 3600, "data-testid": "campaign-expires" });
  const priority = el("input", { type: "number", min: -1000, max: 1000, value: 0, "data-testid": "campaign-priority" });
  const perVisit = el("input", { type: "number", min: 1, value: 1 });
  const perDay = el("input", { type: "number", min: 1, placeholder: "no limit" });
  const holdout = el("input", { type: "number", min: 0, max: 99, value: 10, "data-testid": "campaign-holdout" });
  const paused = el("input", { type: "checkbox", "data-testid": "campaign-paused" });

  function sync() {
    const t = TRIGGERS[kind.value];
    zonePicker.hidden = !t.zones;
    dwellField.hidden = !t.dwell;
    previousField.hidden = !t.returning;
  }
  kind.addEventListener("change", sync);
  sync();

  function campaign() {
    const t = TRIGGERS[kind.value];
    const trigger = { kind: kind.value };
    if (t.zones) trigger.zones = zoneBoxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
    if (t.dwell) trigger.min_dwell_s = Number(minDwell.value);
    if (t.returning) trigger.min_previous_visits = Number(previous.value);
    const content = { title: title.value, body: body.value, expires_after_s: Number(expires.value) };
    if (coupon.value.trim()) content.coupon_code = coupon.value.trim();
    const limits = { per_visit: Number(perVisit.value) || null };
    if (perDay.value) limits.per_day = Number(perDay.value);
    return {
      id: id.value.trim(), name: name.value.trim(), status: paused.checked ? "paused" : "active",
      priority: Number(priority.value), trigger, content, limits,
      holdout_fraction: Number(holdout.value) / 100,
    };
  }

  const form = el("form", {
    class: "card", "data-testid": "new-campaign",
    onsubmit: async (event) => {
      event.preventDefault();
      problems.replaceChildren();
      try {
        const made = await api(`/stores/${ctx.store}/campaigns`, { method: "POST", body: campaign() });
        ctx.say(`Campaign ${made.id} created`);
        form.reset();
        sync();
        await refresh();
      } catch (error) {
        const lines = error instanceof ApiError ? error.problems : [error.message];
        problems.replaceChildren(...lines.map((line) => el("li", {}, line)));
      }
    },
  },
  el("h2", {}, "New campaign"),
  el("div", { class: "row" },
    el("div", { class: "grow" }, field("Id", id, "lower case, digits and '-'"), field("Name", name), field("Trigger", kind), zonePicker, dwellField, previousField),
    el("div", { class: "grow" }, field("Offer title", title), field("Offer text", body), field("Till code", coupon, "A-Z, 0-9 and '-'; {code} makes it unique per offer"), field("Expires after (s)", expires)),
    el("div", { class: "grow" }, field("Priority", priority), field("Per visit at most", perVisit), field("Per day at most", perDay), field("Holdout (%)", holdout, "shoppers kept out to measure lift"), el("label", {}, paused, " start paused")),
  ),
  problems,
  el("button", { type: "submit", "data-testid": "create-campaign" }, "Create campaign"));
  return form;
}
