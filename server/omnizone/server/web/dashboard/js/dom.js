// Small DOM, SVG, formatting and colour helpers shared by the views.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children, isSvg) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else if (!isSvg && (key === "value" || key === "checked")) node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function el(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children, false);
}

export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children, true);
}

export function points(polygon) {
  return polygon.map(([x, y]) => `${x},${y}`).join(" ");
}

export function centroid(polygon) {
  let area = 0, cx = 0, cy = 0;
  for (let i = 0; i < polygon.length; i++) {
    const [x1, y1] = polygon[i];
    const [x2, y2] = polygon[(i + 1) % polygon.length];
    const cross = x1 * y2 - x2 * y1;
    area += cross; cx += (x1 + x2) * cross; cy += (y1 + y2) * cross;
  }
  if (Math.abs(area) < 1e-9) {
    const n = polygon.length;
    return [polygon.reduce((s, p) => s + p[0], 0) / n, polygon.reduce((s, p) => s + p[1], 0) / n];
  }
  return [cx / (3 * area), cy / (3 * area)];
}

// -- numbers and times --------------------------------------------------------------

export function fmt(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function pct(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return `${(value * 100).toFixed(digits)} %`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function storeTime(ms, timeZone, withDate = true) {
  if (ms === null || ms === undefined) return "–";
  const options = withDate
    ? { dateStyle: "medium", timeStyle: "short", timeZone }
    : { hour: "2-digit", minute: "2-digit", timeZone, hourCycle: "h23" };
  return new Intl.DateTimeFormat("en-GB", options).format(new Date(ms));
}

export function ago(ms) {
  if (ms === null || ms === undefined) return "never";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} days ago`;
}

/** Offset of a time zone from UTC at an instant, in ms. */
function zoneOffset(ms, timeZone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** "YYYY-MM-DDTHH:MM" read in the store's time zone -> epoch ms. */
export function zonedToMs(local, timeZone) {
  const [date, time = "00:00"] = local.split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const guess = Date.UTC(y, m - 1, d, hh, mm);
  const first = guess - zoneOffset(guess, timeZone);
  return guess - zoneOffset(first, timeZone);
}

/** epoch ms -> "YYYY-MM-DDTHH:MM" in the store's time zone (for datetime-local inputs). */
export function msToZoned(ms, timeZone) {
  const shifted = new Date(ms + zoneOffset(ms, timeZone));
  return shifted.toISOString().slice(0, 16);
}

/** A range toolbar's From/to pickers, the store's time zone and an Apply button
 * that refuses an end before the start (in `problem`) or calls choose({from_ms, to_ms}). */
export function rangeFields(fromInput, toInput, timezone, problem, applyTestId, choose) {
  return [
    el("label", {}, "From", fromInput),
    el("label", {}, "to", toInput),
    el("span", { class: "muted small" }, `(${timezone})`),
    el("button", {
      "data-testid": applyTestId,
      onclick: () => {
        const from_ms = zonedToMs(fromInput.value, timezone);
        const to_ms = zonedToMs(toInput.value, timezone);
        if (!(to_ms > from_ms)) { problem.textContent = "The end must come after the start."; return; }
        choose({ from_ms, to_ms });
      },
    }, "Apply"),
  ];
}

// -- colour ---------------------------------------------------------------------------

const RAMP = [
  [247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107],
];
const HEAT = [
  [255, 255, 204], [254, 217, 118], [253, 141, 60], [227, 26, 28], [128, 0, 38],
];

function ramp(stops, t) {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Blues for counts (0 = almost white). */
export function blues(t) { return ramp(RAMP, t); }
/** Yellow-red for heat. */
export function heat(t) { return ramp(HEAT, t); }
/** Text colour that reads on a fill of ramp position t. */
export function inkOn(t) { return t > 0.55 ? "#fff" : "#1d3557"; }
