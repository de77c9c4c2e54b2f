"""The ``LayoutStore`` port, on every backend: versions per store, newest
first, never overwritten; floor images found only under their own store."""

from typing import Any

from omnizone.server.service.ports import FloorImage, StoredLayout

from .conftest import Storage

STORE, OTHER = "paris-rivoli", "lyon-part-dieu"
T0 = 1_767_225_600_000
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


def _plan(name: str) -> dict[str, Any]:
    return {"store": {"id": STORE, "name": name}, "zones": [{"id": "shoes", "points": [[0, 0]]}]}


def test_each_save_is_the_next_version_of_its_store(storage: Storage) -> None:
    layouts = storage.layouts
    assert layouts.latest(STORE) is None and layouts.versions(STORE) == []
    first = layouts.save(STORE, _plan("one"), None, "first", T0)
    assert first == StoredLayout(STORE, 1, _plan("one"), None, "first", T0)
    assert layouts.save(OTHER, _plan("other"), None, "", T0 + 1).version == 1
    second = layouts.save(STORE, _plan("two"), None, "", T0 + 2)
    assert second.version == 2
    assert layouts.latest(STORE) == second
    assert layouts.get(STORE, 1) == first  # an earlier version is kept as it was
    assert layouts.get(STORE, 3) is None and layouts.get(OTHER, 2) is None
    assert [v.version for v in layouts.versions(STORE)] == [2, 1]
    assert [v.plan["store"]["name"] for v in layouts.versions(STORE)] == ["two", "one"]


def test_a_read_plan_is_a_copy(storage: Storage) -> None:
    saved = _plan("one")
    storage.layouts.save(STORE, saved, None, "", T0)
    saved["zones"].clear()  # the caller's plan, not what is stored
    read = storage.layouts.latest(STORE)
    assert read is not None
    read.plan["store"]["name"] = "changed"
    again = storage.layouts.latest(STORE)
    assert again is not None and again.plan == _plan("one")


def test_a_layout_keeps_its_image_and_images_belong_to_a_store(storage: Storage) -> None:
    layouts = storage.layouts
    mine = layouts.add_image(STORE, "image/png", PNG, T0)
    theirs = layouts.add_image(OTHER, "image/jpeg", b"\xff\xd8\xff-jpeg", T0 + 1)
    assert mine != theirs
    assert layouts.image(STORE, mine) == FloorImage(mine, STORE, "image/png", PNG, T0)
    assert layouts.image(STORE, theirs) is None  # another store's image is not found here
    assert layouts.image(STORE, max(mine, theirs) + 1) is None
    saved = layouts.save(STORE, _plan("with image"), mine, "", T0 + 2)
    assert layouts.get(STORE, saved.version) == saved
    assert saved.image_id == mine
