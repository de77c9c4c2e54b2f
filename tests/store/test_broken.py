"""Every broken store file is refused with a StoreConfigError that says which
file, which field, and what is wrong with it."""

from pathlib import Path

import pytest

from omnizone.store import StoreConfigError, load_store, parse_store

BROKEN = Path(__file__).resolve().parent / "broken"

# file -> substrings the error must contain (besides the file path).
EXPECTED: dict[str, list[str]] = {
    "overlapping-zones-aligned.yaml": ["zones[2] (denim).polygon overlaps zones[1] (shoes)"],
    "invalid-yaml.yaml": ["line 9, column 78", "not valid YAML", "expected ',' or ']'"],
    "not-a-mapping.yaml": ["expected a mapping with 'store', 'zones' and 'gateways'"],
    "unknown-top-level-key.yaml": ["gateway: Extra inputs are not permitted"],
    "polygon-two-points.yaml": ["zones[2] (denim).polygon", "at least 3 items", "not 2"],
    "self-crossing-polygon.yaml": ["zones[2] (denim).polygon", "edges cross each other"],
    "zone-outside-floor.yaml": [
        "zones[2] (denim).polygon[1]",
        "[32.0, 0.0] lies outside the floor (30.0 x 10.0 m)",
    ],
    "overlapping-zones.yaml": ["zones[3] (fitting-room).polygon overlaps zones[1] (shoes)"],
    "duplicate-zone-id.yaml": ["zones[2]", "duplicate id 'shoes'"],
    "gateway-unknown-zone.yaml": ["gateways[1] (gw-denim).zone", "unknown zone 'jeans'"],
    "gateway-in-no-zone.yaml": ["gateways[1] (gw-stock)", "stands in no zone at [35.0, 5.0]"],
    "rfid-reader-unknown-gateway.yaml": [
        "rfid_readers[0] (rfid-fitting).gateway",
        "unknown gateway 'gw-fitting'",
    ],
    "rfid-reader-position-one-number.yaml": [
        "rfid_readers[0] (rfid-fitting).position[1]",
        "Field required",
    ],
    "rfid-reader-outside-floor.yaml": [
        "rfid_readers[0] (rfid-fitting).position [25.0, 12.0]",
        "lies outside the floor",
    ],
    "unknown-timezone.yaml": ["store.timezone", "unknown time zone 'Europe/Atlantis'", "IANA"],
    "wall-unknown-zone.yaml": ["walls[1]", "unknown zone 'shoos'"],
    "beacon-mac-address.yaml": ["beacons[0] (bcn-door).device", "contains a MAC address"],
    "bad-visit-settings.yaml": [
        "store.visits.min_presence_s",
        "greater than or equal to 0",
    ],
}


CASES = [pytest.param(name, expected, id=name) for name, expected in sorted(EXPECTED.items())]


def test_every_fixture_has_expectations() -> None:
    on_disk = {p.name for p in BROKEN.glob("*.yaml")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 8


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_broken_file_is_refused_saying_where_and_what(name: str, expected: list[str]) -> None:
    path = BROKEN / name
    with pytest.raises(StoreConfigError) as caught:
        load_store(path)
    error = caught.value
    text = str(error)
    assert text.startswith(f"{path}: ")
    assert error.source == str(path)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert error.problems and all(error.problems)


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(StoreConfigError) as caught:
        load_store(path)
    assert str(caught.value).startswith(f"{path}: cannot read the file")


def test_several_field_errors_are_all_reported() -> None:
    text = """
store: { id: Bad Id, name: "", floor: { width_m: 0, depth_m: 10 } }
zones:
  - { id: a, name: A, kind: cafe, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]] }
gateways:
  - { id: g, position: [0.5, 0.5], height_m: 0 }
"""
    with pytest.raises(StoreConfigError) as caught:
        parse_store(text, source="inline.yaml")
    problems = "\n".join(caught.value.problems)
    for fragment in (
        "store.id",
        "store.name",
        "store.floor.width_m",
        "zones[0] (a).kind",
        "gateways[0] (g).height_m",
    ):
        assert fragment in problems
    assert str(caught.value).startswith("inline.yaml: ")


def test_parse_store_without_a_source_says_store() -> None:
    with pytest.raises(StoreConfigError, match=r"^<store>: "):
        parse_store("[]")
