"""The emulated NFC tag: memory layouts from the NFC Forum tag specifications,
and plain nfcpy (no omnizone code) reading it over nfcpy's UDP driver."""

import socket
import time
from collections.abc import Iterator

import ndef
import nfc
import nfc.clf
import pytest

from omnizone.sim.devices.nfc_tag import (
    EmulatedType2Tag,
    EmulatedType3Tag,
    NfcTagEmulator,
    attribute_block,
    random_phone_uid,
)

URL = "https://shop.example/app/p/03614272049529"
MESSAGE = b"".join(ndef.message_encoder([ndef.UriRecord(URL)]))
NTAG_UID = bytes.fromhex("05a1b2c3d4e5f6")


@pytest.fixture
def emulator() -> Iterator[NfcTagEmulator]:
    with NfcTagEmulator() as card:
        yield card


def read_with_nfcpy(device: str, targets: list[str]) -> tuple[str, bytes, list[object]]:
    seen: list[tuple[str, bytes, list[object]]] = []

    def on_connect(tag: nfc.tag.Tag) -> bool:
        records = [] if tag.ndef is None else list(tag.ndef.records)
        seen.append((tag.type, bytes(tag.identifier), records))
        return False  # give the tag back at once

    frontend = nfc.ContactlessFrontend(device)
    try:
        deadline = time.monotonic() + 15
        frontend.connect(
            rdwr={"targets": targets, "on-connect": on_connect, "iterations": 1},
            terminate=lambda: bool(seen) or time.monotonic() > deadline,
        )
    finally:
        frontend.close()
    assert seen, "nfcpy found no tag"
    return seen[0]


def test_type2_memory_follows_the_type2_tag_layout() -> None:
    tag = EmulatedType2Tag(NTAG_UID, MESSAGE)
    memory = tag.memory
    assert memory[0:3] == NTAG_UID[0:3] and memory[4:8] == NTAG_UID[3:7]
    assert memory[3] == 0x88 ^ 0x05 ^ 0xA1 ^ 0xB2  # BCC0 includes the cascade tag
    assert memory[8] == 0xC3 ^ 0xD4 ^ 0xE5 ^ 0xF6  # BCC1
    assert memory[12:16] == bytes([0xE1, 0x10, 144 // 8, 0x00])  # capability container
    assert memory[16:18] == bytes([0x03, len(MESSAGE)])  # NDEF message TLV
    assert memory[18 + len(MESSAGE)] == 0xFE  # terminator TLV
    assert tag.ndef_octets() == MESSAGE


def test_type2_long_messages_use_the_three_byte_tlv_length() -> None:
    long_message = b"".join(ndef.message_encoder([ndef.UriRecord(URL + "?" + "x" * 300)]))
    tag = EmulatedType2Tag(NTAG_UID, long_message, data_bytes=504)
    assert tag.memory[16:20] == b"\x03\xff" + len(long_message).to_bytes(2, "big")
    assert tag.ndef_octets() == long_message


def answer(tag: EmulatedType2Tag, *command: int) -> bytes | None:
    response = tag.process(bytearray(command))
    return None if response is None else bytes(response)


def test_type2_commands_read_write_and_stay_mute() -> None:
    tag = EmulatedType2Tag(NTAG_UID, data_bytes=16)  # 8 pages
    assert answer(tag, 0x30, 6) == bytes(tag.memory[24:32] + tag.memory[0:8])  # roll over
    assert answer(tag, 0x30, 8) == b"\x00"  # NAK past the end
    assert answer(tag, 0xA2, 5, 1, 2, 3, 4) == b"\x0a"  # ACK
    assert tag.memory[20:24] == b"\x01\x02\x03\x04"
    assert answer(tag, 0xA2, 2, 0, 0, 0, 0) == b"\x00"  # lock bytes: NAK
    assert answer(tag, 0x60) is None  # GET_VERSION: unsupported, mute
    locked = EmulatedType2Tag(NTAG_UID, writable=False)
    assert locked.memory[15] == 0x0F
    assert answer(locked, 0xA2, 4, 1, 2, 3, 4) == b"\x00"


def test_type3_attribute_block_and_blank_tags() -> None:
    block = attribute_block(38, 32, writable=True)
    assert block[0] == 0x10 and block[1:3] == b"\x04\x04" and block[3:5] == b"\x00\x20"
    assert block[10] == 0x01 and block[11:14] == b"\x00\x00\x26"
    assert int.from_bytes(block[14:16], "big") == sum(block[0:14])
    assert EmulatedType3Tag(random_phone_uid(), MESSAGE).ndef_octets() == MESSAGE
    assert EmulatedType3Tag(random_phone_uid(), blank=True).ndef_octets() is None


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: EmulatedType3Tag(b"\x02\xfe\x01"), "8 bytes"),
        (lambda: EmulatedType3Tag(bytes.fromhex("01fe010203040506")), "peer to peer"),
        (lambda: EmulatedType2Tag(bytes.fromhex("04a1b2c3d4e5f6")), "NXP"),
        (lambda: EmulatedType2Tag(NTAG_UID, b"\x00" * 200), "exceed"),
    ],
)
def test_impossible_tags_are_refused(make: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        make()  # type: ignore[operator]


def test_random_phone_ids_differ_per_tap() -> None:
    assert len({random_phone_uid() for _ in range(20)}) == 20


@pytest.mark.parametrize(
    ("tag", "targets", "tag_type"),
    [
        (EmulatedType3Tag(bytes.fromhex("02fe0102030405a7"), MESSAGE), ["212F"], "Type3Tag"),
        (EmulatedType2Tag(NTAG_UID, MESSAGE), ["106A"], "Type2Tag"),
    ],
)
def test_plain_nfcpy_reads_the_emulated_tag(
    emulator: NfcTagEmulator,
    tag: EmulatedType2Tag | EmulatedType3Tag,
    targets: list[str],
    tag_type: str,
) -> None:
    emulator.present(tag)
    found_type, identifier, records = read_with_nfcpy(emulator.device, targets)
    assert (found_type, identifier) == (tag_type, tag.uid)
    assert records == [ndef.UriRecord(URL)]
    assert emulator.activations >= 1


def test_garbage_datagrams_do_not_stop_the_card(emulator: NfcTagEmulator) -> None:
    tag = EmulatedType3Tag(bytes.fromhex("02fe0102030405a8"), MESSAGE)
    emulator.present(tag)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as noise:
        for junk in (b"\xff\xfe\x00", b"212F zz", b"212F", b"106A 26 26", b"RFOFF"):
            noise.sendto(junk, ("127.0.0.1", emulator.port))
    assert read_with_nfcpy(emulator.device, ["212F"])[1] == tag.uid


def test_a_timed_presentation_ends_by_itself(emulator: NfcTagEmulator) -> None:
    emulator.present(EmulatedType3Tag(bytes.fromhex("02fe0102030405a9")), duration_ms=100)
    assert emulator.wait_removed(10)
    frontend = nfc.ContactlessFrontend(emulator.device)
    try:
        assert frontend.sense(nfc.clf.RemoteTarget("212F")) is None  # nothing in the field
    finally:
        frontend.close()
