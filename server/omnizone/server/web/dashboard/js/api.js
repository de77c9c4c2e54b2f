// The server's API as the dashboard uses it: the staff API key lives in
// sessionStorage (gone when the tab closes) and goes out as X-API-Key.

const API = "/api/v1";
const KEY = "omnizone.staff.key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(detail) || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }

  /** One line per problem the server named (422 answers carry a list). */
  get problems() {
    const detail = this.detail;
    if (Array.isArray(detail)) return detail.map(describeOne);
    return [this.message];
  }
}

function describeOne(item) {
  if (typeof item === "string") return item;
  if (item && item.msg) return `${(item.loc || []).join(".")}: ${item.msg}`;
  return JSON.stringify(item);
}

function describe(detail) {
  if (detail === undefined || detail === null) return "";
  if (Array.isArray(detail)) return detail.map(describeOne).join("; ");
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  if (session.key) out["X-API-Key"] = session.key;
  return out;
}

async function check(response) {
  if (response.ok) return response;
  const data = await response.json().catch(() => ({}));
  throw new ApiError(response.status, data.detail);
}

/** `headers`: more request headers, e.g. `{ "If-Match": '"3"' }`. */
export async function api(path, { method = "GET", body, raw, contentType, key, headers: more } = {}) {
  const extra = { ...more };
  let payload;
  if (raw !== undefined) {
    payload = raw;
    extra["Content-Type"] = contentType || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    extra["Content-Type"] = "application/json";
  }
  const sent = headers(extra);
  if (key) sent["X-API-Key"] = key;
  const response = await check(await fetch(API + path, { method, headers: sent, body: payload }));
  if (response.status === 204) return null;
  return response.json();
}

/** An image the API serves behind the key, as an object URL for <image href>. */
export async function imageUrl(path) {
  const response = await check(await fetch(API + path, { headers: headers({ Accept: "image/*" }) }));
  return URL.createObjectURL(await response.blob());
}

/** Fetch a CSV with the key and hand it to the browser as a download. */
export async function download(path, filename) {
  const response = await check(await fetch(API + path, { headers: headers({ Accept: "text/csv" }) }));
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function liveUrl(store) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${API}/stores/${encodeURIComponent(store)}/live`;
}
