"""Dead letters are bounded: a capped payload with its original size, MAC-like
strings masked in the table and in the log, and a retention period."""

import json
import logging
from pathlib import Path

import pytest

from omnizone.contract import topic_for
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.memory import MemoryStorage
from omnizone.server.domain.redact import MAC_MASK, cap_text, keep_payload, mask_macs
from omnizone.server.service.ingest import IngestService, Outcome
from omnizone.server.service.ports import Repository
from omnizone.server.service.retention import DAY_MS, SightingRetention
from omnizone.store import StorePlan

from .conftest import DEVICE_A, STORE, T0, ble

MACS = ("a4:c1:38:0f:9e:21", "A4-C1-38-0F-9E-22", "a4c1380f9e23", "a4c1.380f.9e24")


@pytest.mark.parametrize("mac", MACS)
def test_every_mac_form_is_masked(mac: str) -> None:
    assert mask_macs(f'{{"device":"{mac}"}}') == f'{{"device":"{MAC_MASK}"}}'


def test_longer_hex_runs_and_ids_are_not_masked() -> None:
    for text in (DEVICE_A, "eid:8899aabbccddeeff", "a4c1380f9e2301", "seq 123456789012345"):
        assert mask_macs(text) == text


def test_a_mac_across_the_cap_is_masked_before_the_cut() -> None:
    payload = b"x" * 10 + b"a4:c1:38:0f:9e:21" + b"y" * 10
    for cap in range(len(payload) + 1):
        kept = keep_payload(payload, cap)
        assert len(kept.payload) <= cap and kept.original_bytes == len(payload)
        assert b"a4" not in kept.payload and b"9e" not in kept.payload


def test_a_long_reason_is_cut_and_says_how_long_it_was() -> None:
    text = cap_text("bad key a4:c1:38:0f:9e:21 " + "z" * 5000, 100)
    assert len(text) < 130 and "a4:c1" not in text and "characters]" in text


def _huge_payload_with_macs() -> bytes:
    body = {
        "v": 1,
        "kind": "ble",
        "store": STORE,
        "gateway": "gw-shoes",
        "seq": 1,
        "items": [{"device": mac} for mac in MACS],
        "padding": "p" * 10_000_000,
    }
    return json.dumps(body).encode()


def test_a_10_mb_dead_letter_is_stored_capped_and_no_mac_reaches_the_db_or_the_log(
    plan: StorePlan, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "omnizone.db"
    repo = SqlRepository.from_url(f"sqlite:///{db}")
    service = IngestService({plan.id: plan}, repo)  # the default cap
    topic = topic_for(STORE, "gw-shoes", "ble")
    payload = _huge_payload_with_macs()
    # The contract's own MAC check names the key in its reason: a small message.
    small = ble("gw-shoes", 2, T0, {DEVICE_A: -60})[1].replace(DEVICE_A.encode(), MACS[0].encode())
    with caplog.at_level(logging.DEBUG):
        outcomes = [service.handle(topic, payload, T0), service.handle(topic, small, T0 + 1)]
    assert [o.outcome for o in outcomes] == [Outcome.DEAD_LETTERED] * 2
    small_letter, big_letter = repo.dead_letters(10)
    assert big_letter.original_bytes == len(payload) > 10_000_000
    assert 0 < len(big_letter.payload) <= 4096
    assert small_letter.original_bytes == len(small) and len(small) < 4096
    assert MAC_MASK.encode() in small_letter.payload
    repo.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(db.name))
    text = caplog.text
    for mac in MACS:
        assert mac.encode() not in raw and mac.lower().encode() not in raw
        assert mac not in text and mac.lower() not in text
    assert "dead letter" in text  # the log line is there, masked


def test_the_cap_is_a_setting_of_the_service(plan: StorePlan, tmp_path: Path) -> None:
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    service = IngestService({plan.id: plan}, repo, dead_letter_bytes=100)
    service.handle(topic_for(STORE, "gw-shoes", "ble"), b"q" * 1000, T0)
    [letter] = repo.dead_letters(1)
    assert (letter.payload, letter.original_bytes) == (b"q" * 100, 1000)
    repo.close()


@pytest.fixture(params=["sqlite", "memory"])
def writes(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    if request.param == "memory":
        return MemoryStorage().ingest
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    request.addfinalizer(repo.close)
    return repo


def test_old_dead_letters_are_pruned_and_recent_ones_stay(writes: Repository) -> None:
    for day in (0, 1, 20, 29):
        writes.add_dead_letter(T0 + day * DAY_MS, "t", b"x", f"day {day}")
    retention = SightingRetention(
        writes.prune_dead_letters, 14, clock_ms=lambda: T0 + 30 * DAY_MS, what="dead letters"
    )
    assert retention.run_once() == 2
    assert [d.reason for d in writes.dead_letters(10)] == ["day 29", "day 20"]
    assert retention.run_once() == 0
