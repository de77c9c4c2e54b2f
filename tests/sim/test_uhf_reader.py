"""The emulated R2000 reader, spoken to over its pseudo-terminal with plain pyserial."""

import os
from pathlib import Path

import pytest
import serial

from omnizone.gateway.rfid.protocol import (
    Cmd,
    Frame,
    FrameParser,
    ReaderError,
    RoundSummary,
    TagReport,
    cmd_get_firmware_version,
    cmd_real_time_inventory,
    cmd_set_output_power,
    cmd_set_work_antenna,
    decode_inventory,
)
from omnizone.sim.devices.uhf_reader import EmulatedUhfReader, SerialNoise

SHIRT = "3074257bf7194e4000001a85"
JEANS = "3074257bf7194e4000001a86"
DRESS = "3074257bf7194e4000001a87"


def exchange(port: serial.Serial, request: bytes, until_cmd_frames: int = 1) -> list[bytes]:
    """Send a request, collect raw answer bytes until `until_cmd_frames` frames parsed."""
    port.write(request)
    parser = FrameParser()
    frames: list[Frame] = []
    while len(frames) < until_cmd_frames:
        chunk = port.read(max(1, port.in_waiting))
        if not chunk:  # silence for the port's timeout: nothing more is coming
            break
        frames += parser.feed(chunk)
    return [f.encode() for f in frames]


def test_answers_commands_and_reports_tags_on_the_work_antenna(tmp_path: Path) -> None:
    with EmulatedUhfReader(address=0x01, firmware=(2, 3)) as reader:
        assert reader.port.startswith("/dev/pts/")
        reader.put_tag(SHIRT, -45, antenna=1)
        reader.put_tag(JEANS, -60, antenna=1)
        reader.put_tag(DRESS, -50, antenna=2)
        with serial.serial_for_url(reader.port, baudrate=115200, timeout=0.3) as port:
            assert exchange(port, cmd_get_firmware_version()) == [
                bytes.fromhex("A0 05 01 72 02 03 E3")
            ]
            assert exchange(port, cmd_set_output_power(20)) == [bytes.fromhex("A0 04 01 76 10 D5")]
            assert reader.power_dbm == 20
            assert exchange(port, cmd_set_work_antenna(1)) == [bytes.fromhex("A0 04 01 74 10 D7")]

            parser = FrameParser()
            answers = parser.feed(b"".join(exchange(port, cmd_real_time_inventory(), 3)))
            packets = [decode_inventory(f) for f in answers]
            reports = [p for p in packets if isinstance(p, TagReport)]
            assert sorted((r.epc.hex(), r.antenna, r.rssi_dbm) for r in reports) == [
                (SHIRT, 1, -45),
                (JEANS, 1, -60),
            ]
            assert isinstance(packets[-1], RoundSummary) and packets[-1].total_read == 2

            exchange(port, cmd_set_work_antenna(2))
            reader.remove_tag(DRESS)
            packets = [
                decode_inventory(f)
                for f in parser.feed(b"".join(exchange(port, cmd_real_time_inventory())))
            ]
            assert packets == [RoundSummary(antenna=2, read_rate=0, total_read=0)]

            corrupt = bytes.fromhex("A0 04 FF 76 14 00")  # checksum should be D3
            assert exchange(port, corrupt) == []  # ignored, as the module does
            assert reader.power_dbm == 20
            # set_work_antenna with AntennaID 7, built by hand: A0+04+FF+74+07 = 0x21E -> E2
            (answer,) = exchange(port, bytes.fromhex("A0 04 FF 74 07 E2"))
            packets = [decode_inventory(f) for f in parser.feed(answer)]
            assert packets == [ReaderError(Cmd.SET_WORK_ANTENNA, 0x47)]


def test_noise_is_seeded_and_counted() -> None:
    noise = SerialNoise(garbage_rate=0.5, split_rate=0.5, corrupt_rate=0.3, truncate_rate=0.2)

    def stream(seed: int) -> bytes:
        with EmulatedUhfReader(noise=noise, seed=seed, round_s=0) as reader:
            reader.put_tag(SHIRT)
            with serial.serial_for_url(reader.port, timeout=0.02) as port:
                received = b""
                for _ in range(10):
                    port.write(cmd_real_time_inventory())
                    while chunk := port.read(256):
                        received += chunk
            assert reader.counters.garbage_bytes and reader.counters.corrupted
            assert reader.counters.splits and reader.counters.truncated
            return received

    first = stream(7)
    assert first == stream(7)
    assert first != stream(8)


def test_stop_closes_everything_and_the_host_sees_the_port_vanish(tmp_path: Path) -> None:
    link = tmp_path / "ttyUHF"
    before = set(os.listdir("/proc/self/fd"))
    reader = EmulatedUhfReader(link=link)
    reader.start()
    assert link.is_symlink() and reader.port == str(link)
    port = serial.serial_for_url(str(link), timeout=0.2)
    reader.stop()
    with pytest.raises(serial.SerialException):
        port.write(cmd_get_firmware_version())
        port.read(10)
    port.close()
    assert not link.exists()
    assert set(os.listdir("/proc/self/fd")) == before
