// The floor plan as SVG, in metres: x along the street front, y into the
// store (the store file's coordinates), street at the top. Shared by the
// live map, the presence heatmap and the layout editor.

import { centroid, points, svg } from "./dom.js";

const MARGIN = 1.5;

/**
 * plan: a StorePlan as JSON. Options: image (object URL of the floor image,
 * stretched over the floor rectangle), gateways (draw them, and the RFID
 * readers that have a position), labels.
 */
export function floorPlan(plan, { image = null, gateways = true, testid = "floor" } = {}) {
  const { width_m: w, depth_m: d } = plan.store.floor;
  const root = svg("svg", {
    class: "floor",
    viewBox: `${-MARGIN} ${-MARGIN - 0.8} ${w + 2 * MARGIN} ${d + 2 * MARGIN + 0.8}`,
    preserveAspectRatio: "xMidYMid meet",
    "data-testid": testid,
    role: "img",
    "aria-label": `Floor plan of ${plan.store.name}`,
  });
  const layers = {};
  for (const name of ["image", "zones", "labels", "furniture", "dots", "overlay"]) {
    layers[name] = root.appendChild(svg("g", { class: `layer-${name}` }));
  }
  layers.image.append(
    svg("rect", { x: 0, y: 0, width: w, height: d, fill: "#fafbfc", stroke: "#52606d", "stroke-width": 0.1 }),
  );
  if (image) {
    layers.image.append(
      svg("image", { href: image, x: 0, y: 0, width: w, height: d, preserveAspectRatio: "none", opacity: 0.85 }),
    );
  }
  root.append(svg("text", { class: "street", x: 0, y: -0.5, text: "street front" }));
  const zones = new Map();
  for (const zone of plan.zones) {
    const shape = svg("polygon", {
      class: "zone",
      points: points(zone.polygon),
      fill: "#eef2f6",
      "fill-opacity": image ? 0.45 : 1,
      "data-zone": zone.id,
    });
    shape.append(svg("title", { text: zone.name }));
    layers.zones.append(shape);
    const [cx, cy] = centroid(zone.polygon);
    const xs = zone.polygon.map((p) => p[0]);
    const width = Math.max(...xs) - Math.min(...xs);
    const size = Math.min(0.7, (1.7 * width) / Math.max(4, zone.name.length));
    const name = svg("text", { class: "zone-label", x: cx, y: cy - 0.6, text: zone.name, style: `font-size:${size.toFixed(2)}px` });
    const figure = svg("text", { class: "zone-count", x: cx, y: cy + 1.5, "data-count": zone.id });
    layers.labels.append(name, figure);
    zones.set(zone.id, { zone, shape, name, figure, width });
  }
  if (gateways) {
    for (const gateway of plan.gateways) {
      const [x, y] = gateway.position;
      const mark = svg("rect", {
        class: "gateway", x: x - 0.25, y: y - 0.25, width: 0.5, height: 0.5, rx: 0.08,
        "data-gateway": gateway.id,
      });
      mark.append(svg("title", { text: `gateway ${gateway.id}` }));
      layers.furniture.append(mark);
    }
    (plan.rfid_readers || []).forEach((reader, index) => {
      if (!reader.position) return; // not placed on the plan
      const mark = svg("polygon", {
        class: "rfid", points: readerMark(reader.position),
        "data-reader": reader.id, "data-index": String(index),
      });
      mark.append(svg("title", { text: `RFID reader ${reader.id}` }));
      layers.furniture.append(mark);
    });
  }
  return { svg: root, layers, zones, width: w, depth: d };
}

/** The points of an RFID reader's marker: a diamond around its position [x, y]. */
export function readerMark([x, y]) {
  const r = 0.32;
  return points([[x, y - r], [x + r, y], [x, y + r], [x - r, y]]);
}

/** Write a zone's figure, as large as fits its width. */
export function setFigure(entry, text) {
  entry.figure.textContent = text;
  const size = Math.min(1.1, (1.5 * entry.width) / Math.max(2.5, text.length));
  entry.figure.style.fontSize = `${size.toFixed(2)}px`;
}

/** Screen point of a pointer event -> floor metres. */
export function toFloor(root, event) {
  const point = root.createSVGPoint();
  point.x = event.clientX;
  point.y = event.clientY;
  const local = point.matrixTransform(root.getScreenCTM().inverse());
  return [local.x, local.y];
}

/** A colour legend strip: 0 .. max with the given scale. */
export function legendStrip(scale, max, unit) {
  const stops = [0, 0.25, 0.5, 0.75, 1];
  const root = svg("svg", { class: "chart", viewBox: "0 0 260 34", width: 260, height: 34, style: "width:260px" });
  const grad = svg("linearGradient", { id: `g${Math.random().toString(36).slice(2)}` });
  for (const t of stops) grad.append(svg("stop", { offset: `${t * 100}%`, "stop-color": scale(t) }));
  root.append(svg("defs", {}, grad));
  root.append(svg("rect", { x: 5, y: 4, width: 250, height: 12, fill: `url(#${grad.id})`, stroke: "#9aa5b1" }));
  root.append(svg("text", { x: 5, y: 30, text: "0" }));
  root.append(svg("text", { x: 255, y: 30, "text-anchor": "end", text: `${max} ${unit}` }));
  return root;
}
