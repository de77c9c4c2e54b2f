"""The 0xA0-header protocol against frames written out by hand from the
protocol description, and the incremental parser under fuzzing."""

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.gateway.rfid.protocol import (
    Cmd,
    Frame,
    FrameParser,
    Malformed,
    ReaderError,
    RoundSummary,
    TagReport,
    build_frame,
    checksum,
    cmd_get_firmware_version,
    cmd_real_time_inventory,
    cmd_session_inventory,
    cmd_set_output_power,
    cmd_set_work_antenna,
    decode_inventory,
    frequency_mhz,
    round_summary_frame,
    rssi_byte,
    rssi_dbm,
    tag_report_frame,
)

# Host packets (address 0x01); Check = two's complement of the byte sum.
# e.g. A0+03+01+72 = 0x116 -> 0x16 -> 0x100-0x16 = 0xEA.
HOST_FRAMES = [
    (cmd_get_firmware_version(0x01), "A0 03 01 72 EA"),
    (cmd_set_work_antenna(1, 0x01), "A0 04 01 74 00 E7"),
    (cmd_set_work_antenna(4, 0x01), "A0 04 01 74 03 E4"),
    (cmd_set_output_power(30, 0x01), "A0 04 01 76 1E C7"),
    (cmd_real_time_inventory(1, 0x01), "A0 04 01 89 01 D1"),
    (cmd_real_time_inventory(0xFF, 0xFF), "A0 04 FF 89 FF D5"),
    (cmd_session_inventory(1, 0, 1, 0x01), "A0 06 01 8B 01 00 01 CC"),
]

# A tag report for EPC 3074257BF7194E4000001A85 (12 bytes, PC 0x3000 = 6 words)
# on antenna 2 (low bits 01) at frequency index 7 (902.0 MHz): FreqAnt 0x1D; RSSI
# byte 0x5A (90 -> -39 dBm). Len = addr+cmd+FreqAnt+PC(2)+EPC(12)+RSSI+check = 0x13.
TAG_REPORT = "A0 13 01 89 1D 30 00 3074257BF7194E4000001A85 5A 9B"
# End of round: AntID 0, ReadRate 100 (0x0064), TotalRead 5.
ROUND_END = "A0 0A 01 89 00 0064 00000005 63"
# Failure: ErrorCode 0x22 (antenna missing).
ANTENNA_MISSING = "A0 04 01 89 22 B0"


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(("built", "by_hand"), HOST_FRAMES)
def test_host_commands_match_hand_built_frames(built: bytes, by_hand: str) -> None:
    assert built == hx(by_hand)
    assert sum(built) % 256 == 0  # the property the checksum is defined by


def test_checksum_is_twos_complement_of_the_sum() -> None:
    assert checksum(hx("A0 03 01 72")) == 0xEA
    assert checksum(b"") == 0
    assert checksum(bytes([0x80, 0x80])) == 0


def test_tag_report_by_hand() -> None:
    frames = FrameParser().feed(hx(TAG_REPORT))
    assert frames == [Frame(0x01, Cmd.REAL_TIME_INVENTORY, hx(TAG_REPORT)[4:-1])]
    report = decode_inventory(frames[0])
    assert report == TagReport(
        antenna=2, frequency_index=7, pc=0x3000, epc=hx("3074257BF7194E4000001A85"), rssi_dbm=-39
    )
    assert report.frequency_mhz == 902.0
    assert tag_report_frame(0x01, report.epc, -39, antenna=2, frequency_index=7) == hx(TAG_REPORT)


def test_round_end_and_error_by_hand() -> None:
    parser = FrameParser()
    end, error = parser.feed(hx(ROUND_END) + hx(ANTENNA_MISSING))
    assert decode_inventory(end) == RoundSummary(antenna=1, read_rate=100, total_read=5)
    assert round_summary_frame(0x01, 1, 100, 5) == hx(ROUND_END)
    decoded = decode_inventory(error)
    assert decoded == ReaderError(Cmd.REAL_TIME_INVENTORY, 0x22)
    assert isinstance(decoded, ReaderError) and decoded.name == "antenna_missing"


def test_report_whose_pc_overruns_the_frame_is_malformed() -> None:
    frame = Frame(0x01, Cmd.REAL_TIME_INVENTORY, bytes([0x00, 0x30, 0x00, 0xAA, 0xBB, 0x50]))
    assert isinstance(decode_inventory(frame), Malformed)
    assert isinstance(decode_inventory(Frame(1, 0x89, b"\x00\x00")), Malformed)


def test_rssi_and_frequency_tables() -> None:
    assert rssi_dbm(0x62) == -31
    assert rssi_dbm(0x1F) == -98
    assert rssi_dbm(0x00) == -127  # clamped to the contract's floor
    assert all(rssi_dbm(rssi_byte(d)) == d for d in range(-127, -1))
    assert frequency_mhz(0) == 865.0 and frequency_mhz(6) == 868.0
    assert frequency_mhz(7) == 902.0 and frequency_mhz(59) == 928.0
    assert frequency_mhz(60) is None


def test_builders_reject_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        cmd_set_work_antenna(5)
    with pytest.raises(ValueError):
        cmd_set_output_power(34)
    with pytest.raises(ValueError):
        build_frame(0x100, 0x72)


def test_parser_counts_garbage_bad_checksums_and_truncation() -> None:
    good = hx(TAG_REPORT)
    corrupt = bytearray(good)
    corrupt[10] ^= 0x01
    truncated = hx(ROUND_END)[:6]
    parser = FrameParser()
    frames = parser.feed(b"\x00\x13\x37" + bytes(corrupt) + good + truncated + good)
    frames += parser.flush()
    assert frames == [FrameParser().feed(good)[0]] * 2
    assert parser.stats.bad_frames >= 2  # the corrupt one and the truncated one
    assert parser.stats.resyncs >= 2
    assert parser.pending == 0


def test_frame_split_across_reads_byte_by_byte() -> None:
    parser = FrameParser()
    stream = hx(TAG_REPORT) + hx(ROUND_END)
    frames = [f for b in stream for f in parser.feed(bytes([b]))]
    assert [f.cmd for f in frames] == [0x89, 0x89]
    assert parser.stats.bad_frames == 0 and parser.stats.resyncs == 0


# --- fuzz ------------------------------------------------------------------------

frames_st = st.builds(
    Frame,
    address=st.integers(0, 255),
    cmd=st.integers(0, 255),
    data=st.binary(max_size=40),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300)
@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=20))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser()
    frames = [f for chunk in chunked(data, cuts) for f in parser.feed(chunk)]
    frames += parser.flush()
    for frame in frames:  # whatever comes out is a well-formed packet
        assert sum(frame.encode()) % 256 == 0
    assert parser.pending == 0


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.binary(max_size=12), frames_st), min_size=1, max_size=8),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_frames_behind_head_free_garbage_are_all_recovered(
    parts: list[tuple[bytes, Frame]], cuts: list[int]
) -> None:
    clean = [g.replace(b"\xa0", b"\x55") for g, _ in parts]
    stream = b"".join(g + f.encode() for g, (_, f) in zip(clean, parts, strict=True))
    parser = FrameParser()
    out = [f for chunk in chunked(stream, cuts) for f in parser.feed(chunk)]
    assert out == [f for _, f in parts]
    assert parser.stats.skipped_bytes == sum(len(g) for g in clean)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.binary(max_size=12), frames_st, st.integers(0, 3)), min_size=1, max_size=8
    ),
    st.randoms(use_true_random=False),
)
def test_frames_survive_garbage_with_heads_and_truncated_frames(
    parts: list[tuple[bytes, Frame, int]], rng: random.Random
) -> None:
    """Garbage may hold 0xA0 and cut-off frames whose bogus length swallows the
    next good frame; every good frame still comes out, unless the garbage
    happened to form a checksum-valid packet itself (then it is indistinguishable)."""
    stream = b""
    for garbage, frame, kind in parts:
        junk = garbage
        if kind == 1:  # a truncated frame in front
            whole = frame.encode()
            junk += whole[: rng.randrange(1, len(whole))]
        elif kind == 2:  # a corrupted copy in front
            bad = bytearray(frame.encode())
            bad[rng.randrange(1, len(bad))] ^= rng.randrange(1, 256)
            junk += bytes(bad)
        stream += junk + frame.encode()
    parser = FrameParser()
    out = parser.feed(stream) + parser.flush()
    wanted = [f for _, f, _ in parts]
    it = iter(out)
    recovered_in_order = all(any(f == o for o in it) for f in wanted)
    impostors = [o for o in out if o not in wanted]
    assert recovered_in_order or impostors
