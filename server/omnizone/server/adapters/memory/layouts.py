"""Saved layouts and floor images in memory: the ``LayoutStore`` port.

Behaves as ``adapters.layout_db.LayoutRepository``: versions count 1, 2, …
per store and are never overwritten; image ids are unique across stores, and
an image is only found under its own store.
"""

import threading
from typing import Any

from omnizone.server.adapters.memory.ingest import json_copy
from omnizone.server.service.ports.layouts import FloorImage, LayoutStore, StoredLayout


class MemoryLayoutStore(LayoutStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._layouts: dict[str, list[StoredLayout]] = {}  # store -> versions, oldest first
        self._images: dict[int, FloorImage] = {}

    def save(
        self, store: str, plan: dict[str, Any], image_id: int | None, note: str, saved_ms: int
    ) -> StoredLayout:
        with self._lock:
            versions = self._layouts.setdefault(store, [])
            version = versions[-1].version + 1 if versions else 1
            versions.append(StoredLayout(store, version, json_copy(plan), image_id, note, saved_ms))
        return StoredLayout(store, version, plan, image_id, note, saved_ms)

    def latest(self, store: str) -> StoredLayout | None:
        with self._lock:
            versions = self._layouts.get(store)
            return _copy(versions[-1]) if versions else None

    def get(self, store: str, version: int) -> StoredLayout | None:
        with self._lock:
            found = [v for v in self._layouts.get(store, []) if v.version == version]
        return _copy(found[0]) if found else None

    def versions(self, store: str) -> list[StoredLayout]:
        with self._lock:
            return [_copy(v) for v in reversed(self._layouts.get(store, []))]

    def add_image(self, store: str, content_type: str, data: bytes, uploaded_ms: int) -> int:
        with self._lock:
            image_id = max(self._images, default=0) + 1
            self._images[image_id] = FloorImage(
                image_id, store, content_type, bytes(data), uploaded_ms
            )
        return image_id

    def image(self, store: str, image_id: int) -> FloorImage | None:
        with self._lock:
            found = self._images.get(image_id)
        return found if found is not None and found.store == store else None


def _copy(layout: StoredLayout) -> StoredLayout:
    """A plan the caller may change without changing what is stored."""
    return StoredLayout(
        layout.store,
        layout.version,
        json_copy(layout.plan),
        layout.image_id,
        layout.note,
        layout.saved_ms,
    )
