"""The real tap-point driver (nfcpy ContactlessFrontend on its UDP driver)
against an emulated tag, feeding a real GatewayNode and a real Outbox."""

from collections.abc import Callable, Iterator

import pytest

from omnizone.contract import GatewayConfig, NfcConfig, NfcMessage, parse_message
from omnizone.gateway.nfc.ndef import uri_message
from omnizone.gateway.nfc.reader import Frontend, NfcReader, open_frontend
from omnizone.gateway.nfc.settings import NfcReaderSettings
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.sim.devices.nfc_tag import (
    EmulatedType2Tag,
    EmulatedType3Tag,
    NfcTagEmulator,
    PresentedTag,
    random_phone_uid,
)

from .conftest import GATEWAY, STORE, T0, FakeClock, Wait

URL = "https://shop.example/app/p/03614272049529"
SHELF_TAG = bytes.fromhex("02fe0102030405a7")

MakeReader = Callable[..., NfcReader]


@pytest.fixture
def make_reader(node: GatewayNode, emulator: NfcTagEmulator) -> Iterator[MakeReader]:
    readers: list[NfcReader] = []

    def make(**overrides: object) -> NfcReader:
        factory = overrides.pop("frontend_factory", open_frontend)
        fields: dict[str, object] = {
            "tap_point": "shelf-denim",
            "device": emulator.device,
            "targets": ("212F",),
            "poll_interval_s": 0.02,
            "debounce_ms": 2_000,
        }
        fields.update(overrides)
        reader = NfcReader(
            node,
            NfcReaderSettings.model_validate(fields),
            frontend_factory=factory,  # type: ignore[arg-type]
        )
        readers.append(reader)
        reader.start()
        return reader

    yield make
    for reader in readers:
        assert reader.stop()
        assert not reader.running


def nfc_taps(outbox: Outbox) -> list[tuple[str, str | None, int, str | None]]:
    taps = []
    for entry in outbox.pending(limit=1000):
        message = parse_message(entry.topic, entry.payload)
        if isinstance(message, NfcMessage):
            assert (message.store, message.gateway) == (STORE, GATEWAY)
            taps += [(t.uid, t.ndef_uri, t.at_ms, t.tag_type) for t in message.items]
    return taps


def tap(emulator: NfcTagEmulator, reader: NfcReader, tag: PresentedTag, wait: Wait) -> None:
    """Hold the tag until the reader has read it, then take it away."""
    reads = reader.reads
    emulator.present(tag)
    wait(lambda: reader.reads > reads, "the reader to read the tag")
    assert emulator.remove()
    wait(
        lambda: (
            reader.releases == reader.reads and reader.node.readers[reader.tap_point] == "polling"
        ),
        "the reader to notice the tag left",
    )


def test_a_tap_becomes_one_nfc_message_and_repeats_are_debounced(
    make_reader: MakeReader,
    emulator: NfcTagEmulator,
    outbox: Outbox,
    node: GatewayNode,
    clock: FakeClock,
    wait: Wait,
) -> None:
    reader = make_reader()
    shelf_tag = EmulatedType3Tag(SHELF_TAG, uri_message(URL))
    tap(emulator, reader, shelf_tag, wait)
    assert nfc_taps(outbox) == [(SHELF_TAG.hex(), URL, T0, "Type3Tag")], reader.last_error

    clock.now_ms = T0 + 800  # the shopper taps again at once
    tap(emulator, reader, shelf_tag, wait)
    assert len(nfc_taps(outbox)) == 1

    clock.now_ms = T0 + 800 + 2_000  # a full debounce after it left the field
    tap(emulator, reader, shelf_tag, wait)
    assert nfc_taps(outbox) == [
        (SHELF_TAG.hex(), URL, T0, "Type3Tag"),
        (SHELF_TAG.hex(), URL, T0 + 2_800, "Type3Tag"),
    ]
    counters = node.health_counters()
    assert counters["nfc.shelf-denim.taps"] == 2
    assert counters["nfc.shelf-denim.debounced"] == reader.reads - 2 >= 1
    assert counters["nfc.shelf-denim.reader_errors"] == 0
    assert node.readers["shelf-denim"] == "polling"


def test_the_server_config_changes_the_debounce_without_a_restart(
    make_reader: MakeReader,
    emulator: NfcTagEmulator,
    outbox: Outbox,
    node: GatewayNode,
    clock: FakeClock,
    wait: Wait,
) -> None:
    reader = make_reader(debounce_ms=10_000)
    shelf_tag = EmulatedType3Tag(SHELF_TAG, uri_message(URL))
    tap(emulator, reader, shelf_tag, wait)
    config = GatewayConfig(
        store=STORE, gateway=GATEWAY, revision=1, issued_ms=T0, nfc=NfcConfig(debounce_ms=300)
    )
    assert node.apply_config(config)
    assert reader.debounce_ms == 300
    clock.now_ms = T0 + 500
    tap(emulator, reader, shelf_tag, wait)
    assert [at for _, _, at, _ in nfc_taps(outbox)] == [T0, T0 + 500]


def test_a_type2_shelf_tag_and_a_phone_are_told_apart_by_uid(
    make_reader: MakeReader,
    emulator: NfcTagEmulator,
    outbox: Outbox,
    clock: FakeClock,
    wait: Wait,
) -> None:
    reader = make_reader(targets=("106A", "212F"))
    ntag = EmulatedType2Tag(bytes.fromhex("05a1b2c3d4e5f6"), uri_message(URL))
    tap(emulator, reader, ntag, wait)
    phone = EmulatedType3Tag(random_phone_uid())  # no NDEF: a phone's random id
    tap(emulator, reader, phone, wait)
    assert nfc_taps(outbox) == [
        ("05a1b2c3d4e5f6", URL, T0, "Type2Tag"),
        (phone.uid.hex(), None, T0, "Type3Tag"),
    ]


def test_garbage_ndef_is_counted_and_the_tap_still_published(
    make_reader: MakeReader, emulator: NfcTagEmulator, outbox: Outbox, wait: Wait
) -> None:
    reader = make_reader()
    tap(emulator, reader, EmulatedType3Tag(SHELF_TAG, b"\xd1\x01\x7fU\x04shop"), wait)
    assert nfc_taps(outbox) == [(SHELF_TAG.hex(), None, T0, "Type3Tag")]
    counters = reader.counters()
    assert counters["ndef_errors"] >= 1, (counters, reader.last_error)
    assert counters["taps"] == 1
    assert reader.last_error is not None and "malformed NDEF" in reader.last_error


def test_a_missing_reader_is_retried_with_backoff_and_reported(
    make_reader: MakeReader, node: GatewayNode, wait: Wait
) -> None:
    reader = make_reader(device="tty:NOSUCHNFC0:pn532")
    wait(lambda: reader.reader_errors >= 2, "a second attempt to open the reader")
    assert node.readers["shelf-denim"] in ("unavailable", "opening")
    assert "cannot open 'tty:NOSUCHNFC0:pn532'" in str(reader.last_error)
    assert node.health_counters()["nfc.shelf-denim.reader_errors"] >= 2
    assert reader.stop()  # interrupts the backoff
    assert node.readers["shelf-denim"] == "stopped"


def test_a_reader_unplugged_mid_run_is_reopened(
    make_reader: MakeReader,
    emulator: NfcTagEmulator,
    outbox: Outbox,
    clock: FakeClock,
    wait: Wait,
) -> None:
    opened: list[Frontend] = []

    def factory(device: str) -> Frontend:
        frontend = open_frontend(device)
        opened.append(frontend)
        return frontend

    reader = make_reader(frontend_factory=factory)
    shelf_tag = EmulatedType3Tag(SHELF_TAG, uri_message(URL))
    tap(emulator, reader, shelf_tag, wait)
    opened[0].close()  # the device goes away under nfcpy: ENODEV on the next command
    wait(lambda: reader.reopen == 1, "the reader to be reopened")
    assert reader.reader_errors >= 1 and len(opened) >= 2
    clock.now_ms = T0 + 60_000
    tap(emulator, reader, shelf_tag, wait)
    assert [at for _, _, at, _ in nfc_taps(outbox)] == [T0, T0 + 60_000]
