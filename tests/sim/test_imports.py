"""Importing readings from other tools: every bad line named, the real gateway
aggregation, no raw device string in the recording."""

import gzip
import json
import uuid
from pathlib import Path

import pytest
from bleak.backends.device import BLEDevice
from typer.testing import CliRunner

from omnizone.contract import BleMessage, parse_message
from omnizone.contract.ids import check_device_key
from omnizone.gateway.ble.adstructures import ibeacon_payload, parse_ad_structures
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.paths import shipped_config
from omnizone.sim.cli import sim_app
from omnizone.sim.recording import read_recording
from omnizone.sim.recording.imports import (
    ImportProblems,
    Reading,
    TruthPoint,
    import_device_key,
    read_readings,
    read_truth,
    readings_to_messages,
)
from omnizone.store import StorePlan, load_store

T0_S = 1_767_225_600  # 2026-01-01T00:00:00Z
MAC = "7C:D1:C3:4A:5B:6E"


@pytest.fixture(scope="module")
def plan() -> StorePlan:
    return load_store(shipped_config("stores/rivoli.yaml"))


def _csv(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(call: object) -> list[str]:
    with pytest.raises(ImportProblems) as caught:
        assert callable(call)
        call()
    return caught.value.problems


def test_device_keys_are_valid_deterministic_and_hide_the_raw_string() -> None:
    key = import_device_key(MAC)
    assert check_device_key(key) == key
    assert key == import_device_key(MAC.lower()) == import_device_key(MAC.replace(":", "-"))
    assert key == import_device_key(MAC.replace(":", "")) != import_device_key(MAC + "0")
    assert import_device_key("robot") != import_device_key("Robot")
    assert MAC.lower().replace(":", "") not in key.replace(":", "")
    assert import_device_key(key) == key  # applying it twice is harmless
    assert not key.startswith("eid:")  # not a shopper: no consent to look up


def test_readings_read_in_seconds_or_milliseconds_sorted_by_time(
    tmp_path: Path, plan: StorePlan
) -> None:
    seconds = _csv(
        tmp_path,
        f"time,anchor,device,rssi\n{T0_S}.5,gw-entrance,robot,-60.5\n\n"
        f"{T0_S}.25, gw-shoes ,robot,-80\n",
    )
    millis = _csv(
        tmp_path,
        f"time,anchor,device,rssi\n{T0_S}500,gw-entrance,robot,-60.5\n"
        f"{T0_S}250,gw-shoes,robot,-80\n",
        "ms.csv",
    )
    robot = import_device_key("robot")
    expected = [
        Reading(T0_S * 1000 + 250, "gw-shoes", robot, -80.0),
        Reading(T0_S * 1000 + 500, "gw-entrance", robot, -60.5),
    ]
    assert read_readings(seconds, plan) == expected
    assert read_readings(millis, plan) == expected


def test_every_bad_reading_line_is_named(tmp_path: Path, plan: StorePlan) -> None:
    path = _csv(
        tmp_path,
        "time,anchor,device,rssi\n"
        f"{T0_S},gw-entrance,a,-60\n"
        f"soon,gw-entrance,a,-60\n"
        f"{T0_S},gw-attic,a,-60\n"
        f"{T0_S},,a,-60\n"
        f"{T0_S},gw-entrance,,-60\n"
        f"{T0_S},gw-entrance,a,-200\n"
        f"{T0_S},gw-entrance,a,loud\n"
        f"{T0_S},gw-entrance,a\n"
        f"{T0_S},gw-attic,a,-60\n"
        f"12.5,gw-entrance,a,-60\n"
        f"{T0_S}000000000,gw-entrance,a,-60\n"
        f"{T0_S},gw-entrance,a,nan\n",
    )
    assert _problems(lambda: read_readings(path, plan)) == [
        "in.csv:3: time 'soon' is not a number",
        "in.csv:4: anchor 'gw-attic' is not a gateway or fixed beacon of store "
        "'paris-rivoli' (lines 4, 10)",
        "in.csv:5: empty anchor",
        "in.csv:6: empty device",
        "in.csv:7: rssi -200 dBm is out of range (-127 to 20)",
        "in.csv:8: rssi 'loud' is not a number",
        "in.csv:9: 3 columns, the header has 4",
        "in.csv:11: time 12.5 (seconds) is not between 2000 and 2100: give epoch seconds or "
        "epoch milliseconds, not a relative time",
        f"in.csv:12: time {T0_S}000000000 looks like micro- or nanoseconds; use seconds or ms",
        "in.csv:13: rssi 'nan' is not a finite number",
    ]


def test_a_file_mixing_seconds_and_milliseconds_is_refused(tmp_path: Path, plan: StorePlan) -> None:
    path = _csv(
        tmp_path,
        "time,anchor,device,rssi\n"
        f"{T0_S}.1,gw-entrance,a,-60\n"
        f"{T0_S}200,gw-entrance,a,-60\n"
        f"{T0_S}.3,gw-entrance,a,-60\n",
    )
    assert _problems(lambda: read_readings(path, plan)) == [
        "in.csv:3: time in milliseconds but line 2 is in seconds: one file uses one unit "
        "(1 line(s) in milliseconds: line 3)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "in.csv: empty file, expected a header time,anchor,device,rssi"),
        ("time,gateway,device,rssi\n", "in.csv:1: header 'time,gateway,device,rssi'; expected"),
        ("time,anchor,device,rssi\n\n", "in.csv: no data lines after the header"),
    ],
)
def test_bad_reading_files(tmp_path: Path, plan: StorePlan, text: str, expected: str) -> None:
    path = _csv(tmp_path, text)
    problems = _problems(lambda: read_readings(path, plan))
    assert len(problems) == 1 and problems[0].startswith(expected)


def test_truth_by_point_finds_the_zone_or_the_nearest_within_half_a_metre(
    tmp_path: Path, plan: StorePlan
) -> None:
    path = _csv(
        tmp_path,
        "time,device,x,y\n"
        f"{T0_S},robot,15,2\n"  # entrance
        f"{T0_S + 1},robot,6,5\n"  # womenswear
        f"{T0_S + 2},robot,-0.4,5\n"  # 0.4 m outside womenswear
        f"{T0_S + 3},robot,-2,5\n",  # outside every zone
    )
    robot = import_device_key("robot")
    assert read_truth(path, plan) == [
        TruthPoint(T0_S * 1000, robot, "entrance"),
        TruthPoint(T0_S * 1000 + 1000, robot, "womenswear"),
        TruthPoint(T0_S * 1000 + 2000, robot, "womenswear"),
        TruthPoint(T0_S * 1000 + 3000, robot, None),
    ]


def test_truth_by_zone_names_unknown_zones(tmp_path: Path, plan: StorePlan) -> None:
    good = _csv(tmp_path, f"time,device,zone\n{T0_S}000,robot,shoes\n", "good.csv")
    assert read_truth(good, plan) == [TruthPoint(T0_S * 1000, import_device_key("robot"), "shoes")]
    bad = _csv(
        tmp_path,
        "time,device,zone\n"
        f"{T0_S},robot,shoes\n"
        f"{T0_S},robot,attic\n"
        f"{T0_S},robot,\n"
        f"{T0_S},,shoes\n"
        f"{T0_S},robot,attic\n"
        f"{T0_S},robot,cellar\n",
    )
    assert _problems(lambda: read_truth(bad, plan)) == [
        "in.csv:3: zone 'attic' is not a zone of store 'paris-rivoli' (lines 3, 6)",
        "in.csv:4: empty zone",
        "in.csv:5: empty device",
        "in.csv:7: zone 'cellar' is not a zone of store 'paris-rivoli' (line 7)",
    ]
    xy = _csv(tmp_path, f"time,device,x,y\n{T0_S},robot,east,2\n", "xy.csv")
    assert _problems(lambda: read_truth(xy, plan)) == ["xy.csv:2: x 'east' is not a number"]


def test_aggregation_is_what_a_live_gateway_makes_of_the_same_adverts(plan: StorePlan) -> None:
    """The same sightings, once as adverts heard by a live GatewayNode ticking
    every 100 ms, once as imported readings: the same windows, counts, means."""
    beacon = uuid.UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e")
    payload = ibeacon_payload(beacon, 7, 9, -59)
    device_key = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:7:9"
    heard = [(130, -61), (420, -70), (990, -64), (1000, -66), (2750, -80), (2760, -79)]
    now = {"ms": T0_S * 1000}
    outbox = Outbox(":memory:")
    live = GatewayNode(plan.id, "gw-entrance", outbox, window_ms=1000, clock=lambda: now["ms"])
    pending = list(heard)
    for step in range(0, 4000, 10):
        now["ms"] = T0_S * 1000 + step
        while pending and pending[0][0] == step:
            _, rssi = pending.pop(0)
            ble = BLEDevice(MAC, None, {})
            live.on_advertisement(ble, parse_ad_structures(payload, rssi, platform_data=(MAC, {})))
        if step % 100 == 0:
            live.tick()
    live_items = [
        item
        for entry in outbox.pending(limit=100)
        if isinstance(message := parse_message(entry.topic, entry.payload), BleMessage)
        for item in message.items
    ]
    outbox.close()
    readings = [Reading(T0_S * 1000 + at, "gw-entrance", device_key, rssi) for at, rssi in heard]
    imported = [
        item
        for m in readings_to_messages(plan, readings)
        if isinstance(message := parse_message(m.topic, m.payload), BleMessage)
        for item in message.items
    ]
    assert len(imported) == 3
    # a decoded iBeacon knows its tx power; an imported reading does not
    assert [i.model_copy(update={"tx_power": None}) for i in live_items] == imported


def test_messages_are_published_at_each_window_end_in_order(plan: StorePlan) -> None:
    t0 = T0_S * 1000
    a, b = import_device_key("a"), import_device_key("b")
    readings = [
        Reading(t0 + 2500, "gw-shoes", a, -70),
        Reading(t0 + 100, "gw-entrance", a, -60),
        Reading(t0 + 200, "gw-entrance", b, -65),
        Reading(t0 + 1100, "gw-entrance", a, -62),
        Reading(t0 + 1200, "bcn-checkout", a, -90),
    ]
    messages = readings_to_messages(plan, readings)
    assert [(m.rx_ms - t0, m.topic.split("/")[3]) for m in messages] == [
        (1000, "gw-entrance"),
        (2000, "bcn-checkout"),  # a beacon anchor publishes under its own id
        (2000, "gw-entrance"),
        (3000, "gw-shoes"),
    ]
    first = parse_message(messages[0].topic, messages[0].payload)
    assert isinstance(first, BleMessage)
    assert {i.device for i in first.items} == {a, b} and first.seq == 0
    second = parse_message(messages[2].topic, messages[2].payload)
    assert second.seq == 1 and second.epoch == first.epoch and second.sent_ms == t0 + 2000
    with pytest.raises(ValueError, match="gw-attic"):
        readings_to_messages(plan, [Reading(t0, "gw-attic", a, -60)])


def test_sim_import_writes_a_recording_without_the_mac(tmp_path: Path, plan: StorePlan) -> None:
    readings = _csv(
        tmp_path,
        "time,anchor,device,rssi\n"
        + "".join(
            f"{T0_S + i / 4},{gw},{MAC},{-60 - i}\n"
            for i in range(12)
            for gw in ("gw-entrance", "gw-accessories")
        ),
        "readings.csv",
    )
    truth = _csv(tmp_path, f"time,device,x,y\n{T0_S},{MAC},15,2\n{T0_S + 2},{MAC},15,7\n", "t.csv")
    out = tmp_path / "import.ozr"
    store = shipped_config("stores/rivoli.yaml")
    args = ["import", "--store", str(store), "--readings", str(readings), "--out", str(out)]
    result = CliRunner().invoke(sim_app, [*args, "--truth", str(truth), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["readings"] == 24 and summary["devices"] == 1
    assert summary["messages_per_anchor"] == {"gw-accessories": 3, "gw-entrance": 3}
    assert summary["truth"]["zones"] == {"accessories": 1, "entrance": 1}
    assert summary["truth"]["devices_without_readings"] == 0
    assert summary["beacon_anchors"] == []
    raw = gzip.decompress(out.read_bytes()).decode()
    assert MAC not in raw and MAC.lower() not in raw
    assert MAC.replace(":", "").lower() not in raw.lower()
    recording = read_recording(out)
    assert recording.header.source == "import" and recording.header.store == plan.id
    assert len(recording.messages) == 6
    # an existing file is not overwritten without --force; bad input exits 2
    assert CliRunner().invoke(sim_app, args).exit_code == 2
    assert CliRunner().invoke(sim_app, [*args, "--force"]).exit_code == 0
    bad = _csv(tmp_path, f"time,anchor,device,rssi\n{T0_S},gw-attic,x,-60\n", "bad.csv")
    result = CliRunner().invoke(
        sim_app, [*args[:3], "--readings", str(bad), "--out", str(tmp_path / "x.ozr")]
    )
    assert result.exit_code == 2
    assert "bad.csv:2: anchor 'gw-attic'" in result.stderr


def test_sim_import_warns_that_beacon_anchors_reach_no_server(tmp_path: Path) -> None:
    readings = _csv(tmp_path, f"time,anchor,device,rssi\n{T0_S},bcn-checkout,badge,-80\n")
    store = shipped_config("stores/rivoli.yaml")
    out = tmp_path / "b.ozr"
    result = CliRunner().invoke(
        sim_app,
        ["import", "--store", str(store), "--readings", str(readings), "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["beacon_anchors"] == ["bcn-checkout"]
    assert "the server drops their messages" in result.stderr
    assert read_recording(out).messages[0].topic == "omnizone/v1/paris-rivoli/bcn-checkout/ble"
