// The reference shopper app (docs/shopper-app.md): register, consent, offer
// inbox fed live over a WebSocket that resumes from the last acknowledged
// offer, offer detail with a redeemable QR code, product pages for NFC shelf
// tags. Plain ES modules, no framework and no CDN, so it runs as served.

const API = "/api/v1";
const STORE_KEY = "omnizone.shopper";
const view = document.getElementById("view");
const statusLine = document.getElementById("status");

const state = {
  shopper: JSON.parse(localStorage.getItem(STORE_KEY) || "null"),
  offers: new Map(), // offer_id -> offer, kept in seq order when listed
  socket: null,
  retryMs: 500,
};

function save() {
  localStorage.setItem(STORE_KEY, JSON.stringify(state.shopper));
}

function say(text) {
  statusLine.textContent = text;
}

async function api(path, { method = "GET", body, auth = true, survey } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && state.shopper) headers.Authorization = `Bearer ${state.shopper.token}`;
  if (survey) headers["X-Survey-Token"] = survey;
  const response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail ? JSON.stringify(data.detail) : `${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function show(...nodes) {
  view.replaceChildren(...nodes);
}

// -- routing ---------------------------------------------------------------------

function go(path) {
  history.pushState({}, "", path);
  route();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (link) {
    event.preventDefault();
    go(link.getAttribute("href"));
  }
});
window.addEventListener("popstate", route);

async function route() {
  const path = location.pathname.replace(/\/+$/, "") || "/app";
  const product = path.match(/^\/app\/p\/(\d{8,14})$/);
  const offer = path.match(/^\/app\/offer\/([\w-]+)$/);
  const code = location.hash.match(/^#survey=([A-Za-z0-9]{4,16})$/);
  try {
    if (code || path === "/app/survey") return await surveyPage(code ? code[1] : "");
    if (product) return await productPage(product[1]);
    if (!state.shopper) return welcome();
    if (offer) return await offerPage(offer[1]);
    if (path === "/app/settings") return await settingsPage();
    return await inbox();
  } catch (error) {
    // The page says it once, in place of "Loading…", not below it.
    show(el("h1", {}, "Something went wrong"), el("p", { "data-testid": "page-error" }, error.message));
  }
}

// -- pages -----------------------------------------------------------------------

function welcome() {
  show(
    el("h1", {}, "Welcome"),
    el("p", {}, "Join to get offers on your phone while you shop. You choose what we may use."),
    el("button", { "data-testid": "join", onclick: join }, "Join"),
  );
}

async function join() {
  const store = document.documentElement.dataset.store || new URLSearchParams(location.search).get("store") || "paris-rivoli";
  const registered = await api("/shoppers", { method: "POST", body: { store }, auth: false });
  state.shopper = { ...registered, store, lastSeq: 0 };
  save();
  await consentPage(true);
}

async function consentForm(firstRun) {
  const current = await api("/me/consent");
  const box = (name, title, text) =>
    el("label", { class: "consent" },
      el("input", { type: "checkbox", name, "data-testid": `consent-${name}`, ...(current[name] ? { checked: "" } : {}) }),
      el("span", {}, el("strong", {}, title), el("br"), el("span", { class: "muted" }, text)));
  const form = el("form", {},
    box("location_analytics", "In-store location", "Which zones you visit and for how long, to improve the store. Without it nothing about where you are is stored."),
    box("personalized_offers", "Personal offers", "Offers on this phone based on where you are and what you like. Without it you get no offers."),
    el("button", { type: "submit", "data-testid": "save-consent" }, firstRun ? "Continue" : "Save"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    await api("/me/consent", {
      method: "PUT",
      body: { location_analytics: data.has("location_analytics"), personalized_offers: data.has("personalized_offers") },
    });
    say("Saved.");
    go("/app/");
  });
  return form;
}

async function consentPage(firstRun) {
  show(el("h1", {}, "Your choices"), await consentForm(firstRun));
}

async function inbox() {
  const offers = await api(`/me/offers?after=0`);
  for (const offer of offers) state.offers.set(offer.offer_id, offer);
  renderInbox();
  connect();
}

function renderInbox() {
  if (location.pathname.replace(/\/+$/, "") !== "/app") return;
  const list = [...state.offers.values()].sort((a, b) => b.seq - a.seq);
  show(
    el("h1", {}, "Your offers"),
    list.length
      ? el("div", { "data-testid": "inbox" }, list.map((offer) =>
          el("a", { href: `/app/offer/${offer.offer_id}`, "data-link": "", class: `offer${offer.seq > (state.shopper.seenSeq || 0) ? " new" : ""}`, "data-testid": "offer" },
            el("h3", {}, offer.title), el("span", { class: "muted" }, offer.body))))
      : el("p", { class: "muted", "data-testid": "empty-inbox" }, "No offers yet. They appear here while you shop."),
  );
}

async function offerPage(offerId) {
  let offer = state.offers.get(offerId);
  if (!offer) {
    const offers = await api(`/me/offers?after=0`);
    offer = offers.find((o) => o.offer_id === offerId);
  }
  if (!offer) return show(el("p", {}, "This offer is not available."));
  receipt(offer, "opened");
  const nodes = [el("h1", {}, offer.title), el("p", {}, offer.body)];
  if (offer.image) nodes.push(el("img", { class: "product", src: offer.image, alt: "" }));
  if (offer.coupon_code) {
    nodes.push(el("p", {}, "Show this at the till:"), el("p", { class: "code", "data-testid": "coupon" }, offer.coupon_code));
    const qr = el("img", { class: "qr", alt: `QR code for ${offer.coupon_code}`, "data-testid": "qr" });
    nodes.push(qr);
    fetch(`${API}/me/offers/${offer.offer_id}/qr.svg`, { headers: { Authorization: `Bearer ${state.shopper.token}` } })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.status))))
      .then((blob) => { qr.src = URL.createObjectURL(blob); })
      .catch(() => qr.remove());
  }
  if (offer.product_gtin) nodes.push(el("p", {}, el("a", { href: `/app/p/${offer.product_gtin}`, "data-link": "" }, "See the product")));
  if (offer.expires_ms) nodes.push(el("p", { class: "muted" }, `Valid until ${new Date(offer.expires_ms).toLocaleString()}`));
  nodes.push(el("button", { class: "secondary", onclick: () => { receipt(offer, "dismissed"); go("/app/"); } }, "Dismiss"));
  show(...nodes);
}

async function productPage(gtin) {
  let product;
  try {
    product = await api(`/products/${gtin}`, { auth: false });
  } catch (error) {
    if (error.status !== 404) throw error;
    show(
      el("h1", { "data-testid": "product-missing" }, "Product not found"),
      el("p", {}, `There is no product ${gtin} in the catalog. The tag may be old; ask a store associate.`),
      el("p", {}, el("a", { href: "/app/", "data-link": "" }, "Back to your offers")),
    );
    return;
  }
  const nodes = [el("h1", { "data-testid": "product-name" }, product.name)];
  if (product.image) nodes.push(el("img", { class: "product", src: product.image, alt: product.name }));
  nodes.push(el("p", {}, product.description || ""), el("p", { class: "code" }, `${product.price} ${product.currency || ""}`));
  const tap = new URLSearchParams(location.search).get("tap");
  if (state.shopper && tap) {
    // Opened from a shelf tag: the tap may trigger an offer (docs/offers.md, nfc_tap).
    api("/me/taps", { method: "POST", body: { store: state.shopper.store || "paris-rivoli", gtin, tap_point: tap } }).catch(() => {});
  }
  if (state.shopper) {
    nodes.push(el("button", {
      "data-testid": "add-to-wishlist",
      onclick: async () => {
        await api("/me/profile-events", { method: "POST", body: { type: "wishlist_add", gtin, channel: "app" } });
        say("Added to your wishlist.");
      },
    }, "Add to wishlist"));
  } else {
    nodes.push(el("p", {}, el("a", { href: "/app/", "data-link": "" }, "Join"), " to keep a wishlist."));
  }
  show(...nodes);
}

async function settingsPage() {
  show(
    el("h1", {}, "Privacy"),
    await consentForm(false),
    el("h2", {}, "Where you are in the store"),
    // Said plainly (docs/mobile-sdk.md, "What a web app cannot do"): no Web Bluetooth scanning here.
    el("p", { "data-testid": "web-app-limits" },
      "This web app cannot use Bluetooth: it neither sends a signal the store can hear nor hears the store's beacons, ",
      "so on its own it cannot tell the store which zone you are in, and offers that depend on where you are need the store's native app. ",
      "How a native app does it: ", el("a", { href: "/docs#/phones" }, "the phone API"), " (docs/mobile-sdk.md)."),
    el("h2", {}, "Your data"),
    el("p", {}, el("button", { class: "secondary", onclick: exportData }, "Download my data")),
    el("p", {}, el("button", { class: "danger", "data-testid": "erase", onclick: erase }, "Erase everything")),
  );
}

async function exportData() {
  const data = await api("/me/export");
  const link = el("a", { href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" })), download: "omnizone-my-data.json" });
  link.click();
}

async function erase() {
  if (!confirm("Erase everything about you, for good?")) return;
  await api("/me", { method: "DELETE" });
  state.shopper = null;
  localStorage.removeItem(STORE_KEY);
  state.offers.clear();
  if (state.socket) state.socket.close();
  go("/app/");
}

// -- survey mode (staff) -------------------------------------------------------------
// The staff's guide screen for a guided survey (docs/shopper-app.md): pair
// with the dashboard's code, then see which zone to walk and how far it is.
// A browser cannot advertise over Bluetooth: the radio is the phone's native
// SDK (or a simulator phone) advertising this registration's rotating id.

const SURVEY_KEY = "omnizone.survey";
const SURVEY_POLL_MS = 1000;
let surveyTimer = null;

async function surveyPage(code) {
  clearTimeout(surveyTimer);
  const paired = JSON.parse(localStorage.getItem(SURVEY_KEY) || "null");
  if (paired && !code) return surveyProgress(paired);
  const input = el("input", { "data-testid": "survey-code", value: code, autocomplete: "off", placeholder: "e.g. K7QX2M", maxlength: "16" });
  const form = el("form", {},
    el("label", {}, "Pairing code from the dashboard's Survey page", el("br"), input),
    el("button", { type: "submit", "data-testid": "pair-survey" }, "Pair this phone"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      if (!state.shopper) {
        // Staff equipment: registered so its rotating id resolves, no shopper consent asked.
        const store = new URLSearchParams(location.search).get("store") || "paris-rivoli";
        const registered = await api("/shoppers", { method: "POST", body: { store }, auth: false });
        state.shopper = { ...registered, store, lastSeq: 0 };
        save();
      }
      const answer = await api("/surveys/pair", { method: "POST", body: { code: input.value.trim() } });
      const survey = { token: answer.token, id: answer.id, store: answer.store };
      localStorage.setItem(SURVEY_KEY, JSON.stringify(survey));
      history.replaceState({}, "", "/app/survey");
      await surveyProgress(survey);
    } catch (error) {
      say(`Cannot pair: ${error.message}`);
    }
  });
  show(el("h1", {}, "Survey mode"),
    el("p", { class: "muted" }, "For store staff walking a guided survey. This screen guides you; the phone's radio (the omnizone SDK) does the advertising."),
    form);
  if (code) form.requestSubmit();
}

async function surveyProgress(survey) {
  clearTimeout(surveyTimer);
  let status;
  try {
    status = await api("/surveys/current", { auth: false, survey: survey.token });
  } catch (error) {
    localStorage.removeItem(SURVEY_KEY);
    show(el("h1", {}, "Survey mode"), el("p", { "data-testid": "survey-over" }, "This survey is no longer open."),
      el("p", {}, el("a", { href: "/app/survey", "data-link": "" }, "Pair with another survey")));
    return;
  }
  if (!location.pathname.startsWith("/app/survey")) return;
  const open = ["waiting_for_phone", "paired"].includes(status.state);
  const active = status.zones.find((z) => z.zone === status.zone);
  const pick = (zone) => api("/surveys/current/zone", { method: "POST", body: { zone }, auth: false, survey: survey.token })
    .then(() => surveyProgress(survey)).catch((error) => say(error.message));
  show(
    el("h1", {}, "Survey mode"),
    !open
      ? el("p", { "data-testid": "survey-over" }, `The survey is ${status.state}. Thank you!`)
      : active
        ? el("div", { class: "offer", "data-testid": "survey-walk" },
            el("p", { class: "muted" }, "Walk slowly all over"),
            el("h2", { "data-testid": "survey-zone" }, active.name),
            el("p", { "data-testid": "survey-zone-progress" },
              `${active.windows} / ${status.rule.min_windows} windows · ${active.anchors} / ${status.rule.min_anchors} anchors · `,
              active.enough ? el("strong", {}, "enough, move on") : "keep walking"))
        : el("p", { "data-testid": "survey-waiting" }, "Waiting for a zone: pick one below or in the dashboard."),
    el("ul", { class: "survey-zones" }, status.zones.map((z) => el("li", { "data-testid": `survey-app-zone-${z.zone}` },
      `${z.enough ? "✓" : z.windows ? "…" : "·"} ${z.name} (${z.windows})`, " ",
      open && z.zone !== status.zone ? el("button", { class: "secondary", onclick: () => pick(z.zone) }, "Walk") : ""))),
  );
  if (open) surveyTimer = setTimeout(() => surveyProgress(survey), SURVEY_POLL_MS);
  else localStorage.removeItem(SURVEY_KEY);
}

// -- live offers -------------------------------------------------------------------

function receipt(offer, status) {
  api(`/me/offers/${offer.offer_id}/receipts`, { method: "POST", body: { status } }).catch(() => {});
}

function connect() {
  if (!state.shopper || (state.socket && state.socket.readyState <= 1)) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const after = state.shopper.lastSeq || 0;
  const url = `${scheme}://${location.host}${API}/me/offers/ws?token=${encodeURIComponent(state.shopper.token)}&after=${after}`;
  const socket = new WebSocket(url);
  state.socket = socket;
  socket.addEventListener("open", () => { state.retryMs = 500; say("Connected."); });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type !== "offer") return;
    const offer = { ...message.offer, seq: message.seq };
    const fresh = !state.offers.has(offer.offer_id);
    state.offers.set(offer.offer_id, offer);
    state.shopper.lastSeq = Math.max(state.shopper.lastSeq || 0, message.seq);
    save();
    socket.send(JSON.stringify({ type: "ack", seq: message.seq }));
    if (fresh) {
      receipt(offer, "delivered");
      say(`New offer: ${offer.title}`);
    }
    renderInbox();
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401) {
      say("Please join again.");
      return;
    }
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 15000);
  });
}

async function registerPush() {
  if (!("serviceWorker" in navigator)) return;
  const registration = await navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" });
  if (!state.shopper || !("PushManager" in window) || Notification.permission === "denied") return;
  try {
    const { public_key: key } = await api("/push/vapid-public-key", { auth: false });
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    await api("/me/push-subscription", { method: "POST", body: subscription.toJSON() });
  } catch {
    // No push service (headless browser, permission not given): the WebSocket still works.
  }
}

route();
registerPush().catch(() => {});
