// Floor layout editor: upload a floor-plan image, draw zones as polygons on
// it, place gateways, NFC tap points and RFID readers, and save the
// whole plan as a new layout version. The server checks it with the same
// model as the store files and names every problem (422); a saved layout
// runs at once, in every part of the server (docs/dashboard.md).

import { api, ApiError, imageUrl } from "./api.js";
import { el, points, storeTime, svg } from "./dom.js";
import { floorPlan, readerMark, toFloor } from "./floor.js";

const SNAP_GRID = 0.5;
const SNAP_VERTEX = 0.45;
const KINDS = ["entrance", "sales", "fitting-room", "checkout", "back-office"];

const clone = (value) => JSON.parse(JSON.stringify(value));
const round = (v) => Math.round(v * 100) / 100;

function contains(polygon, [x, y]) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function freeId(prefix, taken) {
  let n = 1;
  while (taken.has(`${prefix}-${n}`)) n += 1;
  return `${prefix}-${n}`;
}

function parsePolygon(text) {
  const polygon = text.split(/[;\n]/).map((pair) => pair.trim()).filter(Boolean)
    .map((pair) => pair.split(/[\s,]+/).map(Number));
  if (polygon.some((p) => p.length !== 2 || p.some((v) => !Number.isFinite(v)))) return null;
  return polygon;
}

export async function editorView(ctx) {
  const admin = ctx.whoami.admin;
  const { info } = await ctx.plan({ fresh: true });
  const state = {
    draft: clone(info.plan),
    imageId: info.image_id,
    image: null,
    tool: "select",
    selected: null, // { kind: "zone"|"gateway"|"tap"|"reader", index }
    placing: null, // with the "reader" tool: index of the listed reader to place; null: a new one
    drawing: [],
    cursor: null,
    dirty: false,
  };
  if (state.imageId !== null) state.image = await imageUrl(`/stores/${ctx.store}/floor-images/${state.imageId}`).catch(() => null);

  const canvas = el("div", { class: "canvas" });
  const panel = el("div");
  const problems = el("ul", { class: "problems", "data-testid": "layout-problems" });
  const saved = el("p", { class: "muted", "data-testid": "layout-saved" });
  const status = el("p", { class: "muted small", "data-testid": "layout-status" });
  const versions = el("tbody");
  const toolButtons = {};

  function describeStatus(found) {
    const running = found.running_version === null ? "the store file" : `saved layout version ${found.running_version}`;
    const latest = found.latest_version === null ? "none saved yet" : `newest saved: version ${found.latest_version}`;
    status.textContent = `Running: ${running}; ${latest}.${found.pending_restart ? " The newest version was saved by another server on this database; this one runs it from its next start." : ""}`;
  }
  describeStatus(info);

  function changed() {
    state.dirty = true;
    render();
  }

  function zoneAt(point) {
    const index = state.draft.zones.findIndex((z) => contains(z.polygon, point));
    return index < 0 ? null : state.draft.zones[index].id;
  }

  function gatewayFor(zone) {
    const d = state.draft;
    return d.gateways.find((g) => g.zone === zone || zoneAt(g.position) === zone) || d.gateways[0];
  }

  function snap([x, y]) {
    const { width_m: w, depth_m: d } = state.draft.store.floor;
    let best = null;
    for (const z of state.draft.zones) {
      for (const [vx, vy] of z.polygon) {
        const dist = Math.hypot(vx - x, vy - y);
        if (dist <= SNAP_VERTEX && (!best || dist < best.dist)) best = { dist, point: [vx, vy] };
      }
    }
    if (best) return best.point;
    const g = (v, max) => Math.min(max, Math.max(0, Math.round(v / SNAP_GRID) * SNAP_GRID));
    return [round(g(x, w)), round(g(y, d))];
  }

  // -- drawing ------------------------------------------------------------------------

  function render() {
    const floor = floorPlan(state.draft, { image: state.image, testid: "editor-floor" });
    floor.svg.classList.toggle("editing", state.tool !== "select");
    floor.zones.forEach(({ shape }, id) => {
      const index = state.draft.zones.findIndex((z) => z.id === id);
      if (state.selected?.kind === "zone" && state.selected.index === index) shape.classList.add("selected");
    });
    floor.layers.furniture.querySelectorAll("[data-gateway]").forEach((mark, index) => {
      mark.dataset.index = String(index);
      if (state.selected?.kind === "gateway" && state.selected.index === index) mark.classList.add("selected");
    });
    floor.layers.furniture.querySelectorAll("[data-reader]").forEach((mark) => {
      if (state.selected?.kind === "reader" && state.selected.index === Number(mark.dataset.index)) mark.classList.add("selected");
    });
    (state.draft.nfc_tap_points || []).forEach((tap, index) => {
      const [x, y] = tap.position;
      const mark = svg("circle", { class: "tap", cx: x, cy: y, r: 0.3, "data-tap": String(index) });
      mark.append(svg("title", { text: `NFC tap point ${tap.id}` }));
      if (state.selected?.kind === "tap" && state.selected.index === index) mark.classList.add("selected");
      floor.layers.furniture.append(mark);
    });
    if (state.selected?.kind === "zone") {
      const zone = state.draft.zones[state.selected.index];
      zone.polygon.forEach(([x, y], vertex) => {
        floor.layers.overlay.append(svg("circle", { class: "vertex", cx: x, cy: y, r: 0.22, "data-vertex": String(vertex) }));
      });
    }
    if (state.drawing.length) {
      const path = state.cursor ? [...state.drawing, state.cursor] : state.drawing;
      floor.layers.overlay.append(svg("polygon", { class: "draft", points: points(path), "data-testid": "draft-zone" }));
      state.drawing.forEach(([x, y]) => floor.layers.overlay.append(svg("circle", { class: "vertex", cx: x, cy: y, r: 0.2 })));
    }
    wire(floor.svg);
    canvas.replaceChildren(floor.svg,
      el("p", { class: "muted small" }, "Coordinates are metres from the street front's left corner; points snap to a 0.5 m grid and to existing corners. The image is stretched over the floor rectangle."));
    renderPanel();
  }

  function wire(root) {
    let drag = null;
    root.addEventListener("pointerdown", (event) => {
      if (!admin) return;
      const target = event.target;
      const point = toFloor(root, event);
      if (state.tool === "zone") {
        const snapped = snap(point);
        const firstPoint = state.drawing[0];
        if (state.drawing.length >= 3 && Math.hypot(snapped[0] - firstPoint[0], snapped[1] - firstPoint[1]) < 0.3) finishZone();
        else { state.drawing.push(snapped); render(); }
        return;
      }
      if (state.tool === "gateway") {
        const taken = new Set(state.draft.gateways.map((g) => g.id));
        state.draft.gateways.push({ id: freeId("gw", taken), position: snap(point) });
        state.selected = { kind: "gateway", index: state.draft.gateways.length - 1 };
        state.tool = "select";
        changed();
        return;
      }
      if (state.tool === "tap") {
        const taps = (state.draft.nfc_tap_points ||= []);
        const position = snap(point);
        const zone = zoneAt(position) || state.draft.zones[0].id;
        const gateway = gatewayFor(zone);
        taps.push({ id: freeId("tap", new Set(taps.map((t) => t.id))), gateway: gateway.id, zone, position });
        state.selected = { kind: "tap", index: taps.length - 1 };
        state.tool = "select";
        changed();
        return;
      }
      if (state.tool === "reader") {
        const readers = (state.draft.rfid_readers ||= []);
        const position = snap(point);
        let index = state.placing;
        if (index === null || !readers[index]) { // a new reader: the zone it stands in, that zone's gateway
          const zone = zoneAt(position) || (state.draft.zones.find((z) => z.kind === "fitting-room") || state.draft.zones[0]).id;
          readers.push({ id: freeId("rfid", new Set(readers.map((r) => r.id))), gateway: gatewayFor(zone).id, zone, antennas: 1 });
          index = readers.length - 1;
        }
        readers[index].position = position;
        state.selected = { kind: "reader", index };
        state.placing = null;
        state.tool = "select";
        changed();
        return;
      }
      // select tool: pick, and drag what can move
      if (target.dataset.vertex !== undefined && state.selected?.kind === "zone") {
        drag = { kind: "vertex", zone: state.selected.index, vertex: Number(target.dataset.vertex), node: target };
      } else if (target.dataset.gateway !== undefined) {
        state.selected = { kind: "gateway", index: Number(target.dataset.index) };
        drag = { kind: "gateway", index: Number(target.dataset.index), node: target };
      } else if (target.dataset.tap !== undefined) {
        state.selected = { kind: "tap", index: Number(target.dataset.tap) };
        drag = { kind: "tap", index: Number(target.dataset.tap), node: target };
      } else if (target.dataset.reader !== undefined) {
        state.selected = { kind: "reader", index: Number(target.dataset.index) };
        drag = { kind: "reader", index: Number(target.dataset.index), node: target };
      } else if (target.dataset.zone !== undefined) {
        state.selected = { kind: "zone", index: state.draft.zones.findIndex((z) => z.id === target.dataset.zone) };
      } else {
        state.selected = null;
      }
      if (drag) { root.setPointerCapture(event.pointerId); drag.moved = false; }
      else render();
    });
    root.addEventListener("pointermove", (event) => {
      const point = snap(toFloor(root, event));
      if (state.tool === "zone" && state.drawing.length) {
        state.cursor = point;
        const draft = root.querySelector(".draft");
        if (draft) draft.setAttribute("points", points([...state.drawing, point]));
        return;
      }
      if (!drag) return;
      drag.moved = true;
      if (drag.kind === "vertex") {
        state.draft.zones[drag.zone].polygon[drag.vertex] = point;
        drag.node.setAttribute("cx", point[0]); drag.node.setAttribute("cy", point[1]);
        root.querySelector(`[data-zone="${state.draft.zones[drag.zone].id}"]`)?.setAttribute("points", points(state.draft.zones[drag.zone].polygon));
      } else if (drag.kind === "gateway") {
        state.draft.gateways[drag.index].position = point;
        drag.node.setAttribute("x", point[0] - 0.25); drag.node.setAttribute("y", point[1] - 0.25);
      } else if (drag.kind === "tap") {
        state.draft.nfc_tap_points[drag.index].position = point;
        drag.node.setAttribute("cx", point[0]); drag.node.setAttribute("cy", point[1]);
      } else if (drag.kind === "reader") {
        state.draft.rfid_readers[drag.index].position = point;
        drag.node.setAttribute("points", readerMark(point));
      }
    });
    root.addEventListener("pointerup", () => {
      if (!drag) return;
      const moved = drag.moved;
      drag = null;
      if (moved) changed(); else render();
    });
  }

  function finishZone() {
    if (state.drawing.length < 3) { ctx.say("A zone needs at least three corners."); return; }
    const taken = new Set(state.draft.zones.map((z) => z.id));
    const id = freeId("zone", taken);
    state.draft.zones.push({ id, name: `New zone ${id.split("-")[1]}`, kind: "sales", polygon: state.drawing });
    state.selected = { kind: "zone", index: state.draft.zones.length - 1 };
    state.drawing = [];
    state.cursor = null;
    state.tool = "select";
    changed();
  }

  function setTool(tool, placing = null) {
    state.tool = tool;
    state.placing = placing;
    state.drawing = [];
    state.cursor = null;
    render();
  }

  // -- the side panel -----------------------------------------------------------------

  function input(attrs, onChange) {
    const node = el("input", attrs);
    node.addEventListener("change", () => onChange(node.value, node));
    node.disabled = !admin;
    return node;
  }

  function select(options, value, onChange, attrs = {}) {
    const node = el("select", attrs, options.map(([v, label]) => el("option", { value: v, selected: v === value }, label)));
    node.addEventListener("change", () => onChange(node.value));
    node.disabled = !admin;
    return node;
  }

  function renameZone(oldId, newId) {
    const d = state.draft;
    for (const g of d.gateways) if (g.zone === oldId) g.zone = newId;
    for (const t of d.nfc_tap_points || []) if (t.zone === oldId) t.zone = newId;
    for (const r of d.rfid_readers || []) if (r.zone === oldId) r.zone = newId;
    d.walls = (d.walls || []).map((pair) => pair.map((z) => (z === oldId ? newId : z)));
  }

  function renameGateway(oldId, newId) {
    for (const t of state.draft.nfc_tap_points || []) if (t.gateway === oldId) t.gateway = newId;
    for (const r of state.draft.rfid_readers || []) if (r.gateway === oldId) r.gateway = newId;
  }

  function selectedCard() {
    const sel = state.selected;
    const d = state.draft;
    const zoneOptions = d.zones.map((z) => [z.id, z.name]);
    const gatewayOptions = d.gateways.map((g) => [g.id, g.id]);
    if (!sel) return el("p", { class: "muted small" }, "Select a zone, gateway, tap point or RFID reader on the plan to edit it.");
    if (sel.kind === "zone") {
      const zone = d.zones[sel.index];
      return el("div", { "data-testid": "selected-zone" },
        el("h2", {}, "Zone"),
        el("label", {}, "Id", input({ value: zone.id, "data-testid": "zone-id" }, (v) => { renameZone(zone.id, v); zone.id = v; changed(); })),
        el("label", {}, "Name", input({ value: zone.name, "data-testid": "zone-name" }, (v) => { zone.name = v; changed(); })),
        el("label", {}, "Kind", select(KINDS.map((k) => [k, k]), zone.kind, (v) => { zone.kind = v; changed(); }, { "data-testid": "zone-kind" })),
        el("label", {}, "Corners (x,y; x,y; …)", input({ value: zone.polygon.map((p) => p.join(",")).join("; "), "data-testid": "zone-polygon" }, (v) => {
          const polygon = parsePolygon(v);
          if (!polygon) { ctx.say("Corners: write x,y pairs separated by ';'"); return; }
          zone.polygon = polygon; changed();
        })),
        admin ? el("button", { class: "danger small", "data-testid": "delete-zone", onclick: () => {
          d.walls = (d.walls || []).filter((pair) => !pair.includes(zone.id));
          d.zones.splice(sel.index, 1); state.selected = null; changed();
        } }, "Delete zone") : "");
    }
    if (sel.kind === "gateway") {
      const gateway = d.gateways[sel.index];
      return el("div", { "data-testid": "selected-gateway" },
        el("h2", {}, "Gateway"),
        el("label", {}, "Id", input({ value: gateway.id, "data-testid": "gateway-id" }, (v) => { renameGateway(gateway.id, v); gateway.id = v; changed(); })),
        el("label", {}, "x (m)", input({ type: "number", step: 0.1, value: gateway.position[0] }, (v) => { gateway.position = [Number(v), gateway.position[1]]; changed(); })),
        el("label", {}, "y (m)", input({ type: "number", step: 0.1, value: gateway.position[1] }, (v) => { gateway.position = [gateway.position[0], Number(v)]; changed(); })),
        el("label", {}, "Covers zone", select([["", "where it stands"], ...zoneOptions], gateway.zone || "", (v) => { if (v) gateway.zone = v; else delete gateway.zone; changed(); })),
        admin ? el("button", { class: "danger small", onclick: () => { d.gateways.splice(sel.index, 1); state.selected = null; changed(); } }, "Delete gateway") : "");
    }
    if (sel.kind === "reader") {
      const reader = d.rfid_readers[sel.index];
      return el("div", { "data-testid": "selected-reader" },
        el("h2", {}, `RFID reader ${reader.id}`),
        el("p", { class: "muted small" }, `In ${reader.zone}, on ${reader.gateway}: id, gateway and zone are edited in the list below.`),
        el("label", {}, "x (m)", input({ type: "number", step: 0.1, value: reader.position[0], "data-testid": "reader-x" }, (v) => { reader.position = [Number(v), reader.position[1]]; changed(); })),
        el("label", {}, "y (m)", input({ type: "number", step: 0.1, value: reader.position[1], "data-testid": "reader-y" }, (v) => { reader.position = [reader.position[0], Number(v)]; changed(); })),
        admin ? el("button", { class: "secondary small", onclick: () => { delete reader.position; state.selected = null; changed(); } }, "Take off the plan") : "");
    }
    const tap = d.nfc_tap_points[sel.index];
    return el("div", { "data-testid": "selected-tap" },
      el("h2", {}, "NFC tap point"),
      el("label", {}, "Id", input({ value: tap.id }, (v) => { tap.id = v; changed(); })),
      el("label", {}, "Reader on gateway", select(gatewayOptions, tap.gateway, (v) => { tap.gateway = v; changed(); })),
      el("label", {}, "Zone", select(zoneOptions, tap.zone, (v) => { tap.zone = v; changed(); })),
      el("label", {}, "Product (GTIN)", input({ value: tap.product || "" }, (v) => { if (v) tap.product = v; else delete tap.product; changed(); })),
      admin ? el("button", { class: "danger small", onclick: () => { d.nfc_tap_points.splice(sel.index, 1); state.selected = null; changed(); } }, "Delete tap point") : "");
  }

  function readersCard() {
    const d = state.draft;
    const readers = (d.rfid_readers ||= []);
    const zoneOptions = d.zones.map((z) => [z.id, z.name]);
    const gatewayOptions = d.gateways.map((g) => [g.id, g.id]);
    return el("div", { "data-testid": "rfid-readers" },
      el("h2", {}, "RFID readers (fitting rooms)"),
      readers.length ? "" : el("p", { class: "muted small" }, "None."),
      ...readers.map((reader, index) => el("div", { class: "reader", "data-reader-row": reader.id },
        input({ value: reader.id }, (v) => { reader.id = v; changed(); }),
        select(gatewayOptions, reader.gateway, (v) => { reader.gateway = v; changed(); }),
        select(zoneOptions, reader.zone, (v) => { reader.zone = v; changed(); }),
        admin ? el("button", {
          class: `secondary small ${state.tool === "reader" && state.placing === index ? "active" : ""}`,
          title: reader.position ? "Click on the plan where it goes (or drag it there)" : "Click on the plan where it is",
          "data-testid": "place-reader", onclick: () => setTool("reader", index),
        }, reader.position ? "Move" : "Place") : "",
        admin ? el("button", { class: "secondary small", onclick: () => {
          readers.splice(index, 1);
          if (state.selected?.kind === "reader") state.selected = null;
          changed();
        } }, "×") : "")),
      el("p", { class: "muted small" }, readers.some((r) => !r.position) ? "Readers without a place are not drawn on the plan: “Place”, then click where the reader hangs." : ""),
      admin ? el("button", { class: "secondary small", onclick: () => {
        const zone = d.zones.find((z) => z.kind === "fitting-room") || d.zones[0];
        readers.push({ id: freeId("rfid", new Set(readers.map((r) => r.id))), gateway: gatewayFor(zone.id).id, zone: zone.id, antennas: 1 });
        changed();
      } }, "Add reader") : "");
  }

  const note = el("input", { placeholder: "what changed (optional)", "data-testid": "layout-note" });

  function toolHint() {
    if (state.tool === "zone") return "Click the corners; click the first corner again (or Finish) to close the zone.";
    if (state.tool === "reader") {
      const reader = state.placing === null ? null : state.draft.rfid_readers?.[state.placing];
      return reader ? `Click where RFID reader ${reader.id} hangs.` : "Click where the new RFID reader hangs: it takes the zone it stands in and that zone's gateway.";
    }
    return "";
  }

  function renderPanel() {
    const floorSize = state.draft.store.floor;
    const tools = el("div", { class: "tools toolbar" },
      ...[["select", "Select / move"], ["zone", "Draw zone"], ["gateway", "Place gateway"], ["tap", "Place NFC tap point"], ["reader", "Place RFID reader"]].map(([tool, label]) => {
        const button = el("button", { class: `secondary small ${state.tool === tool && state.placing === null ? "active" : ""}`, "data-testid": `tool-${tool}`, onclick: () => setTool(tool), disabled: !admin }, label);
        toolButtons[tool] = button;
        return button;
      }),
      state.tool === "zone" ? el("button", { class: "small", "data-testid": "finish-zone", onclick: finishZone, disabled: state.drawing.length < 3 }, `Finish zone (${state.drawing.length} corners)`) : "",
    );
    panel.replaceChildren(
      el("div", { class: "card" },
        el("h2", {}, "Tools"), tools,
        el("p", { class: "muted small", "data-testid": "tool-hint" }, toolHint())),
      el("div", { class: "card" }, selectedCard()),
      el("div", { class: "card" },
        el("h2", {}, "Floor"),
        el("label", {}, "Width (m)", input({ type: "number", step: 0.5, min: 1, value: floorSize.width_m, "data-testid": "floor-width" }, (v) => { floorSize.width_m = Number(v); changed(); })),
        el("label", {}, "Depth (m)", input({ type: "number", step: 0.5, min: 1, value: floorSize.depth_m, "data-testid": "floor-depth" }, (v) => { floorSize.depth_m = Number(v); changed(); })),
        el("label", {}, "Floor-plan image (PNG, JPEG, WebP)", admin ? uploadInput() : el("span", { class: "muted" }, " admin only"))),
      el("div", { class: "card" }, readersCard()),
      el("div", { class: "card" },
        el("h2", {}, "Save"),
        admin ? [note, el("p", {}, el("button", { "data-testid": "save-layout", onclick: save }, "Save layout"), " ",
          el("button", { class: "secondary", onclick: () => { state.draft = clone(info.plan); state.selected = null; state.placing = null; state.dirty = false; render(); } }, "Discard changes"))]
          : el("p", { class: "muted", "data-testid": "read-only" }, "This key is read-only: saving a layout needs an admin key."),
        problems, saved, status),
    );
  }

  function uploadInput() {
    const file = el("input", { type: "file", accept: "image/png,image/jpeg,image/webp", "data-testid": "floor-image" });
    file.addEventListener("change", async () => {
      const chosen = file.files[0];
      if (!chosen) return;
      try {
        const made = await api(`/stores/${ctx.store}/floor-images`, { method: "POST", raw: chosen, contentType: chosen.type });
        state.imageId = made.image_id;
        state.image = URL.createObjectURL(chosen);
        ctx.say(`Image uploaded (${Math.round(made.bytes / 1024)} kB); save the layout to keep it with the plan.`);
        changed();
      } catch (error) {
        ctx.say(`Upload refused: ${error.message}`);
      }
    });
    return file;
  }

  async function save() {
    problems.replaceChildren();
    saved.textContent = "";
    try {
      const made = await api(`/stores/${ctx.store}/layouts`, { method: "POST", body: { plan: state.draft, image_id: state.imageId, note: note.value } });
      state.dirty = false;
      ctx.forgetPlan();
      describeStatus(await api(`/stores/${ctx.store}/plan`));
      await loadVersions();
      saved.textContent = `Saved as version ${made.version}: it applies ${made.applies.split(";")[0]}.`;
    } catch (error) {
      const lines = error instanceof ApiError ? error.problems : [error.message];
      problems.replaceChildren(...lines.map((line) => el("li", {}, line)));
    }
  }

  async function loadVersions() {
    const found = await api(`/stores/${ctx.store}/layouts`);
    versions.replaceChildren(...found.map((v) => el("tr", { "data-version": v.version },
      el("td", {}, `v${v.version}`, v.running ? el("span", { class: "pill ok" }, " running") : ""),
      el("td", {}, storeTime(v.saved_ms, state.draft.store.timezone)),
      el("td", {}, v.note || el("span", { class: "muted" }, "–")),
      el("td", {}, el("button", { class: "secondary small", onclick: async () => {
        const layout = await api(`/stores/${ctx.store}/layouts/${v.version}`);
        state.draft = layout.plan;
        state.imageId = layout.image_id;
        state.image = layout.image_id === null ? null : await imageUrl(`/stores/${ctx.store}/floor-images/${layout.image_id}`).catch(() => null);
        state.selected = null;
        state.placing = null;
        ctx.say(`Loaded version ${v.version} into the editor (not saved).`);
        render();
      } }, "Load")))));
  }

  ctx.view.replaceChildren(
    el("h1", {}, "Floor layout"),
    el("div", { class: "editor" }, canvas, el("aside", {}, panel)),
    el("h2", {}, "Saved versions"),
    el("table", { "data-testid": "layout-versions" }, el("thead", {}, el("tr", {}, el("th", {}, "Version"), el("th", {}, "Saved"), el("th", {}, "Note"), el("th", {}, ""))), versions),
  );
  render();
  await loadVersions();
}
