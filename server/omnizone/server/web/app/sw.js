// Service worker: keeps the app shell available offline and shows offers
// pushed while the app is in the background (Web Push, docs/delivery.md).
const SHELL = "omnizone-shell-v1";
const FILES = ["/app/", "/app/static/app.js", "/app/static/app.css", "/app/static/icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.pathname.startsWith("/api/")) return;
  event.respondWith(fetch(event.request).catch(() => caches.match(event.request).then((hit) => hit || caches.match("/app/"))));
});

self.addEventListener("push", (event) => {
  const offer = event.data ? event.data.json() : {};
  const body = offer.body || "";
  event.waitUntil(self.registration.showNotification(offer.title || "A new offer", {
    body, icon: "/app/static/icon.svg", data: { url: `/app/offer/${offer.offer_id || ""}` },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(clients.openWindow(event.notification.data.url));
});
