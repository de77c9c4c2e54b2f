// The staff dashboard (docs/dashboard.md): log in with an API key, pick a
// store, and move between views. Plain ES modules, no framework, no CDN: the
// files in web/dashboard are exactly what the browser runs.

import { api, ApiError, imageUrl, session } from "./api.js";
import { el } from "./dom.js";
import { alertsView } from "./alerts.js";
import { analyticsView } from "./analytics.js";
import { campaignsView } from "./campaigns.js";
import { editorView } from "./editor.js";
import { fleetView } from "./fleet.js";
import { floorHeatmapView } from "./heatmap.js";
import { headlineStrip, insightView } from "./insight.js";
import { liveView } from "./live.js";
import { predictionsView } from "./predictions.js";
import { surveyView } from "./survey.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
// Narrow screens (phones, tablets): the sidebar is a menu the header's button opens.
const menu = document.getElementById("menu");
function openMenu(open) {
  // Below the header, so the button stays there to close it again.
  if (open) nav.style.top = `${Math.max(0, document.querySelector("header").getBoundingClientRect().bottom)}px`;
  document.body.classList.toggle("menu-open", open);
  menu.setAttribute("aria-expanded", String(open));
}
menu.addEventListener("click", () => openMenu(!document.body.classList.contains("menu-open")));
nav.addEventListener("click", (event) => { if (event.target.closest("a")) openMenu(false); });
const statusLine = document.getElementById("status");
const storePicker = document.getElementById("store");
const STORE_CHOICE = "omnizone.staff.store";

const state = {
  whoami: null,
  stores: [],
  store: null,
  plans: new Map(), // store -> { info (GET plan), image (object URL or null) }
  cleanup: [],
};

export function say(text) {
  statusLine.textContent = text || "";
}

function leave() {
  for (const done of state.cleanup.splice(0)) {
    try { done(); } catch (error) { console.error(error); }
  }
}

// -- login ----------------------------------------------------------------------------

function loginPage(problem = "") {
  leave();
  nav.hidden = true;
  menu.hidden = true;
  openMenu(false);
  document.getElementById("session").hidden = true;
  const input = el("input", {
    type: "password", id: "key", "data-testid": "api-key", autocomplete: "off",
    placeholder: "API key", required: true,
  });
  const error = el("p", { class: "error", "data-testid": "login-error" }, problem);
  const form = el("form", { class: "card login", onsubmit: (event) => { event.preventDefault(); login(input.value.trim(), error); } },
    el("h1", {}, "Staff login"),
    el("p", { class: "muted" }, "Sign in with an API key of this server. A key with the ",
      el("code", {}, "read"), " scope sees every view; ", el("code", {}, "admin"),
      " also edits layouts and campaigns."),
    el("label", { for: "key" }, "API key"),
    input,
    el("button", { type: "submit", "data-testid": "login" }, "Log in"),
    error,
  );
  view.replaceChildren(form);
  input.focus();
}

async function login(key, error) {
  error.textContent = "";
  if (!key) { error.textContent = "Enter an API key."; return; }
  try {
    const who = await api("/whoami", { key });
    session.key = key;
    state.whoami = who;
    await start();
  } catch (problem) {
    session.key = null;
    error.textContent = problem instanceof ApiError && problem.status === 401
      ? "This key is not known to the server." : `Cannot log in: ${problem.message}`;
  }
}

function logout() {
  session.key = null;
  state.whoami = null;
  state.plans.clear();
  location.hash = "";
  loginPage();
}

// -- session --------------------------------------------------------------------------

async function start() {
  if (!state.whoami) state.whoami = await api("/whoami");
  const who = state.whoami;
  document.getElementById("scopes").textContent =
    who.admin ? "admin" : who.read ? "read-only" : `scopes: ${who.scopes.join(", ") || "none"}`;
  document.getElementById("session").hidden = false;
  if (!who.read) {
    view.replaceChildren(el("div", { class: "card" },
      el("h1", {}, "Nothing to see with this key"),
      el("p", {}, `This key has the scopes ${who.scopes.join(", ")}; the dashboard needs read or admin.`)));
    return;
  }
  state.stores = await api("/stores");
  if (!state.stores.length) {
    view.replaceChildren(el("div", { class: "card" }, el("h1", {}, "No stores"), el("p", {}, "This server serves no store yet.")));
    return;
  }
  const remembered = sessionStorage.getItem(STORE_CHOICE);
  state.store = state.stores.some((s) => s.id === remembered) ? remembered : state.stores[0]?.id;
  storePicker.replaceChildren(...state.stores.map((s) => el("option", { value: s.id, selected: s.id === state.store }, s.name)));
  nav.hidden = false;
  menu.hidden = false;
  document.body.classList.toggle("admin", who.admin);
  if (!location.hash || location.hash === "#/") location.hash = "#/live";
  else await route();
}

storePicker.addEventListener("change", () => {
  state.store = storePicker.value;
  sessionStorage.setItem(STORE_CHOICE, state.store);
  route();
});
document.getElementById("logout").addEventListener("click", logout);

/** The running plan of a store, and its floor image (cached per session). */
export async function storePlan(store, { fresh = false } = {}) {
  if (!fresh && state.plans.has(store)) return state.plans.get(store);
  const info = await api(`/stores/${store}/plan`);
  let image = null;
  if (info.image_id !== null) {
    image = await imageUrl(`/stores/${store}/floor-images/${info.image_id}`).catch(() => null);
  }
  const entry = { info, image };
  state.plans.set(store, entry);
  return entry;
}

// -- routing --------------------------------------------------------------------------

const ROUTES = [
  [/^#\/live$/, liveView],
  [/^#\/gateways$/, fleetView],
  [/^#\/alerts$/, alertsView],
  [/^#\/analytics\/(\w+)$/, analyticsView],
  [/^#\/campaigns$/, campaignsView],
  [/^#\/layout$/, editorView],
  [/^#\/survey$/, surveyView],
  [/^#\/insight\/(\w+)$/, insightView],
  [/^#\/floor-heatmap$/, floorHeatmapView],
  [/^#\/predict\/(\w+)$/, predictionsView],
];

async function route() {
  if (!session.key) return loginPage();
  if (!state.whoami || !state.store) return start();
  leave();
  say("");
  const hash = location.hash || "#/live";
  for (const link of nav.querySelectorAll("a")) link.classList.toggle("current", link.getAttribute("href") === hash);
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) { location.hash = "#/live"; return; }
  const [pattern, render] = found;
  const args = hash.match(pattern).slice(1);
  const ctx = {
    store: state.store,
    storeInfo: state.stores.find((s) => s.id === state.store),
    whoami: state.whoami,
    view,
    say,
    onLeave: (done) => state.cleanup.push(done),
    plan: (options) => storePlan(state.store, options),
    forgetPlan: () => state.plans.delete(state.store),
    // A layout saved meanwhile (here or in another tab) runs at once: draw the view again on it.
    replan: () => { state.plans.delete(state.store); route(); },
  };
  view.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    await render(ctx, ...args);
    if (hash === "#/live") await headlineStrip(ctx);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) { session.key = null; return loginPage("The key is no longer accepted."); }
    console.error(error);
    view.replaceChildren(el("div", { class: "card error", "data-testid": "view-error" }, `Could not load this view: ${error.message}`));
  }
}

window.addEventListener("hashchange", route);
route();
