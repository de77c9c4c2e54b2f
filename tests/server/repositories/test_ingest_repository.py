"""The ingest ``Repository`` and ``LocationData`` ports, on every backend: what a
message's transaction stores comes back from the reads, a transaction is all
or nothing, and the API's reads order, count and filter as the SQL does."""

from collections.abc import Sequence

import pytest

from omnizone.contract import (
    BleSighting,
    HealthMessage,
    NfcTap,
    RfidRead,
    StatusMessage,
    TryOn,
)
from omnizone.server.domain.visits import DeviceVisitState, VisitClosed, VisitEvent, VisitOpened
from omnizone.server.service.ports import ReceivedKey, VisitRecord

from .conftest import Storage

STORE, OTHER = "paris-rivoli", "lyon-part-dieu"
T0 = 1_767_225_600_000
PHONE, WATCH = "eid:0011223344556677", "eid:8899aabbccddeeff"


def _sighting(device: str, start_ms: int, rssi: float = -60.0) -> BleSighting:
    return BleSighting(
        device=device,
        window_start_ms=start_ms,
        window_ms=1000,
        count=3,
        rssi_mean=rssi,
        rssi_max=rssi + 2,
        tx_power=-59,
    )


def _accept(
    storage: Storage,
    gateway: str,
    seq: int,
    *,
    store: str = STORE,
    sent_ms: int = T0,
    sightings: Sequence[BleSighting] = (),
) -> None:
    """One accepted BLE message, as ingest writes it."""
    with storage.ingest.transaction() as tx:
        key = ReceivedKey(store, gateway, seq)
        tx.record_received(key, "ble", sent_ms, sent_ms + 5, len(sightings))
        tx.touch_gateway(store, gateway, sent_ms + 5)
        if sightings:
            tx.add_ble_sightings(store, gateway, seq, sightings)


def _visits(
    storage: Storage, device: str, events: Sequence[VisitEvent], store: str = STORE
) -> None:
    with storage.ingest.transaction() as tx:
        tx.apply_visit_events(store, device, events)


def _status(seq: int, state: str, sent_ms: int, version: str = "1.0") -> StatusMessage:
    return StatusMessage.model_validate(
        {
            "store": STORE,
            "gateway": "gw-shoes",
            "seq": seq,
            "sent_ms": sent_ms,
            "state": state,
            "session": seq,
            "version": version,
        }
    )


# -- messages: exactly once ------------------------------------------------------------


def test_an_accepted_message_is_known_and_its_key_is_listed(storage: Storage) -> None:
    key = ReceivedKey(STORE, "gw-shoes", 7)
    with storage.ingest.transaction() as tx:
        assert not tx.received_before(key)
    _accept(storage, "gw-shoes", 7)
    _accept(storage, "gw-denim", 3)
    _accept(storage, "gw-denim", 2)
    _accept(storage, "gw-shoes", 1, store=OTHER)
    with storage.ingest.transaction() as tx:
        assert tx.received_before(key)
        assert not tx.received_before(ReceivedKey(OTHER, "gw-shoes", 7))
    assert storage.ingest.received_keys(STORE) == [
        ReceivedKey(STORE, "gw-denim", 2),
        ReceivedKey(STORE, "gw-denim", 3),
        ReceivedKey(STORE, "gw-shoes", 7),
    ]
    assert storage.ingest.received_keys("nowhere") == []
    assert storage.ingest.highest_seqs() == {
        (STORE, "gw-shoes"): 7,
        (STORE, "gw-denim"): 3,
        (OTHER, "gw-shoes"): 1,
    }


def test_a_second_message_with_the_same_key_is_refused_and_leaves_nothing(
    storage: Storage,
) -> None:
    _accept(storage, "gw-shoes", 1, sightings=[_sighting(PHONE, T0)])
    with pytest.raises(Exception), storage.ingest.transaction() as tx:  # noqa: B017
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 1), "ble", T0, T0, 1)
        tx.add_ble_sightings(STORE, "gw-shoes", 1, [_sighting(WATCH, T0)])
        tx.apply_visit_events(STORE, WATCH, [VisitOpened("shoes", T0)])
    assert storage.ingest.received_keys(STORE) == [ReceivedKey(STORE, "gw-shoes", 1)]
    assert storage.ingest.device_history(WATCH) == {"visits": [], "sightings": []}
    assert storage.ingest.recent_visits(STORE, 10, None) == []
    assert storage.ingest.ingest_stats().ingested == 1


def test_a_write_refused_at_the_commit_undoes_the_writes_before_it(storage: Storage) -> None:
    _accept(storage, "gw-shoes", 1)
    with pytest.raises(Exception), storage.ingest.transaction() as tx:  # noqa: B017
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 2), "ble", T0, T0, 1)
        tx.add_ble_sightings(STORE, "gw-shoes", 2, [_sighting(PHONE, T0)])
        tx.apply_visit_events(STORE, PHONE, [VisitOpened("shoes", T0)])
        tx.save_presence(STORE, PHONE, DeviceVisitState("shoes", T0, T0, T0))
        tx.touch_gateway(STORE, "gw-denim", T0)
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 1), "ble", T0, T0, 0)  # stored already
    assert storage.ingest.received_keys(STORE) == [ReceivedKey(STORE, "gw-shoes", 1)]
    assert storage.ingest.device_history(PHONE) == {"visits": [], "sightings": []}
    assert storage.ingest.load_presence() == {}
    assert [g.gateway for g in storage.ingest.gateway_records(STORE)] == ["gw-shoes"]


def test_a_transaction_that_fails_midway_writes_nothing(storage: Storage) -> None:
    with pytest.raises(ZeroDivisionError), storage.ingest.transaction() as tx:
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 1), "ble", T0, T0, 1)
        tx.add_ble_sightings(STORE, "gw-shoes", 1, [_sighting(PHONE, T0)])
        tx.save_presence(STORE, PHONE, DeviceVisitState("shoes", T0, T0, T0))
        _ = 1 / 0
    assert storage.ingest.received_keys(STORE) == []
    assert storage.ingest.load_presence() == {}
    assert storage.ingest.device_history(PHONE)["sightings"] == []


def test_items_need_their_message_first(storage: Storage) -> None:
    with pytest.raises(RuntimeError), storage.ingest.transaction() as tx:
        tx.add_ble_sightings(STORE, "gw-shoes", 1, [_sighting(PHONE, T0)])
    assert storage.ingest.device_history(PHONE)["sightings"] == []


def test_duplicates_are_counted_on_the_message_they_repeat(storage: Storage) -> None:
    _accept(storage, "gw-shoes", 1)
    for _ in range(2):
        with storage.ingest.transaction() as tx:
            tx.count_duplicate(ReceivedKey(STORE, "gw-shoes", 1))
    with storage.ingest.transaction() as tx:  # a duplicate of nothing stored: no effect
        tx.count_duplicate(ReceivedKey(STORE, "gw-shoes", 99))
    stats = storage.ingest.ingest_stats()
    assert (stats.ingested, stats.duplicates) == (1, 2)
    assert storage.ingest.received_keys(STORE) == [ReceivedKey(STORE, "gw-shoes", 1)]


def test_gaps_are_missing_seqs_except_the_live_sessions_reserved_will(storage: Storage) -> None:
    for seq in (1, 2, 4, 7):
        _accept(storage, "gw-denim", seq)  # 3, 5 and 6 are missing
    assert storage.ingest.ingest_stats().gaps == 3
    # gw-shoes: birth at 10 reserves 11 for its will; 12 and 13 came after it
    with storage.ingest.transaction() as tx:
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 10), "status", T0, T0, 0)
        tx.record_status(_status(10, "online", T0), T0)
    for seq in (12, 13):
        _accept(storage, "gw-shoes", seq)
    assert storage.ingest.ingest_stats().gaps == 3  # 11 is not lost, it is awaited
    with storage.ingest.transaction() as tx:  # a newer birth: 11 is now lost
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 14), "status", T0 + 9, T0 + 9, 0)
        tx.record_status(_status(14, "online", T0 + 9), T0 + 9)
    assert storage.ingest.ingest_stats().gaps == 4


# -- dead letters --------------------------------------------------------------------


def test_dead_letters_come_back_newest_first_with_their_bytes(storage: Storage) -> None:
    for i in range(3):
        storage.ingest.add_dead_letter(T0 + i, f"omnizone/v1/{STORE}/gw-{i}/ble", bytes([i]), "bad")
    letters = storage.ingest.dead_letters(2)
    assert [(d.topic, d.payload, d.received_ms) for d in letters] == [
        (f"omnizone/v1/{STORE}/gw-2/ble", b"\x02", T0 + 2),
        (f"omnizone/v1/{STORE}/gw-1/ble", b"\x01", T0 + 1),
    ]
    assert letters[0].id > letters[1].id and letters[0].reason == "bad"
    assert storage.ingest.ingest_stats().dead_lettered == 3
    assert storage.ingest.dead_letters(0) == []


def test_an_application_error_is_not_transient(storage: Storage) -> None:
    assert storage.ingest.is_transient(ValueError("bad message")) is False


# -- gateways ----------------------------------------------------------------------------


def test_the_newest_status_wins_and_last_seen_follows_every_message(storage: Storage) -> None:
    assert storage.ingest.gateway_records(STORE) == []
    with storage.ingest.transaction() as tx:
        tx.touch_gateway(STORE, "gw-shoes", T0 + 100)
        tx.record_status(_status(5, "online", T0 + 90, "2.1"), T0 + 100)
    with storage.ingest.transaction() as tx:  # a replayed older will must not win
        tx.touch_gateway(STORE, "gw-shoes", T0 + 200)
        tx.record_status(_status(3, "offline", T0 + 50, "2.0"), T0 + 200)
    (record,) = storage.ingest.gateway_records(STORE)
    assert (record.gateway, record.state, record.session, record.version) == (
        "gw-shoes",
        "online",
        5,
        "2.1",
    )
    assert record.last_seen_ms == T0 + 200
    assert record.health is None
    assert storage.ingest.gateway_records(OTHER) == []


def test_health_is_kept_as_json_and_only_a_newer_report_replaces_it(storage: Storage) -> None:
    def health(sent_ms: int, uptime: float) -> HealthMessage:
        return HealthMessage(
            store=STORE,
            gateway="gw-shoes",
            seq=1,
            sent_ms=sent_ms,
            uptime_s=uptime,
            outbox_depth=2,
            outbox_dropped=0,
            readers={"ble": "ok"},
            counters={"ble.restarts": 1},
            version="3.0",
        )

    with storage.ingest.transaction() as tx:
        tx.record_health(health(T0 + 10, 60.0), T0 + 11)
    with storage.ingest.transaction() as tx:
        tx.record_health(health(T0 + 5, 30.0), T0 + 12)
    (record,) = storage.ingest.gateway_records(STORE)
    assert record.health is not None
    assert record.health["uptime_s"] == 60.0
    assert record.health["readers"] == {"ble": "ok"}
    assert record.health["counters"] == {"ble.restarts": 1}
    assert record.version == "3.0" and record.state is None
    assert record.last_seen_ms == T0 + 12


def test_gateway_configs_are_saved_replaced_and_read_as_copies(storage: Storage) -> None:
    assert storage.ingest.gateway_config(STORE, "gw-shoes") is None
    storage.ingest.save_gateway_config(STORE, "gw-shoes", 1, {"ble": {"window_ms": 1000}})
    body = {"ble": {"window_ms": 2000}}
    storage.ingest.save_gateway_config(STORE, "gw-shoes", 2, body)
    body["ble"]["window_ms"] = 3  # the caller's dict, not what is stored
    storage.ingest.save_gateway_config(STORE, "gw-denim", 1, {"nfc": {"debounce_ms": 5}})
    found = storage.ingest.gateway_config(STORE, "gw-shoes")
    assert found is not None
    assert (found.revision, found.body) == (2, {"ble": {"window_ms": 2000}})
    found.body["ble"]["window_ms"] = 1
    again = storage.ingest.gateway_config(STORE, "gw-shoes")
    assert again is not None and again.body == {"ble": {"window_ms": 2000}}
    assert storage.ingest.gateway_config(OTHER, "gw-shoes") is None


# -- taps and fitting rooms ----------------------------------------------------------------


def test_taps_and_try_ons_are_counted_per_store(storage: Storage) -> None:
    with storage.ingest.transaction() as tx:
        tx.record_received(ReceivedKey(STORE, "gw-till", 1), "nfc", T0, T0, 2)
        tap = NfcTap(tap_point="shelf-1", uid="04a1b2c3", at_ms=T0)
        tx.add_nfc_taps(STORE, "gw-till", 1, [tap, tap])
    with storage.ingest.transaction() as tx:
        tx.record_received(ReceivedKey(STORE, "gw-fit", 1), "rfid", T0, T0, 4)
        epc = "3074257bf7194e4000001a85"
        tx.add_rfid_reads(
            STORE,
            "gw-fit",
            1,
            [
                RfidRead(reader="fit-1", antenna=1, epc=epc, rssi=-50, at_ms=T0),
                TryOn(reader="fit-1", event="arrived", epc=epc, at_ms=T0),
                TryOn(reader="fit-1", event="arrived", epc=epc, at_ms=T0 + 1),
                TryOn(reader="fit-1", event="departed", epc=epc, at_ms=T0 + 2),
            ],
        )
    assert storage.ingest.activity_counts(STORE) == {
        "nfc_taps": 2,
        "try_ons_arrived": 2,
        "try_ons_departed": 1,
    }
    assert storage.ingest.activity_counts(OTHER) == {
        "nfc_taps": 0,
        "try_ons_arrived": 0,
        "try_ons_departed": 0,
    }


# -- visits and presence -----------------------------------------------------------------------


def test_a_visit_opens_then_closes_in_place(storage: Storage) -> None:
    _visits(storage, PHONE, [VisitOpened("shoes", T0)])
    assert storage.ingest.recent_visits(STORE, 10, None) == [
        VisitRecord(PHONE, "shoes", T0, None, None, "open")
    ]
    _visits(
        storage,
        PHONE,
        [VisitClosed("shoes", T0, T0 + 12_000, pass_by=False), VisitOpened("denim", T0 + 12_000)],
    )
    assert storage.ingest.recent_visits(STORE, 10, None) == [
        VisitRecord(PHONE, "denim", T0 + 12_000, None, None, "open"),
        VisitRecord(PHONE, "shoes", T0, T0 + 12_000, 12.0, "visit"),
    ]


def test_a_close_without_its_opening_is_stored_closed(storage: Storage) -> None:
    _visits(storage, PHONE, [VisitClosed("shoes", T0, T0 + 3000, pass_by=True)])
    assert storage.ingest.recent_visits(STORE, 10, None) == [
        VisitRecord(PHONE, "shoes", T0, T0 + 3000, 3.0, "pass_by")
    ]


def test_recent_visits_newest_first_by_zone_and_limit(storage: Storage) -> None:
    _visits(storage, PHONE, [VisitOpened("shoes", T0 + 1000)])
    _visits(storage, WATCH, [VisitOpened("shoes", T0 + 1000)])  # same time: later row first
    _visits(storage, PHONE, [VisitOpened("denim", T0 + 5000)])
    _visits(storage, PHONE, [VisitOpened("shoes", T0)])
    _visits(storage, PHONE, [VisitOpened("shoes", T0 + 9000)], store=OTHER)
    assert [
        (v.device, v.zone, v.entered_ms) for v in storage.ingest.recent_visits(STORE, 10, None)
    ] == [
        (PHONE, "denim", T0 + 5000),
        (WATCH, "shoes", T0 + 1000),
        (PHONE, "shoes", T0 + 1000),
        (PHONE, "shoes", T0),
    ]
    assert [v.device for v in storage.ingest.recent_visits(STORE, 2, "shoes")] == [WATCH, PHONE]
    assert storage.ingest.recent_visits(STORE, 10, "nowhere") == []


def test_zone_summaries_count_each_status_and_average_the_visits_dwell(storage: Storage) -> None:
    _visits(storage, PHONE, [VisitClosed("shoes", T0, T0 + 10_000, pass_by=False)])
    _visits(storage, WATCH, [VisitClosed("shoes", T0, T0 + 20_000, pass_by=False)])
    _visits(storage, "eid:0000000000000001", [VisitClosed("shoes", T0, T0 + 2000, pass_by=True)])
    _visits(storage, "eid:0000000000000002", [VisitOpened("shoes", T0)])
    _visits(storage, PHONE, [VisitClosed("denim", T0, T0 + 1000, pass_by=True)])
    _visits(storage, PHONE, [VisitOpened("shoes", T0)], store=OTHER)
    summaries = {s.zone: s for s in storage.ingest.zone_summaries(STORE)}
    assert set(summaries) == {"shoes", "denim"}
    shoes, denim = summaries["shoes"], summaries["denim"]
    assert (shoes.visits, shoes.pass_bys, shoes.open_visits) == (2, 1, 1)
    assert shoes.mean_dwell_s == pytest.approx(15.0)
    assert (denim.visits, denim.pass_bys, denim.open_visits, denim.mean_dwell_s) == (
        0,
        1,
        0,
        None,
    )
    assert storage.ingest.zone_summaries("nowhere") == []


def test_presence_is_saved_replaced_removed_and_restored(storage: Storage) -> None:
    here = DeviceVisitState("shoes", T0, T0 + 4000, T0 + 5000, "denim", T0 + 4500)
    with storage.ingest.transaction() as tx:
        tx.save_presence(STORE, PHONE, DeviceVisitState("denim", T0, T0, T0))
        tx.save_presence(STORE, PHONE, here)  # the last save of a transaction wins
        tx.save_presence(STORE, WATCH, DeviceVisitState("shoes", T0, T0, T0 + 100))
        tx.save_presence(OTHER, WATCH, DeviceVisitState("shoes", T0, T0, T0 + 100))
    assert storage.ingest.load_presence() == {
        (STORE, PHONE): here,
        (STORE, WATCH): DeviceVisitState("shoes", T0, T0, T0 + 100),
        (OTHER, WATCH): DeviceVisitState("shoes", T0, T0, T0 + 100),
    }
    assert storage.ingest.presence_by_zone(STORE) == {"shoes": 2}
    with storage.ingest.transaction() as tx:
        tx.save_presence(STORE, WATCH, None)
        tx.save_presence(STORE, "eid:0000000000000009", None)  # nothing to remove: fine
    assert set(storage.ingest.load_presence()) == {(STORE, PHONE), (OTHER, WATCH)}
    assert storage.ingest.presence_by_zone(STORE) == {"shoes": 1}
    assert storage.ingest.presence_by_zone("nowhere") == {}


def test_latest_event_is_last_heard_else_the_newest_message_else_none(storage: Storage) -> None:
    assert storage.ingest.latest_event_ms(STORE) is None
    _accept(storage, "gw-shoes", 1, sent_ms=T0 + 300)
    _accept(storage, "gw-shoes", 2, sent_ms=T0 + 200)
    assert storage.ingest.latest_event_ms(STORE) == T0 + 300
    with storage.ingest.transaction() as tx:
        tx.save_presence(STORE, PHONE, DeviceVisitState("shoes", T0, T0, T0 + 100))
        tx.save_presence(STORE, WATCH, DeviceVisitState("shoes", T0, T0, T0 + 150))
    assert storage.ingest.latest_event_ms(STORE) == T0 + 150  # presence first, even if older
    assert storage.ingest.latest_event_ms(OTHER) is None


# -- a shopper's location data ------------------------------------------------------------------


def test_device_history_lists_visits_by_entry_and_sightings_by_window(storage: Storage) -> None:
    _accept(storage, "gw-shoes", 1, sightings=[_sighting(PHONE, T0 + 2000, -70)])
    _accept(storage, "gw-denim", 1, sightings=[_sighting(PHONE, T0, -65), _sighting(WATCH, T0)])
    _visits(storage, PHONE, [VisitOpened("denim", T0 + 9000)])
    _visits(storage, PHONE, [VisitClosed("shoes", T0, T0 + 9000, pass_by=False)], store=OTHER)
    history = storage.ingest.device_history(PHONE)
    assert history["visits"] == [
        {
            "store": OTHER,
            "zone": "shoes",
            "entered_ms": T0,
            "left_ms": T0 + 9000,
            "dwell_s": 9.0,
            "status": "visit",
        },
        {
            "store": STORE,
            "zone": "denim",
            "entered_ms": T0 + 9000,
            "left_ms": None,
            "dwell_s": None,
            "status": "open",
        },
    ]
    heard = {"window_ms": 1000, "count": 3, "tx_power": -59}
    assert history["sightings"] == [
        {
            "store": STORE,
            "gateway": "gw-denim",
            "window_start_ms": T0,
            "rssi_mean": -65.0,
            "rssi_max": -63.0,
            **heard,
        },
        {
            "store": STORE,
            "gateway": "gw-shoes",
            "window_start_ms": T0 + 2000,
            "rssi_mean": -70.0,
            "rssi_max": -68.0,
            **heard,
        },
    ]
    assert storage.ingest.device_history("eid:00000000000000ff") == {"visits": [], "sightings": []}


def test_erasing_a_device_removes_its_location_in_every_store_and_nothing_else(
    storage: Storage,
) -> None:
    _accept(storage, "gw-shoes", 1, sightings=[_sighting(PHONE, T0), _sighting(WATCH, T0)])
    _visits(storage, PHONE, [VisitOpened("shoes", T0)])
    _visits(storage, PHONE, [VisitOpened("shoes", T0)], store=OTHER)
    _visits(storage, WATCH, [VisitOpened("shoes", T0)])
    with storage.ingest.transaction() as tx:
        tx.save_presence(STORE, PHONE, DeviceVisitState("shoes", T0, T0, T0))
        tx.save_presence(OTHER, PHONE, DeviceVisitState("shoes", T0, T0, T0))
        tx.save_presence(STORE, WATCH, DeviceVisitState("shoes", T0, T0, T0))
    storage.ingest.erase_device(PHONE)
    assert storage.ingest.device_history(PHONE) == {"visits": [], "sightings": []}
    assert set(storage.ingest.load_presence()) == {(STORE, WATCH)}
    assert [v.device for v in storage.ingest.recent_visits(STORE, 10, None)] == [WATCH]
    assert storage.ingest.recent_visits(OTHER, 10, None) == []
    assert len(storage.ingest.device_history(WATCH)["sightings"]) == 1
    assert storage.ingest.received_keys(STORE) == [ReceivedKey(STORE, "gw-shoes", 1)]


def test_device_presence_lists_the_open_stays_of_one_device_by_store(storage: Storage) -> None:
    with storage.ingest.transaction() as tx:
        away = DeviceVisitState("shoes", T0, T0 + 5, T0 + 9, "denim", T0 + 7)
        tx.save_presence(STORE, PHONE, away)
        tx.save_presence(OTHER, PHONE, DeviceVisitState("denim", T0, T0, T0))
        tx.save_presence(STORE, WATCH, DeviceVisitState("shoes", T0, T0, T0))
    assert storage.ingest.device_presence(PHONE) == [
        {
            "store": OTHER,
            "zone": "denim",
            "entered_ms": T0,
            "last_in_zone_ms": T0,
            "last_heard_ms": T0,
            "away_zone": None,
            "away_since_ms": None,
        },
        {
            "store": STORE,
            "zone": "shoes",
            "entered_ms": T0,
            "last_in_zone_ms": T0 + 5,
            "last_heard_ms": T0 + 9,
            "away_zone": "denim",
            "away_since_ms": T0 + 7,
        },
    ]
    storage.ingest.erase_device(PHONE)
    assert storage.ingest.device_presence(PHONE) == []
    assert [p["store"] for p in storage.ingest.device_presence(WATCH)] == [STORE]


def test_scrubbing_after_an_erasure_completes_and_keeps_what_is_left(storage: Storage) -> None:
    _accept(storage, "gw-shoes", 1, sightings=[_sighting(PHONE, T0), _sighting(WATCH, T0)])
    storage.ingest.erase_device(PHONE)
    assert storage.ingest.scrub_deleted() is True
    assert storage.ingest.device_history(PHONE)["sightings"] == []
    assert len(storage.ingest.device_history(WATCH)["sightings"]) == 1


def test_pruning_deletes_only_sightings_older_than_the_limit(storage: Storage) -> None:
    old = [_sighting(PHONE, T0 + i) for i in range(5)]
    _accept(storage, "gw-shoes", 1, sightings=[*old, _sighting(PHONE, T0 + 10)])
    _accept(storage, "gw-shoes", 2, sightings=[_sighting(WATCH, T0 + 20)])
    assert storage.ingest.prune_sightings(T0 + 10, batch=2) == 5  # in batches, all of them
    assert storage.ingest.prune_sightings(T0 + 10) == 0
    kept = storage.ingest.device_history(PHONE)["sightings"]
    assert [s["window_start_ms"] for s in kept] == [T0 + 10]
    assert len(storage.ingest.device_history(WATCH)["sightings"]) == 1


# -- epochs: a new outbox is a new sequence -------------------------------------------


def _accept_in(storage: Storage, gateway: str, seq: int, epoch: int) -> None:
    with storage.ingest.transaction() as tx:
        tx.record_received(ReceivedKey(STORE, gateway, seq, epoch), "ble", T0, T0 + 5, 0)


def test_the_same_seq_in_another_epoch_is_another_message(storage: Storage) -> None:
    _accept_in(storage, "gw-shoes", 0, 5)
    _accept_in(storage, "gw-shoes", 0, 9)
    _accept_in(storage, "gw-shoes", 2, 9)
    with storage.ingest.transaction() as tx:
        assert tx.received_before(ReceivedKey(STORE, "gw-shoes", 0, 5))
        assert tx.received_before(ReceivedKey(STORE, "gw-shoes", 0, 9))
        assert not tx.received_before(ReceivedKey(STORE, "gw-shoes", 0, 7))
        tx.count_duplicate(ReceivedKey(STORE, "gw-shoes", 0, 9))
    with pytest.raises(Exception), storage.ingest.transaction() as tx:  # noqa: B017
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 2, 9), "ble", T0, T0, 0)
    assert storage.ingest.received_keys(STORE) == [
        ReceivedKey(STORE, "gw-shoes", 0, 5),
        ReceivedKey(STORE, "gw-shoes", 0, 9),
        ReceivedKey(STORE, "gw-shoes", 2, 9),
    ]
    assert storage.ingest.sequence_heads() == {(STORE, "gw-shoes", 5): 0, (STORE, "gw-shoes", 9): 2}
    assert storage.ingest.highest_seqs() == {(STORE, "gw-shoes"): 2}
    stats = storage.ingest.ingest_stats()
    # Per epoch: epoch 9 misses seq 1; epoch 5 is complete (not "0 .. 2 minus 3").
    assert (stats.ingested, stats.duplicates, stats.gaps) == (3, 1, 1)


def test_a_hole_wider_than_the_counted_bound_counts_as_one(storage: Storage) -> None:
    for seq in (0, 1, 2**62, 2**62 + 2):
        _accept_in(storage, "gw-shoes", seq, 3)
    assert storage.ingest.ingest_stats().gaps == 2  # the wide hole as one, then one missing


def test_the_pending_will_is_looked_up_in_the_epoch_of_the_birth(storage: Storage) -> None:
    _accept_in(storage, "gw-shoes", 0, 4)
    birth = _status(1, "online", T0).model_copy(update={"epoch": 4})
    with storage.ingest.transaction() as tx:
        tx.record_received(ReceivedKey(STORE, "gw-shoes", 1, 4), "status", T0, T0, 0)
        tx.record_status(birth, T0)
    _accept_in(storage, "gw-shoes", 3, 4)
    assert storage.ingest.ingest_stats().gaps == 0  # 2 is the live session's will
