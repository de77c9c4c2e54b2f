// Campaigns: list, create and edit (a form mapped onto the campaign API's
// model, docs/offers.md), pause and resume. Creating, editing and pausing
// need an admin key; a read-only key sees the list only.
//
// Editing starts from the campaign JSON the API returned and overwrites only
// what the form edits, so fields the form does not show (expected value,
// image, per-campaign cap, cool-down, budget, and whatever the model gains
// later) are sent back as they were. The server validates; the form never
// guesses: a refusal (422) lists the server's problems and keeps the form.
//
// A save is conditional on the campaign's revision when it was loaded
// (If-Match): if someone changed it since, the server refuses (412), nothing
// is overwritten, the form keeps its values and offers to reload the campaign.

import { api, ApiError } from "./api.js";
import { el, fmt } from "./dom.js";

const TRIGGERS = {
  store_entered: { label: "Store entered" },
  zone_entered: { label: "Zone entered", zones: true },
  dwell: { label: "Dwell in a zone", zones: true, dwell: true },
  zone_left: { label: "Zone left", zones: true },
  try_on: { label: "Fitting-room try-on", zones: true, products: "gtins" },
  nfc_tap: { label: "NFC shelf tag tap", taps: true, products: "products" },
  returning_shopper: { label: "Returning shopper", returning: true },
  wishlist_item_in_zone: { label: "Wishlist item in the zone entered", zones: true },
  cart_item_in_zone: { label: "Online-cart item in the zone entered", zones: true },
  // Follow-ups after the visit (docs/offers.md): sent `after` the shopper left.
  left_store: { label: "After the visit: left the store", followUp: true },
  tried_on_not_bought: { label: "After the visit: tried on, not bought", zones: true, products: "gtins", followUp: true },
  tapped_not_bought: { label: "After the visit: tapped, not bought", taps: true, products: "products", followUp: true },
  wishlist_lingered: { label: "After the visit: lingered by a wishlist item", zones: true, dwell: true, followUp: true },
};
// Every trigger field the form edits (the others of a trigger are kept).
const TRIGGER_FIELDS = ["zones", "min_dwell_s", "min_previous_visits", "tap_points", "products", "gtins", "after", "via", "attribution"];
const VIA = { web_push: "Web Push to the phone", webhook: "signed webhook to email/CRM" };

const RULES = {
  loyalty_member: { label: "Loyalty member", says: "loyalty member" },
  cart_not_empty: { label: "Online cart not empty", says: "cart not empty" },
  wishlist_not_empty: { label: "Wishlist not empty", says: "wishlist not empty" },
  has_purchased_gtin: { label: "Has bought product(s)", gtins: true, days: true },
  min_purchases: { label: "At least N purchases", count: true, days: true },
  min_spend: { label: "Has spent at least", amount: true, days: true },
  likely_to_buy: { label: "Likely to buy next (prediction)", gtins: true, categories: true, top: true },
};
// Every rule field the form edits.
const RULE_FIELDS = ["negate", "gtins", "count", "amount", "within_days", "categories", "top"];

const DAYS = [["mon", "Mon"], ["tue", "Tue"], ["wed", "Wed"], ["thu", "Thu"], ["fri", "Fri"], ["sat", "Sat"], ["sun", "Sun"]];

// The fields the form edits, as paths into the campaign. Everything else in a
// campaign being edited is kept as it came from the API (and listed as kept).
const EDITED = [
  "id", "name", "store", "status", "priority", "holdout_fraction", "trigger",
  "conditions.segments", "conditions.schedule", "conditions.quiet_hours", "conditions.require_in_stock",
  "content.title", "content.body", "content.coupon_code", "content.expires_after_s", "content.product_gtin",
  "limits.per_visit", "limits.per_day",
];

// Fields the server sets (the revision): never shown as kept, never sent back.
const SERVER_FIELDS = ["revision"];

const NEW_CAMPAIGN = {
  id: "", name: "", status: "active", priority: 0, holdout_fraction: 0.1,
  trigger: { kind: "store_entered" },
  conditions: { segments: [], schedule: null, quiet_hours: [], require_in_stock: false },
  content: { title: "", body: "", expires_after_s: 3600 },
  limits: { per_visit: 1, per_day: null },
};

// -- describing a campaign in the list ------------------------------------------------

function describeTrigger(trigger) {
  const label = TRIGGERS[trigger.kind]?.label || trigger.kind;
  const narrowed = [...(trigger.zones || []), ...(trigger.tap_points || [])];
  const where = narrowed.length ? ` (${narrowed.join(", ")})` : "";
  const dwell = trigger.min_dwell_s ? ` ≥ ${trigger.min_dwell_s} s` : "";
  const visits = trigger.min_previous_visits ? `, ≥ ${trigger.min_previous_visits} earlier visits` : "";
  const later = trigger.after ? `, ${trigger.after} later by ${VIA[trigger.via] || trigger.via}` : "";
  return `${label}${where}${dwell}${visits}${later}`;
}

/** A follow-up campaign's figures from the report, in one line. */
function describeFollowUp(f) {
  const bought = `${fmt(f.treated_converted)} bought within ${Math.round(f.attribution_window_s / 86400)} d (${fmt(f.converted_online)} online, ${fmt(f.converted_in_store)} in store)`;
  return `scheduled ${fmt(f.scheduled)} · waiting ${fmt(f.pending)} · sent ${fmt(f.sent)} · held out ${fmt(f.held_out)} · not sent ${fmt(f.not_sent)} · ${bought}`;
}

function describeRule(rule) {
  const spec = RULES[rule.rule];
  let text;
  if (rule.rule === "has_purchased_gtin") text = `bought ${rule.gtins.join(", ")}`;
  else if (rule.rule === "min_purchases") text = `≥ ${rule.count} purchases`;
  else if (rule.rule === "min_spend") text = `spent ≥ ${fmt(rule.amount, 2)}`;
  else if (rule.rule === "likely_to_buy") {
    const what = [...(rule.categories || []), ...(rule.gtins || [])].join(", ");
    text = `likely to buy ${what} (top ${rule.top ?? 3})`;
  }
  else text = spec?.says || rule.rule;
  if (rule.within_days) text += ` in ${rule.within_days} d`;
  return rule.negate ? `not ${text}` : text;
}

const windowText = (w) => `${w.start}–${w.end}`;

function describeConditions(conditions) {
  const parts = [];
  const c = conditions || {};
  if (c.segments?.length) parts.push(c.segments.map(describeRule).join(" and "));
  const s = c.schedule;
  if (s) {
    const days = s.days && s.days.length < 7 ? s.days.map((d) => d[0].toUpperCase() + d.slice(1)).join(" ") : "";
    const hours = (s.windows || []).map(windowText).join(", ");
    const dates = s.start_date || s.end_date ? `${s.start_date || "…"} to ${s.end_date || "…"}` : "";
    const when = [days, hours, dates].filter(Boolean).join(", ");
    if (when) parts.push(when);
  }
  if (c.quiet_hours?.length) parts.push(`quiet ${c.quiet_hours.map(windowText).join(", ")}`);
  if (c.require_in_stock) parts.push("in stock");
  return parts.join("; ") || "everyone, always";
}

// -- the view -------------------------------------------------------------------------

export async function campaignsView(ctx) {
  const admin = ctx.whoami.admin;
  const { info } = await ctx.plan();
  const list = el("tbody");
  const problems = el("ul", { class: "problems", "data-testid": "campaign-problems" });
  const marked = (id) => {
    for (const row of list.children) row.classList.toggle("editing", row.dataset.campaign === id);
  };
  const editor = admin ? campaignForm(ctx, info.plan, problems, { refresh: () => refresh(), marked }) : null;

  async function setStatus(c) {
    const next = c.status === "active" ? "pause" : "resume";
    try {
      const saved = await api(`/stores/${ctx.store}/campaigns/${c.id}/${next}`, { method: "POST" });
      ctx.say(`${c.name}: ${next === "pause" ? "paused" : "resumed"}`);
      editor?.statusChanged(saved);
      await refresh();
    } catch (error) { ctx.say(error.message); }
  }

  async function refresh() {
    const [campaigns, report] = await Promise.all([
      api(`/stores/${ctx.store}/campaigns`),
      api(`/stores/${ctx.store}/campaigns/report`).catch(() => []),
    ]);
    const figures = Object.fromEntries(report.map((f) => [f.campaign_id, f]));
    list.replaceChildren(...campaigns.map((c) => el("tr", { "data-campaign": c.id },
      el("td", {}, el("b", {}, c.name), el("div", { class: "muted small" }, c.id)),
      el("td", {}, describeTrigger(c.trigger),
        figures[c.id]?.follow_up
          ? el("div", { class: "muted small", "data-testid": "follow-up-figures" }, describeFollowUp(figures[c.id].follow_up)) : ""),
      el("td", { class: "small", "data-testid": "campaign-conditions" }, describeConditions(c.conditions)),
      el("td", {}, c.content.title),
      el("td", { class: "num" }, fmt(c.priority)),
      el("td", { class: "num" }, `${fmt(c.holdout_fraction * 100, 1)} %`),
      el("td", {}, el("span", { class: `pill ${c.status === "active" ? "ok" : "warn"}`, "data-testid": "campaign-status" }, c.status),
        figures[c.id]?.held_back_now && c.status === "active"
          ? el("div", { class: "pill warn small", "data-testid": "held-back-now" }, figures[c.id].held_back_now) : ""),
      el("td", { class: "actions" }, admin ? [
        el("button", { class: "secondary small", type: "button", "data-testid": "edit", onclick: () => editor.edit(c) }, "Edit"),
        el("button", {
          class: "secondary small", type: "button",
          "data-testid": c.status === "active" ? "pause" : "resume",
          onclick: () => setStatus(c),
        }, c.status === "active" ? "Pause" : "Resume"),
      ] : ""),
    )));
    marked(editor?.editingId());
  }

  ctx.view.replaceChildren(
    el("h1", {}, "Campaigns"),
    el("table", { "data-testid": "campaigns" },
      el("thead", {}, el("tr", {}, ...["Campaign", "Trigger", "Who and when", "Offer", "Priority", "Holdout", "Status", ""].map((h) => el("th", {}, h)))),
      list),
    editor ? editor.form : el("p", { class: "muted", "data-testid": "read-only" }, "This key is read-only: creating, editing, pausing and resuming campaigns need an admin key."),
  );
  await refresh();
}

// -- small form parts -----------------------------------------------------------------

const field = (label, input, hint) => el("label", {}, el("span", {}, label), input, hint ? el("small", { class: "muted" }, hint) : "");

/** "" -> null, anything else -> a number (the server says what is wrong with it). */
function numberOrNull(input) {
  const text = String(input.value).trim();
  return text === "" ? null : Number(text);
}

function gtinList(text) {
  return text.split(/[\s,;]+/).filter(Boolean);
}

/** Check boxes for the plan's zones or tap points; values the plan lacks are shown too. */
function checkList(items, attr, testid, legend) {
  const box = (value, label) => el("label", { class: "inline" },
    el("input", { type: "checkbox", value, [`data-${attr}`]: value }), ` ${label} `);
  const known = items.map((item) => box(item.id, item.name || item.id));
  const extra = el("span");
  const node = el("fieldset", { "data-testid": testid }, el("legend", {}, legend), known, extra);
  return {
    node,
    get: () => [...node.querySelectorAll("input")].filter((b) => b.checked).map((b) => b.value),
    set(values) {
      const wanted = new Set(values || []);
      extra.replaceChildren();
      for (const label of known) {
        const input = label.querySelector("input");
        input.checked = wanted.has(input.value);
        wanted.delete(input.value);
      }
      for (const value of wanted) {
        const label = box(value, `${value} (not in the running plan)`);
        label.querySelector("input").checked = true;
        extra.append(label);
      }
    },
  };
}

/** A list of daily time windows ("HH:MM" to "HH:MM"), as the model's TimeWindow. */
function windowList(name, addLabel) {
  const rows = el("div", { class: "windows", "data-testid": `${name}-windows` });
  function addRow(window = { start: "", end: "" }) {
    const start = el("input", { class: "clock", placeholder: "HH:MM", value: window.start, "data-testid": `${name}-start`, "aria-label": "from" });
    const end = el("input", { class: "clock", placeholder: "HH:MM", value: window.end, "data-testid": `${name}-end`, "aria-label": "to" });
    const row = el("div", { class: "window", "data-testid": `${name}-window` },
      start, " to ", end, " ",
      el("button", { type: "button", class: "secondary small", "data-testid": `remove-${name}`, onclick: () => row.remove() }, "Remove"));
    row.read = () => ({ ...window, start: start.value.trim(), end: end.value.trim() });
    rows.append(row);
    return start;
  }
  return {
    node: el("div", {}, rows,
      el("button", { type: "button", class: "secondary small", "data-testid": `add-${name}`, onclick: () => addRow().focus() }, addLabel)),
    // A row left empty is no window; anything else goes to the server as typed.
    get: () => [...rows.children].map((row) => row.read()).filter((w) => w.start || w.end),
    set(windows) {
      rows.replaceChildren();
      for (const window of windows || []) addRow(window);
    },
  };
}

/** Segment rules: each row is one rule of the model; all must hold. */
function segmentList() {
  const rows = el("div", { class: "segments", "data-testid": "campaign-segments" });
  function addRow(rule = { rule: "loyalty_member" }) {
    const kind = el("select", { "data-testid": "segment-rule", "aria-label": "rule" },
      Object.entries(RULES).map(([value, spec]) => el("option", { value }, spec.label)),
      RULES[rule.rule] ? null : el("option", { value: rule.rule }, rule.rule));
    kind.value = rule.rule;
    const negate = el("input", { type: "checkbox", "data-testid": "segment-negate", checked: Boolean(rule.negate) });
    const gtins = el("input", { "data-testid": "segment-gtins", placeholder: "GTIN-14, GTIN-14 …", value: (rule.gtins || []).join(", ") });
    const count = el("input", { type: "number", min: 1, step: 1, "data-testid": "segment-count", value: rule.count ?? 1 });
    const amount = el("input", { type: "number", min: 0, step: "any", "data-testid": "segment-amount", value: rule.amount ?? "" });
    const days = el("input", { type: "number", min: 1, step: 1, "data-testid": "segment-days", placeholder: "ever", value: rule.within_days ?? "" });
    const gtinsField = field("Products (GTIN-14, comma-separated)", gtins);
    const countField = field("Purchases at least", count);
    const amountField = field("Spent at least (store currency)", amount);
    const daysField = field("Within the last … days", days, "empty: ever");
    const categories = el("input", { "data-testid": "segment-categories", placeholder: "denim, shoes …", value: (rule.categories || []).join(", ") });
    const top = el("input", { type: "number", min: 1, max: 20, step: 1, "data-testid": "segment-top", value: rule.top ?? 3 });
    const categoriesField = field("Categories (zone ids, comma-separated)", categories);
    const topField = field("Among the top … predictions", top);
    function sync() {
      const spec = RULES[kind.value] || {};
      categoriesField.hidden = !spec.categories;
      topField.hidden = !spec.top;
      gtinsField.hidden = !spec.gtins;
      countField.hidden = !spec.count;
      amountField.hidden = !spec.amount;
      daysField.hidden = !spec.days;
    }
    kind.addEventListener("change", sync);
    sync();
    const row = el("div", { class: "segment", "data-testid": "segment" },
      el("div", { class: "segment-head" }, kind,
        el("button", { type: "button", class: "secondary small", "data-testid": "remove-segment", onclick: () => row.remove() }, "Remove")),
      el("label", { class: "inline" }, negate, " the shopper must NOT match this rule"),
      gtinsField, countField, amountField, daysField, categoriesField, topField);
    row.read = () => {
      const spec = RULES[kind.value] || {};
      // The same rule keeps any field the form does not know; another rule starts afresh.
      const out = kind.value === rule.rule ? { ...rule } : { rule: kind.value };
      for (const name of RULE_FIELDS) delete out[name];
      if (negate.checked) out.negate = true;
      if (spec.gtins) out.gtins = gtinList(gtins.value);
      if (spec.categories) out.categories = categories.value.split(",").map((c) => c.trim()).filter(Boolean);
      if (spec.top) out.top = numberOrNull(top) ?? 3;
      if (spec.count) out.count = numberOrNull(count);
      if (spec.amount) out.amount = numberOrNull(amount);
      if (spec.days) {
        const within = numberOrNull(days);
        if (within !== null) out.within_days = within;
      }
      return out;
    };
    rows.append(row);
    return kind;
  }
  return {
    node: el("div", {}, rows,
      el("button", { type: "button", class: "secondary small", "data-testid": "add-segment", onclick: () => addRow().focus() }, "Add rule")),
    get: () => [...rows.children].map((row) => row.read()),
    set(rules) {
      rows.replaceChildren();
      for (const rule of rules || []) addRow(rule);
    },
  };
}

/** "path: value" for each field of the campaign the form does not edit. */
function keptFields(campaign) {
  const out = [];
  const walk = (value, path) => {
    if (EDITED.includes(path) || SERVER_FIELDS.includes(path)) return;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) walk(inner, path ? `${path}.${key}` : key);
    } else if (value !== null && value !== undefined) {
      out.push(`${path}: ${Array.isArray(value) ? value.join(", ") : value}`);
    }
  };
  walk(campaign, "");
  return out;
}

// -- the form -------------------------------------------------------------------------

function campaignForm(ctx, plan, problems, { refresh, marked }) {
  const timeZone = ctx.storeInfo?.timezone || "the store's time zone";
  let editing = null; // the campaign as the API returned it, while editing
  let holdoutShown = ""; // the holdout as loaded, to keep the exact fraction if untouched

  const id = el("input", { name: "id", "data-testid": "campaign-id", pattern: "[a-z0-9][a-z0-9_-]*", placeholder: "e.g. shoes-weekend" });
  const idHint = el("small", { class: "muted" });
  const name = el("input", { name: "name", "data-testid": "campaign-name", maxlength: 120 });
  const kind = el("select", { name: "kind", "data-testid": "campaign-trigger" },
    Object.entries(TRIGGERS).map(([value, t]) => el("option", { value }, t.label)));
  const zones = checkList(plan.zones, "zone", "campaign-zones", "Zones");
  const taps = checkList(plan.nfc_tap_points || [], "tap", "campaign-taps", "Tap points (none ticked: any)");
  const products = el("input", { "data-testid": "campaign-products", placeholder: "GTIN-14, GTIN-14 …" });
  const productsField = field("Products (empty: any)", products, "GTIN-14s, comma-separated");
  const minDwell = el("input", { type: "number", min: 1, "data-testid": "campaign-dwell" });
  const dwellField = field("Minimum dwell (s)", minDwell);
  const previous = el("input", { type: "number", min: 1, "data-testid": "campaign-previous" });
  const previousField = field("Earlier visits at least", previous);
  const after = el("input", { "data-testid": "campaign-after", placeholder: "e.g. 2h" });
  const via = el("select", { "data-testid": "campaign-via" },
    Object.entries(VIA).map(([value, label]) => el("option", { value }, label)));
  const attribution = el("input", { "data-testid": "campaign-attribution", placeholder: "7d" });
  const followUpField = el("fieldset", { "data-testid": "campaign-follow-up" },
    el("legend", {}, "After the visit"),
    field("Send after", after, "after the shopper left: 30m, 2h, 1d (1m to 30d)"),
    field("Send by", via),
    field("Purchases credited for", attribution, "after sending: 1d, 7d (1h to 90d)"));

  const title = el("input", { name: "title", "data-testid": "campaign-title", maxlength: 80 });
  const body = el("textarea", { name: "body", "data-testid": "campaign-body", rows: 2, maxlength: 500 });
  const coupon = el("input", { name: "coupon", "data-testid": "campaign-coupon", placeholder: "e.g. SHOES10-{code}" });
  const expires = el("input", { type: "number", min: 60, "data-testid": "campaign-expires" });
  const product = el("input", { "data-testid": "campaign-product", placeholder: "GTIN-14" });
  const inStock = el("input", { type: "checkbox", "data-testid": "campaign-in-stock" });

  const priority = el("input", { type: "number", min: -1000, max: 1000, "data-testid": "campaign-priority" });
  const perVisit = el("input", { type: "number", min: 1, placeholder: "no limit", "data-testid": "campaign-per-visit" });
  const perDay = el("input", { type: "number", min: 1, placeholder: "no limit", "data-testid": "campaign-per-day" });
  const holdout = el("input", { type: "number", min: 0, max: 99, step: "any", "data-testid": "campaign-holdout" });
  const paused = el("input", { type: "checkbox", "data-testid": "campaign-paused" });
  const pausedLabel = document.createTextNode("");

  const segments = segmentList();
  const dayBoxes = DAYS.map(([value, label]) => el("label", { class: "inline" },
    el("input", { type: "checkbox", value, "data-day": value }), ` ${label}`));
  const dayInputs = dayBoxes.map((label) => label.querySelector("input"));
  const hours = windowList("schedule", "Add hours");
  const startDate = el("input", { type: "date", "data-testid": "schedule-start-date" });
  const endDate = el("input", { type: "date", "data-testid": "schedule-end-date" });
  const quiet = windowList("quiet", "Add quiet hours");
  const clockNote = `"HH:MM", 24-hour, on the store's clock (${timeZone}), not your computer's; a window from 22:00 to 07:00 runs past midnight, and 24:00 may end one.`;

  const heading = el("h2", { "data-testid": "campaign-form-title" });
  const kept = el("p", { class: "muted small", "data-testid": "campaign-kept" });
  const submit = el("button", { type: "submit" });
  const cancel = el("button", { type: "button", class: "secondary", "data-testid": "cancel-edit", onclick: () => { problems.replaceChildren(); load(null); } }, "Cancel");

  function sync() {
    const t = TRIGGERS[kind.value] || {};
    zones.node.hidden = !t.zones;
    taps.node.hidden = !t.taps;
    productsField.hidden = !t.products;
    dwellField.hidden = !t.dwell;
    previousField.hidden = !t.returning;
    followUpField.hidden = !t.followUp;
  }
  kind.addEventListener("change", sync);

  /** Fill the form from a campaign (null: a new one). */
  function load(campaign) {
    editing = campaign;
    const c = campaign || NEW_CAMPAIGN;
    const trigger = c.trigger;
    const conditions = c.conditions || {};
    const content = c.content || {};
    const limits = c.limits || {};
    id.value = c.id;
    id.readOnly = Boolean(campaign);
    idHint.textContent = campaign ? "the id cannot change" : "lower case, digits, '-' and '_'";
    name.value = c.name;
    if (![...kind.options].some((o) => o.value === trigger.kind)) kind.append(el("option", { value: trigger.kind }, trigger.kind));
    kind.value = trigger.kind;
    zones.set(trigger.zones);
    taps.set(trigger.tap_points);
    products.value = (trigger.products || trigger.gtins || []).join(", ");
    minDwell.value = trigger.min_dwell_s ?? 60;
    previous.value = trigger.min_previous_visits ?? 2;
    after.value = trigger.after ?? "2h";
    via.value = trigger.via ?? "web_push";
    attribution.value = trigger.attribution ?? "7d";
    title.value = content.title ?? "";
    body.value = content.body ?? "";
    coupon.value = content.coupon_code ?? "";
    expires.value = content.expires_after_s ?? 3600;
    product.value = content.product_gtin ?? "";
    inStock.checked = Boolean(conditions.require_in_stock);
    priority.value = c.priority ?? 0;
    perVisit.value = "per_visit" in limits ? (limits.per_visit ?? "") : 1;
    perDay.value = limits.per_day ?? "";
    holdoutShown = String(+((c.holdout_fraction ?? 0) * 100).toFixed(4));
    holdout.value = holdoutShown;
    paused.checked = c.status === "paused";
    pausedLabel.textContent = campaign ? " paused" : " start paused";
    segments.set(conditions.segments);
    const schedule = conditions.schedule;
    const days = new Set(schedule?.days || DAYS.map(([d]) => d));
    for (const input of dayInputs) input.checked = days.has(input.value);
    hours.set(schedule?.windows);
    startDate.value = schedule?.start_date ?? "";
    endDate.value = schedule?.end_date ?? "";
    quiet.set(conditions.quiet_hours);

    heading.textContent = campaign ? `Edit campaign ${campaign.id}` : "New campaign";
    form.dataset.mode = campaign ? "edit" : "new";
    submit.textContent = campaign ? "Save changes" : "Create campaign";
    submit.dataset.testid = campaign ? "save-campaign" : "create-campaign";
    cancel.hidden = !campaign;
    const others = campaign ? keptFields(campaign) : [];
    kept.hidden = !others.length;
    kept.textContent = others.length ? `Kept as they are (not in this form): ${others.join(" · ")}` : "";
    sync();
    marked(campaign?.id ?? null);
  }

  function readSchedule(base) {
    const days = dayInputs.filter((b) => b.checked).map((b) => b.value);
    const windows = hours.get();
    const start = startDate.value || null;
    const end = endDate.value || null;
    if (days.length === DAYS.length && !windows.length && !start && !end) return null; // always
    return { ...(base || {}), days, windows, start_date: start, end_date: end };
  }

  /** The campaign to send: the one being edited (or nothing) with the form's fields on top. */
  function campaign() {
    const base = editing ? structuredClone(editing) : {};
    for (const name of SERVER_FIELDS) delete base[name];
    const t = TRIGGERS[kind.value] || {};
    const trigger = base.trigger?.kind === kind.value ? { ...base.trigger } : { kind: kind.value };
    for (const name of TRIGGER_FIELDS) delete trigger[name];
    if (t.zones) trigger.zones = zones.get();
    if (t.taps) trigger.tap_points = taps.get();
    if (t.products) trigger[t.products] = gtinList(products.value);
    if (t.dwell) trigger.min_dwell_s = numberOrNull(minDwell);
    if (t.returning) trigger.min_previous_visits = numberOrNull(previous);
    if (t.followUp) {
      trigger.after = after.value.trim();
      trigger.via = via.value;
      trigger.attribution = attribution.value.trim() || "7d";
    }

    const content = { ...(base.content || {}), title: title.value, body: body.value, expires_after_s: numberOrNull(expires) };
    if (coupon.value.trim()) content.coupon_code = coupon.value.trim();
    else delete content.coupon_code;
    if (product.value.trim()) content.product_gtin = product.value.trim();
    else delete content.product_gtin;

    const conditions = {
      ...(base.conditions || {}),
      segments: segments.get(),
      schedule: readSchedule(base.conditions?.schedule),
      quiet_hours: quiet.get(),
      require_in_stock: inStock.checked,
    };
    const limits = { ...(base.limits || {}), per_visit: numberOrNull(perVisit), per_day: numberOrNull(perDay) };
    const holdoutFraction = editing && holdout.value === holdoutShown
      ? base.holdout_fraction
      : (numberOrNull(holdout) ?? 0) / 100;
    return {
      ...base,
      id: editing ? editing.id : id.value.trim(),
      name: name.value.trim(),
      status: paused.checked ? "paused" : "active",
      priority: numberOrNull(priority) ?? 0,
      trigger, conditions, content, limits,
      holdout_fraction: holdoutFraction,
    };
  }

  const form = el("form", {
    class: "card", "data-testid": "new-campaign", novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      problems.replaceChildren();
      const sending = campaign();
      try {
        if (editing) {
          // Only if nobody changed it since it was loaded: else 412, nothing overwritten.
          const ifMatch = editing.revision === undefined ? {} : { "If-Match": `"${editing.revision}"` };
          await api(`/stores/${ctx.store}/campaigns/${encodeURIComponent(editing.id)}`, { method: "PUT", body: sending, headers: ifMatch });
          ctx.say(`Campaign ${sending.id} saved`);
        } else {
          await api(`/stores/${ctx.store}/campaigns`, { method: "POST", body: sending });
          ctx.say(`Campaign ${sending.id} created`);
        }
        load(null);
        await refresh();
      } catch (error) {
        let lines = error instanceof ApiError ? error.problems : [error.message];
        if (error instanceof ApiError && error.status === 409) {
          lines = [`id: a campaign ${sending.id} exists already; use its Edit button to change it`];
        }
        if (error instanceof ApiError && error.status === 412 && editing) {
          problems.replaceChildren(conflict(editing.id), el("li", { class: "muted small" }, error.message));
          return;
        }
        problems.replaceChildren(...lines.map((line) => el("li", {}, line)));
      }
    },
  },
  heading,
  el("div", { class: "row" },
    el("div", { class: "grow" },
      el("label", {}, el("span", {}, "Id"), id, idHint),
      field("Name", name), field("Trigger", kind), zones.node, taps.node, productsField, dwellField, previousField, followUpField),
    el("div", { class: "grow" },
      field("Offer title", title), field("Offer text", body),
      field("Till code", coupon, "A-Z, 0-9 and '-'; {code} makes it unique per offer"),
      field("Expires after (s)", expires),
      field("Offer's product", product, "GTIN-14; empty: the product the event names, if any"),
      el("label", {}, inStock, " only when that product is in stock here")),
    el("div", { class: "grow" },
      field("Priority", priority), field("Per visit at most", perVisit), field("Per day at most", perDay, "calendar day in the store's time zone"),
      field("Holdout (%)", holdout, "shoppers kept out to measure lift"), el("label", {}, paused, pausedLabel)),
  ),
  el("div", { class: "row" },
    el("fieldset", { class: "grow" }, el("legend", {}, "Who: segment rules (all must hold; none: everyone)"), segments.node),
    el("fieldset", { class: "grow", "data-testid": "campaign-schedule" }, el("legend", {}, "When: schedule"),
      el("div", { "data-testid": "schedule-days" }, dayBoxes),
      el("small", { class: "muted block" }, "Hours on those days (none: all day)"),
      hours.node,
      el("div", { class: "dates" }, field("From", startDate), field("Until (inclusive)", endDate)),
      el("small", { class: "muted block" }, `Times ${clockNote} Dates are store calendar days.`)),
    el("fieldset", { class: "grow", "data-testid": "campaign-quiet" }, el("legend", {}, "Quiet hours: no offers inside these daily windows"),
      quiet.node,
      el("small", { class: "muted block" }, `Times ${clockNote}`)),
  ),
  kept,
  problems,
  el("div", { class: "toolbar" }, submit, cancel));

  /** The refusal of a save whose campaign changed since it was loaded (412). */
  function conflict(campaignId) {
    const reload = el("button", {
      type: "button", class: "secondary small", "data-testid": "reload-campaign",
      title: "Show the campaign as it is stored now (the form's edits are replaced)",
      onclick: async () => {
        reload.disabled = true;
        try {
          const current = await api(`/stores/${ctx.store}/campaigns/${encodeURIComponent(campaignId)}`);
          problems.replaceChildren();
          load(current);
          ctx.say(`Campaign ${campaignId} reloaded: the form shows the version saved by someone else`);
          await refresh();
        } catch (error) {
          reload.disabled = false;
          problems.append(el("li", {}, error.message));
        }
      },
    }, "Reload campaign");
    return el("li", { class: "conflict", "data-testid": "campaign-conflict" },
      `Campaign ${campaignId} was changed by someone else since you opened it: `,
      "reload to see their version; your edits are still in the form (nothing was saved). ",
      reload);
  }

  load(null);
  return {
    form,
    editingId: () => editing?.id ?? null,
    /** Load a campaign from the list into the form. */
    edit(campaign) {
      problems.replaceChildren();
      load(structuredClone(campaign));
      form.scrollIntoView({ block: "start" });
      name.focus({ preventScroll: true });
    },
    /** Pause or resume from the list while the campaign is in the form. */
    statusChanged(saved) {
      if (!editing || editing.id !== saved.id) return;
      editing.status = saved.status;
      paused.checked = saved.status === "paused";
      // The form may save over this pause (its box follows it), but only if
      // the pause was the one change since the form loaded the campaign;
      // otherwise the save is refused (412) as it should be.
      if (saved.revision === editing.revision + 1) editing.revision = saved.revision;
    },
  };
}
