// The floor heatmap (issue 18, point 6; docs/dashboard.md): presence density
// over floor cells, from the localizer's positions, drawn over the floor plan
// (and its image) as SVG cells with a colour scale and a legend. Optionally a
// second range: its map beside this one, and the difference per zone.
// Every figure comes from GET /stores/{store}/heatmap (docs/analytics.md).

import { api, download } from "./api.js";
import { duration, el, fmt, heat, msToZoned, pct, rangeFields, storeTime, svg } from "./dom.js";
import { floorPlan, legendStrip } from "./floor.js";

const DAY_MS = 86_400_000;
const KEY = "omnizone.staff.heatmap";

function saved(store) {
  const found = JSON.parse(sessionStorage.getItem(KEY) || "null");
  return found && found.store === store ? found : null;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) q.set(k, String(v));
  return `?${q}`;
}

/** The cells of one heatmap body drawn into a floor plan; returns the SVG. */
function drawMap(plan, image, body, testid, max) {
  const floor = floorPlan(plan, { image, gateways: false, testid });
  for (const { shape } of floor.zones.values()) {
    shape.setAttribute("fill-opacity", "0.25");
  }
  const cells = svg("g", { class: "layer-heat", "data-testid": `${testid}-cells` });
  const size = body.cell_m;
  for (const [ix, iy, seconds] of body.cells) {
    const t = max ? seconds / max : 0;
    const rect = svg("rect", {
      x: ix * size, y: iy * size, width: size, height: size,
      fill: heat(0.08 + 0.92 * t), "fill-opacity": 0.35 + 0.55 * t,
      "data-testid": "heat-cell", "data-seconds": String(seconds),
    });
    rect.append(svg("title", { text: `${fmt(ix * size, 1)}–${fmt((ix + 1) * size, 1)} m × ${fmt(iy * size, 1)}–${fmt((iy + 1) * size, 1)} m: ${duration(seconds)} of shopper time` }));
    cells.append(rect);
  }
  floor.layers.labels.before(cells); // over the zones, under their names
  if (body.hottest) {
    const { ix, iy } = body.hottest;
    floor.layers.overlay.append(svg("rect", {
      x: ix * size, y: iy * size, width: size, height: size, fill: "none",
      stroke: "#1d3557", "stroke-width": 0.12, "data-testid": `${testid}-hottest`,
    }));
  }
  return floor.svg;
}

export async function floorHeatmapView(ctx) {
  const [{ info, image }, index] = await Promise.all([ctx.plan(), api(`/stores/${ctx.store}/analytics`)]);
  const timezone = index.timezone;
  const choice = saved(ctx.store) || {};
  const end = index.last_event_ms === null ? index.default_to_ms : index.last_event_ms + 1;
  const range = {
    from_ms: choice.from_ms ?? Math.max(end - DAY_MS, index.first_event_ms ?? end - DAY_MS),
    to_ms: choice.to_ms ?? end,
  };
  const cellM = choice.cell_m ?? 1;
  const compare = choice.compare ?? false;
  const span = range.to_ms - range.from_ms;
  const params = {
    from_ms: range.from_ms, to_ms: range.to_ms, cell_m: cellM,
    compare_from_ms: compare ? range.from_ms - span : null,
    compare_to_ms: compare ? range.from_ms : null,
  };
  const body = await api(`/stores/${ctx.store}/heatmap${query(params)}`);

  const choose = (next) => {
    sessionStorage.setItem(KEY, JSON.stringify({ store: ctx.store, ...range, cell_m: cellM, compare, ...next }));
    floorHeatmapView(ctx).catch((error) => ctx.say(error.message));
  };
  const fromInput = el("input", { type: "datetime-local", "data-testid": "heatmap-from", value: msToZoned(range.from_ms, timezone) });
  const toInput = el("input", { type: "datetime-local", "data-testid": "heatmap-to", value: msToZoned(range.to_ms, timezone) });
  const problem = el("span", { class: "error", "data-testid": "heatmap-error" });
  const cellPicker = el("select", { "data-testid": "heatmap-cell", onchange: () => choose({ cell_m: Number(cellPicker.value) }) },
    ...[0.5, 1, 2].map((c) => el("option", { value: String(c), selected: c === cellM }, `${c} m cells`)));
  const compareBox = el("input", { type: "checkbox", "data-testid": "heatmap-compare", checked: compare, onchange: () => choose({ compare: compareBox.checked }) });
  const csvPath = `/stores/${ctx.store}/heatmap${query({ ...params, compare_from_ms: null, compare_to_ms: null, format: "csv" })}`;
  const toolbar = el("div", { class: "toolbar card", "data-testid": "heatmap-range" },
    ...rangeFields(fromInput, toInput, timezone, problem, "heatmap-apply", choose),
    el("button", { class: "secondary", onclick: () => choose({ from_ms: end - DAY_MS, to_ms: end }) }, "Last 24 h of data"),
    el("button", { class: "secondary", onclick: () => choose({ from_ms: end - 7 * DAY_MS, to_ms: end }) }, "Last 7 days"),
    cellPicker,
    el("label", {}, compareBox, " compare with the period before"),
    problem,
    el("span", { style: "flex:1" }),
    el("a", {
      href: `/api/v1${csvPath}`, class: "button secondary", "data-testid": "csv-heatmap",
      onclick: (event) => {
        event.preventDefault();
        download(csvPath, `${ctx.store}-heatmap.csv`).catch((error) => ctx.say(`Download failed: ${error.message}`));
      },
    }, "Download CSV"),
  );

  const max = Math.max(body.max_s, compare ? body.compare.max_s : 0);
  const hot = body.hottest;
  const zoneName = new Map(info.plan.zones.map((z) => [z.id, z.name]));
  const maps = [el("div", { class: "grow", style: "flex:3" },
    compare ? el("h2", {}, "This period") : "",
    drawMap(info.plan, image, body, "heatmap-floor", max))];
  if (compare) {
    maps.push(el("div", { class: "grow", style: "flex:3" },
      el("h2", {}, `Before: ${storeTime(body.compare.from_ms, timezone)} – ${storeTime(body.compare.to_ms, timezone)}`),
      drawMap(info.plan, image, body.compare, "heatmap-before", max)));
  }
  const before = compare ? new Map(body.compare.zone_differences.map((d) => [d.zone, d])) : null;
  const headers = ["Zone", { text: "shopper-hours", num: true }, { text: "share", num: true }];
  if (compare) headers.push({ text: "before", num: true }, { text: "change", num: true });
  const rows = body.zones.map((z) => {
    const cells = [el("td", {}, z.name), el("td", { class: "num" }, fmt(z.presence_s / 3600, 2)), el("td", { class: "num" }, pct(z.share, 1))];
    if (compare) {
      const d = before.get(z.zone);
      cells.push(el("td", { class: "num" }, fmt(d.a_s / 3600, 2)),
        el("td", { class: "num" }, d.relative === null ? "–" : `${d.relative >= 0 ? "+" : ""}${pct(d.relative, 0)}`));
    }
    return el("tr", { "data-zone": z.zone }, ...cells);
  });
  ctx.view.replaceChildren(
    el("h1", {}, "Floor heatmap"),
    el("p", { class: "muted", "data-testid": "heatmap-label" },
      `${storeTime(body.from_ms, timezone)} – ${storeTime(body.to_ms, timezone)} · whole hours from ${storeTime(body.hours_from_ms, timezone)} · ${body.cell_m} m cells`),
    toolbar,
    el("div", { class: "row", "data-testid": "view-heatmap" }, ...maps),
    el("div", { class: "legend" }, legendStrip(heat, duration(max), "per cell")),
    el("div", { class: "row" },
      el("div", { class: "grow card" },
        el("h2", {}, "Where the time was spent"),
        el("p", { class: "muted small", "data-testid": "heatmap-summary" },
          `${fmt(body.total_s / 3600, 1)} shopper-hours on the floor; `,
          hot ? `the busiest ${body.cell_m} m cell is in ${zoneName.get(hot.zone) || "no zone"} (${duration(hot.seconds)}).` : "no presence in this range.",
          " Each cell is the time consented shoppers' estimated positions spent in it, summed over shoppers; staff devices are left out."),
        el("table", { "data-testid": "heatmap-table" },
          el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : "" }, h.text ?? h)))),
          el("tbody", {}, rows)))),
  );
}
