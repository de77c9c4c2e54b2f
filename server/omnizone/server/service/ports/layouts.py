"""Saved store layouts (versioned) and floor-plan images: the records and the port.

Every save of a layout is a new version of its store, numbered 1, 2, … and
never overwritten, so an earlier layout can be looked at or saved again.
Implemented by ``adapters.layout_db.LayoutRepository`` and
``adapters.memory.MemoryLayoutStore``.
"""

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StoredLayout:
    store: str
    version: int
    plan: dict[str, Any]
    image_id: int | None
    note: str
    saved_ms: int


@dataclass(frozen=True, slots=True)
class FloorImage:
    id: int
    store: str
    content_type: str
    data: bytes
    uploaded_ms: int


class VersionTaken(RuntimeError):
    """Two saves raced for the same version number; the caller retries."""


class LayoutStore(Protocol):
    def save(
        self, store: str, plan: dict[str, Any], image_id: int | None, note: str, saved_ms: int
    ) -> StoredLayout:
        """Store as the next version of ``store`` (``VersionTaken`` on a lost race)."""
        ...

    def latest(self, store: str) -> StoredLayout | None: ...

    def get(self, store: str, version: int) -> StoredLayout | None: ...

    def versions(self, store: str) -> list[StoredLayout]:
        """Every saved version, newest first."""
        ...

    def add_image(self, store: str, content_type: str, data: bytes, uploaded_ms: int) -> int:
        """Store an image; its id."""
        ...

    def image(self, store: str, image_id: int) -> FloorImage | None:
        """None also when the image belongs to another store."""
        ...
