"""Store layouts edited on the dashboard: validate, version, and apply at once.

A saved layout is a whole store plan, checked by the same model as the store
files (``omnizone.store.parse_store``), so the editor cannot save a plan the
server would refuse to start with, and by the store's survey and calibration
(a layout that removes a gateway the calibration names is refused too, for
the same reason). A saved layout runs from the moment it is saved: it
replaces the store's plan in ``RunningStores``, which every part reads, and
ingest switches its localizer and closes the stays in zones the layout
removed before anyone else sees it (``radio_reload.LocalizerReload``). At
start, the newest saved layout of each store replaces the store file's plan
(``apply_saved_layouts``), so it survives a restart.
"""

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.service.ports.layouts import (
    FloorImage,
    LayoutStore,
    StoredLayout,
    VersionTaken,
)
from omnizone.server.service.queries import NotFound
from omnizone.server.service.running_stores import RunningStores
from omnizone.store import StoreConfigError, StorePlan, parse_store

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 8 * 1024 * 1024
#: Raster images only: an uploaded SVG could carry script into the dashboard's origin.
IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/webp": (b"RIFF",),
}


class LayoutRejected(ValueError):
    """A layout (or image) the server refuses; each problem names its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LayoutStatus:
    store: str
    running_version: int | None
    """The saved version this process runs; None: the store file's plan."""
    latest: StoredLayout | None

    @property
    def pending_restart(self) -> bool:
        """A newer layout than the one running is saved: never after a save
        in this process (it applies at once), only when another server on
        the same database saved it; kept for clients of the earlier API."""
        return self.latest is not None and self.latest.version != self.running_version


def validate_layout(store: str, plan: Mapping[str, Any]) -> StorePlan:
    """The plan as the server would load it, or ``LayoutRejected`` naming each fault."""
    try:
        parsed = parse_store(json.dumps(plan), source=f"layout of {store}")
    except StoreConfigError as error:
        raise LayoutRejected(error.problems) from None
    if parsed.id != store:
        raise LayoutRejected(
            [f"store.id: the layout is for {parsed.id!r}, not {store!r} (a layout cannot rename)"]
        )
    return parsed


def apply_saved_layouts(
    stores: Mapping[str, StorePlan], layouts: LayoutStore
) -> tuple[dict[str, StorePlan], dict[str, int | None]]:
    """At start: each store's newest saved layout replaces its file's plan.
    Returns the plans to run and, per store, the layout version used (None:
    the file). A saved layout the model no longer accepts is logged and
    skipped, so a server always starts."""
    plans: dict[str, StorePlan] = {}
    versions: dict[str, int | None] = {}
    for store, plan in stores.items():
        saved = layouts.latest(store)
        plans[store], versions[store] = plan, None
        if saved is None:
            continue
        try:
            plans[store] = validate_layout(store, saved.plan)
        except LayoutRejected as error:
            log.error("saved layout %d of %s not applied: %s", saved.version, store, error)
            continue
        versions[store] = saved.version
        log.info("store %s runs saved layout version %d", store, saved.version)
    return plans, versions


class LayoutService:
    def __init__(
        self,
        running: RunningStores,
        running_versions: Mapping[str, int | None],
        layouts: LayoutStore,
        clock_ms: Callable[[], int] = wall_clock_ms,
        *,
        radio_problems: Callable[[str, StorePlan], list[str]] | None = None,
    ) -> None:
        """``running``: the server's running plans, which a save replaces.
        ``radio_problems``: why a store's survey or calibration would not fit
        a plan (``LocalizerReload.problems``); a layout with any is refused."""
        self._running = running
        self._running_versions = dict(running_versions)
        self._layouts = layouts
        self._clock_ms = clock_ms
        self._radio_problems = radio_problems
        self._saving = threading.Lock()  # saved in version order, applied in that order

    def running_plan(self, store: str) -> StorePlan:
        plan = self._running.get(store)
        if plan is None:
            known = ", ".join(sorted(self._running)) or "none"
            raise NotFound(f"unknown store {store!r} (known: {known})")
        return plan

    def status(self, store: str) -> LayoutStatus:
        self.running_plan(store)
        return LayoutStatus(store, self._running_versions.get(store), self._layouts.latest(store))

    def versions(self, store: str) -> list[StoredLayout]:
        self.running_plan(store)
        return self._layouts.versions(store)

    def version(self, store: str, version: int) -> StoredLayout:
        self.running_plan(store)
        found = self._layouts.get(store, version)
        if found is None:
            raise NotFound(f"store {store!r} has no saved layout version {version}")
        return found

    def save(
        self, store: str, plan: Mapping[str, Any], image_id: int | None, note: str = ""
    ) -> StoredLayout:
        """Validate and store as the next version, then run it (every part,
        from the next message on)."""
        self.running_plan(store)
        checked = validate_layout(store, plan)
        if image_id is not None and self._layouts.image(store, image_id) is None:
            raise LayoutRejected([f"image_id: store {store!r} has no floor image {image_id}"])
        problems = self._radio_problems(store, checked) if self._radio_problems else []
        if problems:
            raise LayoutRejected(problems)
        body = checked.model_dump(mode="json")
        with self._saving:
            saved = self._store(store, body, image_id, note)
            self._running.replace(checked)
            self._running_versions[store] = saved.version
        log.info("store %s runs saved layout version %d from now on", store, saved.version)
        return saved

    def _store(
        self, store: str, body: dict[str, Any], image_id: int | None, note: str
    ) -> StoredLayout:
        for attempt in range(3):
            try:
                return self._layouts.save(store, body, image_id, note, self._clock_ms())
            except VersionTaken:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def add_image(self, store: str, content_type: str, data: bytes) -> int:
        self.running_plan(store)
        kind = content_type.split(";")[0].strip().lower()
        signatures = IMAGE_SIGNATURES.get(kind)
        if signatures is None:
            raise LayoutRejected(
                [f"Content-Type: {kind or 'none'} is not one of {', '.join(IMAGE_SIGNATURES)}"]
            )
        if not data:
            raise LayoutRejected(["body: the image is empty"])
        if len(data) > MAX_IMAGE_BYTES:
            raise LayoutRejected([f"body: {len(data)} bytes, more than {MAX_IMAGE_BYTES}"])
        webp_ok = kind != "image/webp" or data[8:12] == b"WEBP"
        if not data.startswith(signatures) or not webp_ok:
            raise LayoutRejected([f"body: the bytes are not a {kind} image"])
        return self._layouts.add_image(store, kind, data, self._clock_ms())

    def image(self, store: str, image_id: int) -> FloorImage:
        self.running_plan(store)
        found = self._layouts.image(store, image_id)
        if found is None:
            raise NotFound(f"store {store!r} has no floor image {image_id}")
        return found
