"""Every broken store file is refused with a StoreConfigError that says which
file, which line, which field, and what is wrong with it: every fault of the
file in one run, with a "did you mean" for a misspelled id or field name."""

import json
from pathlib import Path

import pytest

from omnizone.store import StoreConfigError, load_store, parse_store

BROKEN = Path(__file__).resolve().parent / "broken"

# file -> substrings the error must contain (besides the file path).
EXPECTED: dict[str, list[str]] = {
    "overlapping-zones-aligned.yaml": ["zones[2] (denim).polygon overlaps zones[1] (shoes)"],
    "invalid-yaml.yaml": ["line 9, column 78", "not valid YAML", "expected ',' or ']'"],
    "not-a-mapping.yaml": ["expected a mapping with 'store', 'zones' and 'gateways'"],
    "unknown-top-level-key.yaml": [
        "line 12: gateway: Extra inputs are not permitted (did you mean 'gateways'?)"
    ],
    "polygon-two-points.yaml": ["zones[2] (denim).polygon", "at least 3 items", "not 2"],
    "self-crossing-polygon.yaml": ["zones[2] (denim).polygon", "edges cross each other"],
    "zone-outside-floor.yaml": [
        "zones[2] (denim).polygon[1]",
        "[32.0, 0.0] lies outside the floor (30.0 x 10.0 m)",
    ],
    "overlapping-zones.yaml": ["zones[3] (fitting-room).polygon overlaps zones[1] (shoes)"],
    "duplicate-zone-id.yaml": ["zones[2]", "duplicate id 'shoes'"],
    "gateway-unknown-zone.yaml": ["line 12: gateways[1] (gw-denim).zone", "unknown zone 'jeans'"],
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
    "wall-unknown-zone.yaml": ["line 12: walls[1]", "unknown zone 'shoos' (did you mean 'shoes'?)"],
    "beacon-mac-address.yaml": ["beacons[0] (bcn-door).device", "contains a MAC address"],
    "several-faults.yaml": [
        "line 9: zones[1] (fitting-room).kind: Input should be",
        "(did you mean 'fitting-room'?)",
        "line 13: gateways[1] (gw-denim).zone: unknown zone 'demin' (did you mean 'denim'?)",
        "line 15: nfc_tap_points[0] (tap-denim).positon: Extra inputs are not permitted "
        "(did you mean 'position'?)",
        "line 15: nfc_tap_points[0] (tap-denim).gateway: unknown gateway 'gw-denin' "
        "(did you mean 'gw-denim'?)",
    ],
    "several-cross-check-faults.yaml": [
        "line 12: gateways[1] (gw-shoes).zone: unknown zone 'shoe' (did you mean 'shoes'?)",
        "line 15: rfid_readers[0] (rfid-denim).gateway: unknown gateway 'gw-denm' "
        "(did you mean 'gw-denim'?)",
        "line 15: rfid_readers[0] (rfid-denim).position [40.0, 5.0] lies outside the floor",
    ],
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


def test_every_fault_is_reported_in_one_run_each_on_its_own_line() -> None:
    path = BROKEN / "several-faults.yaml"
    with pytest.raises(StoreConfigError) as caught:
        load_store(path)
    error = caught.value
    # kind, position missing, positon unknown, zone 'demin', gateway 'gw-denin'
    assert len(error.problems) == 5, error.problems
    lines = str(error).splitlines()
    assert len(lines) == 5 and all(line.startswith(f"{path}: line ") for line in lines)
    assert [f.line for f in error.faults] == [9, 13, 15, 15, 15]  # in the order of the file
    assert [str(f) for f in error.faults] == error.problems


def test_cross_checks_report_every_fault_not_the_first() -> None:
    with pytest.raises(StoreConfigError) as caught:
        load_store(BROKEN / "several-cross-check-faults.yaml")
    assert [f.line for f in caught.value.faults] == [12, 15, 15]


def test_an_id_made_invalid_by_a_field_error_is_not_reported_twice() -> None:
    text = """
store: { id: s, name: S, floor: { width_m: 10, depth_m: 10 } }
zones:
  - { id: a, name: A, polygon: [[0, 0], [5, 0], [5, 5], [0, 5]] }
gateways:
  - { id: g, position: [1, 1], zone: Bad Zone }
  - { id: h, position: [2, 2], zone: b, height_m: 0 }
"""
    with pytest.raises(StoreConfigError) as caught:
        parse_store(text, source="inline.yaml")
    problems = caught.value.problems
    assert sum("gateways[0] (g).zone" in p for p in problems) == 1, problems  # the pattern only
    assert "line 7: gateways[1] (h).zone: unknown zone 'b'" in problems
    assert any(p.startswith("line 7: gateways[1] (h).height_m") for p in problems)


def test_far_off_names_get_no_suggestion() -> None:
    text = """
store: { id: s, name: S, floor: { width_m: 10, depth_m: 10 } }
zones:
  - { id: denim, name: Denim, polygon: [[0, 0], [5, 0], [5, 5], [0, 5]] }
gateways:
  - { id: g, position: [1, 1] }
nfc_tap_points:
  - { id: t1, gateway: G, zone: denim, position: [1, 1] }
  - { id: t2, gateway: g, zone: handbags, position: [1, 1] }
"""
    with pytest.raises(StoreConfigError) as caught:
        parse_store(text)
    problems = caught.value.problems
    assert any("gateway: String should match pattern" in p for p in problems)  # 'G': not an id
    assert "line 9: nfc_tap_points[1] (t2).zone: unknown zone 'handbags'" in problems


def test_a_one_line_document_names_fields_without_lines() -> None:
    """A layout posted as JSON is one line: a line number would say nothing."""
    data = {
        "store": {"id": "s", "name": "S", "floor": {"width_m": 10, "depth_m": 10}},
        "zones": [{"id": "denim", "name": "D", "polygon": [[0, 0], [5, 0], [5, 5], [0, 5]]}],
        "gateways": [{"id": "g", "position": [1, 1], "zone": "demin"}],
    }
    with pytest.raises(StoreConfigError) as caught:
        parse_store(json.dumps(data), source="layout of s")
    assert caught.value.problems == [
        "gateways[0] (g).zone: unknown zone 'demin' (did you mean 'denim'?)"
    ]
