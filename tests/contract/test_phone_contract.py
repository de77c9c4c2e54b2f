"""The phone's beacon report (issue 15) and its reference client: what is
refused names the field; a batch keeps its id over every resend; an offline
phone's buffer is bounded."""

import json

import pytest

from omnizone.contract.phone import (
    MAX_BATCH_BYTES,
    PhoneContractError,
    PhoneReport,
    dump_phone_report,
    parse_phone_report,
)
from omnizone.contract.phone_client import PhoneBeaconClient

T0 = 1_795_255_200_000
BEACON = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:8"


def _report(**changes: object) -> bytes:
    body: dict[str, object] = {
        "store": "paris-rivoli",
        "batch": "batch-000001",
        "windows": [{"start_ms": T0, "beacons": [{"beacon": BEACON, "rssi": -70.5, "count": 9}]}],
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_a_good_report_round_trips() -> None:
    report = parse_phone_report(_report())
    assert report.windows[0].beacons[0].beacon == BEACON
    assert parse_phone_report(dump_phone_report(report)) == report


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"windows": [{"start_ms": T0 + 1, "beacons": []}]}, "windows.0"),
        (
            {
                "windows": [
                    {"start_ms": T0, "beacons": [{"beacon": "eid:0011223344556677", "rssi": -60}]}
                ]
            },
            "windows.0.beacons.0.beacon",
        ),
        (
            {"windows": [{"start_ms": T0, "beacons": [{"beacon": BEACON, "rssi": 3}]}]},
            "windows.0.beacons.0.rssi",
        ),
        ({"batch": "short"}, "batch"),
        ({"windows": [{"start_ms": T0 + 1000}, {"start_ms": T0}]}, "body"),
        ({"windows": [], "regions": []}, "body"),
        ({"mac": "AA:BB:CC:DD:EE:FF"}, "mac"),
        ({"windows": [{"start_ms": T0, "window_ms": 2000}]}, "windows.0.window_ms"),
    ],
)
def test_a_bad_report_names_the_field(changes: dict[str, object], where: str) -> None:
    with pytest.raises(PhoneContractError) as refused:
        parse_phone_report(_report(**changes))
    assert refused.value.reason.startswith(where), refused.value.reason


def test_a_beacon_twice_in_one_window_is_refused() -> None:
    twice = [{"beacon": BEACON, "rssi": -60}, {"beacon": BEACON, "rssi": -61}]
    with pytest.raises(PhoneContractError, match="twice"):
        parse_phone_report(_report(windows=[{"start_ms": T0, "beacons": twice}]))


def test_an_oversized_batch_is_refused_before_parsing() -> None:
    with pytest.raises(PhoneContractError, match=str(MAX_BATCH_BYTES)):
        parse_phone_report(b" " * (MAX_BATCH_BYTES + 1))


class FlakyServer:
    """Answers as the server does: offline first, then applies each batch id once."""

    def __init__(self, offline_posts: int) -> None:
        self.offline_posts = offline_posts
        self.applied: dict[str, PhoneReport] = {}
        self.posts = 0

    def __call__(self, body: bytes) -> tuple[int, bytes]:
        self.posts += 1
        if self.posts <= self.offline_posts:
            return 0, b""
        report = parse_phone_report(body)
        duplicate = report.batch in self.applied
        self.applied.setdefault(report.batch, report)
        answer = {"batch": report.batch, "duplicate": duplicate, "windows_accepted": 1}
        return 200, json.dumps(answer).encode()


def test_an_offline_phone_keeps_its_batches_and_resends_them_with_the_same_id() -> None:
    server = FlakyServer(offline_posts=3)
    ids = iter(f"batch-{n:06d}" for n in range(100))
    client = PhoneBeaconClient("paris-rivoli", server, batch_windows=2, new_id=lambda: next(ids))
    for second in range(6):
        client.window(T0 + second * 1000, {BEACON: (-70.0, 9)})
        client.flush()
    assert client.pending == 0 and client.counters.retried == 3
    assert sorted(server.applied) == ["batch-000000", "batch-000001", "batch-000002"]
    windows = [w.start_ms for r in server.applied.values() for w in r.windows]
    assert windows == [T0 + s * 1000 for s in range(6)]


def test_the_offline_buffer_is_bounded_and_counts_what_it_dropped() -> None:
    client = PhoneBeaconClient(
        "paris-rivoli", lambda _body: (503, b""), batch_windows=1, max_buffered_batches=5
    )
    for second in range(8):
        client.window(T0 + second * 1000, {})
        client.flush()
    assert client.pending == 5 and client.counters.dropped_offline == 3


def test_a_refused_batch_is_not_resent() -> None:
    client = PhoneBeaconClient("paris-rivoli", lambda _body: (422, b"{}"), batch_windows=1)
    client.window(T0, {})
    assert client.flush() and client.pending == 0 and client.counters.refused == 1
